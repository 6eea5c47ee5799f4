#!/usr/bin/env bash
# CI's benchmark smoke: the harness end to end with small counts, both observers, and the
# callgrind regression gate (ci/bench.sh --help for the full run).
set -euo pipefail
exec "$(dirname "$0")/bench.sh" --quick --gate
