#!/usr/bin/env bash
# make demo: a running micro-VM saved live with `mapram save`, restored into
# a second VM with `mapram restore`, guest memory compared byte for byte, the
# restored guest seen running again.  DEMO_SIZE (default 2G) sets the guest
# RAM, DEMO_DIR the scratch directory (default: a new one under /var/tmp,
# removed at the end unless DEMO_KEEP=1).
set -euo pipefail
build=${1:-build}
size=${DEMO_SIZE:-2G}
bin=$(cd "$build/src" && pwd)
mapram="$bin/cli/mapram"
vm="$bin/vm/mapram-vm"
keep=${DEMO_KEEP:-0}
[ -n "${DEMO_DIR:-}" ] && keep=1
work=${DEMO_DIR:-$(mktemp -d /var/tmp/mapram-demo.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$work"/*.ram "$work"/*.sock
    [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# One QMP command over a fresh connection; prints the reply line.
qmp() {
    local sock=$1 cmd=$2
    printf '{"execute":"qmp_capabilities"}\n{"execute":"%s"}\n' "$cmd" |
        socat -t 2 - "UNIX-CONNECT:$sock" | sed -n 3p
}

wait_for() { # file pattern seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: timed out waiting for '$2' in $1" >&2
    return 1
}

start_vm() { # name extra-args...
    local name=$1; shift
    "$vm" -name "$name" -m "$size" \
        -object "memory-backend-file,id=mem,size=$size,mem-path=$work/$name.ram,share=on" \
        -machine memory-backend=mem \
        -qmp "unix:$work/$name.sock,server=on,wait=off" \
        -serial "file:$work/$name.serial" "$@" &
    pids+=($!)
    local i
    for ((i = 0; i < 100; i++)); do [ -S "$work/$name.sock" ] && return 0; sleep 0.1; done
    echo "demo: $name did not open its monitor" >&2
    return 1
}

say "Starting a $size micro-VM whose guest keeps incrementing a byte in every page"
start_vm source
wait_for "$work/source.serial" B 120
echo "guest is running: serial says '$(head -c 8 "$work/source.serial")...'"

say "mapram save --live: the guest keeps running while its memory is written"
"$mapram" save --live --qmp "$work/source.sock" "$work/vm.sav"
echo "source VM after the save: $(qmp "$work/source.sock" query-status)"

say "mapram inspect: what the file holds"
"$mapram" inspect "$work/vm.sav" | sed -n '1,/^Sections/p' | sed '$d'

say "Restoring into a fresh VM started with -incoming defer"
start_vm dest -incoming defer
"$mapram" restore --paused --qmp "$work/dest.sock" "$work/vm.sav"

say "Verifying guest memory byte for byte (source at switchover vs restored)"
if cmp -s "$work/source.ram" "$work/dest.ram"; then
    echo "memory verified: $(stat -c %s "$work/dest.ram") bytes identical"
else
    echo "demo: restored memory differs from the source:" >&2
    cmp "$work/source.ram" "$work/dest.ram" | head -3 >&2
    exit 1
fi

say "Resuming the restored guest"
# Progress is the guest's pass counter (u64 at 0x5000 of pc.ram, read from
# the shared memory file): the serial only gets a 'B' every 64 passes, and
# the first pass over freshly restored memory is slow on a virtualised host.
pass_counter() { od -An -tu8 -j $((0x5000)) -N8 "$work/dest.ram" | tr -d ' '; }
before=$(pass_counter)
qmp "$work/dest.sock" cont >/dev/null
after=$before
for ((i = 0; i < 300 && after == before; i++)); do sleep 0.1; after=$(pass_counter); done
echo "restored VM: $(qmp "$work/dest.sock" query-status); guest pass counter went from $before to $after"
[ "$after" -gt "$before" ] || { echo "demo: the restored guest is not making progress" >&2; exit 1; }
qmp "$work/source.sock" quit >/dev/null || true
qmp "$work/dest.sock" quit >/dev/null || true
echo
if [ "$keep" = 1 ]; then
    echo "demo: done (the save file and serial logs are in $work)"
else
    echo "demo: done (DEMO_KEEP=1 keeps the save file)"
fi
