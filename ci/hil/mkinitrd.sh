#!/usr/bin/env bash
# Build a HIL initramfs: busybox (with its applet links), the cached modules in /lib/modules/hil/,
# ci/hil/rootfs (/init, /usr/bin/hil), then every file of each DIR on top, at the same relative path.
#
# Usage: ci/hil/mkinitrd.sh OUT.cpio.gz [DIR...]
#   e.g. DIR/scenario/run.sh -> /scenario/run.sh, DIR/usr/bin/varta-watchd -> /usr/bin/varta-watchd
# Env:   HIL_CACHE      cache root (default /var/cache/varta-hil), filled by ci/hil/setup.sh
#        HIL_COPY_LIBS  1 (default): for dynamically linked ELF files of the DIRs, also copy the
#                       shared libraries and loader that ldd names on this host; 0: don't
# A file of a DIR replaces a busybox applet link of the same path; later DIRs win over earlier ones.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=x86_64
CACHE=${HIL_CACHE:-/var/cache/varta-hil}
SRC=$CACHE/$ARCH

die() {
    echo "mkinitrd.sh: $*" >&2
    exit 1
}
[ $# -ge 1 ] || die "usage: mkinitrd.sh OUT.cpio.gz [DIR...]"
case ${1:-} in -h | --help)
    sed -n '2,11p' "$0"
    exit 0
    ;;
esac
OUT=$1
shift
for d in "$@"; do [ -d "$d" ] || die "overlay '$d' is not a directory"; done
if ! [ -f "$SRC/hil.env" ] || ! [ -x "$SRC/busybox" ] || ! [ -f "$SRC/modules/gpio-sim.ko" ]; then
    die "no HIL cache in $SRC: run ci/hil/setup.sh first"
fi

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/varta-hil-initrd.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/modules/hil,proc,sys,dev,tmp,run,root,etc,scenario}
chmod 1777 "$R/tmp"

cp "$SRC/busybox" "$R/bin/busybox"
for applet in $("$SRC/busybox" --list-full); do
    [ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done
cp "$SRC"/modules/*.ko "$R/lib/modules/hil/"
cp -a "$HERE/rootfs/." "$R/"
chmod 755 "$R/init" "$R/usr/bin/hil"

for d in "$@"; do
    cp -a --remove-destination "$d/." "$R/"
done

if [ "${HIL_COPY_LIBS:-1}" = 1 ] && [ $# -gt 0 ]; then
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
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | "$SRC/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -n -6 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "mkinitrd.sh: $OUT ($(du -k "$OUT" | cut -f1) KiB; overlays: ${*:-none})"
