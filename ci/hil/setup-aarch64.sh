# shellcheck shell=bash
# The aarch64 half of ci/hil/setup.sh (sourced by it for --arch aarch64; not run on its own).
#
# Fills $HIL_CACHE/aarch64 with:
#   Image            the arm64 kernel linux-image-arm64 depends on now (Debian ships an
#                    uncompressed Image as vmlinuz: qemu -kernel boots it as is)
#   kernel.config
#   modules/         i6300esb.ko, configfs.ko (neither depends on another module; the
#                    watchdog core and the PL061 GPIO driver are built in, there is no pvpanic)
#   busybox          busybox-static for arm64, the same version as the host's busybox-static
#   busybox.applets  `busybox --list-full` of the host's busybox (the arm64 one cannot run here)
#   hil.env          the stamp
# The arm64 .debs come from the host's apt sources through a private apt state in
# $HIL_CACHE/.apt-arm64 (lists kept, refreshed when missing or with HIL_APT_UPDATE=1); dpkg is
# never told about arm64. Host packages: qemu-system-arm (backports on Debian 12),
# gcc-aarch64-linux-gnu (linker and aarch64-linux-gnu-strip), busybox-static (cpio, applet list),
# and the rustup target aarch64-unknown-linux-gnu.
#
# HIL_AARCH64_KERNEL_PKG=linux-image-...-arm64 pins the kernel (HIL_KERNEL_PKG is the x86_64 one).
# Anything that cannot be installed or downloaded ends the script with status 4 and
# "setup.sh: aarch64 unavailable: WHAT" on stderr, so that ci/hil/run can skip aarch64.

AARCH64_SETUP_REV=1 # bump when what this produces changes

unavailable() {
    printf '[setup %3ds] aarch64 unavailable: %s\n' $((SECONDS - START)) "$*"
    echo "setup.sh: aarch64 unavailable: $*" >&2
    exit 4
}

setup_aarch64() {
    local A APTDIR KPKG KVER KREL BBVER STAMP f

    (need_pkgs --opts "${QEMU_TARGET[@]}" -- qemu-system-arm) ||
        unavailable "apt-get install ${QEMU_TARGET[*]} qemu-system-arm failed"
    command -v qemu-system-aarch64 >/dev/null || unavailable "no qemu-system-aarch64 after installing qemu-system-arm"
    (need_pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ||
        unavailable "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross failed"
    (need_pkgs busybox-static) || unavailable "apt-get install busybox-static failed"
    command -v python3 >/dev/null || (need_pkgs python3) || unavailable "apt-get install python3 failed"

    if command -v rustup >/dev/null; then
        if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
            say "rustup target add aarch64-unknown-linux-gnu"
            rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 ||
                unavailable "rustup target add aarch64-unknown-linux-gnu failed"
        fi
    elif ! [ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/aarch64-unknown-linux-gnu" ]; then
        unavailable "no rustup, and rustc has no aarch64-unknown-linux-gnu standard library"
    fi

    APTDIR=$CACHE/.apt-arm64
    A=(-o APT::Architectures::=arm64 -o APT::Architecture=arm64
        -o Dir::State::Lists="$APTDIR/lists" -o Dir::Cache="$APTDIR/cache"
        -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    arm_update() {
        say "apt-get update (private arm64 state in $APTDIR)"
        mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
        apt-get "${A[@]}" update -qq >/dev/null 2>&1 || unavailable "apt-get update of the arm64 package lists failed"
    }
    resolve_arm() {
        if [ -n "${HIL_AARCH64_KERNEL_PKG:-}" ]; then
            echo "$HIL_AARCH64_KERNEL_PKG"
        else
            apt-cache "${A[@]}" depends linux-image-arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
        fi
    }
    cand_arm() { apt-cache "${A[@]}" policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }

    if [ "${HIL_APT_UPDATE:-0}" = 1 ] || ! compgen -G "$APTDIR/lists/*_Packages*" >/dev/null; then arm_update; fi
    KPKG=$(resolve_arm)
    KVER=
    if [ -n "$KPKG" ]; then KVER=$(cand_arm "$KPKG"); fi
    if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then
        arm_update
        KPKG=$(resolve_arm)
        [ -n "$KPKG" ] || unavailable "cannot resolve the arm64 kernel package (apt-cache depends linux-image-arm64 gave nothing)"
        KVER=$(cand_arm "$KPKG")
    fi
    if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then unavailable "no installable arm64 version of $KPKG"; fi
    KREL=${KPKG#linux-image-} # e.g. 6.1.0-56-arm64
    BBVER=$(dpkg-query -W -f='${Version}' busybox-static)

    STAMP="HIL_SETUP_REV=$AARCH64_SETUP_REV
HIL_ARCH=aarch64
HIL_KERNEL_PKG=$KPKG
HIL_KERNEL_VERSION=$KVER
HIL_KERNEL_RELEASE=$KREL
HIL_BUSYBOX_VERSION=$BBVER"

    local complete=1
    for f in Image busybox busybox.applets modules/i6300esb.ko modules/configfs.ko; do
        [ -s "$DEST/$f" ] || complete=0
    done
    if [ "$FORCE" = 0 ] && [ "$complete" = 1 ] && [ -f "$DEST/hil.env" ] && [ "$(cat "$DEST/hil.env")" = "$STAMP" ]; then
        say "cache up to date: $DEST ($KPKG $KVER, busybox $BBVER arm64); nothing to do"
        return 0
    fi

    say "building cache $DEST for $KPKG $KVER (busybox $BBVER arm64)"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock -w 600 9 || die "another setup.sh holds $CACHE/.lock"
    WORK=$CACHE/.work-aarch64
    NEW=$CACHE/.new-aarch64
    rm -rf "$WORK" "$NEW"
    mkdir -p "$WORK/debs" "$NEW/modules"
    trap 'rm -rf "$WORK" "$NEW"' EXIT

    say "downloading $KPKG=$KVER busybox-static=$BBVER (arm64)"
    (cd "$WORK/debs" && apt-get "${A[@]}" download -qq "$KPKG=$KVER" "busybox-static=$BBVER" >/dev/null 2>&1) ||
        unavailable "apt-get download $KPKG=$KVER busybox-static=$BBVER (arm64) failed (kernel versions: $(apt-cache "${A[@]}" madison "$KPKG" 2>/dev/null | awk '{print $3}' | tr '\n' ' '); busybox-static: $(apt-cache "${A[@]}" madison busybox-static 2>/dev/null | awk '{print $3}' | tr '\n' ' '))"
    for f in "$WORK"/debs/*.deb; do
        dpkg-deb -x "$f" "$WORK/x" || die "dpkg-deb -x $f failed"
    done
    rm -rf "$WORK/debs"

    local img=$WORK/x/boot/vmlinuz-$KREL
    [ -f "$img" ] || die "no /boot/vmlinuz-$KREL in $KPKG"
    # "ARMd" at offset 56 marks an uncompressed arm64 Image.
    [ "$(tail -c +57 "$img" | head -c 4)" = ARMd ] ||
        die "/boot/vmlinuz-$KREL of $KPKG is not an uncompressed arm64 Image"
    mv "$img" "$NEW/Image"
    cp "$WORK/x/boot/config-$KREL" "$NEW/kernel.config"
    for f in WATCHDOG_CORE=y GPIO_PL061=y GPIO_CDEV=y SERIAL_AMBA_PL011_CONSOLE=y PCI_HOST_GENERIC=y \
        I6300ESB_WDT=m CONFIGFS_FS=m; do
        grep -qx "CONFIG_$f" "$NEW/kernel.config" || die "$KPKG: kernel config lacks CONFIG_$f (ci/hil expects it)"
    done
    MODDIR=$WORK/x/lib/modules/$KREL/kernel
    NEWMOD=$NEW/modules
    local m base name
    for m in drivers/watchdog/i6300esb fs/configfs/configfs; do
        base=$MODDIR/$m
        name=$(basename "$m")
        if [ -f "$base.ko" ]; then
            cp "$base.ko" "$NEWMOD/$name.ko"
        elif [ -f "$base.ko.xz" ]; then
            xz -dc "$base.ko.xz" >"$NEWMOD/$name.ko"
        else
            die "module $m not found in $KPKG"
        fi
        grep -aq '^depends=$' <(tr '\0' '\n' <"$NEWMOD/$name.ko") ||
            die "$name.ko of $KPKG now depends on other modules: teach setup-aarch64.sh to take them"
    done
    say "modules: $(cd "$NEWMOD" && echo *.ko)"
    [ -f "$WORK/x/bin/busybox" ] || die "no /bin/busybox in busybox-static (arm64)"
    cp "$WORK/x/bin/busybox" "$NEW/busybox"
    /bin/busybox --list-full >"$NEW/busybox.applets"
    printf '%s\n' "$STAMP" >"$NEW/hil.env"

    rm -rf "$DEST.old"
    [ -d "$DEST" ] && mv "$DEST" "$DEST.old"
    mv "$NEW" "$DEST"
    rm -rf "$DEST.old" "$WORK"
    trap - EXIT
    say "done: $DEST ($(du -sh "$DEST" | cut -f1)) in $((SECONDS - START)) s"
}
