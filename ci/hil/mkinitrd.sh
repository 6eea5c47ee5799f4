#!/usr/bin/env bash
# Build a HIL initramfs: busybox (with its applet links), the cached modules in /lib/modules/hil/,
# ci/hil/rootfs (/init, /usr/bin/hil), then every file of each DIR on top, at the same relative path.
#
# Usage: ci/hil/mkinitrd.sh [--arch x86_64|aarch64] OUT.cpio.gz [DIR...]
#   e.g. DIR/scenario/run.sh -> /scenario/run.sh, DIR/usr/bin/varta-watchd -> /usr/bin/varta-watchd
# Env:   HIL_CACHE      cache root (default /var/cache/varta-hil), filled by ci/hil/setup.sh
#        HIL_ARCH       default for --arch (x86_64); the cache of that architecture is used
#        HIL_COPY_LIBS  1 (default): for dynamically linked ELF files of the DIRs, also copy the
#                       shared libraries and loader that ldd names on this host; 0: don't.
#                       aarch64: no libraries are copied, and a dynamically linked ELF is an
#                       error (build guest binaries with -C target-feature=+crt-static)
# A file of a DIR replaces a busybox applet link of the same path; later DIRs win over earlier ones.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=${HIL_ARCH:-x86_64}
CACHE=${HIL_CACHE:-/var/cache/varta-hil}

die() {
    echo "mkinitrd.sh: $*" >&2
    exit 1
}
[ $# -ge 1 ] || die "usage: mkinitrd.sh OUT.cpio.gz [DIR...]"
case ${1:-} in -h | --help)
    sed -n '2,14p' "$0"
    exit 0
    ;;
--arch)
    ARCH=${2:-}
    shift 2 || die "--arch needs x86_64 or aarch64"
    ;;
esac
[ $# -ge 1 ] || die "usage: mkinitrd.sh [--arch ARCH] OUT.cpio.gz [DIR...]"
SRC=$CACHE/$ARCH
OUT=$1
shift
for d in "$@"; do [ -d "$d" ] || die "overlay '$d' is not a directory"; done
case $ARCH in
x86_64)
    if ! [ -f "$SRC/hil.env" ] || ! [ -x "$SRC/busybox" ] || ! [ -f "$SRC/modules/gpio-sim.ko" ]; then
        die "no HIL cache in $SRC: run ci/hil/setup.sh first"
    fi
    HOST_BB=$SRC/busybox # runs here: cpio, and the applet list
    applets() { "$SRC/busybox" --list-full; }
    ;;
aarch64)
    if ! [ -f "$SRC/hil.env" ] || ! [ -f "$SRC/busybox" ] || ! [ -f "$SRC/busybox.applets" ]; then
        die "no HIL cache in $SRC: run ci/hil/setup.sh --arch aarch64 first"
    fi
    HOST_BB=/bin/busybox # the cached busybox is arm64; the host's busybox-static does the cpio
    [ -x $HOST_BB ] || die "$HOST_BB (busybox-static) missing: run ci/hil/setup.sh --arch aarch64"
    applets() { cat "$SRC/busybox.applets"; }
    ;;
*) die "unsupported --arch '$ARCH' (x86_64 or aarch64)" ;;
esac

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/varta-hil-initrd.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/modules/hil,proc,sys,dev,tmp,run,root,etc,scenario}
chmod 1777 "$R/tmp"

cp "$SRC/busybox" "$R/bin/busybox"
for applet in $(applets); do
    [ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done
cp "$SRC"/modules/*.ko "$R/lib/modules/hil/"
cp -a "$HERE/rootfs/." "$R/"
chmod 755 "$R/init" "$R/usr/bin/hil"

for d in "$@"; do
    cp -a --remove-destination "$d/." "$R/"
done

if [ "$ARCH" = aarch64 ] && [ $# -gt 0 ]; then
    while IFS= read -r -d '' f; do
        [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || continue
        if LC_ALL=C readelf -l "$f" 2>/dev/null | grep -q 'program interpreter'; then
            die "${f#"$R"} is dynamically linked: aarch64 guests get static binaries only (-C target-feature=+crt-static)"
        fi
    done < <(for d in "$@"; do (cd "$d" && find . -type f -print0) | sed -z "s|^\.|$R|"; done)
elif [ "${HIL_COPY_LIBS:-1}" = 1 ] && [ $# -gt 0 ]; then
    while IFS= read -r -d '' f; do
        [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || continue
        libs=$(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true)
        for lib in $libs; do
            [ -e "$R$lib" ] && continue
            mkdir -p "$R$(dirname "$lib")"
            cp -L "$lib" "$R$lib"
            echo "mkinitrd.sh: + $lib (for ${f#"$R"})"
        done
    done < <(for d in "$@"; do (cd "$d" && find . -type f -print0) | sed -z "s|^\.|$R|"; done)
fi

mkdir -p "$(dirname "$OUT")"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | "$HOST_BB" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -n -6 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "mkinitrd.sh: $OUT ($ARCH, $(du -k "$OUT" | cut -f1) KiB; overlays: ${*:-none})"
