#!/bin/sh
# Self-test scenarios of the HIL harness: busybox only. Picked by the kernel parameter testcase=.
# shellcheck disable=SC2154 # testcase comes from the kernel command line, through /init
echo "HIL testcase=$testcase"

case "$testcase" in
wd_kill)
    # A petting process that dies without the magic close leaves the watchdog armed.
    watchdog -F -T 3 -t 1 "$HIL_WATCHDOG_DEV" &
    pid=$!
    sleep 4
    sed 's/^/HIL wd_identity=/' /sys/class/watchdog/watchdog0/identity
    sed 's/^/HIL wd_timeout=/' /sys/class/watchdog/watchdog0/timeout
    sed 's/^/HIL wd_state=/' /sys/class/watchdog/watchdog0/state
    kill -9 "$pid"
    hil mark killed
    sleep 30
    echo "HIL error=still alive 30 s after the petter was killed"
    ;;
wd_orderly)
    # busybox watchdog writes the magic 'V' before it exits on SIGTERM: the watchdog stops.
    watchdog -F -T 3 -t 1 "$HIL_WATCHDOG_DEV" &
    pid=$!
    sleep 4
    kill -TERM "$pid"
    wait "$pid"
    hil mark stopped
    sleep 1
    sed 's/^/HIL wd_state=/' /sys/class/watchdog/watchdog0/state
    sleep 6 # twice the timeout: a watchdog left armed would have fired by now
    hil survived 1
    ;;
gpio_idle)
    # No watchdog at all. The gpio-sim chip is there, as /init describes it.
    [ -c "$HIL_GPIO_DEV" ] && hil gpio_dev "$HIL_GPIO_DEV"
    hil gpio_value "$(cat "$HIL_GPIO_VALUE")"
    for d in /sys/class/gpio/gpiochip*; do
        [ "$(cat "$d/label")" = "$HIL_GPIO_LABEL" ] && hil gpio_label "$(cat "$d/label")" &&
            hil gpio_ngpio "$(cat "$d/ngpio")"
    done
    # Nothing drives the line as an output, so its input level follows the simulated pull.
    echo pull-up >"$HIL_GPIO_SIM_DIR/sim_gpio3/pull"
    hil gpio_value_pull_up "$(cat "$HIL_GPIO_VALUE")"
    echo pull-down >"$HIL_GPIO_SIM_DIR/sim_gpio3/pull"
    hil gpio_value_pull_down "$(cat "$HIL_GPIO_VALUE")"
    # An orphan is reparented to /init, which must reap it (a liveness daemon would see a zombie).
    sh -c 'sleep 1 & echo $! > /tmp/orphan.pid'
    sleep 2
    orphan=$(cat /tmp/orphan.pid)
    if [ -e "/proc/$orphan" ]; then
        hil orphan "state $(awk '{print $3}' "/proc/$orphan/stat")"
    else
        hil orphan reaped
    fi
    sleep 4 # longer than any watchdog timeout used here
    ;;
panic)
    hil mark crash
    echo c >/proc/sysrq-trigger
    sleep 30
    ;;
hang)
    hil mark hanging
    sleep 600
    ;;
*)
    echo "HIL error=unknown testcase '$testcase'"
    exit 2
    ;;
esac
