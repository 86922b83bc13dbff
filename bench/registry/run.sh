#!/usr/bin/env bash
# docker:// transport benchmark: stevedore against skopeo and crane, same
# machine, same run, on a generated ~1 GiB image (8 layers of 128 MiB, a
# quarter compressible) and Debian's docker-registry on loopback (plain
# HTTP, filesystem storage in a temp dir).
#
# Rows: push (oci: -> docker://, empty registry each run), re-push of an
# image whose blobs all exist, pull (docker:// -> oci:), copy between two
# registries, and copy to another repository of the same registry
# (cross-repository mount where the tool does it; the registry is reset to
# the source image alone before each run). Each row is the median of
# BENCH_RUNS runs: wall time, CPU time of the process tree, peak RSS of one
# process.
#
# Usage: make build && bench/registry/run.sh   (BENCH_RUNS=N, BENCH_DIR=DIR,
# BENCH_SECTIONS=REGEX to run only the sections whose title matches)
# crane: go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
bin=${BENCH_BIN:-$PWD/bin}
export STEVEDORE_PLUGIN_PATH=$bin
work=${BENCH_DIR:-$(mktemp -d /var/tmp/stevedore-regbench-XXXX)}
mkdir -p "$work"

command -v skopeo >/dev/null || { echo "bench: skopeo is needed (apt-get install skopeo)" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "bench: docker-registry is needed (apt-get install docker-registry)" >&2; exit 1; }
crane=$(command -v crane || echo "$(go env GOPATH)/bin/crane")
[ -x "$crane" ] || crane=""
[ -n "$crane" ] || echo "# crane not found: its rows are skipped (go install github.com/google/go-containerregistry/cmd/crane@v0.22.1)"
for b in stevedore stevedore-transport-docker stevedore-transport-oci mkimage; do
	[ -x "$bin/$b" ] || { echo "bench: $bin/$b missing: run make build" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Two registries on fixed ports (the measured commands name them).
declare -A regpid regport
regport[A]=$(free_port)
regport[B]=$(free_port)
A=127.0.0.1:${regport[A]}
B=127.0.0.1:${regport[B]}

stop_registry() {
	if [ -n "${regpid[$1]:-}" ]; then
		kill "${regpid[$1]}" 2>/dev/null || true
		wait "${regpid[$1]}" 2>/dev/null || true
		regpid[$1]=""
	fi
}

# start_registry NAME [keep]: (re)starts registry NAME, with empty storage
# unless "keep" is given.
start_registry() {
	local name=$1 dir=$work/reg-$1 port=${regport[$1]}
	stop_registry "$name"
	if [ -z "${2:-}" ]; then
		rm -rf "$dir"
		mkdir -p "$dir/storage"
	fi
	printf '%s\n' \
		'version: 0.1' \
		'log: {level: error, accesslog: {disabled: true}}' \
		'storage:' \
		"  filesystem: {rootdirectory: $dir/storage}" \
		'  delete: {enabled: true}' \
		'  maintenance: {uploadpurging: {enabled: false}}' \
		"http: {addr: 127.0.0.1:$port, secret: stevedore-bench}" >"$dir/config.yml"
	# REGISTRY_* variables would override the config file.
	env $(env | grep -o '^REGISTRY_[A-Z0-9_]*' | sed 's/^/-u /') docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	regpid[$name]=$!
	for _ in $(seq 200); do
		curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && return 0
		sleep 0.05
	done
	echo "bench: registry $name did not start: $(cat "$dir/log")" >&2
	exit 1
}

cleanup() {
	stop_registry A
	stop_registry B
	rm -rf "$work"
}
trap cleanup EXIT

# seed_A pushes the image to A as bench/src:big and snapshots A's storage.
seed_A() {
	start_registry A
	skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/src:big" "docker://$A/bench/src:big"
	stop_registry A
	rm -rf "$work/snapshot-A"
	cp -al "$work/reg-A/storage" "$work/snapshot-A"
	start_registry A keep
}

# reset_A brings A back to the snapshot (hard links: the registry never
# rewrites a stored file).
reset_A() {
	stop_registry A
	rm -rf "$work/reg-A/storage"
	cp -al "$work/snapshot-A" "$work/reg-A/storage"
	start_registry A keep
}

echo "# generating a ~1 GiB image"
"$bin/mkimage" -layout "$work/src" -tag big -layers 8 -size 128MiB -compressible 0.25 >/dev/null
du -sh "$work/src/blobs" | awk '{print "# blobs: " $1}'
# skopeo remembers where it saw blobs and would mount from earlier runs.
skopeo_fresh='rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "${XDG_DATA_HOME:-$HOME/.local/share}/containers/cache/blob-info-cache-v1.boltdb"'
seed_A
start_registry B

results=$work/results.txt
: >"$results"
# A section's rows run interleaved, one run of each row per round
# (BENCH_RUNS rounds), so that a slow spell of this noisy machine hits
# every tool alike; each row reports its median run.
# row LABEL SETUP -- CMD...: adds a row to the current section (setups run
# in this shell: they restart registries).
rows_label=() rows_setup=() rows_cmd=()
row() {
	[ "$skip" = 0 ] || return 0
	rows_label+=("$1")
	rows_setup+=("$2")
	shift 3
	rows_cmd+=("$(printf '%q ' "$@")")
}
flush_section() {
	local n=${#rows_label[@]} i r f
	[ "$n" -gt 0 ] || return 0
	for i in $(seq 0 $((n - 1))); do : >"$work/times.$i"; done
	for r in $(seq "$BENCH_RUNS"); do
		for i in $(seq 0 $((n - 1))); do
			eval "${rows_setup[$i]}"
			sync
			eval "/usr/bin/time -f '%e %U %S %M' -o '$work/times.$i' -a ${rows_cmd[$i]}" >/dev/null 2>/tmp/bench-stderr ||
				{ cat /tmp/bench-stderr >&2; exit 1; }
		done
	done
	for i in $(seq 0 $((n - 1))); do
		# every run, in order: wall cpu rss (on stderr)
		awk -v label="${rows_label[$i]}" '{ printf "#   %s run %d: wall %s s, cpu %.2f s\n", label, NR, $1, $2+$3 }' "$work/times.$i" >&2
		sort -n "$work/times.$i" | awk -v label="${rows_label[$i]}" -v n="$BENCH_RUNS" '
			{ w[NR]=$1; c[NR]=$2+$3; r[NR]=$4 }
			END { m=int((n+1)/2); printf "%-40s wall %6.2f s  cpu %6.2f s  rss %7.1f MiB\n", label, w[m], c[m], r[m]/1024 }' |
			tee -a "$results"
	done
	rows_label=() rows_setup=() rows_cmd=()
}
# BENCH_SECTIONS, a grep -E pattern, keeps the sections whose title matches.
skip=0
section() {
	flush_section
	skip=0
	if [ -n "${BENCH_SECTIONS:-}" ] && ! grep -qE "$BENCH_SECTIONS" <<<"$*"; then
		skip=1
		return 0
	fi
	echo "## $*" | tee -a "$results"
}

section "push: oci: -> docker:// (empty registry)"
row "skopeo push" "$skopeo_fresh; start_registry B" -- skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/src:big" "docker://$B/bench/img:big"
[ -z "$crane" ] || row "crane push" "start_registry B" -- "$crane" push --insecure "$work/src" "$B/bench/img:big"
row "stevedore push" "start_registry B" -- "$bin/stevedore" copy -q --dest-tls-verify=false "oci:$work/src:big" "docker://$B/bench/img:big"

section "re-push: every blob already in the repository"
row "skopeo re-push" "$skopeo_fresh" -- skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$work/src:big" "docker://$B/bench/img:big"
[ -z "$crane" ] || row "crane re-push" ":" -- "$crane" push --insecure "$work/src" "$B/bench/img:big"
row "stevedore re-push" ":" -- "$bin/stevedore" copy -q --dest-tls-verify=false "oci:$work/src:big" "docker://$B/bench/img:big"

section "pull: docker:// -> oci:"
row "skopeo pull" "rm -rf $work/p1" -- skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$A/bench/src:big" "oci:$work/p1:big"
[ -z "$crane" ] || row "crane pull" "rm -rf $work/p2" -- "$crane" pull --insecure --format oci "$A/bench/src:big" "$work/p2"
row "stevedore pull" "rm -rf $work/p3" -- "$bin/stevedore" copy -q --src-tls-verify=false "docker://$A/bench/src:big" "oci:$work/p3:big"

section "copy: docker:// -> docker:// (another registry)"
row "skopeo copy" "$skopeo_fresh; start_registry B" -- skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/bench/src:big" "docker://$B/bench/dst:big"
[ -z "$crane" ] || row "crane copy" "start_registry B" -- "$crane" copy --insecure "$A/bench/src:big" "$B/bench/dst:big"
row "stevedore copy" "start_registry B" -- "$bin/stevedore" copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/bench/src:big" "docker://$B/bench/dst:big"

section "copy: docker:// -> docker:// (same registry, another repository)"
row "skopeo copy" "$skopeo_fresh; reset_A" -- skopeo --insecure-policy copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/bench/src:big" "docker://$A/bench/dst:big"
[ -z "$crane" ] || row "crane copy" "reset_A" -- "$crane" copy --insecure "$A/bench/src:big" "$A/bench/dst:big"
row "stevedore copy" "reset_A" -- "$bin/stevedore" copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/bench/src:big" "docker://$A/bench/dst:big"

flush_section

# Sub-second commands: /usr/bin/time counts centiseconds, so hyperfine.
section "inspect: docker:// metadata (hyperfine, 30 runs, mean)"
if [ "$skip" = 0 ]; then
	if command -v hyperfine >/dev/null; then
		img="$A/bench/src:big"
		cmds=(
			"skopeo inspect --tls-verify=false docker://$img"
			"$bin/stevedore inspect --tls-verify=false docker://$img"
			"skopeo inspect --tls-verify=false --format {{.Digest}} docker://$img"
			"$bin/stevedore inspect --tls-verify=false --format {{.Digest}} docker://$img"
		)
		labels=("skopeo inspect" "stevedore inspect" "skopeo inspect --format {{.Digest}}" "stevedore inspect --format {{.Digest}}")
		if [ -n "$crane" ]; then
			cmds+=("$crane config --insecure $img" "$crane digest --insecure $img")
			labels+=("crane config" "crane digest")
		fi
		hyperfine -N -w 3 -r 30 --export-json "$work/inspect.json" "${cmds[@]}" >/dev/null
		python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; [print("%-40s mean %6.1f ms  sd %4.1f ms" % (sys.argv[2+i], x["mean"]*1000, x["stddev"]*1000)) for i,x in enumerate(r)]' \
			"$work/inspect.json" "${labels[@]}" | tee -a "$results"
	else
		echo "# hyperfine not found: section skipped" | tee -a "$results"
	fi
fi

echo
echo "## ratios stevedore / peer (below 1: stevedore is better)"
awk '
	/^## / { sec = substr($0, 4); order[++ns] = sec; next }
	/ wall / {
		tool = $1
		for (i = 1; i <= NF; i++) {
			if ($i == "wall") w = $(i + 1)
			if ($i == "cpu") c = $(i + 1)
			if ($i == "rss") r = $(i + 1)
		}
		W[sec, tool] = w; C[sec, tool] = c; R[sec, tool] = r
	}
	END {
		for (k = 1; k <= ns; k++) {
			s = order[k]
			if (W[s, "stevedore"] == "") continue
			line = sprintf("%-62s", s)
			split("skopeo crane", peers, " ")
			for (j = 1; j <= 2; j++) {
				p = peers[j]
				if (W[s, p] == "" || W[s, p] == 0) continue
				cpu = C[s, p] > 0 ? sprintf("%.2f", C[s, "stevedore"] / C[s, p]) : "n/a"
				line = line sprintf("  %s: wall %.2f cpu %s rss %.2f", p, W[s, "stevedore"] / W[s, p], cpu, R[s, "stevedore"] / R[s, p])
			}
			print line
		}
	}' "$results"
