#!/usr/bin/env bash
# The no_std proof: ci/nostd links the core's codec, tracker, gate and LED driver into a
# staticlib with its own panic handler and no allocator. Built for the host (and checked
# with nm that no std symbol leaked in), for a bare-metal target where std does not exist
# at all (with and without defmt), plus the core's feature matrix in the main workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
proof=ci/nostd/Cargo.toml
target=thumbv7em-none-eabihf
lib_name=libvarta_nostd_proof.a

# The proof's target directory as cargo resolves it (honours CARGO_TARGET_DIR and config).
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$proof" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $target_dir ]] || { echo "nostd: cannot resolve the proof's target directory" >&2; exit 1; }

# Fail if the archive defines or references any std symbol. The positive control
# (varta_proof must be visible) makes sure nm really read the archive.
check_no_std_symbols() {
    local lib=$1 syms leaked
    syms=$(nm -C "$lib" 2>/dev/null) || { echo "nostd: nm cannot read $lib" >&2; return 1; }
    if ! grep -qE ' T varta_proof$' <<<"$syms"; then
        echo "nostd: varta_proof not found in $lib (nm output unusable?)" >&2
        return 1
    fi
    leaked=$(grep -E '(^|[^A-Za-z0-9_])std(\[[0-9a-f]+\])?::' <<<"$syms" || true)
    if [[ -n $leaked ]]; then
        echo "nostd: std symbols leaked into $lib ($(wc -l <<<"$leaked") lines), e.g.:" >&2
        head -n 10 <<<"$leaked" >&2
        return 1
    fi
    echo "nostd: no std symbols in $lib ($(wc -c <"$lib") bytes)"
}

echo "--- proof, host target"
cargo build --manifest-path "$proof" --release
check_no_std_symbols "$target_dir/release/$lib_name"

echo "--- proof, $target"
if rustup target list --installed 2>/dev/null | grep -qx "$target" ||
    timeout 300 rustup target add "$target"; then
    for f in "" defmt; do
        echo "proof features: ${f:-<none>}"
        cargo build --manifest-path "$proof" --release --target "$target" ${f:+--features "$f"}
    done
    echo "no_std proof for $target: $(wc -c <"$target_dir/$target/release/$lib_name") bytes archive"
else
    echo "SKIP: target unavailable ($target could not be installed); host no_std build only"
fi

echo "--- core feature matrix (host)"
for f in "" defmt log small-crc "defmt,small-crc"; do
    echo "core features: ${f:-<none>}"
    cargo build -p core --no-default-features ${f:+--features "$f"}
done
echo "nostd: ok"
