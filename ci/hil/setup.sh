#!/usr/bin/env bash
# Prepare everything the HIL harness boots, once, into a cache:
#   QEMU (bookworm-backports on Debian 12) and busybox-static, installed with apt;
#   Debian's current kernel as an ELF vmlinux (PVH entry, boots faster than the bzImage);
#   its watchdog, i6300esb, softdog, configfs and pvpanic modules, uncompressed;
#   gpio-sim.ko, built out of tree from linux-source against the matching headers.
#
# Usage: ci/hil/setup.sh [--force] [--arch x86_64|aarch64]
# Env:   HIL_CACHE       cache root (default /var/cache/varta-hil); results go to $HIL_CACHE/ARCH/
#        HIL_ARCH        default for --arch (x86_64)
#        HIL_APT_UPDATE  1: run apt-get update first, so that a new kernel ABI is noticed
#        HIL_KERNEL_PKG  take this linux-image package instead of what linux-image-amd64 depends on
#        HIL_AARCH64_KERNEL_PKG  the same for --arch aarch64 (instead of linux-image-arm64's)
#
# A second run with the same kernel, busybox and setup revision does nothing.
# --arch aarch64 (see setup_aarch64 below) fills $HIL_CACHE/aarch64 from arm64 .debs fetched with a
# private apt state, and installs qemu-system-arm, gcc-aarch64-linux-gnu and the rustup target.
# Exit status: 0 ready, 1 error, 2 usage, 4 (aarch64 only) a prerequisite cannot be installed
# or downloaded: the last stderr line is "setup.sh: aarch64 unavailable: WHAT".
set -euo pipefail

SETUP_REV=1 # bump when what this script produces changes
ARCH=${HIL_ARCH:-x86_64}
CACHE=${HIL_CACHE:-/var/cache/varta-hil}
START=$SECONDS
FORCE=0
want_arch=0
for arg in "$@"; do
    if [ "$want_arch" = 1 ]; then
        ARCH=$arg
        want_arch=0
        continue
    fi
    case $arg in
    --force) FORCE=1 ;;
    --arch) want_arch=1 ;;
    --arch=*) ARCH=${arg#--arch=} ;;
    -h | --help)
        sed -n '2,20p' "$0"
        exit 0
        ;;
    *)
        echo "setup.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done
[ "$want_arch" = 0 ] || {
    echo "setup.sh: --arch needs x86_64 or aarch64" >&2
    exit 2
}
case $ARCH in
x86_64 | aarch64) ;;
arm64) ARCH=aarch64 ;;
*)
    echo "setup.sh: unsupported --arch '$ARCH' (x86_64 or aarch64)" >&2
    exit 2
    ;;
esac
DEST=$CACHE/$ARCH

say() { printf '[setup %3ds] %s\n' $((SECONDS - START)) "$*"; }
die() {
    printf '[setup %3ds] ERROR: %s\n' $((SECONDS - START)) "$*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (apt-get install, modules build); run as root"
[ "$(uname -m)" = x86_64 ] || die "only an x86_64 host is supported (found $(uname -m))"
command -v apt-get >/dev/null || die "needs a Debian host (apt-get not found)"

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

# Debian 12's own QEMU (7.2) would replace a newer preinstalled qemu-utils; take QEMU from backports there.
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
QEMU_TARGET=()
if [ "$codename" = bookworm ]; then
    QEMU_TARGET=(-t bookworm-backports)
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "adding bookworm-backports to /etc/apt/sources.list.d/varta-hil-backports.list"
        echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/varta-hil-backports.list
        APT_UPDATED=0
    fi
fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need_pkgs() { # need_pkgs [apt options --] pkg...
    local opts=() missing=() p
    if [ "${1:-}" = --opts ]; then
        shift
        while [ "$1" != -- ]; do
            opts+=("$1")
            shift
        done
        shift
    fi
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} = 0 ] && return 0
    apt_update
    say "apt-get install ${opts[*]:+${opts[*]} }${missing[*]}"
    local log
    log=$(mktemp)
    if ! apt-get install -y -qq --no-install-recommends "${opts[@]}" "${missing[@]}" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
}

if [ "$ARCH" = aarch64 ]; then
    # shellcheck source=ci/hil/setup-aarch64.sh
    . "$(dirname "$0")/setup-aarch64.sh"
    setup_aarch64
    exit 0
fi

need_pkgs --opts "${QEMU_TARGET[@]}" -- qemu-system-x86
need_pkgs busybox-static xz-utils gzip
command -v python3 >/dev/null || need_pkgs python3
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "boot.py needs python3 >= 3.11 ($(python3 --version))"
BUSYBOX=/bin/busybox
[ -x $BUSYBOX ] || die "$BUSYBOX missing after installing busybox-static"
$BUSYBOX cpio --help >/dev/null 2>&1 || die "$BUSYBOX has no cpio applet"

# Which kernel: what linux-image-amd64 depends on now, at its candidate version.
resolve_kernel() {
    if [ -n "${HIL_KERNEL_PKG:-}" ]; then
        echo "$HIL_KERNEL_PKG"
    else
        apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
    fi
}
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }

[ "${HIL_APT_UPDATE:-0}" = 1 ] && apt_update
KPKG=$(resolve_kernel)
KVER=
if [ -n "$KPKG" ]; then KVER=$(candidate "$KPKG"); fi
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then
    apt_update
    KPKG=$(resolve_kernel)
    [ -n "$KPKG" ] || die "cannot resolve the kernel package (apt-cache depends linux-image-amd64 gave nothing)"
    KVER=$(candidate "$KPKG")
fi
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then die "no installable version of $KPKG"; fi
KREL=${KPKG#linux-image-} # e.g. 6.1.0-56-amd64
BBVER=$(dpkg-query -W -f='${Version}' busybox-static)

STAMP="HIL_SETUP_REV=$SETUP_REV
HIL_ARCH=$ARCH
HIL_KERNEL_PKG=$KPKG
HIL_KERNEL_VERSION=$KVER
HIL_KERNEL_RELEASE=$KREL
HIL_BUSYBOX_VERSION=$BBVER"

cache_complete() {
    local f
    for f in vmlinux bzImage busybox modules/watchdog.ko modules/i6300esb.ko modules/softdog.ko \
        modules/configfs.ko modules/gpio-sim.ko modules/pvpanic.ko modules/pvpanic-pci.ko; do
        [ -s "$DEST/$f" ] || return 1
    done
}

if [ "$FORCE" = 0 ] && [ -f "$DEST/hil.env" ] && [ "$(cat "$DEST/hil.env")" = "$STAMP" ] && cache_complete; then
    say "cache up to date: $DEST ($KPKG $KVER, busybox $BBVER); nothing to do"
    exit 0
fi

say "building cache $DEST for $KPKG $KVER (busybox $BBVER)"
need_pkgs make gcc-12 libc6-dev binutils

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "another setup.sh holds $CACHE/.lock"

WORK=$CACHE/.work-$ARCH
NEW=$CACHE/.new-$ARCH
rm -rf "$WORK" "$NEW"
mkdir -p "$WORK/debs" "$NEW/modules"
trap 'rm -rf "$WORK" "$NEW"' EXIT

download() { # download pkg=version...
    (cd "$WORK/debs" && apt-get -o APT::Sandbox::User=root download -qq "$@" >/dev/null) ||
        die "apt-get download $* failed (versions available: $(apt-cache madison "${1%%=*}" | awk '{print $3}' | tr '\n' ' '))"
}
deb_of() { # the downloaded .deb of package $1
    local f
    for f in "$WORK/debs/$1"_*.deb; do
        [ -e "$f" ] && echo "$f"
        return
    done
}

# --- kernel image: vmlinux, bzImage, modules ---------------------------------
say "downloading $KPKG=$KVER"
download "$KPKG=$KVER"
dpkg-deb -x "$(deb_of "$KPKG")" "$WORK/img" || die "dpkg-deb -x $KPKG failed"
rm -f "$WORK/debs/$KPKG"_*.deb
BZ=$WORK/img/boot/vmlinuz-$KREL
[ -f "$BZ" ] || die "no /boot/vmlinuz-$KREL in $KPKG"

# Find a compressed payload in the bzImage and unpack the first that yields an ELF
# (the same idea as the kernel's scripts/extract-vmlinux).
extract_vmlinux() {
    local bz=$1 out=$2 magic tool off
    for pair in 'fd377a585a00:xz -dc --single-stream' '1f8b08:gzip -dc' '28b52ffd:zstd -dc' \
        '894c5a4f000d0a1a0a:lzop -dc' '5d000000:xz -dc --format=lzma'; do
        magic=${pair%%:*}
        tool=${pair#*:}
        command -v "${tool%% *}" >/dev/null || continue
        local pat
        # shellcheck disable=SC2001 # every byte pair gets a \x in front
        pat=$(echo "$magic" | sed 's/../\\x&/g')
        while read -r off; do
            tail -c +$((off + 1)) "$bz" | $tool >"$out" 2>/dev/null || true
            if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                say "vmlinux: ${tool%% *} payload at offset $off of $(basename "$bz")"
                return 0
            fi
        done < <(LC_ALL=C grep -obUaP "$pat" "$bz" 2>/dev/null | cut -d: -f1)
    done
    return 1
}
extract_vmlinux "$BZ" "$NEW/vmlinux" || die "no compressed ELF payload found in $BZ"
readelf -n "$NEW/vmlinux" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)' ||
    say "warning: vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); boot.py --kernel bzImage will be needed"
cp "$BZ" "$NEW/bzImage"
cp "$WORK/img/boot/config-$KREL" "$NEW/kernel.config"

MODDIR=$WORK/img/lib/modules/$KREL/kernel
take_module() { # take_module relative/path/name (without .ko)
    local base=$MODDIR/$1 name
    name=$(basename "$1")
    if [ -f "$base.ko" ]; then
        cp "$base.ko" "$NEW/modules/$name.ko"
    elif [ -f "$base.ko.xz" ]; then
        xz -dc "$base.ko.xz" >"$NEW/modules/$name.ko"
    elif [ -f "$base.ko.zst" ]; then
        command -v zstd >/dev/null || need_pkgs zstd
        zstd -qdc "$base.ko.zst" >"$NEW/modules/$name.ko"
    elif [ -f "$base.ko.gz" ]; then
        gzip -dc "$base.ko.gz" >"$NEW/modules/$name.ko"
    else
        die "module $1 not found in $KPKG"
    fi
}
for m in drivers/watchdog/watchdog drivers/watchdog/i6300esb drivers/watchdog/softdog fs/configfs/configfs \
    drivers/misc/pvpanic/pvpanic drivers/misc/pvpanic/pvpanic-pci; do
    take_module "$m"
done
say "modules: $(cd "$NEW/modules" && echo *.ko)"
rm -rf "$WORK/img"

# --- gpio-sim.ko, out of tree ------------------------------------------------
HPKG=linux-headers-$KREL
DEPS=$(apt-cache depends "$HPKG" 2>/dev/null | awk '/Depends: linux-(headers|kbuild)-/{print $2}')
[ -n "$DEPS" ] || die "cannot resolve the dependencies of $HPKG"
SRCPKG=linux-source-$(echo "$KREL" | cut -d. -f1-2)
say "downloading $HPKG ${DEPS//$'\n'/ } $SRCPKG (all =$KVER)"
pins=()
for p in $HPKG $DEPS $SRCPKG; do pins+=("$p=$KVER"); done
download "${pins[@]}"
for p in $HPKG $DEPS; do
    dpkg-deb -x "$(deb_of "$p")" "$WORK/hdr" || die "dpkg-deb -x $p failed"
    rm -f "$(deb_of "$p")"
done
KBUILD_DIR=$WORK/hdr/usr/src/linux-headers-$KREL
[ -f "$KBUILD_DIR/Makefile" ] || die "no $KBUILD_DIR/Makefile in $HPKG"
# The flavour Makefile includes the common one by its installed, absolute path.
sed -i "s|^include /usr/src/|include $WORK/hdr/usr/src/|" "$KBUILD_DIR/Makefile"

say "extracting gpio-sim.c, gpiolib.h, irq_sim.c from $SRCPKG"
mkdir -p "$WORK/src" "$WORK/gpio-sim"
dpkg-deb --fsys-tarfile "$(deb_of "$SRCPKG")" | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' |
    xz -dc | tar -x -C "$WORK/src" --wildcards \
    '*/drivers/gpio/gpio-sim.c' '*/drivers/gpio/gpiolib.h' '*/kernel/irq/irq_sim.c' ||
    die "extracting the gpio-sim sources from $SRCPKG failed"
rm -f "$(deb_of "$SRCPKG")"
S=$(echo "$WORK"/src/linux-source-*)
cp "$S/drivers/gpio/gpio-sim.c" "$WORK/gpio-sim/gpio-sim-core.c"
cp "$S/drivers/gpio/gpiolib.h" "$WORK/gpio-sim/"
# irq_to_desc() is not exported to modules; generic_handle_irq() does the same lookup and is.
sed 's/handle_simple_irq(irq_to_desc(irqnum))/generic_handle_irq(irqnum)/' \
    "$S/kernel/irq/irq_sim.c" >"$WORK/gpio-sim/irq_sim.c"
grep -q 'generic_handle_irq(irqnum)' "$WORK/gpio-sim/irq_sim.c" ||
    die "irq_sim.c in $SRCPKG changed: the irq_to_desc substitution did not apply"
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq_sim.o\n' >"$WORK/gpio-sim/Kbuild"
say "building gpio-sim.ko"
make -s -C "$KBUILD_DIR" M="$WORK/gpio-sim" modules >"$WORK/build.log" 2>&1 ||
    {
        tail -n 30 "$WORK/build.log" >&2
        die "gpio-sim.ko build failed"
    }
strip --strip-debug -o "$NEW/modules/gpio-sim.ko" "$WORK/gpio-sim/gpio-sim.ko"
vermagic() { grep -a -o -m1 'vermagic=[ -~]*' "$1" | sed -n 1p; }
vm_new=$(vermagic "$NEW/modules/gpio-sim.ko")
vm_ref=$(vermagic "$NEW/modules/watchdog.ko")
[ "$vm_new" = "$vm_ref" ] || die "gpio-sim.ko $vm_new does not match the kernel's $vm_ref"

cp "$BUSYBOX" "$NEW/busybox"
printf '%s\n' "$STAMP" >"$NEW/hil.env"

rm -rf "$DEST.old"
[ -d "$DEST" ] && mv "$DEST" "$DEST.old"
mv "$NEW" "$DEST"
rm -rf "$DEST.old" "$WORK"
trap - EXIT
say "done: $DEST ($(du -sh "$DEST" | cut -f1)) in $((SECONDS - START)) s"
