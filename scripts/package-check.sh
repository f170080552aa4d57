#!/usr/bin/env bash
# Build the Debian packages in a scratch copy of the tree, lint them,
# install them, use the installed files (tools, man pages, the example
# through pkg-config, a save and restore of a 64M mapram-vm), and remove
# them again.  Root only (apt-get); CI runs it after `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
[ "$(id -u)" -eq 0 ] || { echo "package-check: needs root (apt-get)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
step() { printf '== package-check: %s\n' "$*"; }

work=$(mktemp -d /var/tmp/mapram-pkg.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    apt-get purge -y -qq mapram libmapram0 libmapram-dev >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step "build dependencies (debian/control), lintian"
apt-get build-dep -y -qq "$src" >/dev/null
apt-get install -y -qq --no-install-recommends lintian man-db >/dev/null

step "dpkg-buildpackage in $work (the source tree stays clean)"
mkdir "$work/mapram"
git ls-files -z | tar --null -T - -cf - | tar -x -C "$work/mapram"
(cd "$work/mapram" && dpkg-buildpackage -b -uc -us >"$work/build.log" 2>&1) ||
    { tail -40 "$work/build.log"; exit 1; }
debs=("$work"/mapram_*.deb "$work"/libmapram0_*.deb "$work"/libmapram-dev_*.deb)

step "lintian (errors fail; warnings are printed)"
lintian --fail-on error "$work"/mapram_*.changes 2>&1 |
    { grep -v 'running with root privileges' || true; }

step "apt-get install ${debs[*]##*/}"
apt-get install -y -qq "${debs[@]}" >/dev/null

step "the installed tools, man pages and library"
/usr/bin/mapram version
/usr/bin/mapram-vm --version
man -w mapram mapram-vm
# The library from the package (no build-tree rpath left in the program).
ldd /usr/bin/mapram-vm | grep -E "libmapram.so.0 => (/usr)?/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/"
if readelf -d /usr/bin/mapram | grep -E 'RPATH|RUNPATH'; then exit 1; fi

step "examples/ built through pkg-config mapram and run"
cp -r examples "$work/examples"
make -s -C "$work/examples" toy_vmm read_image
(cd "$work/examples" && ./toy_vmm "$work/toy.sav")
"$work/examples/read_image" "$work/toy.sav" | grep "^verify      OK"

step "a 64M /usr/bin/mapram-vm saved and restored with /usr/bin/mapram"
start_vm() { # name extra-args...
    local name=$1 i
    shift
    /usr/bin/mapram-vm -name "$name" -m 64M \
        -object "memory-backend-file,id=mem,size=64M,mem-path=$work/$name.ram,share=on" \
        -machine memory-backend=mem \
        -qmp "unix:$work/$name.sock,server=on,wait=off" \
        -serial "file:$work/$name.serial" "$@" \
        2>>"$work/vm.log" &
    pids+=($!)
    for ((i = 0; i < 100; i++)); do [ -S "$work/$name.sock" ] && return 0; sleep 0.1; done
    echo "package-check: $name did not open its monitor" >&2
    exit 1
}
start_vm source
# Let the guest dirty its memory for a while (a 'B' every 64 passes).
for ((i = 0; i < 200; i++)); do grep -q B "$work/source.serial" && break; sleep 0.1; done
/usr/bin/mapram save --qmp "$work/source.sock" "$work/vm.sav"
start_vm dest -incoming defer
/usr/bin/mapram restore --paused --qmp "$work/dest.sock" "$work/vm.sav"
/usr/bin/mapram verify "$work/vm.sav"
cmp "$work/source.ram" "$work/dest.ram"
echo "memory verified: source at the save and restored VM are identical"

step "removing the packages"
apt-get purge -y -qq mapram libmapram0 libmapram-dev >/dev/null
for p in mapram libmapram0 libmapram-dev; do
    if dpkg -s "$p" >/dev/null 2>&1; then echo "package-check: $p still installed" >&2; exit 1; fi
done
echo "package-check: all passed"
