#!/usr/bin/env bash
# Checks of the image component (boards/): the systemd units with systemd-analyze verify,
# every shell script with shellcheck, the Buildroot and Yocto install steps and the udev
# rules (ci/image-install.sh), the Yocto crates list against Cargo.lock, and the release
# tarball against the Buildroot hash. The init script's real start/stop runs in the
# QEMU suite (ci/hil). A full bitbake or Buildroot build does not run here (see the READMEs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh
need_apt shellcheck shellcheck
need_apt systemd-analyze systemd

echo "--- shellcheck"
mapfile -t scripts < <(grep -rlE '^#!/bin/(ba)?sh' boards ci/hil/watchd ci/hil/rootfs 2>/dev/null | sort)
shellcheck -s sh -S warning "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"

echo "--- systemd-analyze verify"
cargo build --quiet -p host -p embedded --bin varta-watch --bin varta-watchd
TD=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in boards/init/systemd/*.service; do
    # The units name /usr/bin; point them at this build so verify can check the command.
    sed "s|/usr/bin/varta-|$TD/debug/varta-|" "$unit" >"$work/$(basename "$unit")"
done
out=$(cd "$work" && systemd-analyze verify --man=no ./*.service 2>&1) || {
    echo "$out"
    echo "systemd-analyze verify failed"
    exit 1
}
if [ -n "$out" ]; then
    echo "$out"
    echo "systemd-analyze verify: warnings above"
    exit 1
fi
echo "systemd-analyze verify: $(find boards/init/systemd -name '*.service' | wc -l) units clean"

echo "--- reference pages (the binaries' --help)"
for b in varta-watch varta-watchd; do
    if ! "$TD/debug/$b" --help | diff -u "boards/init/doc/$b.txt" -; then
        echo "boards/init/doc/$b.txt is stale: regenerate with: $b --help > boards/init/doc/$b.txt"
        exit 1
    fi
done
echo "reference pages current"

echo "--- install steps (Buildroot, Yocto) and udev rules"
ci/image-install.sh

if [ -f ci/yocto-crates.py ]; then
    echo "--- Yocto crates list"
    python3 ci/yocto-crates.py --check
fi
if [ -x ci/release-tarball.sh ]; then
    echo "--- release tarball"
    ci/release-tarball.sh --check
fi
echo "image: ok"
