#!/usr/bin/env bash
# The image integrations' install steps, run for real into scratch directories (no Buildroot
# or bitbake needed), and the udev rules matched against the device nodes they are for:
#
# * Buildroot: boards/buildroot/package/varta/varta.mk included by a stub of the few
#   Buildroot variables and macros it uses; its install commands run for three selections
#   (varta-watchd, varta-watch, both) and each TARGET_DIR must hold exactly the expected files.
# * Yocto: do_install of boards/yocto/meta-varta/recipes-support/varta/varta_git.bb run by
#   bash, with only the files its SRC_URI names unpacked from boards/init; ${D} must hold
#   exactly the expected files.
# * boards/init/udev/60-varta.rules: which rules match /dev/watchdog (misc 10:130),
#   /dev/watchdog0 (watchdog class), /dev/gpiochip0, and a misc device that is no watchdog.
#
# Installed files are compared with their sources byte for byte. Called by ci/image.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}

# expect_tree DIR LABEL FILE...: DIR holds exactly FILE... (relative paths).
expect_tree() {
    local dir=$1 label=$2
    shift 2
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(cd "$dir" && find . -type f | sed 's|^\./||' | sort)
    if [ "$want" != "$got" ]; then
        bad "$label: installed files differ from the expected ones (- expected, + installed):"
        diff <(echo "$want") <(echo "$got") | sed -n 's/^</    -/p; s/^>/    +/p' || true
    fi
}

# same SRC DEST LABEL: DEST, where installed (expect_tree reports it missing), is a byte copy
# of SRC.
same() {
    if [ -f "$2" ] && ! cmp -s "$1" "$2"; then bad "$3: ${2#"$work"/} is not a copy of ${1#"$ROOT"/}"; fi
}

echo "--- Buildroot install (varta.mk)"
src=$work/br-src
for b in varta-watchd varta-watch varta-beat; do
    mkdir -p "$src/target/x86_64-unknown-linux-gnu/release"
    printf '#!/bin/sh\necho %s\n' "$b" >"$src/target/x86_64-unknown-linux-gnu/release/$b"
done
cat >"$work/br.mk" <<'EOF'
# Stand-ins for what Buildroot defines before it includes a package's .mk file.
INSTALL = install
SED = sed -i
qstrip = $(strip $(subst ",,$(1)))
RUSTC_TARGET_NAME = x86_64-unknown-linux-gnu
BR2_PACKAGE_HAS_UDEV = y
BR2_PACKAGE_VARTA_BOARD = "raspberrypi4"
cargo-package =
include $(BR2_EXTERNAL_VARTA_PATH)/package/varta/varta.mk
# Buildroot runs the init-system hook of the image's init system; run both.
install:
	$(VARTA_INSTALL_TARGET_CMDS)
	$(VARTA_INSTALL_INIT_SYSV)
	$(VARTA_INSTALL_INIT_SYSTEMD)
EOF
common=(etc/varta/varta.toml etc/default/varta usr/lib/sysctl.d/60-varta.conf
    usr/lib/tmpfiles.d/varta.conf usr/lib/systemd/system-preset/50-varta.preset)
for sel in watchd watch both; do
    t=$work/br-$sel/target
    mkdir -p "$t"
    watchd=n
    watch=n
    case $sel in
    watchd) watchd=y ;;
    watch) watch=y ;;
    both) watchd=y watch=y ;;
    esac
    if ! make -s -f "$work/br.mk" install BR2_EXTERNAL_VARTA_PATH="$ROOT/boards/buildroot" \
        VARTA_SRCDIR="$src" TARGET_DIR="$t" BR2_PACKAGE_VARTA_WATCHD=$watchd \
        BR2_PACKAGE_VARTA_WATCH=$watch >"$work/br-$sel.log" 2>&1; then
        bad "Buildroot ($sel): the install commands failed:"
        sed 's/^/    /' "$work/br-$sel.log"
        continue
    fi
    files=("${common[@]}")
    if [ $watchd = y ]; then
        files+=(usr/bin/varta-watchd usr/share/varta/doc/varta-watchd.txt
            usr/lib/udev/rules.d/60-varta.rules etc/init.d/S50varta
            usr/lib/systemd/system/varta-watchd.service
            etc/systemd/system.conf.d/10-varta-owns-watchdog.conf)
        same "$ROOT/boards/init/doc/varta-watchd.txt" "$t/usr/share/varta/doc/varta-watchd.txt" "Buildroot ($sel)"
        same "$ROOT/boards/init/udev/60-varta.rules" "$t/usr/lib/udev/rules.d/60-varta.rules" "Buildroot ($sel)"
        same "$ROOT/boards/init/sysv/varta" "$t/etc/init.d/S50varta" "Buildroot ($sel)"
    fi
    if [ $watch = y ]; then
        files+=(usr/bin/varta-watch usr/bin/varta-beat usr/share/varta/doc/varta-watch.txt
            usr/lib/systemd/system/varta-watch.service)
        same "$ROOT/boards/init/doc/varta-watch.txt" "$t/usr/share/varta/doc/varta-watch.txt" "Buildroot ($sel)"
    fi
    expect_tree "$t" "Buildroot ($sel)" "${files[@]}"
    same "$ROOT/boards/init/sysctl/60-varta.conf" "$t/usr/lib/sysctl.d/60-varta.conf" "Buildroot ($sel)"
    grep -qx 'VARTA_BOARD=raspberrypi4' "$t/etc/default/varta" 2>/dev/null ||
        bad "Buildroot ($sel): /etc/default/varta does not say VARTA_BOARD=raspberrypi4"
    echo "Buildroot ($sel): ${#files[@]} files expected"
done

echo "--- Yocto install (varta_git.bb do_install)"
bb=boards/yocto/meta-varta/recipes-support/varta/varta_git.bb
y=$work/yocto
mkdir -p "$y/unpack" "$y/image" "$y/build/target/x86_64-poky-linux/release"
# SRC_URI's file:// entries, found through FILESEXTRAPATHS in boards/init.
mapfile -t uris < <(sed -n '/^SRC_URI = "/,/^"/p' $bb | grep -o 'file://[^ ;"\\]*' | sed 's|^file://||')
[ ${#uris[@]} -gt 0 ] || bad "Yocto: no file:// entries found in SRC_URI of $bb"
for u in "${uris[@]}"; do
    if [ -f "boards/init/$u" ]; then
        install -D -m 0644 "boards/init/$u" "$y/unpack/$u"
    else
        bad "Yocto: SRC_URI names file://$u, which boards/init does not have"
    fi
done
for b in varta-watchd varta-watch varta-beat; do
    printf '#!/bin/sh\necho %s\n' "$b" >"$y/build/target/x86_64-poky-linux/release/$b"
    chmod +x "$y/build/target/x86_64-poky-linux/release/$b"
done
# bitbake expands each ${VAR} of its datastore in a shell task before the shell sees it,
# inside quotes too; these are poky's values (usrmerge off) and the recipe's for VARTA_*.
# What is left is the shell's, which runs with -u: a variable missing here is an error.
if ! python3 - "$bb" "$y" "$ROOT" >"$y/do_install.sh" <<'EOF'; then
import re
import sys

bb, y, root = sys.argv[1:]
var = {
    "D": f"{y}/image", "B": f"{y}/build", "S": root, "UNPACKDIR": f"{y}/unpack",
    "CARGO_TARGET_SUBDIR": "x86_64-poky-linux/release", "MACHINE": "raspberrypi4",
    "VARTA_BOARD": "raspberrypi4", "VARTA_SYSTEMD": "1", "VARTA_WDT_DROPIN": "1",
    "VARTA_DROPIN_PATH": "/etc/systemd/system.conf.d/10-varta-owns-watchdog.conf",
    "bindir": "/usr/bin", "sysconfdir": "/etc", "INIT_D_DIR": "/etc/init.d",
    "nonarch_base_libdir": "/lib", "nonarch_libdir": "/usr/lib",
    "systemd_system_unitdir": "/lib/systemd/system", "docdir": "/usr/share/doc",
}
m = re.search(r"^do_install\(\) \{\n.*?^\}\n", open(bb).read(), re.S | re.M)
if not m:
    sys.exit(f"no do_install() in {bb}")
print("set -eu")
print('bbfatal() { echo "bbfatal: $*" >&2; exit 1; }')
print('bbwarn() { echo "bbwarn: $*" >&2; }')
print(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda v: var.get(v[1], v[0]), m[0]))
print("do_install")
EOF
    bad "Yocto: could not extract do_install() from $bb"
elif ! bash "$y/do_install.sh" >"$y/log" 2>&1; then
    bad "Yocto: do_install failed:"
    sed 's/^/    /' "$y/log"
else
    files=(usr/bin/varta-watchd usr/bin/varta-watch usr/bin/varta-beat
        etc/varta/varta.toml etc/default/varta etc/init.d/varta usr/lib/sysctl.d/60-varta.conf
        lib/udev/rules.d/60-varta.rules
        usr/share/doc/varta/varta-watch.txt usr/share/doc/varta/varta-watchd.txt
        lib/systemd/system/varta-watch.service lib/systemd/system/varta-watchd.service
        usr/lib/tmpfiles.d/varta.conf etc/systemd/system.conf.d/10-varta-owns-watchdog.conf)
    expect_tree "$y/image" "Yocto" "${files[@]}"
    for d in varta-watch varta-watchd; do
        same "$ROOT/boards/init/doc/$d.txt" "$y/image/usr/share/doc/varta/$d.txt" "Yocto"
    done
    same "$ROOT/boards/init/udev/60-varta.rules" "$y/image/lib/udev/rules.d/60-varta.rules" "Yocto"
    same "$ROOT/boards/init/sysctl/60-varta.conf" "$y/image/usr/lib/sysctl.d/60-varta.conf" "Yocto"
    grep -qx 'VARTA_BOARD=raspberrypi4' "$y/image/etc/default/varta" 2>/dev/null ||
        bad "Yocto: /etc/default/varta does not say VARTA_BOARD=raspberrypi4"
    echo "Yocto: ${#files[@]} files expected"
fi

echo "--- udev rules (60-varta.rules)"
python3 - boards/init/udev/60-varta.rules <<'EOF' || fail=1
"""Evaluate the rules' match keys the way udev does (KEY=="glob|glob", KEY!="..."; the
globs are fnmatch patterns) for the device nodes varta-watchd opens, and report the GROUP
and MODE each node gets. Any key this does not know is an error, so it cannot silently
ignore a condition."""
import fnmatch
import re
import sys

MATCH = {"KERNEL", "SUBSYSTEM", "ACTION"}
ASSIGN = {"GROUP", "MODE", "RUN"}
# (what, properties as the kernel reports them for the node, expected GROUP)
DEVICES = [
    # drivers/watchdog/watchdog_dev.c: the first watchdog also registers the misc device
    # "watchdog" (MISC_MAJOR 10, WATCHDOG_MINOR 130) besides its watchdog-class node.
    ("/dev/watchdog (misc 10:130)", {"KERNEL": "watchdog", "SUBSYSTEM": "misc", "ACTION": "add"}, "varta"),
    ("/dev/watchdog0 (watchdog class)", {"KERNEL": "watchdog0", "SUBSYSTEM": "watchdog", "ACTION": "add"}, "varta"),
    ("/dev/watchdog1 (watchdog class)", {"KERNEL": "watchdog1", "SUBSYSTEM": "watchdog", "ACTION": "add"}, "varta"),
    ("/dev/gpiochip0", {"KERNEL": "gpiochip0", "SUBSYSTEM": "gpio", "ACTION": "add"}, "varta"),
    ("/dev/fuse (misc, no watchdog)", {"KERNEL": "fuse", "SUBSYSTEM": "misc", "ACTION": "add"}, None),
    ("/dev/rtc0 (rtc)", {"KERNEL": "rtc0", "SUBSYSTEM": "rtc", "ACTION": "add"}, None),
]
PAIR = re.compile(r'\s*([A-Z_]+)\s*(==|!=|\+=|=)\s*"([^"]*)"\s*(?:,|$)')


def parse(line):
    pairs, pos = [], 0
    while pos < len(line):
        m = PAIR.match(line, pos)
        if not m:
            raise ValueError(f"cannot parse at column {pos + 1}: {line[pos:]!r}")
        pairs.append(m.groups())
        pos = m.end()
    return pairs


def matches(pattern, value):
    return any(fnmatch.fnmatchcase(value, p) for p in pattern.split("|"))


rules = []
with open(sys.argv[1]) as f:
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pairs = parse(line)
        for k, op, _ in pairs:
            known = MATCH if op in ("==", "!=") else ASSIGN
            if k not in known:
                sys.exit(f"{sys.argv[1]}:{n}: key {k}{op} not understood by this check")
        rules.append((n, pairs))

ok = True
for what, props, want in DEVICES:
    group = mode = None
    hits = []
    for n, pairs in rules:
        if all(matches(v, props[k]) == (op == "==") for k, op, v in pairs if op in ("==", "!=")):
            hits.append(n)
            for k, op, v in pairs:
                if k == "GROUP":
                    group = v
                elif k == "MODE":
                    mode = v
    got_ok = group == want and (want is None or mode == "0660")
    ok &= got_ok
    print(f"{'ok' if got_ok else 'FAIL'}: {what}: lines {hits or '-'}, GROUP {group}, MODE {mode}"
          f"{'' if got_ok else f' (expected GROUP {want}' + (', MODE 0660)' if want else ')')}")
sys.exit(0 if ok else 1)
EOF

if [ "$fail" != 0 ]; then
    echo "image install checks FAILED"
    exit 1
fi
echo "image install checks: ok"
