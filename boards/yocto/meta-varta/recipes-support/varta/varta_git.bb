SUMMARY = "Varta: process-liveness watchdog for embedded Linux"
DESCRIPTION = "varta-watchd owns the hardware watchdog and a status LED and pets it only \
while every critical agent sends heartbeats; varta-watch is the observer without hardware \
(Prometheus metrics, recovery commands); varta-beat lets shell scripts be agents."
HOMEPAGE = "https://example.invalid/varta"
SECTION = "admin"

# The workspace is "MIT OR Apache-2.0" (Cargo.toml [workspace.package], line 10).
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=10;endline=10;md5=86b31c7756a1a7962f28b62856ed4f05"

# --- Sources -------------------------------------------------------------------------------
# VARTA_GIT_URI: where BitBake clones the Varta workspace from. The default is a placeholder
# (the repository has no public URL yet): set it in local.conf, your distro or a bbappend,
# e.g. VARTA_GIT_URI = "git://git.example.com/varta.git;protocol=ssh;branch=main", or a local
# clone: "git:///home/me/varta;protocol=file;branch=main". Keep the ";branch=" parameter.
VARTA_GIT_URI ??= "git://example.invalid/varta.git;protocol=https;branch=main"
# SRCREV and varta-crates.inc must describe the same Cargo.lock (the build runs with
# --frozen): bump SRCREV and regenerate the .inc (python3 ci/yocto-crates.py) together.
SRCREV ?= "1fb49b3070dbdaf73e063810a9636619dd66208b"
PV = "0.1.0+git"

# The init-system files live in the Varta repository next to this layer (boards/init/),
# shared with the other distribution paths (Buildroot, plain tarballs). A copy of the layer
# outside the repository can carry them in recipes-support/varta/files/ instead, under the
# same relative names; that directory is searched after boards/init.
FILESEXTRAPATHS:prepend := "${THISDIR}/../../../../init:"

SRC_URI = " \
    ${VARTA_GIT_URI};destsuffix=git \
    file://systemd/varta-watch.service \
    file://systemd/varta-watchd.service \
    file://systemd/10-varta-owns-watchdog.conf \
    file://sysv/varta \
    file://default/varta \
    file://varta.toml \
    file://udev/60-varta.rules \
    file://tmpfiles/varta.conf \
    file://sysctl/60-varta.conf \
    file://doc/varta-watch.txt \
    file://doc/varta-watchd.txt \
"

# Releases before styhead unpack into WORKDIR and do not define UNPACKDIR; later ones set
# it in bitbake.conf, which this weak default does not override.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/git"

# One crate:// entry per registry package of the workspace Cargo.lock.
require varta-crates.inc

inherit cargo cargo-update-recipe-crates systemd update-rc.d useradd

# --- Build ---------------------------------------------------------------------------------
# The cargo class's CARGO_BUILD_FLAGS already carry --frozen (no network, Cargo.lock must be
# current), --release, --target and --manifest-path; the package and binary selection is
# passed per invocation below.
#
# Two cargo invocations, not one `-p host -p embedded`: in a single build cargo unifies the
# features of the shared `host` library, so varta-watch's default `metrics` feature (the
# Prometheus server and the node_exporter textfile) would be compiled into varta-watchd too,
# which depends on host with default-features = false to stay small. Built apart, each
# binary gets the features its own package asks for (as ci/size.sh measures them).
VARTA_WATCHD_CARGO_ARGS ?= "-p embedded --bin varta-watchd"
VARTA_WATCH_CARGO_ARGS ?= "-p host --bin varta-watch --bin varta-beat"

do_compile() {
    oe_cargo_build ${VARTA_WATCHD_CARGO_ARGS}
    oe_cargo_build ${VARTA_WATCH_CARGO_ARGS}
}

# --- Configuration -------------------------------------------------------------------------
# The board profile varta-watchd starts with (`varta-watchd --board NAME`, one of the
# built-in profiles in boards/*.toml) is written into /etc/default/varta as VARTA_BOARD,
# which both the systemd unit (EnvironmentFile) and the init script read. Defaults follow
# MACHINE for the machines below; set VARTA_BOARD in local.conf or a bbappend for others.
# An empty value leaves the file's default (qemu-x86_64) and warns at do_install.
def varta_board_for_machine(d):
    return {
        "qemux86-64": "qemu-x86_64",
        "qemuarm64": "qemu-aarch64-virt",
        "raspberrypi4": "raspberrypi4",
        "raspberrypi4-64": "raspberrypi4",
        "beaglebone-yocto": "beaglebone-black",
    }.get(d.getVar("MACHINE"), "")

VARTA_BOARD ??= "${@varta_board_for_machine(d)}"

# systemd-watchdog-off: install a system.conf.d drop-in (RuntimeWatchdogSec=0,
# RebootWatchdogSec=0) with varta-watchd, so systemd does not open the hardware watchdog
# that varta-watchd must own. Remove it only if systemd is configured to use a different
# watchdog device (WatchdogDevice=) than the board profile. No effect without systemd.
PACKAGECONFIG ??= "systemd-watchdog-off"
PACKAGECONFIG[systemd-watchdog-off] = ",,"

VARTA_SYSTEMD = "${@bb.utils.contains('DISTRO_FEATURES', 'systemd', '1', '0', d)}"
VARTA_WDT_DROPIN = "${@'1' if bb.utils.contains('DISTRO_FEATURES', 'systemd', True, False, d) and bb.utils.contains('PACKAGECONFIG', 'systemd-watchdog-off', True, False, d) else '0'}"
VARTA_DROPIN_PATH = "${sysconfdir}/systemd/system.conf.d/10-varta-owns-watchdog.conf"

# --- Install -------------------------------------------------------------------------------
do_install() {
    bin="${B}/target/${CARGO_TARGET_SUBDIR}"
    install -d ${D}${bindir}
    for b in varta-watchd varta-watch varta-beat; do
        [ -x "$bin/$b" ] || bbfatal "$b was not built (looked in $bin)"
        install -m 0755 "$bin/$b" ${D}${bindir}/$b
    done

    # Configuration shared by both observers.
    install -d ${D}${sysconfdir}/varta ${D}${sysconfdir}/default
    install -m 0644 ${UNPACKDIR}/varta.toml ${D}${sysconfdir}/varta/varta.toml
    install -m 0644 ${UNPACKDIR}/default/varta ${D}${sysconfdir}/default/varta
    if [ -n "${VARTA_BOARD}" ]; then
        [ -f "${S}/boards/${VARTA_BOARD}.toml" ] || \
            bbfatal "VARTA_BOARD '${VARTA_BOARD}' is not a built-in board profile (no boards/${VARTA_BOARD}.toml in the source)"
        sed -i 's|^VARTA_BOARD=.*|VARTA_BOARD=${VARTA_BOARD}|' ${D}${sysconfdir}/default/varta
        grep -qx 'VARTA_BOARD=${VARTA_BOARD}' ${D}${sysconfdir}/default/varta || \
            bbfatal "could not set VARTA_BOARD in /etc/default/varta (no VARTA_BOARD= line?)"
    else
        bbwarn "VARTA_BOARD is not set for MACHINE '${MACHINE}': /etc/default/varta keeps $(grep '^VARTA_BOARD=' ${D}${sysconfdir}/default/varta); set VARTA_BOARD to the board's profile"
    fi

    # BusyBox/SysV init script for varta-watchd (the systemd class removes it again on
    # systemd-only distros).
    install -d ${D}${INIT_D_DIR}
    install -m 0755 ${UNPACKDIR}/sysv/varta ${D}${INIT_D_DIR}/varta

    # net.unix.max_dgram_qlen = 512 for the heartbeat socket: applied by systemd-sysctl
    # before either unit starts, and by the init script before it starts varta-watchd.
    install -d ${D}${nonarch_libdir}/sysctl.d
    install -m 0644 ${UNPACKDIR}/sysctl/60-varta.conf ${D}${nonarch_libdir}/sysctl.d/60-varta.conf

    # Optional udev rules giving the `varta` group the watchdog, GPIO chips and LEDs.
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${UNPACKDIR}/udev/60-varta.rules ${D}${nonarch_base_libdir}/udev/rules.d/60-varta.rules

    # The reference pages (each binary's --help), packaged in ${PN}-doc (the default
    # FILES:${PN}-doc covers ${docdir}).
    install -d ${D}${docdir}/varta
    install -m 0644 ${UNPACKDIR}/doc/varta-watch.txt ${UNPACKDIR}/doc/varta-watchd.txt ${D}${docdir}/varta/

    if [ "${VARTA_SYSTEMD}" = "1" ]; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${UNPACKDIR}/systemd/varta-watch.service ${D}${systemd_system_unitdir}/
        install -m 0644 ${UNPACKDIR}/systemd/varta-watchd.service ${D}${systemd_system_unitdir}/
        install -d ${D}${nonarch_libdir}/tmpfiles.d
        install -m 0644 ${UNPACKDIR}/tmpfiles/varta.conf ${D}${nonarch_libdir}/tmpfiles.d/varta.conf
    fi
    if [ "${VARTA_WDT_DROPIN}" = "1" ]; then
        install -d "$(dirname ${D}${VARTA_DROPIN_PATH})"
        install -m 0644 ${UNPACKDIR}/systemd/10-varta-owns-watchdog.conf ${D}${VARTA_DROPIN_PATH}
    fi
}

# --- Packages ------------------------------------------------------------------------------
# An image takes one observer: varta-watchd (owns the hardware watchdog; appliances) or
# varta-watch (no hardware; metrics). varta-beat is separate so a varta-watchd image can have
# shell-script agents without pulling in varta-watch and its enabled unit. There is no
# `varta` package: IMAGE_INSTALL names the one wanted.
PACKAGE_BEFORE_PN = "${PN}-watchd ${PN}-watch ${PN}-beat ${PN}-conf ${PN}-udev"

FILES:${PN}-watchd = " \
    ${bindir}/varta-watchd \
    ${INIT_D_DIR}/varta \
    ${systemd_system_unitdir}/varta-watchd.service \
    ${VARTA_DROPIN_PATH} \
"
FILES:${PN}-watch = " \
    ${bindir}/varta-watch \
    ${systemd_system_unitdir}/varta-watch.service \
"
FILES:${PN}-beat = "${bindir}/varta-beat"
FILES:${PN}-conf = " \
    ${sysconfdir}/varta \
    ${sysconfdir}/default/varta \
    ${nonarch_libdir}/tmpfiles.d/varta.conf \
    ${nonarch_libdir}/sysctl.d/60-varta.conf \
"
FILES:${PN}-udev = "${nonarch_base_libdir}/udev/rules.d/60-varta.rules"

CONFFILES:${PN}-conf = "${sysconfdir}/varta/varta.toml ${sysconfdir}/default/varta"
CONFFILES:${PN}-watchd = "${@d.getVar('VARTA_DROPIN_PATH') if d.getVar('VARTA_WDT_DROPIN') == '1' else ''}"

# Both daemons read /etc/varta/varta.toml and /etc/default/varta.
RDEPENDS:${PN}-watchd = "${PN}-conf"
RDEPENDS:${PN}-watch = "${PN}-conf"
RRECOMMENDS:${PN}-watch = "${PN}-beat"
# One socket, one owner: the units conflict (Conflicts=), and with both installed and enabled
# varta-watch.service, starting later, would stop varta-watchd.service.
RCONFLICTS:${PN}-watch = "${PN}-watchd"
RCONFLICTS:${PN}-watchd = "${PN}-watch"

# systemd: both units are Type=notify; each enabled with its package.
SYSTEMD_PACKAGES = "${PN}-watchd ${PN}-watch"
SYSTEMD_SERVICE:${PN}-watchd = "varta-watchd.service"
SYSTEMD_SERVICE:${PN}-watch = "varta-watch.service"

# SysV/BusyBox init: varta-watchd only (varta-watch has no init script). Start in rcS after
# the local and volatile filesystems are up (S37populate-volatile creates /var/log's target
# on poky), before the runlevel services that register as agents; stop after them.
INITSCRIPT_PACKAGES = "${PN}-watchd"
INITSCRIPT_NAME:${PN}-watchd = "varta"
INITSCRIPT_PARAMS:${PN}-watchd = "start 40 S . stop 90 0 1 6 ."

# The udev rules set GROUP="varta": create the group with them.
USERADD_PACKAGES = "${PN}-udev"
GROUPADD_PARAM:${PN}-udev = "--system varta"
