#!/usr/bin/env bash
# Formatting, clippy with -D warnings (workspace and every core feature), shellcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh
need_component rustfmt
need_component clippy
need_apt shellcheck shellcheck

cargo fmt --all --check
for m in core/fuzz/Cargo.toml host/fuzz/Cargo.toml ci/nostd/Cargo.toml; do
    cargo fmt --manifest-path "$m" --check
done
cargo clippy --workspace --all-targets -- -D warnings
for f in defmt log small-crc; do
    cargo clippy -p core --all-targets --features "$f" -- -D warnings
done
cargo clippy --manifest-path core/fuzz/Cargo.toml --all-targets -- -D warnings
cargo clippy --manifest-path host/fuzz/Cargo.toml --all-targets -- -D warnings
cargo clippy --manifest-path ci/nostd/Cargo.toml -- -D warnings
shellcheck -x ci/*.sh ci/hil/*.sh ci/hil/run .ci/run
shellcheck -s sh -S warning ci/hil/rootfs/init ci/hil/rootfs/usr/bin/hil ci/hil/*/scenario/run.sh
echo "lint: ok"
