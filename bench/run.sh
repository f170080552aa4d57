#!/bin/sh
# `make bench`: the save/restore benchmark, mapram-vm against QEMU 10.
#   bench/run.sh BUILD_DIR        (knobs as environment: bench/README.md)
# Needs root (drop_caches, /dev/kvm), fio, gnuplot and QEMU 10.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
for b in "$build/src/vm/mapram-vm" "$build/bench/memtool"; do
    [ -x "$b" ] || { echo "bench: $b missing; build first (make)" >&2; exit 1; }
done
for t in fio gnuplot qemu-system-x86_64 cmp; do
    command -v "$t" >/dev/null || echo "bench: $t not found" >&2
done
exec python3 "$here/bench.py" "$build"
