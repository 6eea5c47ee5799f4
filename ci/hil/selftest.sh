#!/usr/bin/env bash
# Prove the HIL harness with busybox alone: real i6300esb, gpio-sim, QMP events, console reports.
# Guests run one after another (TCG keeps a host core busy per guest).
#
# Usage: ci/hil/selftest.sh [CASE...]     (default: all; cases: wd_kill wd_orderly gpio_idle panic hang)
# Env:   HIL_CACHE       as for setup.sh
#        HIL_OUT         where the records go (default: a new temporary directory, kept)
#        HIL_SKIP_SETUP  1: do not run setup.sh first
# Last line: "N passed, N failed"; exit status 1 if any failed.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${HIL_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/varta-hil-selftest.XXXXXX")}
mkdir -p "$OUT"
START=$SECONDS

if [ "${HIL_SKIP_SETUP:-0}" != 1 ]; then
    "$HERE/setup.sh" || {
        echo "setup.sh failed"
        echo "0 passed, 1 failed"
        exit 1
    }
fi
"$HERE/mkinitrd.sh" "$OUT/selftest.cpio.gz" "$HERE/selftest" || {
    echo "mkinitrd.sh failed"
    echo "0 passed, 1 failed"
    exit 1
}

passed=0
failed=0
failures=()

# check CASE DESCRIPTION PYTHON-EXPRESSION-over-r (r = result.json as a dict)
check() {
    local case=$1 what=$2 expr=$3
    if python3 - "$OUT/$case/result.json" "$expr" <<'EOF'; then
import json, sys
r = json.load(open(sys.argv[1]))
hil = r.get("hil", {})
try:
    ok = eval(sys.argv[2], {"r": r, "hil": hil})
except Exception as e:  # a missing key is a failed expectation
    print(f"    ({type(e).__name__}: {e})")
    ok = False
sys.exit(0 if ok else 1)
EOF
        echo "    ok    $what"
        return 0
    fi
    echo "    FAIL  $what   [$expr]"
    CASE_OK=0
}

# boot CASE TIMEOUT [expected boot.py exit status]
boot() {
    local case=$1 timeout=$2 want_rc=${3:-0} rc t0=$SECONDS
    echo "== $case"
    "$HERE/boot.py" --initrd "$OUT/selftest.cpio.gz" --append "testcase=$case" \
        --timeout "$timeout" --out "$OUT/$case" >/dev/null
    rc=$?
    CASE_OK=1
    if [ "$rc" != "$want_rc" ]; then
        echo "    FAIL  boot.py exited $rc, expected $want_rc"
        CASE_OK=0
    fi
    python3 - "$OUT/$case/result.json" "$((SECONDS - t0))" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
keys = ("ready_s", "watchdog_fired", "first_watchdog_s", "marks", "watchdog_after_mark_s",
        "shutdown_reason", "guest_panicked", "timed_out", "duration_s", "hil")
print("    " + ", ".join(f"{k}={json.dumps(r.get(k))}" for k in keys) + f", wall={sys.argv[2]}s")
EOF
    check "$case" "guest reached HIL-READY" 'r["ready"] and "setup_error" not in hil'
    check "$case" "testcase reached the scenario" "hil['testcase'] == '$case'"
}

finish() { # finish CASE
    if [ "$CASE_OK" = 1 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$1")
        echo "    records: $OUT/$1 (serial.log, serial-timed.log, qmp.jsonl, result.json)"
    fi
}

case_wd_kill() {
    boot wd_kill 40
    check wd_kill "busybox watchdog set a 3 s i6300esb timeout" \
        'hil["wd_identity"] == "i6300ESB timer" and hil["wd_timeout"] == "3" and hil["wd_state"] == "active"'
    check wd_kill "WATCHDOG event, action reset" \
        'r["watchdog_fired"] and r["watchdog_events"][0]["action"] == "reset"'
    check wd_kill "fired 2.9-5 s after mark=killed (the close pets once, just before the mark)" \
        '2.9 <= r["watchdog_after_mark_s"]["killed"] <= 5.0'
    check wd_kill "shutdown reason guest-reset, not timed out" \
        'r["shutdown_reason"] == "guest-reset" and not r["timed_out"]'
    check wd_kill "scenario did not outlive the watchdog" '"error" not in hil and "scenario_exit" not in hil'
    finish wd_kill
}

case_wd_orderly() {
    boot wd_orderly 40
    check wd_orderly "magic close stopped the watchdog" 'hil["wd_state"] == "inactive"'
    check wd_orderly "no WATCHDOG event" 'not r["watchdog_fired"] and "WATCHDOG" not in r["events"]'
    check wd_orderly "survived 7 s past the stop, then powered off" \
        'hil["survived"] == "1" and hil["scenario_exit"] == "0" and r["shutdown_reason"] == "guest-shutdown"'
    finish wd_orderly
}

case_gpio_idle() {
    boot gpio_idle 40
    check gpio_idle "no WATCHDOG event" 'not r["watchdog_fired"]'
    check gpio_idle "shutdown reason guest-shutdown, scenario exit 0" \
        'r["shutdown_reason"] == "guest-shutdown" and hil["scenario_exit"] == "0" and not r["timed_out"]'
    check gpio_idle "gpio_value=0 on line 3 of gpiochip0" 'hil["gpio_value"] == "0" and hil["gpio_dev"] == "/dev/gpiochip0"'
    check gpio_idle "chip labelled sim-leds with 8 lines" 'hil["gpio_label"] == "sim-leds" and hil["gpio_ngpio"] == "8"'
    check gpio_idle "simulated pull drives the input level" \
        'hil["gpio_value_pull_up"] == "1" and hil["gpio_value_pull_down"] == "0"'
    check gpio_idle "/init reaps orphans" 'hil["orphan"] == "reaped"'
    finish gpio_idle
}

case_panic() {
    boot panic 40
    check panic "GUEST_PANICKED event, no WATCHDOG" 'r["guest_panicked"] and not r["watchdog_fired"]'
    check panic "shutdown reason guest-panic" 'r["shutdown_reason"] == "guest-panic"'
    finish panic
}

case_hang() {
    boot hang 10 3
    check hang "timed out, QEMU killed" 'r["timed_out"] and r["qemu_exit"] is not None and not r["watchdog_fired"]'
    check hang "within about the timeout" '10.0 <= r["duration_s"] <= 16.0'
    finish hang
}

CASES=("$@")
[ ${#CASES[@]} = 0 ] && CASES=(wd_kill wd_orderly gpio_idle panic hang)
for c in "${CASES[@]}"; do
    if declare -F "case_$c" >/dev/null; then
        "case_$c"
    else
        echo "== $c: no such case"
        failed=$((failed + 1))
        failures+=("$c")
    fi
done

echo "records in $OUT; $((SECONDS - START)) s"
[ $failed = 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
