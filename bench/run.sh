#!/bin/sh
# `make bench`: the save/restore benchmark, mapram-vm against QEMU 10.
#   bench/run.sh BUILD_DIR                 the matrix of one build
#   bench/run.sh --ab BUILD_A BUILD_B      the same subset, A and B alternating
# Knobs as environment (bench/README.md).  Needs root, fio, gnuplot, QEMU 10.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --ab ]; then
    [ $# -eq 3 ] || { echo "usage: bench/run.sh --ab BUILD_A BUILD_B" >&2; exit 2; }
    builds="$2 $3"; set -- --ab "$2" "$3"; last=$3
else
    last=${1:-build}; builds=$last; set -- "$last"
fi
for b in $builds; do
    [ -x "$b/src/vm/mapram-vm" ] || { echo "bench: $b/src/vm/mapram-vm missing; build first (make)" >&2; exit 1; }
done
[ -x "$last/bench/memtool" ] || { echo "bench: $last/bench/memtool missing; build first (make)" >&2; exit 1; }
for t in fio gnuplot qemu-system-x86_64 cmp; do
    command -v "$t" >/dev/null || echo "bench: $t not found" >&2
done
exec python3 "$here/bench.py" "$@"
