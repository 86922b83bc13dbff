#!/usr/bin/env bash
# stevedore serve against Debian's docker-registry (distribution 2.8.2), same
# machine, same run: push of a generated ~1 GiB image by crane, pulls of it by
# crane and skopeo, manifest GETs/s (wrk) and blob HEADs/s (ab -k -i) under
# concurrent load, and each server's peak RSS. Rows are medians of BENCH_RUNS.
#
# Usage: make build && bench/server/run.sh   (BENCH_RUNS=N, BENCH_DIR=DIR)
# Needs: skopeo, docker-registry, wrk, ab (apache2-utils), and crane:
#   go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
bin=${BENCH_BIN:-$PWD/bin}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/stevedore-srvbench-XXXX)}
mkdir -p "$work"
crane=$(command -v crane || echo "$(go env GOPATH)/bin/crane")
for t in skopeo docker-registry wrk ab "$crane" "$bin/stevedore" "$bin/mkimage"; do
	command -v "$t" >/dev/null || [ -x "$t" ] || { echo "bench: $t is needed (see the header of $0)" >&2; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
DUR=${BENCH_LOAD_SECONDS:-5}

pid=""
stop_server() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop_server; rm -rf "$work"' EXIT

wait_up() {
	for _ in $(seq 200); do curl -fsS "http://$1/v2/" >/dev/null 2>&1 && return 0; sleep 0.05; done
	echo "bench: server on $1 did not start" >&2; return 1
}

# start_server KIND ADDR [keep]: (re)start a server of KIND (registry |
# stevedore) on ADDR, with empty storage unless "keep" is given.
start_server() {
	local kind=$1 addr=$2
	stop_server
	if [ -z "${3:-}" ]; then rm -rf "$work/store-$kind" && mkdir -p "$work/store-$kind"; fi
	case $kind in
	registry)
		cat > "$work/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/store-$kind}, delete: {enabled: true}}
http: {addr: $addr}
YML
		env $(env | grep -o '^REGISTRY_[A-Z_]*' | sed 's/^/-u /') docker-registry serve "$work/config.yml" >"$work/server.log" 2>&1 &
		;;
	stevedore)
		"$bin/stevedore" serve --root "$work/store-$kind" --addr "$addr" --access-log=false >"$work/server.log" 2>&1 &
		;;
	esac
	pid=$!
	wait_up "$addr"
}

server_cpu() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$pid/stat"; }
peak_rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status"; }

echo "# generating a ~1 GiB image"
"$bin/mkimage" -layout "$work/img" -tag v1 -layers 8 -size 160MiB -compressible 0.25 >/dev/null
du -sh "$work/img/blobs" | awk '{print "# blobs: " $1}'
accept=application/vnd.oci.image.manifest.v1+json
layer=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["manifests"][0]["digest"])' "$work/img/index.json")
layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+sys.argv[2].split(":")[1])); print(m["layers"][0]["digest"])' "$work/img" "$layer")

for kind in registry stevedore; do
	addr=127.0.0.1:$(free_port)
	echo "## $kind"
	measure "$kind: crane push" "start_server $kind $addr" -- "$crane" push --insecure "$work/img" "$addr/big:v1"
	# The server's own CPU for one push into an empty store.
	start_server "$kind" "$addr"
	"$crane" push --insecure "$work/img" "$addr/big:v1" >/dev/null 2>&1
	echo "$kind: server CPU for one push: $(server_cpu) s"
	measure "$kind: crane pull" "rm -rf $work/pull" -- "$crane" pull --insecure --format oci "$addr/big:v1" "$work/pull"
	measure "$kind: skopeo pull" "rm -rf $work/pull" -- skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$addr/big:v1" "oci:$work/pull:v1"
	rm -rf "$work/pull"
	gets=$(wrk -t2 -c32 -d${DUR}s -H "Accept: $accept" "http://$addr/v2/big/manifests/v1" | awk '/Requests\/sec/ {print $2}')
	heads=$(ab -q -k -i -c 32 -t "$DUR" -n 10000000 "http://$addr/v2/big/blobs/$layer" 2>/dev/null | awk '/Requests per second/ {print $4}')
	echo "$kind: manifest GET ${gets} req/s, blob HEAD ${heads} req/s, peak RSS $(peak_rss) MiB"
	stop_server
done
