#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers
# declare: nothing internal leaks, nothing declared is missing.
# Usage: check-exports.sh LIBMAPRAM.so GEN-MAP.py HEADER...
set -euo pipefail
lib=$1 gen=$2
shift 2
want=$(python3 "$gen" --list "$@")
# Defined dynamic symbols, without the @@MAPRAM_0 version suffix.
have=$(nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [ "$want" != "$have" ]; then
    echo "exports differ from the public headers (< headers, > $lib):"
    diff <(echo "$want") <(echo "$have") || true
    exit 1
fi
echo "exports: $(echo "$have" | wc -l) symbols, as declared in the headers"
