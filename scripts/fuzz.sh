#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time each.
set -euo pipefail
fuzztime=${1:-10s}
# Minimizing a new interesting input may take 60 s by default: with a 10 s
# budget the workers spent it all minimizing (FuzzReader: 11 executions in
# 8 s). A count bounds it; the same budget then runs ~100,000 inputs.
minimize=${FUZZ_MINIMIZE:-200x}
found=0

# run_target PKG TARGET: one target, again (at most twice more) when Go 1.26's
# fuzz coordinator fails it at the -fuzztime deadline with a bare "context
# deadline exceeded" and no failing input (golang/go#75804, fixed in Go 1.27;
# CI met it once). A real failure writes its input under testdata/fuzz and
# fails at once.
run_target() {
	local pkg=$1 target=$2 corpus before after out attempt
	corpus=$pkg/testdata/fuzz/$target
	before=$(ls "$corpus" 2>/dev/null || true)
	for attempt in 1 2 3; do
		if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" "$pkg" 2>&1); then
			echo "$out"
			return 0
		fi
		echo "$out"
		after=$(ls "$corpus" 2>/dev/null || true)
		if [ "$before" != "$after" ] || ! grep -qx '    context deadline exceeded' <<<"$out"; then
			return 1
		fi
		echo "fuzz: $target: Go's fuzztime deadline race (golang/go#75804), no failing input written; run $((attempt + 1))"
	done
	return 1
}

while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		found=1
		echo "fuzz $pkg $target ($fuzztime)"
		run_target "$pkg" "$target"
	done
done < <(git ls-files '*_test.go')
[ $found -eq 1 ] || echo "fuzz: no fuzz targets"
