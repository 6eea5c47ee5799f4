#!/usr/bin/env bash
# Size and memory of varta-watchd against its budgets (stripped <= 500 KB on x86_64 with a
# size-oriented profile; RSS <= 1.5 MB with 256 agents), with the published varta-watch
# 0.2.0 measured in the same run for comparison.
#
#   ci/size.sh            measure, print, and exit 1 when no build meets both budgets
#
# Builds:
#   stable     cargo build --profile min-size (opt-level z, fat LTO, one codegen unit,
#              panic=abort, stripped); what any team can build with a stable toolchain
#   build-std  the same, with std rebuilt for size (-Z build-std, panic=immediate-abort,
#              through RUSTC_BOOTSTRAP on the stable compiler; needs the rust-src component),
#              for glibc and for x86_64-unknown-linux-musl (static: no libc.so pages)
# RSS is VmRSS from /proc, idle and with 256 agents beating, of the stable glibc build and
# the musl static build. If rust-src or the musl target cannot be installed, the figures
# that could be made are printed and the budgets are not judged.
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

# build_std TARGET: std rebuilt for size; prints the binary's path, or nothing
build_std() {
    local t=$1
    CARGO_TARGET_DIR=$TD/build-std RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
        cargo build --quiet --profile min-size --target "$t" -Z build-std=std,panic_abort \
        -p embedded --bin varta-watchd >&2 && echo "$TD/build-std/$t/min-size/varta-watchd"
}
BSTD=""
MUSL=""
if need_component rust-src >/dev/null 2>&1; then
    echo "==> building varta-watchd (build-std, panic=immediate-abort, glibc)"
    BSTD=$(build_std $TARGET) || echo "build-std build failed"
    if rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        timeout 300 rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; then
        echo "==> building varta-watchd (build-std, panic=immediate-abort, musl static)"
        MUSL=$(build_std x86_64-unknown-linux-musl) || echo "musl build-std build failed"
    else
        echo "x86_64-unknown-linux-musl target unavailable: no static figure"
    fi
else
    echo "rust-src component unavailable: no build-std figures"
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
if [ -n "$MUSL" ]; then
    read -r M_IDLE M_256 <<<"$(measure_rss musl "$WORK/m.sock" "$MUSL" --no-watchdog --no-led \
        --socket "$WORK/m.sock" --state-dir "$WORK/state-m" --threshold-ms 5000)"
fi
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
    printf '%-44s %8d K %10s %12s\n' "varta-watchd (build-std, glibc)" $((S_BSTD / KB)) "-" "-"
fi
if [ -n "$MUSL" ]; then
    S_MUSL=$(size_of "$MUSL")
    printf '%-44s %8d K %8d K %10d K\n' "varta-watchd (build-std, musl static)" $((S_MUSL / KB)) "$M_IDLE" "$M_256"
fi
if [ -n "${P_IDLE:-}" ]; then
    S_PUB=$(size_of "$WORK/varta-watch-0.2.0")
    printf '%-44s %8d K %8d K %10d K\n' "published varta-watch 0.2.0 (release)" $((S_PUB / KB)) "$P_IDLE" "$P_256"
    echo "ratios varta-watchd/published: stable glibc: size $(ratio "$S_STABLE" "$S_PUB"), RSS idle $(ratio "$W_IDLE" "$P_IDLE"), RSS 256 agents $(ratio "$W_256" "$P_256")"
    if [ -n "$MUSL" ]; then
        echo "ratios varta-watchd/published: build-std musl static: size $(ratio "$S_MUSL" "$S_PUB"), RSS idle $(ratio "$M_IDLE" "$P_IDLE"), RSS 256 agents $(ratio "$M_256" "$P_256")"
    fi
fi
echo
# The budgets hold for a build when both its size and its RSS with 256 agents are within them.
verdict() { # verdict NAME SIZE RSS256
    if [ "$2" -le "$SIZE_BUDGET" ] && [ "$3" -le "$RSS_BUDGET_KB" ]; then
        echo "budgets met by $1: $(($2 / KB)) K <= $((SIZE_BUDGET / KB)) K stripped, $3 K <= $RSS_BUDGET_KB K RSS with 256 agents"
        return 0
    fi
    echo "budgets not met by $1: $(($2 / KB)) K stripped, $3 K RSS with 256 agents"
    return 1
}
met=0
verdict "the stable glibc build" "$S_STABLE" "$W_256" && met=1
if [ -n "$MUSL" ]; then verdict "the build-std musl static build" "$S_MUSL" "$M_256" && met=1; fi
if [ -z "$MUSL" ] && [ "$met" = 0 ]; then
    echo "size: the build-std musl build could not be made here (see above): budgets not judged"
    exit 0
fi
[ "$met" = 1 ] || { echo "size: FAILED: no build meets the budgets"; exit 1; }
