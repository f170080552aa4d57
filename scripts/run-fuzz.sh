#!/usr/bin/env bash
# Run every libFuzzer target in BUILD_DIR for SECONDS each, starting from the
# checked-in corpus (tests/fuzz/corpus/<target>/).  New inputs go to a
# scratch directory, never into the source tree.  A crash fails the run.
set -euo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS}
seconds=${2:?usage: run-fuzz.sh BUILD_DIR SECONDS}
top=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$build"/tests/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
    echo "run-fuzz: no fuzz targets built in $build"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    seeds="$top/tests/fuzz/corpus/${name#fuzz_}"
    mkdir -p "$work/$name"
    args=("$work/$name")
    [ -d "$seeds" ] && args+=("$seeds")
    printf '%s: ' "$name"
    if ! "$t" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 \
            -timeout=10 -print_final_stats=1 "${args[@]}" >"$work/$name.log" 2>&1; then
        echo "FAILED"
        tail -n 60 "$work/$name.log"
        exit 1
    fi
    grep -E 'stat::number_of_executed_units' "$work/$name.log" | awk '{print $2 " runs, no crash"}'
done
