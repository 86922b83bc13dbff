#!/usr/bin/env bash
# End-to-end demo on an embedded default: generates a small image in an OCI
# layout, copies it through the oci: plugin, inspects it and lists tags.
# No registry or daemon is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "# a small generated image (3 layers of 1 MiB) and a two-platform index"
$bin/mkimage -layout "$work/src" -tag v1 -layers 3 -size 1MiB >/dev/null
$bin/mkimage -layout "$work/src" -tag multi -layers 2 -size 256KiB -platforms linux/amd64,linux/arm64 >/dev/null
step $bin/stevedore plugins
step $bin/stevedore copy --progress=none "oci:$work/src:v1" "oci:$work/dst:v1"
step $bin/stevedore copy --all --progress=none "oci:$work/src:multi" "oci:$work/dst:multi"
step $bin/stevedore copy --platform linux/arm64 --progress=none "oci:$work/src:multi" "oci:$work/dst:multi-arm64"
step $bin/stevedore list-tags "oci:$work/dst"
step $bin/stevedore inspect "oci:$work/dst:v1"
src=$($bin/stevedore inspect --raw "oci:$work/src:multi" | sha256sum | cut -d' ' -f1)
dst=$($bin/stevedore inspect --raw "oci:$work/dst:multi" | sha256sum | cut -d' ' -f1)
[ "$src" = "$dst" ] || { echo "demo: index digest changed in the copy" >&2; exit 1; }
echo
echo "demo: OK (index sha256:$dst preserved byte for byte)"
