#!/usr/bin/env bash
# stevedore copy oci: -> oci: against skopeo copy oci: -> oci: on a generated
# ~1 GiB image (8 layers of 160 MiB: 6 incompressible, 2 compressible), same machine, same
# run; plus inspect (plugin start-up cost) on a small layout and the blob data
# plane's throughput. Usage: make build && bench/copy.sh   (BENCH_RUNS=N)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bin=$PWD/bin
export STEVEDORE_PLUGIN_PATH=$bin
work=${BENCH_DIR:-$(mktemp -d /var/tmp/stevedore-bench-XXXX)}
trap 'rm -rf "$work"' EXIT
command -v skopeo >/dev/null || { echo "bench: skopeo is needed (apt-get install skopeo)" >&2; exit 1; }

echo "# generating a ~1 GiB image"
$bin/mkimage -layout "$work/src" -tag big -layers 8 -size 160MiB -compressible 0.25 >/dev/null
$bin/mkimage -layout "$work/small" -tag v1 -layers 2 -size 64KiB >/dev/null
du -sh "$work/src/blobs" | awk '{print "# blobs: " $1}'

results=$work/results.txt
echo "## copy oci: -> oci: (same filesystem)" | tee -a "$results"
measure "skopeo copy" "rm -rf $work/d1" -- skopeo --insecure-policy copy -q "oci:$work/src:big" "oci:$work/d1:big" | tee -a "$results"
measure "stevedore copy" "rm -rf $work/d2" -- $bin/stevedore copy -q "oci:$work/src:big" "oci:$work/d2:big" | tee -a "$results"
echo "## copy oci: -> oci: without hard links (the host reads, hashes and writes every byte)" | tee -a "$results"
measure "stevedore copy --stream-only" "rm -rf $work/d3" -- $bin/stevedore copy -q --stream-only "oci:$work/src:big" "oci:$work/d3:big" | tee -a "$results"
echo "## inspect on a small layout (start-up cost of the host and one plugin), hyperfine" | tee -a "$results"
if command -v hyperfine >/dev/null; then
	hyperfine -N -w 5 -r 40 --export-json "$work/inspect.json" \
		"skopeo --insecure-policy inspect oci:$work/small:v1" "$bin/stevedore inspect oci:$work/small:v1" >/dev/null
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; [print("%-40s mean %6.1f ms  sd %4.1f ms" % (("skopeo inspect","stevedore inspect")[i], x["mean"]*1000, x["stddev"]*1000)) for i,x in enumerate(r)]' "$work/inspect.json" | tee -a "$results"
else
	echo "(hyperfine not installed: apt-get install hyperfine)" | tee -a "$results"
fi
echo "## blob data plane, plugin -> host, no hashing (go test -bench DataPlane ./pluginapi/)" | tee -a "$results"
go test -run '^$' -bench 'DataPlane' -benchtime=3x ./pluginapi/ 2>/dev/null | grep -E '^Benchmark' | tee -a "$results"
echo
awk '/skopeo copy/ {s=$4} /^stevedore copy  / {t=$4} /skopeo inspect/ {si=$4} /stevedore inspect/ {ti=$4}
     END { printf "copy wall ratio stevedore/skopeo: %.2f\ninspect wall ratio stevedore/skopeo: %.2f\n", t/s, ti/si }' "$results"
