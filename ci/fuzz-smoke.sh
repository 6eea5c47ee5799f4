#!/usr/bin/env bash
# Fuzz smoke for the decoders: 60 s of libFuzzer when nightly and cargo-fuzz are available,
# else the stable replay (corpus, bit flips, generated and mutated inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECS:-60}

have_libfuzzer() {
    rustup toolchain list | grep -q '^nightly' || timeout 300 rustup toolchain install nightly --profile minimal || return 1
    command -v cargo-fuzz >/dev/null 2>&1 || timeout 900 cargo install cargo-fuzz --locked || return 1
}

if have_libfuzzer; then
    echo "mode: libFuzzer (cargo +nightly fuzz), ${secs}s"
    # Fuzz a scratch copy of the corpus so the tracked seeds stay as they are.
    work=$(mktemp -d)
    cp core/fuzz/corpus/decode/* "$work"/
    (cd core/fuzz && cargo +nightly fuzz run decode --features libfuzzer "$work" corpus/decode \
        -- -max_total_time="$secs" -max_len=128)
    rm -rf "$work"
else
    echo "mode: stable replay (libFuzzer unavailable)"
fi
# The replay always runs: it is cheap and works on stable.
FUZZ_REPLAY_ITERS=${FUZZ_REPLAY_ITERS:-2000000} \
    cargo test --release --manifest-path core/fuzz/Cargo.toml -- --nocapture
echo "fuzz-smoke: ok"
