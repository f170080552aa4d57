#!/usr/bin/env bash
# Compare the built libmapram.so.0 with the checked-in ABI baseline
# (abi/libmapram.so.0.abi, libabigail's abidw XML); fail on an
# incompatible change.  --update rewrites the baseline on purpose.
# Usage: scripts/abi-check.sh [--update] [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
build=${1:-build}
lib=$build/libmapram.so.0
baseline=abi/libmapram.so.0.abi

# abidw and abidiff come from Debian's abigail-tools.
if ! command -v abidiff >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "abi-check: abidiff missing: apt-get install abigail-tools" >&2
        exit 1
    fi
    apt-get install -y -qq --no-install-recommends abigail-tools >/dev/null
fi
[ -e "$lib" ] || { echo "abi-check: no $lib (run 'make build')" >&2; exit 1; }
if ! readelf -S "$lib" | grep -c '\.debug_info' >/dev/null; then
    echo "abi-check: $lib has no debug info (build with -g)" >&2
    exit 1
fi

# Types not defined in include/mapram are private: opaque structs stay
# opaque, so the engine's internals may change freely.
dump() {
    abidw --headers-dir include/mapram --drop-private-types \
        --no-corpus-path --no-comp-dir-path --short-locs \
        --type-id-style hash --out-file "$1" "$lib"
}

if [ "$update" -eq 1 ]; then
    dump "$baseline"
    echo "abi-check: wrote $baseline ($(grep -c '<elf-symbol ' "$baseline") symbols); commit it"
    exit 0
fi
current=$(mktemp)
trap 'rm -f "$current"' EXIT
dump "$current"
# abidiff's status is a bit set: 1 error, 2 usage, 4 change, 8 incompatible.
rc=0
report=$(abidiff "$baseline" "$current") || rc=$?
if [ $((rc & 11)) -ne 0 ]; then
    echo "$report"
    echo "abi-check: FAILED: libmapram.so.0 breaks the ABI of $baseline (abidiff status $rc)."
    echo "abi-check: keep the old interface, or bump soversion; to accept on purpose: scripts/abi-check.sh --update"
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "$report"
    echo "abi-check: compatible change (e.g. a new function); when it is meant, refresh the baseline: scripts/abi-check.sh --update"
fi
echo "abi-check: libmapram.so.0 is compatible with $baseline"
