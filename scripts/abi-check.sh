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
        --type-id-style hash --exported-interfaces-only \
        --out-file "$1" "$lib"
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
# Any change to what the baseline has (a removed function, a changed type)
# fails; new functions alone are compatible.
rc=0
report=$(abidiff --no-added-syms "$baseline" "$current") || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "$report"
    if [ $((rc & 3)) -ne 0 ]; then
        echo "abi-check: abidiff failed (status $rc)"
    else
        echo "abi-check: FAILED: libmapram.so.0 changes the ABI of $baseline."
        echo "abi-check: keep the old interface, or change it on purpose (soversion,"
        echo "abi-check: then scripts/abi-check.sh --update, and commit the baseline)."
    fi
    exit 1
fi
rc=0
report=$(abidiff "$baseline" "$current") || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "$report"
    echo "abi-check: only additions; when they are meant, refresh: scripts/abi-check.sh --update"
fi
echo "abi-check: libmapram.so.0 is compatible with $baseline"
