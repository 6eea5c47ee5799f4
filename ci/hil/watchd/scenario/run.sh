#!/bin/sh
# varta-watchd scenarios, one per guest; $testcase picks one (ci/hil/run boots them).
# Reports through `hil` (HIL KEY=VALUE and HIL mark=NAME lines on the console).
# The board is $HIL_BOARD (kernel parameter board=, default by architecture: see /init).
. /run/hil.env
# From the kernel command line (see ci/hil/watchd.py).
testcase=${testcase:-}
bootloop_hex=${bootloop_hex:-}
mkdir -p /var/lib/varta /run/varta
LOG=/tmp/watchd.log
SOCK=/run/varta/varta.sock
STATE=/var/lib/varta

start_watchd() {
    varta-watchd --board "${HIL_BOARD:-qemu-x86_64}" --config /etc/varta/varta.toml \
        --recovery-audit-file $STATE/audit.log >$LOG 2>&1 &
    WPID=$!
    i=0
    while [ ! -S $SOCK ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            hil error "varta-watchd did not bind $SOCK"
            dump_log
            exit 1
        fi
        sleep 0.1
    done
    hil mark watchd-up
}
agent() { # agent NAME ARGS...: a test agent whose comm is NAME, beating every 100 ms
    name=$1
    shift
    "$name" --socket $SOCK --interval-ms 100 --duration-ms 600000 "$@" >/dev/null 2>&1 &
}
sample() { # sample MS: the LED's levels over MS ms -> "HIL led=LEVEL:MS,..."
    if [ "${HIL_LED_TRACE:-}" = host ]; then
        # No readable level in the guest (PL061): the host cuts this window out of QEMU's
        # pin trace and reports it as led (boot.py --led-trace).
        hil mark led-from
        usleep $(($1 * 1000))
        hil mark led-to
    else
        hil led "$(varta-sample "$HIL_GPIO_VALUE" --every-ms 5 --for-ms "$1")"
    fi
}
dump_log() { sed 's/^/watchd: /' $LOG; }
alive() { if [ -n "$WPID" ] && kill -0 "$WPID" 2>/dev/null; then hil alive yes; else hil alive no; fi; }
stop_watchd() {
    kill -TERM "$WPID"
    wait "$WPID"
    hil watchd_exit $?
    hil mark stopped
}
audit_trail() { # crit-agent's spawn, complete and reset_reason audit records, oldest first:
    # "SEQ KIND CHILD DETAIL|..." (columns: seq wall_ms mono_ns kind pid name child attempt
    # detail prev hash; CHILD is the recovery command's pid, - where none)
    awk -F '\t' '$6 == "crit-agent" && ($4 == "spawn" || $4 == "complete" || $4 == "reset_reason") {
        printf "%s %s %s %s|", $1, $4, $7, $9 }' $STATE/audit.log 2>/dev/null
}
report_log() {
    hil last_reset "$(grep -m1 'last reset:' $LOG | sed 's/.*last reset: //')"
    hil watchdog_line "$(grep -m1 'watchdog /dev' $LOG | sed 's/.*watchdog \/dev/\/dev/')"
    if grep -q 'boot-loop guard' $LOG; then hil guard yes; else hil guard no; fi
    if grep -q 'disarmed (magic close)' $LOG; then hil magic_close yes; else hil magic_close no; fi
}

case "$testcase" in
healthy)
    # Several watchdog timeouts (3 s) with healthy agents: no reset, heartbeat LED.
    start_watchd
    agent crit-agent
    agent plain-agent
    sleep 10
    sample 3000
    alive
    stop_watchd
    report_log
    dump_log
    ;;
crit-stall)
    # The critical agent hangs after 3 s; its recovery command fails; after the recovery
    # window the gate closes: the reason is persisted, petting stops, the board resets.
    start_watchd
    agent crit-agent --beats 30 --after hang
    agent plain-agent
    hil mark agents-up
    i=0
    while [ ! -f $STATE/reset-reason ] && [ $i -lt 300 ]; do
        i=$((i + 1))
        sleep 0.05
    done
    if [ -f $STATE/reset-reason ]; then
        hil mark reason-written
        hil reason "$(tr '\n' ' ' <$STATE/reset-reason)"
        # The gate's own audit record follows the reason file within milliseconds; then
        # report what recovery did before it (watchd.py checks the order and the outcome).
        i=0
        while [ $i -lt 40 ]; do
            case $(audit_trail) in *" reset_reason "*) break ;; esac
            i=$((i + 1))
            sleep 0.025
        done
        hil audit_trail "$(audit_trail)"
        sample 1500
    fi
    # The reset comes within the 3 s timeout; anything below is the failure path.
    sleep 20
    hil error "no reset"
    alive
    dump_log
    ;;
plain-stall)
    # A non-critical agent hangs: recovery is tried, the LED goes degraded, no reset.
    start_watchd
    agent crit-agent
    agent plain-agent --beats 20 --after hang
    sleep 12
    sample 4000
    alive
    report_log
    stop_watchd
    dump_log
    ;;
kill9)
    # The observer itself dies: nobody pets, the watchdog resets the board.
    start_watchd
    agent crit-agent
    sleep 5
    kill -9 "$WPID"
    hil mark killed
    sleep 20
    hil error "no reset"
    ;;
orderly)
    # SIGTERM with magic close configured: disarmed, no reset long after the timeout.
    start_watchd
    agent crit-agent
    sleep 5
    stop_watchd
    report_log
    sleep 9
    dump_log
    ;;
bootloop)
    # Three resets in a row were already blamed on crit-agent (state passed in on the
    # kernel command line, as a previous boot would have left it). It hangs again: the
    # guard keeps petting, degraded, and shows the long-on LED pattern instead of a fourth
    # reset.
    echo "$bootloop_hex" | xxd -r -p >$STATE/boot-loop
    printf 'wall_ms=1764000000000\nagent=crit-agent\npid=77\nwhy=critical_agent_lost\nconsecutive=3\n' \
        >$STATE/reset-reason
    start_watchd
    agent crit-agent --beats 30 --after hang
    agent plain-agent
    sleep 14
    sample 4000
    alive
    report_log
    stop_watchd
    dump_log
    ;;
initscript)
    # Start and stop varta-watchd through the image's BusyBox init script.
    mkdir -p /etc/default
    printf 'VARTA_BOARD=%s\nVARTA_ARGS="--recovery-audit-file %s/audit.log"\nVARTA_LOG=%s\n' \
        "${HIL_BOARD:-qemu-x86_64}" "$STATE" "$LOG" >/etc/default/varta
    /etc/init.d/S50varta start
    hil init_start $?
    if [ -f /var/run/varta-watchd.pid ]; then hil pidfile yes; else hil pidfile no; fi
    WPID=$(cat /var/run/varta-watchd.pid 2>/dev/null || echo none)
    agent crit-agent
    sleep 7
    alive
    hil init_status "$(/etc/init.d/S50varta status)"
    /etc/init.d/S50varta stop
    hil init_stop $?
    hil mark stopped
    if [ -f /var/run/varta-watchd.pid ]; then hil pidfile_after yes; else hil pidfile_after no; fi
    if kill -0 "$WPID" 2>/dev/null; then hil gone no; else hil gone yes; fi
    report_log
    sleep 8
    dump_log
    ;;
*)
    hil error "unknown testcase '$testcase'"
    exit 2
    ;;
esac
