#!/usr/bin/env bash
# Install the Debian packages mapram needs to build, test and benchmark.
#
# Idempotent and quiet when everything is present.  Needs root to install;
# as another user it only reports what is missing.  QEMU 10 comes from
# bookworm-backports: when no apt source offers that suite, one is added
# that reuses the URI of the machine's existing Debian source (we never
# name a mirror ourselves).
set -euo pipefail

BUILD_PKGS="gcc make meson ninja-build pkg-config libjansson-dev libcmocka-dev
liburing-dev clang libclang-rt-14-dev zstd socat python3 util-linux"
QEMU_PKG="qemu-system-x86"
BENCH_PKGS="fio gnuplot-nox"

want_qemu=1
want_bench=0
for arg in "$@"; do
    case "$arg" in
        --no-qemu) want_qemu=0 ;;
        --bench) want_bench=1 ;;
        *) echo "setup-deps: unknown option '$arg'" >&2; exit 2 ;;
    esac
done

missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

qemu_is_10() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || return 1
    local v
    v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)
    [ -n "$v" ] && [ "$v" -ge 10 ]
}

as_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-deps: missing packages: $*" >&2
        echo "setup-deps: run 'sudo make deps' (or install them) and try again" >&2
        exit 1
    fi
}

apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
}

# The URI of the machine's existing main Debian archive source, from either
# deb822 (.sources) or one-line (.list) files.
debian_archive_uri() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '
            /^URIs:/ { u=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") s=1 }
            /^$/ { if (u != "" && s) { print u; exit } u=""; s=0 }
            END { if (u != "" && s) print u }' "$f" | head -1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" && $0 ~ / bookworm( |$)/ {
                for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }' "$f" | head -1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
}

ensure_backports() {
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return
    fi
    local uri
    uri=$(debian_archive_uri)
    if [ -z "$uri" ]; then
        echo "setup-deps: no Debian bookworm apt source found to derive bookworm-backports from" >&2
        exit 1
    fi
    cat > /etc/apt/sources.list.d/mapram-bookworm-backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt_updated=0
}

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
need=$(missing_pkgs $BUILD_PKGS)
[ "$want_bench" -eq 1 ] && need="$need $(missing_pkgs $BENCH_PKGS)"
need=$(echo $need)
if [ -n "$need" ]; then
    as_root "$need"
    echo "setup-deps: installing $need"
    apt_update
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ "$want_qemu" -eq 1 ] && ! qemu_is_10; then
    as_root "$QEMU_PKG (from bookworm-backports)"
    echo "setup-deps: installing QEMU 10 from bookworm-backports"
    ensure_backports
    apt_update
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "$QEMU_PKG" >/dev/null
fi
exit 0
