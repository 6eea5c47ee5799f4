#!/usr/bin/env bash
# Size and memory of varta-watchd against its budgets (stripped <= 500 KB on x86_64 with a
# size-oriented profile; RSS <= 1.5 MB with 256 agents), with the published varta-watch
# 0.2.0 measured in the same run for comparison.
#
#   ci/size.sh            measure and print (a report: exit 1 only when a build fails)
#
# Builds:
#   stable     cargo build --profile min-size (opt-level z, fat LTO, one codegen unit,
#              panic=abort, stripped); what any team can build with a stable toolchain
#   build-std  the same, with std rebuilt for size (-Z build-std, panic=immediate-abort,
#              through RUSTC_BOOTSTRAP on the stable compiler; needs the rust-src component)
# RSS is VmRSS of the stable build from /proc: idle, then with 256 agents beating.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

KB=1024
SIZE_BUDGET=$((500 * KB))
RSS_BUDGET_KB=1536
TARGET=x86_64-unknown-linux-gnu
TD=${SIZE_TARGET_DIR:-$PWD/target/size}
CACHE=${VARTA_BENCH_CACHE:-/var/cache/varta-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/varta-size.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> building varta-watchd (stable, --profile min-size)"
CARGO_TARGET_DIR=$TD cargo build --quiet --profile min-size --target $TARGET -p embedded --bin varta-watchd
STABLE=$TD/$TARGET/min-size/varta-watchd

BSTD=""
if need_component rust-src >/dev/null 2>&1; then
    echo "==> building varta-watchd (build-std, panic=immediate-abort)"
    if CARGO_TARGET_DIR=$TD/build-std RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
        cargo build --quiet --profile min-size --target $TARGET -Z build-std=std,panic_abort \
        -p embedded --bin varta-watchd; then
        BSTD=$TD/build-std/$TARGET/min-size/varta-watchd
    else
        echo "build-std build failed: reporting the stable build only"
    fi
else
    echo "rust-src component unavailable: no build-std figure"
fi

PUB=$CACHE/published/bin/varta-watch
if [ ! -x "$PUB" ]; then
    echo "==> installing the published varta-watch 0.2.0 (for comparison)"
    cargo install --quiet --locked varta-watch --version 0.2.0 --root "$CACHE/published" ||
        echo "could not install varta-watch 0.2.0: no comparison"
fi
if [ -x "$PUB" ]; then
    cp "$PUB" "$WORK/varta-watch-0.2.0"
    strip "$WORK/varta-watch-0.2.0"
fi

echo "==> building the test agent"
cargo build --quiet -p tests --bin varta-test-agent
AGENT=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/varta-test-agent

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# measure_rss NAME CMD...: idle RSS after 1 s, then with 256 agents for 3 s
measure_rss() {
    local name=$1 sock=$2
    shift 2
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
    [ -S "$sock" ] || { echo "$name did not bind $sock"; cat "$WORK/$name.log"; return 1; }
    sleep 1
    local idle
    idle=$(rss_kb "$pid")
    local agents=()
    for _ in $(seq 256); do
        "$AGENT" --socket "$sock" --interval-ms 200 --duration-ms 6000 >/dev/null 2>&1 &
        agents+=("$!")
    done
    sleep 4
    local busy
    busy=$(rss_kb "$pid")
    kill "${agents[@]}" 2>/dev/null || true
    wait "${agents[@]}" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$idle $busy"
}

echo "==> measuring"
read -r W_IDLE W_256 <<<"$(measure_rss watchd "$WORK/w.sock" "$STABLE" --no-watchdog --no-led \
    --socket "$WORK/w.sock" --state-dir "$WORK/state" --threshold-ms 5000)"
if [ -x "$WORK/varta-watch-0.2.0" ]; then
    read -r P_IDLE P_256 <<<"$(measure_rss published "$WORK/p.sock" "$WORK/varta-watch-0.2.0" \
        --socket "$WORK/p.sock" --threshold-ms 5000)"
fi

size_of() { stat -c %s "$1"; }
S_STABLE=$(size_of "$STABLE")
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
printf '%-44s %10s %10s %12s\n' "" "stripped" "RSS idle" "RSS 256 ag."
printf '%-44s %8d K %8d K %10d K\n' "varta-watchd (stable min-size)" $((S_STABLE / KB)) "$W_IDLE" "$W_256"
if [ -n "$BSTD" ]; then
    S_BSTD=$(size_of "$BSTD")
    printf '%-44s %8d K %10s %12s\n' "varta-watchd (build-std, immediate-abort)" $((S_BSTD / KB)) "-" "-"
fi
if [ -n "${P_IDLE:-}" ]; then
    S_PUB=$(size_of "$WORK/varta-watch-0.2.0")
    printf '%-44s %8d K %8d K %10d K\n' "published varta-watch 0.2.0 (release)" $((S_PUB / KB)) "$P_IDLE" "$P_256"
    echo "ratios varta-watchd/published: size $(ratio "$S_STABLE" "$S_PUB") (stable)${BSTD:+, $(ratio "$S_BSTD" "$S_PUB") (build-std)}, RSS idle $(ratio "$W_IDLE" "$P_IDLE"), RSS 256 agents $(ratio "$W_256" "$P_256")"
fi
echo
best=$S_STABLE
[ -n "$BSTD" ] && [ "$S_BSTD" -lt "$best" ] && best=$S_BSTD
if [ "$best" -le "$SIZE_BUDGET" ]; then
    echo "size budget: met ($((best / KB)) K <= $((SIZE_BUDGET / KB)) K)"
else
    echo "size budget: NOT met: smallest build $((best / KB)) K > $((SIZE_BUDGET / KB)) K (tracked in issue 5)"
fi
if [ "$W_256" -le "$RSS_BUDGET_KB" ]; then
    echo "RSS budget: met (${W_256} K <= ${RSS_BUDGET_KB} K with 256 agents)"
else
    echo "RSS budget: NOT met: ${W_256} K > ${RSS_BUDGET_KB} K with 256 agents (tracked in issue 5)"
fi
