"""What a scenario's judge works with: one `Judge` per case records one table row per step.

A step states what is expected, observes systemd (or the case's control directory), and records
what it saw and how long it took; the first failing step ends the case (`StepFailed`).
"""

import errno
import json
import os
import time
from dataclasses import dataclass

from .machine import BASE_PROPS, MachineGone
from .units import RUNTIME_IN_MACHINE, RUNTIME_ROOT, container_id, unit_name


class StepFailed(Exception):
    """A step did not see what it expected; the row is already recorded."""


@dataclass
class Row:
    """One line of the result table."""

    key: str
    expected: str
    seen: str
    seconds: float
    ok: bool
    #: for a failing row: the last lines of the unit's journal when it failed (for the report)
    context: tuple = ()


class Judge:
    """Steps for one case against one machine; mode is "host" or "runtime"."""

    def __init__(self, machine, case, mode, deadline_s):
        self.machine, self.case, self.mode, self.deadline = machine, case, mode, deadline_s
        self.ctl = machine.workdir / "ctl" / case.key
        self.rows = []
        self.unit = unit_name(case)
        #: the manager's job queue when a state wait failed with a job still queued (report)
        self.queue = ()

    def record(self, expected, seen, ok, t0):
        """Append a row; raise StepFailed when not ok."""
        self.rows.append(Row(self.case.key, expected, seen, time.monotonic() - t0, ok))
        if not ok:
            raise StepFailed(expected)

    def check(self, expected, fn):
        """Run fn() -> (ok, seen) as one step."""
        t0 = time.monotonic()
        ok, seen = fn()
        self.record(expected, seen, ok, t0)

    def state(self, expected, want, unit=None, deadline_s=None):
        """Step: wait until `systemctl show` matches want; returns the properties seen."""
        t0 = time.monotonic()
        unit = unit or self.unit
        ok, got, why = self.machine.wait(unit, want, deadline_s or self.deadline)
        keys = list(want) if ok else list(dict.fromkeys((*want, *BASE_PROPS)))
        seen = " ".join(f"{k}={got[k]}" for k in keys if k != "Job" or got[k])
        if not ok and got["Job"]:  # a queued job that never ran: say what the queue held
            self.queue = tuple(self.machine.jobs())
        self.record(expected, seen if ok else f"{seen} ({why})", ok, t0)
        return got

    def journal(self, expected, text, unit=None, cgroup=None):
        """Step: the unit's journal (or cgroup's, see Machine.cgroup_journal) gets a line
        containing text."""
        t0 = time.monotonic()
        ok, line = self.machine.wait_journal(unit or self.unit, text, self.deadline, cgroup)
        self.record(expected, f"journal: {line.strip()}" if ok else f"no journal line with {text!r}", ok, t0)

    def start(self, unit=None, block=False):
        """`systemctl start` (queued only unless block); a refused start is a failed step."""
        self.job("start", unit, block)

    def job(self, verb, unit=None, block=False):
        """`systemctl VERB` (start, reload, ...; queued only unless block); refused: failed step."""
        t0 = time.monotonic()
        unit = unit or self.unit
        args = [verb, unit] if block else [verb, "--no-block", unit]
        res = self.machine.systemctl(*args, timeout=self.deadline + 10)
        if res.returncode != 0:
            self.record(f"systemctl {verb} {unit}", res.stderr.strip()[-200:], False, t0)

    def go(self, fifo):
        """Let the payload go on: write a line to its FIFO once it is reading (step on failure)."""
        t0 = time.monotonic()
        end = t0 + self.deadline
        while True:
            try:
                fd = os.open(self.ctl / fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                if time.monotonic() > end:
                    self.record(f"payload reads {fifo}", "payload never opened it", False, t0)
                if self.machine.aborted.wait(0.02):
                    raise MachineGone("aborted") from exc
                continue
            try:
                os.write(fd, b"go\n")
            finally:
                os.close(fd)
            return

    def ctl_file(self, name):
        """Text of a file the payload wrote into its control dir ("" while missing)."""
        try:
            return (self.ctl / name).read_text()
        except FileNotFoundError:
            return ""

    def runtime_pid(self):
        """The container's init pid from `RUNTIME state` (pid namespace of the machine), or None."""
        if self.mode != "runtime":
            return None
        res = self.machine.run(RUNTIME_IN_MACHINE, "--root", RUNTIME_ROOT, "state", container_id(self.case))
        try:
            return int(json.loads(res.stdout)["pid"])
        except (ValueError, KeyError, TypeError):
            return None

    def cmdline(self, pid):
        """argv of pid inside the machine, joined with spaces ("" when it is gone)."""
        res = self.machine.run("cat", f"/proc/{pid}/cmdline")
        return res.stdout.replace("\0", " ").strip()

    def cleanup(self):
        """Stop the case's units (errors ignored: cleanup must never hide the verdict)."""
        units = [self.unit] + ([unit_name(self.case, "socket")] if self.case.socket else [])
        try:
            self.machine.systemctl("stop", *units, timeout=30)
            self.machine.systemctl("reset-failed", *units, timeout=10)
        except MachineGone:
            pass
