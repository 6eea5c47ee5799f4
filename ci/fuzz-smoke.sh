#!/usr/bin/env bash
# Fuzz smoke for the decoders and parsers: 60 s of libFuzzer on the frame decoder and 20 s on
# each of the observer's parsers (core/fuzz, host/fuzz) when nightly and cargo-fuzz are available,
# else the stable replay (corpus, bit flips, generated and mutated inputs). The replay runs
# in both modes. FUZZ_MODE=replay skips libFuzzer; FUZZ_MODE=libfuzzer makes its absence
# an error. Any crash or failed property exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECS:-60}
mode=${FUZZ_MODE:-auto}

have_libfuzzer() {
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "installing the nightly toolchain (for libFuzzer)"
        timeout 300 rustup toolchain install nightly --profile minimal || return 1
    fi
    if ! command -v cargo-fuzz >/dev/null 2>&1; then
        echo "installing cargo-fuzz"
        timeout 900 cargo install cargo-fuzz --locked || return 1
    fi
}

run_libfuzzer=false
case $mode in
    auto) if have_libfuzzer; then run_libfuzzer=true; fi ;;
    libfuzzer)
        have_libfuzzer || { echo "fuzz-smoke: libFuzzer required but unavailable" >&2; exit 1; }
        run_libfuzzer=true
        ;;
    replay) ;;
    *) echo "fuzz-smoke: unknown FUZZ_MODE=$mode (auto, libfuzzer, replay)" >&2; exit 2 ;;
esac

if $run_libfuzzer; then
    echo "mode: libFuzzer (cargo +nightly fuzz run decode), ${secs}s, then the stable replay"
    # Fuzz a scratch copy of the corpus so the tracked seeds stay as they are.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp core/fuzz/corpus/decode/* "$work"/
    (cd core/fuzz && cargo +nightly fuzz run decode --features libfuzzer "$work" corpus/decode \
        -- -max_total_time="$secs" -max_len=128)
    # The observer's parsers of outside input, a shorter run each.
    host_secs=${FUZZ_HOST_SECS:-20}
    for spec in http_request:http audit_line:audit exec_split:exec config_file:config; do
        target=${spec%%:*}
        dir=${spec#*:}
        mkdir -p "$work/$dir"
        cp "host/fuzz/corpus/$dir"/* "$work/$dir"/
        echo "host target $target, ${host_secs}s"
        (cd host/fuzz && cargo +nightly fuzz run "$target" --features libfuzzer "$work/$dir" \
            "corpus/$dir" -- -max_total_time="$host_secs" -max_len=4096)
    done
else
    echo "mode: stable replay only (libFuzzer not run: FUZZ_MODE=$mode or nightly/cargo-fuzz unavailable)"
fi
# The replay always runs: it is cheap and works on stable.
FUZZ_REPLAY_ITERS=${FUZZ_REPLAY_ITERS:-2000000} \
    cargo test --release --manifest-path core/fuzz/Cargo.toml -- --nocapture
FUZZ_REPLAY_ITERS=${FUZZ_REPLAY_ITERS:-2000000} \
    cargo test --release --manifest-path host/fuzz/Cargo.toml -- --nocapture
echo "fuzz-smoke: ok"
