#!/usr/bin/env bash
# stevedore sync against skopeo sync and regsync once, same machine, same
# run: a fixture of 30 tags in 5 repositories (one 8 MiB base layer shared by
# all, a 2 MiB layer per repository, 256 KiB per image) in a source
# docker-registry, mirrored to a fresh destination docker-registry per tool and
# repetition. Measured: wall time and HTTP requests (both registries' access
# logs) of the first sync and of an unchanged second sync; for stevedore also
# the unchanged sync with every tag declared immutable.
#
# Both registries speak TLS with a generated CA (as real registries do), so no
# tool spends requests probing for plain HTTP. The "catalog" rows mirror the
# whole source registry without naming its repositories (regsync's type
# registry, our registry-prefix without repositories): one more request each.
#
# Usage: bench/sync/run.sh    (BENCH_RUNS=N repetitions, median reported;
# REGSYNC=path, SKOPEO=path; needs docker-registry, skopeo, openssl, and
# regsync: go install github.com/regclient/regclient/cmd/regsync@latest)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_RUNS=${BENCH_RUNS:-3}
REGSYNC=${REGSYNC:-$(command -v regsync || echo "$(go env GOPATH)/bin/regsync")}
SKOPEO=${SKOPEO:-$(command -v skopeo || true)}
for tool in docker-registry openssl "$SKOPEO" "$REGSYNC"; do
	[ -n "$tool" ] && command -v "$tool" >/dev/null || { echo "bench/sync: missing $tool" >&2; exit 1; }
done

. bench/sync/lib.sh
sync_bench_setup syncbench

# A CA and a certificate for 127.0.0.1.
certs=$work/certs
mkdir -p "$certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
	-keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$certs/ext"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
	-days 2 -extfile "$certs/ext" -out "$certs/server.crt" 2>/dev/null
cadir=$work/cadir # what --cert-dir reads: only the CA
mkdir -p "$cadir"
cp "$certs/ca.crt" "$cadir/ca.crt"

# start_registry NAME: starts a registry with fresh storage; sets REG_ADDR,
# REG_LOG and REG_PID.
start_registry() {
	local name=$1 port
	port=$(free_port)
	mkdir -p "$work/$name"
	cat >"$work/$name/config.yml" <<-EOF
		version: 0.1
		log: {level: error, accesslog: {disabled: false}}
		storage:
		  filesystem: {rootdirectory: $work/$name/data}
		  delete: {enabled: true}
		  maintenance: {uploadpurging: {enabled: false}}
		http:
		  addr: 127.0.0.1:$port
		  tls: {certificate: $certs/server.crt, key: $certs/server.key}
	EOF
	REG_LOG=$work/$name/access.log
	# shellcheck disable=SC2046 # REGISTRY_* would override the config
	env $(env | awk -F= '/^REGISTRY_/ {print "-u " $1}') docker-registry serve "$work/$name/config.yml" >"$REG_LOG" 2>&1 &
	REG_PID=$!
	pids+=("$REG_PID")
	REG_ADDR=127.0.0.1:$port
	for _ in $(seq 100); do
		curl -s --cacert "$certs/ca.crt" -o /dev/null "https://$REG_ADDR/v2/" && { : >"$REG_LOG"; return; }
		sleep 0.1
	done
	echo "bench/sync: registry $name did not start" >&2
	cat "$REG_LOG" >&2
	exit 1
}

stop_registry() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# requests LOG...: access-log lines (one per HTTP request) in the logs.
requests() { cat "$@" | grep -cE '^[^ ]+ - [^ ]+ \[[^]]+\] "(GET|HEAD|PUT|POST|PATCH|DELETE|OPTIONS) ' || true; }

repos=(alpha bravo charlie delta echo)

echo "# fixture: 5 repositories x 6 tags, layers shared as described in $0"
"$bin/mkfixture" -dir "$work/fixture"
start_registry src
SRC=$REG_ADDR SRC_LOG=$REG_LOG
for r in "${repos[@]}"; do
	"$bin/stevedore" sync -q --dest-cert-dir "$cadir" "oci:$work/fixture/$r" "$SRC/$r" >/dev/null 2>&1
done

# Tool configurations, written once the destination address is known.
write_configs() {
	local dst=$1
	{
		printf 'version: 1\ncreds:\n'
		for host in "$SRC" "$dst"; do
			printf '  - registry: %s\n    tls: enabled\n    regcert: |\n' "$host"
			sed 's/^/      /' "$certs/ca.crt"
		done
		printf 'defaults:\n  parallel: 4\nsync:\n'
		for r in "${repos[@]}"; do
			printf '  - source: %s/%s\n    target: %s/%s\n    type: repository\n' "$SRC" "$r" "$dst" "$r"
		done
	} >"$work/regsync.yaml"
	{
		sed -n '1,/^sync:/p' "$work/regsync.yaml"
		printf '  - source: %s\n    target: %s\n    type: registry\n' "$SRC" "$dst"
	} >"$work/regsync-catalog.yaml"
	{
		printf '%s:\n  cert-dir: %s\n  images:\n' "$SRC" "$cadir"
		for r in "${repos[@]}"; do printf '    %s: []\n' "$r"; done
	} >"$work/skopeo.yaml"
	local list
	list=$(IFS=,; echo "${repos[*]}")
	for kind in plain immutable; do
		{
			printf 'defaults:\n  source-cert-dir: %s\n  target-cert-dir: %s\n' "$cadir" "$cadir"
			[ "$kind" = immutable ] && printf '  immutable: [".*"]\n'
			printf 'sync:\n  - type: registry-prefix\n    source: %s\n    target: %s\n    repositories: [%s]\n' "$SRC" "$dst" "$list"
		} >"$work/stevedore-$kind.yaml"
	done
	printf 'defaults:\n  source-cert-dir: %s\n  target-cert-dir: %s\nsync:\n  - type: registry-prefix\n    source: %s\n    target: %s\n' \
		"$cadir" "$cadir" "$SRC" "$dst" >"$work/stevedore-catalog.yaml"
}

# Commands per tool: "first" and "again" are the same command.
cmd_for() {
	case $1 in
	stevedore) echo "$bin/stevedore sync -q -f $work/stevedore-plain.yaml" ;;
	stevedore-immutable) echo "$bin/stevedore sync -q -f $work/stevedore-immutable.yaml" ;;
	skopeo) echo "$SKOPEO --insecure-policy sync --all --preserve-digests --src yaml --dest docker --dest-cert-dir $cadir $work/skopeo.yaml $DST" ;;
	regsync) echo "$REGSYNC once -v error -c $work/regsync.yaml" ;;
	regsync-catalog) echo "$REGSYNC once -v error -c $work/regsync-catalog.yaml" ;;
	stevedore-catalog) echo "$bin/stevedore sync -q -f $work/stevedore-catalog.yaml" ;;
	esac
}

results=$work/results.txt
: >"$results"
# measure TOOL PHASE: one timed run; appends "TOOL PHASE seconds requests".
measure() {
	local tool=$1 phase=$2 before after t0 t1
	before=$(requests "$SRC_LOG" "$DST_LOG")
	t0=$(date +%s.%N)
	# shellcheck disable=SC2046
	$(cmd_for "$tool") >/dev/null 2>"$work/stderr" || { echo "bench/sync: $tool $phase failed:" >&2; cat "$work/stderr" >&2; exit 1; }
	t1=$(date +%s.%N)
	sleep 0.2 # let the access logs flush
	after=$(requests "$SRC_LOG" "$DST_LOG")
	echo "$tool $phase $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b-a }') $((after - before))" >>"$results"
}

for run in $(seq "$BENCH_RUNS"); do
	for tool in skopeo regsync stevedore regsync-catalog stevedore-catalog; do
		start_registry "dst-$tool-$run"
		DST=$REG_ADDR DST_LOG=$REG_LOG
		write_configs "$DST"
		# skopeo remembers where it saw blobs; a first run must start cold.
		rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"
		measure "$tool" first
		measure "$tool" unchanged
		if [ "$tool" = stevedore ]; then
			measure stevedore-immutable unchanged
		fi
		stop_registry "$REG_PID"
	done
done

echo "## 30 tags in 5 repositories; median of $BENCH_RUNS runs (wall seconds, HTTP requests at both registries)"
printf '%-22s %-10s %8s %9s\n' tool run wall requests
for tool in skopeo regsync stevedore stevedore-immutable regsync-catalog stevedore-catalog; do
	for phase in first unchanged; do
		{ grep "^$tool $phase " "$results" || true; } | sort -k3 -n | awk -v n="$BENCH_RUNS" -v t="$tool" -v p="$phase" '
			{ w[NR]=$3; r[NR]=$4 } END { if (NR) { m=int((NR+1)/2); printf "%-22s %-10s %8.2f %9d\n", t, p, w[m], r[m] } }'
	done
done
echo "# raw: tool run seconds requests"
cat "$results"; cp "$results" /tmp/syncbench-results.txt
