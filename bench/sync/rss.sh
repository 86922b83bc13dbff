#!/usr/bin/env bash
# Peak memory of a big registry-to-registry mirror: does the sync host stay
# flat as the number of images grows? For each N (default 500 1000 2000), N
# tiny images (10 repositories of N/10 tags, a few hundred bytes of layers
# each) in a source docker-registry are mirrored with `stevedore sync
# --prefix` to a fresh destination docker-registry, both plain HTTP on
# 127.0.0.1. Printed: the peak RSS (VmHWM) of the host process and of the
# docker plugin, each on its own (GNU time's figure is the larger of the
# two), and the wall time.
#
# The host keeps, by design, a few hundred bytes per image (its line of the
# report) and per distinct blob (where the run put it, for cross-repository
# mounts): its RSS grows some 2 KiB per image of this fixture (25 / 26 / 28
# MiB at 500 / 1000 / 2000). Anything near 20 KiB per image is a leak (it
# was, 32 / 42 / 62 MiB: every tag compared at once, each image then waiting
# for a copy slot in a goroutine of its own).
#
# Usage: bench/sync/rss.sh [N...]    (needs docker-registry, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(500 1000 2000)
command -v docker-registry >/dev/null || { echo "bench/sync/rss: missing docker-registry" >&2; exit 1; }

. bench/sync/lib.sh
sync_bench_setup syncrss

# start_registry NAME: a registry with fresh storage; sets REG_ADDR, REG_PID.
start_registry() {
	local name=$1 port
	port=$(free_port)
	rm -rf "${work:?}/$name"
	mkdir -p "$work/$name"
	cat >"$work/$name/config.yml" <<-EOF
		version: 0.1
		log: {level: error, accesslog: {disabled: true}}
		storage:
		  filesystem: {rootdirectory: $work/$name/data}
		  delete: {enabled: true}
		  maintenance: {uploadpurging: {enabled: false}}
		http:
		  addr: 127.0.0.1:$port
	EOF
	# shellcheck disable=SC2046 # REGISTRY_* would override the config
	env $(env | awk -F= '/^REGISTRY_/ {print "-u " $1}') docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
	REG_PID=$!
	pids+=("$REG_PID")
	REG_ADDR=127.0.0.1:$port
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://$REG_ADDR/v2/" && return
		sleep 0.1
	done
	echo "bench/sync/rss: registry $name did not start" >&2
	cat "$work/$name/log" >&2
	exit 1
}

stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# One layout tree holds every size's fixture: fixture/nN/rK, pushed to the
# source registry as nN/rK.
repos=$(seq -s, -f 'r%g' 0 9)
for n in "${sizes[@]}"; do
	tags=$(seq -s, -f 't%g' 1 $((n / 10)))
	"$bin/mkfixture" -dir "$work/fixture/n$n" -repos "$repos" -tags "$tags" -base 512 -repo 512 -own 256
done
start_registry src
SRC=$REG_ADDR
"$bin/stevedore" sync -q --prefix --dest-tls-verify=false "oci:$work/fixture" "$SRC" >/dev/null 2>"$work/push.err" ||
	{ cat "$work/push.err" >&2; exit 1; }

printf '%-8s %-10s %-12s %-12s %s\n' images wall host-rss docker-rss summary
for n in "${sizes[@]}"; do
	start_registry "dst$n"
	dst_pid=$REG_PID
	out=$work/sync-$n.err
	start=$(date +%s.%N)
	"$bin/stevedore" sync -q --prefix --src-tls-verify=false --dest-tls-verify=false "$SRC/n$n" "$REG_ADDR/n$n" 2>"$out" &
	host=$!
	host_peak=0 plug_peak=0
	# VmHWM is the process's own peak so far: the last reading before it
	# exits is its peak, up to the last 0.2 s.
	while kill -0 "$host" 2>/dev/null; do
		h=$(hwm "$host")
		[ -n "$h" ] && [ "$h" -gt "$host_peak" ] && host_peak=$h
		for c in $(pgrep -P "$host" 2>/dev/null || true); do
			h=$(hwm "$c")
			[ -n "$h" ] && [ "$h" -gt "$plug_peak" ] && plug_peak=$h
		done
		sleep 0.2
	done
	wait "$host" || { cat "$out" >&2; exit 1; }
	wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e-s }')
	printf '%-8s %-10s %-12s %-12s %s\n' "$n" "$wall" "$((host_peak / 1024)) MiB" "$((plug_peak / 1024)) MiB" \
		"$(grep '^sync:' "$out" | cut -d';' -f1)"
	stop_registry "$dst_pid"
done
