#!/usr/bin/env bash
# The no_std proof: ci/nostd links the core's codec, tracker, gate and LED driver into a
# staticlib with its own panic handler and no allocator. Built for a bare-metal target
# (where std does not exist at all) and for the host; plus the core's feature matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
proof=ci/nostd/Cargo.toml
target=thumbv7em-none-eabihf

cargo build --manifest-path "$proof" --release
if rustup target list --installed | grep -qx "$target" || rustup target add "$target"; then
    cargo build --manifest-path "$proof" --release --target "$target"
    cargo build --manifest-path "$proof" --release --target "$target" --features defmt
    lib=ci/nostd/target/$target/release/libvarta_nostd_proof.a
    echo "no_std proof for $target: $(wc -c <"$lib") bytes archive"
else
    echo "SKIP: rustup target $target unavailable; host no_std build only"
fi

for f in "" defmt log small-crc "defmt,small-crc"; do
    echo "core features: ${f:-<none>}"
    cargo build -p core --no-default-features ${f:+--features "$f"}
done
echo "nostd: ok"
