#!/usr/bin/env python3
"""The varta-watchd hardware-in-the-loop scenarios: boot one guest per scenario with
ci/hil/boot.py and judge what the real i6300esb watchdog (QMP events) and the real gpio-sim
line (sampled LED levels) did.

    watchd.py --initrd INITRD --out DIR [--only NAME,...] [--arch aarch64]

Prints one PASS/FAIL line per scenario with its figures, and `N passed, N failed` last.
--arch aarch64: boots qemu-system-aarch64 -M virt with board=qemu-aarch64-virt (same watchdog
timeout and pet interval), names the scenarios aarch64/NAME, and takes the LED levels of PL061
line 0 from QEMU's pin trace on the host (boot.py --led-trace 0) instead of varta-sample.
Exit status 1 on any failure. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 3.0  # the qemu-x86_64 (and qemu-aarch64-virt) board's watchdog timeout
PET_S = 0.5  # its pet interval
# Per architecture: kernel parameters added to every scenario, extra boot.py arguments, and the
# seconds added to each scenario's QEMU time limit (arm64 TCG is slower).
ARCHES = {
    "x86_64": ("", [], 0),
    "aarch64": ("board=qemu-aarch64-virt", ["--arch", "aarch64", "--led-trace", "0"], 30),
}


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def agent_key(name: bytes) -> int:
    h = 0x811C9DC5
    for b in name:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def boot_loop_record(consecutive: int, culprit: str, reason: int = 2) -> bytes:
    """The core's 16-byte BootLoopRecord, encoded independently of the Rust code."""
    head = b"VRBL" + bytes([1, reason]) + consecutive.to_bytes(2, "little")
    head += agent_key(culprit.encode()).to_bytes(4, "little")
    return head + crc32c(head).to_bytes(4, "little")


# What varta-watchd must report as the last reset in the bootloop scenario: the record
# watchd/scenario/run.sh leaves (agent=crit-agent pid=77 why=critical_agent_lost) and an
# i6300esb, whose options lack WDIOF_CARDRESET, so the record decides (embedded/src/boot.rs).
BOOTLOOP_LAST_RESET = (
    "watchdog (by the record; this driver does not report the boot cause), "
    "because crit-agent (pid 77) critical_agent_lost"
)


def audit_trail(v: str) -> list[tuple[int, str, str, str]]:
    """(seq, kind, child, detail) of the scenario's "SEQ KIND CHILD DETAIL|..." audit_trail line."""
    out = []
    for rec in filter(None, v.split("|")):
        f = rec.split(" ", 3)
        if len(f) == 4 and f[0].isdigit():
            out.append((int(f[0]), f[1], f[2], f[3]))
    return out


def recovery_failed_before_reset(trail: list[tuple[int, str, str, str]]) -> tuple[bool, str]:
    """The recovery command (/bin/false) was started, that command exited with code 1, and
    only then did the gate close, all in audit order."""
    spawn = next(((s, c) for s, k, c, d in trail if k == "spawn" and 'argv=["/bin/false"]' in d), None)
    done = spawn and next(
        (s for s, k, c, d in trail
         if k == "complete" and c == spawn[1] and s > spawn[0] and d.startswith("exited with code 1 ")),
        None,
    )
    closed = next(
        (s for s, k, c, d in trail if k == "reset_reason" and d.startswith("gate closed: critical_agent_lost")),
        None,
    )
    ok = bool(spawn and done and closed and done < closed)
    return ok, (
        f"recovery pid {spawn and spawn[1]} started at audit seq {spawn and spawn[0]}, "
        f"exited 1 at seq {done}, gate closed at seq {closed}"
    )


def runs(led: str) -> list[tuple[str, int]]:
    out = []
    for part in filter(None, led.split(",")):
        level, ms = part.split(":")
        out.append((level.strip(), int(ms)))
    return out[1:-1]  # the first and last runs are cut by the sampling window


def pattern(led: str | None) -> tuple[str, str]:
    """Classify sampled levels as one of the core's LED patterns."""
    if not led:
        return "none", "no samples"
    r = runs(led)
    on = [ms for lv, ms in r if lv == "1"]
    off = [ms for lv, ms in r if lv == "0"]
    if len(on) < 1 or len(off) < 1:
        return "steady", f"runs={led[:80]}"
    mon, moff = statistics.median(on), statistics.median(off)
    desc = f"on median {mon:.0f} ms, off median {moff:.0f} ms, {len(on)} blinks"
    if 40 <= mon <= 170 and any(60 <= x <= 300 for x in off) and any(550 <= x <= 950 for x in off):
        return "healthy", desc
    if 800 <= mon <= 1250 and 800 <= moff <= 1250:
        return "degraded", desc
    if 20 <= mon <= 110 and 20 <= moff <= 110:
        return "gate_closing", desc
    if 1500 <= mon <= 2150 and 100 <= moff <= 400:
        return "boot_loop_guard", desc
    return "unknown", desc + f" runs={led[:120]}"


class Check:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.notes: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        (self.notes if ok else self.failures).append(what)


def judge(name: str, r: dict) -> Check:
    c = Check()
    hil = r.get("hil", {})
    marks = r.get("marks", {})
    wd = r.get("watchdog_fired")
    after = r.get("watchdog_after_mark_s", {})
    c.expect(r.get("ready", False), "guest reached HIL-READY")
    c.expect("error" not in hil, f"scenario error: {hil.get('error')}" if "error" in hil else "no scenario error")
    if name == "healthy":
        c.expect(not wd, "no WATCHDOG event over 10+ s (several 3 s timeouts)")
        c.expect(r.get("shutdown_reason") == "guest-shutdown", f"shutdown {r.get('shutdown_reason')}")
        c.expect(hil.get("alive") == "yes", "varta-watchd alive")
        p, d = pattern(hil.get("led"))
        c.expect(p == "healthy", f"LED {p} ({d})")
        c.expect(hil.get("magic_close") == "yes", "disarmed with the magic close on SIGTERM")
        c.expect("/dev/watchdog" in hil.get("watchdog_line", ""), f"driver facts logged: {hil.get('watchdog_line')}")
    elif name == "crit-stall":
        c.expect(bool(wd), "WATCHDOG event")
        c.expect(r.get("shutdown_reason") == "guest-reset", f"shutdown {r.get('shutdown_reason')}")
        reason = hil.get("reason", "")
        c.expect("agent=crit-agent" in reason and "why=critical_agent_lost" in reason, f"reset reason: {reason}")
        trail = hil.get("audit_trail", "")
        ok, d = recovery_failed_before_reset(audit_trail(trail))
        c.expect(ok, f"recovery ran and failed before the gate closed ({d})" + ("" if ok else f": {trail!r}"))
        t = after.get("reason-written")
        # Petting stops when the reason is on disk: the last pet was at most one interval
        # before, and the i6300esb fires ~3.02 s after the last pet.
        c.expect(
            t is not None and TIMEOUT_S - PET_S - 0.3 <= t <= TIMEOUT_S + 0.6,
            f"WATCHDOG {t if t is None else round(t, 2)} s after the reason was written (timeout {TIMEOUT_S} s)",
        )
        t = after.get("agents-up")
        # 3 s of beats + 1 s threshold + 3 s recovery window + 3 s timeout, with slack.
        c.expect(t is not None and 8.0 <= t <= 13.5, f"WATCHDOG {t if t is None else round(t, 2)} s after the agent started (expected ~10 s)")
        p, d = pattern(hil.get("led"))
        c.expect(p == "gate_closing", f"LED {p} ({d})")
    elif name == "plain-stall":
        c.expect(not wd, "no WATCHDOG event")
        c.expect(hil.get("alive") == "yes", "varta-watchd alive")
        p, d = pattern(hil.get("led"))
        c.expect(p == "degraded", f"LED {p} ({d})")
    elif name == "kill9":
        c.expect(bool(wd), "WATCHDOG event")
        t = after.get("killed")
        c.expect(
            t is not None and TIMEOUT_S - PET_S - 0.3 <= t <= TIMEOUT_S + 0.6,
            f"WATCHDOG {t if t is None else round(t, 2)} s after SIGKILL (timeout {TIMEOUT_S} s)",
        )
    elif name == "orderly":
        c.expect(not wd, "no WATCHDOG event 9 s after the orderly stop")
        c.expect(hil.get("watchd_exit") == "0", f"exit status {hil.get('watchd_exit')}")
        c.expect(hil.get("magic_close") == "yes", "magic close logged")
        c.expect(r.get("shutdown_reason") == "guest-shutdown", f"shutdown {r.get('shutdown_reason')}")
    elif name == "bootloop":
        c.expect(not wd, "no WATCHDOG event (the guard keeps petting)")
        c.expect(hil.get("alive") == "yes", "varta-watchd alive")
        c.expect(hil.get("guard") == "yes", "boot-loop guard alarm logged")
        lr = hil.get("last_reset", "")
        c.expect(
            lr == BOOTLOOP_LAST_RESET,
            f"last reset reported: {lr!r}" + ("" if lr == BOOTLOOP_LAST_RESET else f", expected {BOOTLOOP_LAST_RESET!r}"),
        )
        p, d = pattern(hil.get("led"))
        c.expect(p == "boot_loop_guard", f"LED {p} ({d})")
    elif name == "initscript":
        c.expect(hil.get("init_start") == "0", f"S50varta start exit {hil.get('init_start')}")
        c.expect(hil.get("pidfile") == "yes", "pid file written")
        c.expect(hil.get("alive") == "yes", "varta-watchd running under the init script")
        c.expect("is running" in hil.get("init_status", ""), f"status: {hil.get('init_status')}")
        c.expect(not wd, "no WATCHDOG event (running, then stopped with the magic close)")
        c.expect(hil.get("init_stop") == "0", f"S50varta stop exit {hil.get('init_stop')}")
        c.expect(hil.get("pidfile_after") == "no", "pid file removed")
        c.expect(hil.get("gone") == "yes", "process gone after stop")
        c.expect(hil.get("magic_close") == "yes", "magic close on the orderly stop")
        c.expect(r.get("shutdown_reason") == "guest-shutdown", f"shutdown {r.get('shutdown_reason')}")
    return c


SCENARIOS = {
    "healthy": ("", 60),
    "crit-stall": ("", 60),
    "plain-stall": ("", 60),
    "kill9": ("", 45),
    "orderly": ("", 60),
    "bootloop": ("bootloop_hex=" + boot_loop_record(3, "crit-agent").hex(), 60),
    "initscript": ("", 60),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    a = ap.parse_args()
    arch_append, arch_args, arch_slack = ARCHES[a.arch]
    label = "" if a.arch == "x86_64" else a.arch + "/"
    only = [s for s in a.only.split(",") if s]
    passed = failed = 0
    for name, (extra, timeout) in SCENARIOS.items():
        if only and name not in only:
            continue
        out = os.path.join(a.out, name)
        os.makedirs(out, exist_ok=True)
        cmd = [
            sys.executable, os.path.join(HERE, "boot.py"), "--initrd", a.initrd,
            "--append", " ".join(x for x in (f"testcase={name}", extra, arch_append) if x),
            "--timeout", str(timeout + arch_slack), "--out", out, *arch_args,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True)
        try:
            with open(os.path.join(out, "result.json")) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            r = {"harness_error": str(e), "stderr": p.stderr[-2000:]}
        c = judge(name, r)
        if r.get("timed_out"):
            c.failures.append("guest timed out")
        if "harness_error" in r:
            c.failures.append(f"harness: {r['harness_error']} {r.get('stderr', '')}")
        status = "PASS" if not c.failures else "FAIL"
        print(f"{status} {label}{name} ({r.get('duration_s', '?')} s guest)")
        for n in c.notes:
            print(f"    ok: {n}")
        for f_ in c.failures:
            print(f"    FAILED: {f_}")
        if c.failures:
            failed += 1
            print(f"    see {out}/serial.log")
        else:
            passed += 1
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
