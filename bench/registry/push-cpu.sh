#!/usr/bin/env bash
# CPU time of one push, stevedore against crane, on a fresh docker-registry
# each round (plain HTTP on loopback). Pushing is bound by the registry's own
# hashing and disk, so wall times are noisy here; the client's CPU (user +
# sys of the process tree) is what tells the tools apart.
#
# Usage: make build && bench/registry/push-cpu.sh LAYOUT TAG [ROUNDS]
#   e.g. bin/mkimage -layout /var/tmp/pb60 -layers 12 -size 60MiB -compressible 0 -tag big
#        bench/registry/push-cpu.sh /var/tmp/pb60 big 4
# STEVEDORE=path/to/stevedore compares another build.
set -euo pipefail
cd "$(dirname "$0")/../.."
layout=${1:?layout} tag=${2:?tag} rounds=${3:-3}
stevedore=${STEVEDORE:-$PWD/bin/stevedore}
crane=$(command -v crane || echo "$(go env GOPATH)/bin/crane")
work=$(mktemp -d /var/tmp/stevedore-pushcpu-XXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
trap 'rm -rf "$work"' EXIT
one() { # one TOOL: prints "TOOL wall cpu"
	rm -rf "$work/storage"; mkdir -p "$work/storage"
	printf '%s\n' 'version: 0.1' 'log: {level: error, accesslog: {disabled: true}}' 'storage:' \
		"  filesystem: {rootdirectory: $work/storage}" "http: {addr: 127.0.0.1:$port, secret: x}" >"$work/config.yml"
	docker-registry serve "$work/config.yml" >"$work/log" 2>&1 &
	local reg=$!
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
	local cmd
	case $1 in
	crane) cmd="$crane push $layout 127.0.0.1:$port/b/img:$tag --insecure" ;;
	stevedore) cmd="$stevedore copy -q oci:$layout:$tag docker://127.0.0.1:$port/b/img:$tag --dest-tls-verify=false" ;;
	esac
	/usr/bin/time -f "$1 %e %U %S" -o "$work/time" $cmd >/dev/null 2>&1
	kill $reg; wait $reg 2>/dev/null || true
	awk '{printf "%s wall %.2f s, cpu %.2f s\n", $1, $2, $3+$4}' "$work/time"
}
for _ in $(seq "$rounds"); do
	one stevedore
	one crane
done
