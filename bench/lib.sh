# Shared helpers for the bench scripts: run a command N times under GNU time
# and report the median wall time, CPU time (user+sys over the whole process
# tree) and peak RSS (the largest single process of the tree).
set -euo pipefail

BENCH_RUNS=${BENCH_RUNS:-3}

# measure LABEL SETUP_CMD -- CMD...: SETUP_CMD runs before every run (e.g. to
# empty the destination), untimed.
measure() {
	local label=$1 setup=$2; shift 3
	local f; f=$(mktemp)
	for _ in $(seq "$BENCH_RUNS"); do
		eval "$setup"
		sync
		/usr/bin/time -f '%e %U %S %M' -o "$f" -a "$@" >/dev/null 2>/tmp/bench-stderr || { cat /tmp/bench-stderr >&2; return 1; }
	done
	# median by wall time
	sort -n "$f" | awk -v label="$label" -v n="$BENCH_RUNS" '
		{ w[NR]=$1; c[NR]=$2+$3; r[NR]=$4 }
		END { m=int((n+1)/2); printf "%-40s wall %6.2f s  cpu %6.2f s  rss %7.1f MiB\n", label, w[m], c[m], r[m]/1024 }'
	rm -f "$f"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
