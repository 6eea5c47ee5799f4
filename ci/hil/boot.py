#!/usr/bin/env python3
"""Boot one HIL guest under QEMU (TCG) and record what happened.

    boot.py --initrd X.cpio.gz --append 'testcase=NAME extra=...' --timeout SECS --out DIR

The guest gets Debian's kernel from the cache (ci/hil/setup.sh), an i6300esb watchdog
(-action watchdog=reset), a pvpanic-pci device, the console on ttyS0, and -no-reboot, so a
firing watchdog or a kernel panic ends QEMU as well as a poweroff does.
--arch aarch64: qemu-system-aarch64 -machine virt -cpu cortex-a57, the cache's arm64 Image, the
i6300esb on the PCIe bus, the console on ttyAMA0 (PL011), no pvpanic (the arm64 kernel has no driver).

--led-trace LINE (aarch64): QEMU traces every PL061 output change (-trace pl061_set_output, host
wall-clock timestamps, gpio-trace.log); the levels of LINE between the guest's marks led-from and
led-to become hil "led" as LEVEL:MS,... runs, the format of varta-sample, unless the guest reported
led itself.

Writes into DIR:
  qmp.jsonl         every QMP message (greeting, replies, events), one JSON object a line, with
                    host_t (seconds since the guest was started; null before) and
                    host_monotonic (the host's CLOCK_MONOTONIC at receipt) added
  serial.log        the guest console as QEMU wrote it
  serial-timed.log  the same, one line each, prefixed with host_t when the line was complete
  qemu.log          QEMU's own stdout/stderr
  result.json       the summary below, also printed on stdout

result.json:
  watchdog_fired        a WATCHDOG event came
  first_watchdog_s      when the first one came: seconds since HIL-READY if the guest printed it,
                        else since the guest was started (time_origin says which)
  marks                 {NAME: seconds since the same origin} for each first "HIL mark=NAME" line
  watchdog_after_mark_s {NAME: first WATCHDOG minus that mark}
  shutdown_reason       reason of the first SHUTDOWN event (guest-shutdown, guest-reset, ...)
  guest_panicked        a GUEST_PANICKED event came (kernel panic, via pvpanic)
  timed_out             the guest was still running after --timeout seconds and was killed
  hil                   {KEY: VALUE} from the console lines "HIL KEY=VALUE" (last one wins)
  ready, ready_s        HIL-READY seen, and when (seconds since the guest was started)
  led_trace             with --led-trace: {line, changes (on that line, whole run), window_s
                        [from, to] or null}
  duration_s            guest start to QEMU exit
  qemu_exit             QEMU's exit status

Exit status: 0 QEMU ended by itself, 3 timed out (QEMU killed), 1 harness error (see "error").
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HIL_LINE = re.compile(r"(?:^|\s)HIL ([A-Za-z0-9_.:-]+)=(.*)$")
# A kernel message (printk writes the UART directly) can land in the middle of a line that a
# guest process is writing, e.g. "HIL mark=killed[    7.639233] watchdog: watchdog0: watchdog
# did not stop!" followed by the process's own "\n" as an empty line.
KMSG = re.compile(r"\[\s*\d+\.\d{6}\] ")
POLL_S = 0.005  # console polling period: the resolution of console line timestamps
BASE_APPEND = "console=ttyS0 panic=-1 quiet"
BASE_APPEND_BY_ARCH = {"x86_64": BASE_APPEND, "aarch64": "console=ttyAMA0 panic=-1 quiet"}
KERNEL_BY_ARCH = {"x86_64": "vmlinux", "aarch64": "Image"}
PL061_TRACE = re.compile(r"^\d+@(\d+\.\d+):pl061_set_output \S+ setting output (\d+) to (\d+)")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "debug", "none", "inject-nmi")


class HarnessError(Exception):
    pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Boot one HIL guest and record QMP events and the console.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--initrd", required=True, help="initramfs from mkinitrd.sh")
    p.add_argument("--append", default="", help="extra kernel parameters, e.g. 'testcase=NAME'")
    p.add_argument("--timeout", type=float, required=True, help="seconds before QEMU is killed")
    p.add_argument("--out", required=True, help="directory for the records (created)")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    p.add_argument("--cache", default=os.environ.get("HIL_CACHE", "/var/cache/varta-hil"),
                   help="cache root (default $HIL_CACHE or /var/cache/varta-hil)")
    p.add_argument("--kernel", help="kernel to boot (default CACHE/ARCH/vmlinux, aarch64: CACHE/aarch64/Image; "
                   "bzImage works too)")
    p.add_argument("--base-append", default=None,
                   help=f"kernel parameters before --append (default '{BASE_APPEND}', "
                   f"aarch64: '{BASE_APPEND_BY_ARCH['aarch64']}')")
    p.add_argument("--led-trace", type=int, metavar="LINE",
                   help="aarch64: take hil led from QEMU's trace of PL061 line LINE between the marks "
                   "led-from and led-to")
    p.add_argument("--memory", default="512", help="guest memory, QEMU -m (default 512)")
    p.add_argument("--watchdog-action", default="reset", choices=WATCHDOG_ACTIONS,
                   help="QEMU -action watchdog= (default reset)")
    p.add_argument("--qemu-arg", action="append", default=[], metavar="ARG",
                   help="extra QEMU argument(s), split like a shell; repeatable")
    p.add_argument("--echo", action="store_true", help="copy console lines to stderr as they come")
    a = p.parse_args(argv)
    if a.base_append is None:
        a.base_append = BASE_APPEND_BY_ARCH[a.arch]
    if a.led_trace is not None and a.arch != "aarch64":
        p.error("--led-trace needs --arch aarch64 (it traces the PL061 of -machine virt)")
    return a


def qemu_command(a: argparse.Namespace, kernel: str, serial: str, sock: str,
                 trace: str | None = None) -> list[str]:
    append = " ".join(x for x in (a.base_append.strip(), a.append.strip()) if x)
    if a.arch == "aarch64":
        cmd = [
            "qemu-system-aarch64",
            "-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a57", "-smp", "1", "-m", a.memory,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", a.initrd, "-append", append,
            "-serial", "file:" + serial.replace(",", ",,"),
            "-device", "i6300esb", "-action", f"watchdog={a.watchdog_action}",
            "-qmp", "unix:" + sock.replace(",", ",,") + ",server=on,wait=on",
            "-S",
        ]
        if trace is not None:
            cmd += ["-trace", "pl061_set_output", "-D", trace, "-msg", "timestamp=on"]
        for extra in a.qemu_arg:
            cmd += shlex.split(extra)
        return cmd
    cmd = [
        f"qemu-system-{a.arch}",
        "-machine", "pc", "-accel", "tcg", "-cpu", "qemu64", "-smp", "1", "-m", a.memory,
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", kernel, "-initrd", a.initrd, "-append", append,
        "-serial", "file:" + serial.replace(",", ",,"),
        "-device", "i6300esb", "-action", f"watchdog={a.watchdog_action}",
        "-device", "pvpanic-pci",
        "-qmp", "unix:" + sock.replace(",", ",,") + ",server=on,wait=on",
        "-S",  # start paused: the guest runs only once QMP is set up, so no event is missed
    ]
    for extra in a.qemu_arg:
        cmd += shlex.split(extra)
    return cmd


class Recorder:
    """Collects QMP messages and console lines with host timestamps."""

    def __init__(self, out: str, echo: bool):
        self.out = out
        self.echo = echo
        self.t0: float | None = None  # host monotonic when the guest was started ("cont")
        self.wall0: float | None = None  # host wall clock at the same moment (for QEMU's trace)
        self.qmp_file = open(os.path.join(out, "qmp.jsonl"), "w", encoding="utf-8")
        self.timed_file = open(os.path.join(out, "serial-timed.log"), "w", encoding="utf-8")
        self.qmp_buf = b""
        self.serial_buf = b""
        self.serial_pending = ""  # the start of a console line that a kernel message cut
        self.serial_fh = None
        self.events: list[tuple[float, dict]] = []
        self.ready_t: float | None = None
        self.marks: dict[str, float] = {}
        self.hil: dict[str, str] = {}
        self.replies: list[dict] = []
        self.greeting: dict | None = None

    def rel(self, mono: float) -> float:
        return mono - self.t0 if self.t0 is not None else 0.0

    # QMP -----------------------------------------------------------------
    def feed_qmp(self, data: bytes) -> None:
        now = time.monotonic()
        self.qmp_buf += data
        while b"\n" in self.qmp_buf:
            raw, self.qmp_buf = self.qmp_buf.split(b"\n", 1)
            raw = raw.strip()
            if not raw:
                continue
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                msg = {"unparsed": raw.decode("utf-8", "replace")}
            host_t = round(now - self.t0, 6) if self.t0 is not None else None  # None: before "cont"
            rec = {"host_t": host_t, "host_monotonic": round(now, 6)}
            rec.update(msg)
            self.qmp_file.write(json.dumps(rec, sort_keys=False) + "\n")
            self.qmp_file.flush()
            if "event" in msg:
                self.events.append((self.rel(now), msg))
            elif "return" in msg or "error" in msg:
                self.replies.append(msg)
            elif "QMP" in msg:
                self.greeting = msg

    # console -------------------------------------------------------------
    def poll_serial(self, path: str) -> None:
        if self.serial_fh is None:
            try:
                self.serial_fh = open(path, "rb")
            except FileNotFoundError:
                return
        data = self.serial_fh.read()
        if not data:
            return
        now = self.rel(time.monotonic())
        self.serial_buf += data
        while b"\n" in self.serial_buf:
            raw, self.serial_buf = self.serial_buf.split(b"\n", 1)
            self.console_line(now, raw.decode("utf-8", "replace").replace("\r", ""))

    def console_line(self, t: float, text: str) -> None:
        """A complete console line; a kernel message inside it is split off as a line of its
        own, and the text before it waits for the rest of its line."""
        text = self.serial_pending + text
        self.serial_pending = ""
        m = KMSG.search(text, 1)
        if m:
            self.line(t, text[m.start():])
            self.serial_pending = text[:m.start()]
            return
        self.line(t, text)

    def flush_serial(self, path: str) -> None:
        self.poll_serial(path)
        if self.serial_buf or self.serial_pending:
            now = self.rel(time.monotonic())
            text = self.serial_pending + self.serial_buf.decode("utf-8", "replace").replace("\r", "")
            self.serial_pending = ""
            self.line(now, text)
            self.serial_buf = b""

    def line(self, t: float, text: str) -> None:
        self.timed_file.write(f"{t:9.3f} {text}\n")
        self.timed_file.flush()
        if self.echo:
            print(f"[{t:8.3f}] {text}", file=sys.stderr, flush=True)
        if self.ready_t is None and "HIL-READY" in text:
            self.ready_t = t
        m = HIL_LINE.search(text)
        if m:
            key, value = m.group(1), m.group(2).strip()
            if key == "mark":
                self.marks.setdefault(value, t)
            else:
                self.hil[key] = value

    def close(self) -> None:
        self.qmp_file.close()
        self.timed_file.close()
        if self.serial_fh:
            self.serial_fh.close()


def qmp_send(sock: socket.socket, cmd: dict) -> None:
    sock.sendall(json.dumps(cmd).encode() + b"\n")


def connect_qmp(path: str, proc: subprocess.Popen, limit: float = 15.0) -> socket.socket:
    end = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            raise HarnessError(f"QEMU exited with {proc.returncode} before QMP was up (see qemu.log)")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
        if time.monotonic() > end:
            raise HarnessError(f"QMP socket {path} not accepting within {limit:.0f} s")
        time.sleep(0.02)


def stop_qemu(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def led_from_trace(rec: Recorder, path: str, line: int) -> dict:
    """Turn QEMU's PL061 trace into hil "led" for the window between the marks led-from and
    led-to (times relative to the guest start, like the marks)."""
    changes: list[tuple[float, str]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for text in f:
                m = PL061_TRACE.match(text)
                if m and int(m.group(2)) == line and rec.wall0 is not None:
                    changes.append((float(m.group(1)) - rec.wall0, m.group(3)))
    except FileNotFoundError:
        pass
    info: dict = {"line": line, "changes": len(changes), "window_s": None}
    lo, hi = rec.marks.get("led-from"), rec.marks.get("led-to")
    if lo is None or hi is None or hi <= lo:
        return info
    origin = rec.ready_t if rec.ready_t is not None else 0.0
    info["window_s"] = [r3(lo - origin), r3(hi - origin)]
    level = "0"  # the PL061 drives all outputs low at reset (also traced)
    for t, lv in changes:
        if t <= lo:
            level = lv
    runs: list[tuple[str, float]] = []
    start = lo
    for t, lv in changes:
        if lo < t < hi and lv != level:
            runs.append((level, t - start))
            level, start = lv, t
    runs.append((level, hi - start))
    if "led" not in rec.hil:
        rec.hil["led"] = ",".join(f"{lv}:{round(ms * 1000)}" for lv, ms in runs)
        info["source"] = "pl061 trace"
    return info


def summarize(rec: Recorder, timed_out: bool, duration: float, qemu_exit: int | None,
              a: argparse.Namespace, error: str | None) -> dict:
    led_info = None
    if a.led_trace is not None:
        led_info = led_from_trace(rec, os.path.join(os.path.abspath(a.out), "gpio-trace.log"), a.led_trace)
    origin = rec.ready_t if rec.ready_t is not None else 0.0
    wds = [(t, e) for t, e in rec.events if e.get("event") == "WATCHDOG"]
    shutdowns = [(t, e) for t, e in rec.events if e.get("event") == "SHUTDOWN"]
    first_wd = wds[0][0] if wds else None
    testcase = None
    for tok in shlex.split(a.append):
        if tok.startswith("testcase="):
            testcase = tok.split("=", 1)[1]
    res = {
        "testcase": testcase,
        "watchdog_fired": bool(wds),
        "first_watchdog_s": r3(first_wd - origin) if first_wd is not None else None,
        "time_origin": "HIL-READY" if rec.ready_t is not None else "boot",
        "watchdog_events": [{"t_s": r3(t - origin), "action": e.get("data", {}).get("action")}
                            for t, e in wds],
        "marks": {k: r3(v - origin) for k, v in rec.marks.items()},
        "watchdog_after_mark_s": ({k: r3(first_wd - v) for k, v in rec.marks.items()}
                                  if first_wd is not None else {}),
        "shutdown_reason": shutdowns[0][1].get("data", {}).get("reason") if shutdowns else None,
        "shutdown_s": r3(shutdowns[0][0] - origin) if shutdowns else None,
        "guest_panicked": any(e.get("event") == "GUEST_PANICKED" for _, e in rec.events),
        "timed_out": timed_out,
        "hil": rec.hil,
        "ready": rec.ready_t is not None,
        "ready_s": r3(rec.ready_t),
        "events": [e.get("event") for _, e in rec.events],
        "duration_s": r3(duration),
        "qemu_exit": qemu_exit,
    }
    if led_info is not None:
        res["led_trace"] = led_info
    if error:
        res["error"] = error
    return res


def pump_until(sock: socket.socket, rec: Recorder, done, what: str, limit: float = 10.0) -> None:
    """Read QMP until done() is true (events are recorded meanwhile)."""
    end = time.monotonic() + limit
    while not done():
        left = end - time.monotonic()
        if left <= 0:
            raise HarnessError(f"no QMP {what} within {limit:.0f} s")
        if select.select([sock], [], [], left)[0]:
            data = sock.recv(65536)
            if not data:
                raise HarnessError(f"QMP closed while waiting for {what}")
            rec.feed_qmp(data)


def qmp_execute(sock: socket.socket, rec: Recorder, command: str) -> None:
    n = len(rec.replies)
    qmp_send(sock, {"execute": command})
    pump_until(sock, rec, lambda: len(rec.replies) > n, f"reply to {command}")
    if "error" in rec.replies[n]:
        raise HarnessError(f"QMP {command} failed: {rec.replies[n]['error']}")


def run(a: argparse.Namespace) -> int:
    os.makedirs(a.out, exist_ok=True)
    out = os.path.abspath(a.out)
    for name in ("qmp.jsonl", "serial.log", "serial-timed.log", "qemu.log", "result.json", "gpio-trace.log"):
        try:
            os.unlink(os.path.join(out, name))
        except FileNotFoundError:
            pass
    kernel = a.kernel or os.path.join(a.cache, a.arch, KERNEL_BY_ARCH[a.arch])
    serial = os.path.join(out, "serial.log")
    tmp = tempfile.mkdtemp(prefix="varta-hil-qmp.")  # short path: AF_UNIX names are <= 107 bytes
    sock_path = os.path.join(tmp, "qmp.sock")
    rec = Recorder(out, a.echo)
    proc = None
    sock = None
    timed_out = False
    error = None
    start = time.monotonic()
    try:
        for what, path in (("kernel", kernel), ("initrd", a.initrd)):
            if not os.path.isfile(path):
                raise HarnessError(f"{what} {path} not found (run ci/hil/setup.sh, ci/hil/mkinitrd.sh)")
        trace = os.path.join(out, "gpio-trace.log") if a.led_trace is not None else None
        cmd = qemu_command(a, kernel, serial, sock_path, trace)
        if shutil.which(cmd[0]) is None:
            raise HarnessError(f"{cmd[0]} not found (run ci/hil/setup.sh)")
        with open(os.path.join(out, "qemu.log"), "wb") as qlog:
            qlog.write(("# " + shlex.join(cmd) + "\n").encode())
            qlog.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog,
                                    start_new_session=True)
        sock = connect_qmp(sock_path, proc)
        pump_until(sock, rec, lambda: rec.greeting is not None, "greeting")
        qmp_execute(sock, rec, "qmp_capabilities")
        # The guest starts now: this is time 0 of every host_t.
        rec.t0 = start = time.monotonic()
        rec.wall0 = time.time()
        deadline = start + a.timeout
        qmp_execute(sock, rec, "cont")
        while True:
            if not timed_out and time.monotonic() >= deadline:
                timed_out = True
                stop_qemu(proc)  # QEMU still reports SHUTDOWN (host-signal) on its way out
            if select.select([sock], [], [], POLL_S)[0]:
                data = sock.recv(65536)
                if data:
                    rec.feed_qmp(data)
                else:
                    break  # QEMU closed the monitor: it is exiting
            rec.poll_serial(serial)
            if proc.poll() is not None:
                # Gone: take what the socket still holds.
                while select.select([sock], [], [], 0.1)[0]:
                    data = sock.recv(65536)
                    if not data:
                        break
                    rec.feed_qmp(data)
                break
    except HarnessError as e:
        error = str(e)
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        if proc is not None:
            if error is None:  # the monitor closed: QEMU is on its way out
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            stop_qemu(proc)
        if sock is not None:
            sock.close()
        rec.flush_serial(serial)
        rec.close()
        shutil.rmtree(tmp, ignore_errors=True)
    duration = time.monotonic() - start
    res = summarize(rec, timed_out, duration, proc.returncode if proc else None, a, error)
    text = json.dumps(res, indent=2)
    with open(os.path.join(out, "result.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)
    if error:
        print(f"boot.py: {error}", file=sys.stderr)
        return 1
    return 3 if timed_out else 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    return run(parse_args(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
