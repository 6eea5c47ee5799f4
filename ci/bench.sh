#!/usr/bin/env bash
# The benchmark harness: this project's varta-watch against the published varta-watch 0.2.0
# (installed from crates.io into a cache directory), same run, same load, interleaved.
#
#   ci/bench.sh                          full run (~20 minutes on 2 cores), table printed
#   ci/bench.sh --write BENCHMARKS.md    also write the report and BENCHMARKS.svg
#   ci/bench.sh --quick --gate           CI smoke: small counts (~4 minutes), and fail when
#                                        callgrind's instructions per beat regress (see
#                                        varta-bench --help)
#
# Runs as root (the load generator speaks for thousands of agents through
# SCM_CREDENTIALS); installs valgrind and strace when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh
need_apt valgrind valgrind
need_apt callgrind_control valgrind
need_apt strace strace
CACHE=${VARTA_BENCH_CACHE:-/var/cache/varta-bench}
TD=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --quiet --release --locked -p host --bin varta-watch -p tests --bin varta-bench
exec "$TD/release/varta-bench" --ours "$TD/release/varta-watch" \
    --published-root "$CACHE/published-0.2.0" "$@"
