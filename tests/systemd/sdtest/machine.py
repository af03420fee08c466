"""The booted systemd: boot/power-off through harness.sh, commands through nsenter.

`Machine.show()` is `systemctl show -p ...` parsed into a dict; `Machine.wait()` polls it until
every wanted property matches, the unit reaches a final state that does not match, the
deadline passes, or the suite is aborted. Waits are for state changes only, never assertions
about elapsed time.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness.sh"
#: A wait polls every POLL_S at first, then backs off by POLL_GROWTH up to POLL_MAX_S: most
#: states appear within a few polls, and a long wait must not keep PID 1 busy.
POLL_S = 0.05
POLL_GROWTH = 1.5
POLL_MAX_S = 0.4
#: Queries to PID 1 (`systemctl show`, `list-jobs`...) in flight at once, over all cases. Each
#: is a D-Bus call that PID 1 answers and logs (debug) before anything else: PID 1 runs its job
#: queue only when no such event is pending (sd-event's idle priority), and its log writes
#: block (up to 10 ms each) while journald is behind. Seventeen cases polling freely kept a
#: faster CI machine's PID 1 so busy that every queued start job stayed "waiting" for the
#: whole 10 s of the waits (252 and 257 alike); the jobs ran once the waits gave up.
QUERIES_AT_ONCE = 2
#: Properties every wait reads, so a failure report shows where the unit really was.
BASE_PROPS = ("ActiveState", "SubState", "Result", "Job")


class MachineGone(Exception):
    """The inner systemd is not reachable any more (powered off, killed, or never booted)."""


class Machine:
    """One systemd-nspawn instance booted by harness.sh in workdir; root=None boots the host's
    /usr, a directory boots that tree (harness.sh SD_ROOT, under a tmpfs overlay)."""

    def __init__(self, workdir, nspawn_args=(), root=None, version=0):
        self.workdir = Path(workdir)
        self.nspawn_args = list(nspawn_args)
        self.root = root
        #: systemd's major version (what the judges expect differs, e.g. MAINPIDFD from 257)
        self.version = version
        self.leader = None
        self.aborted = threading.Event()
        self._queries = threading.BoundedSemaphore(QUERIES_AT_ONCE)
        #: bring_controller(): {controller: (ok, seen)} once done; the host cgroup2 roots where
        #: it enabled a controller (undone by down())
        self._brought, self._host_enabled = {}, []
        self._bring_lock = threading.Lock()

    def up(self):
        """Boot; raises RuntimeError with the console log tail when it does not come up."""
        env = dict(os.environ, SD_ROOT=str(self.root)) if self.root else None
        res = subprocess.run(["bash", str(HARNESS), "up", str(self.workdir), *self.nspawn_args],
                             capture_output=True, text=True, timeout=120, env=env)
        if res.returncode != 0:
            log = (self.workdir / ".nspawn.log")
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"harness up failed:\n{res.stderr}{tail}")
        self.leader = (self.workdir / ".nspawn.leader").read_text().strip()
        self._await_basic_target()
        if "state=running" not in res.stdout:  # e.g. degraded: say which units failed at boot
            failed = self.query("list-units", "--failed", "--no-legend", "--plain").stdout
            print(f"run.py: {res.stdout.strip()}; failed at boot: "
                  f"{', '.join(l.split()[0] for l in failed.splitlines() if l.strip()) or 'none'}",
                  flush=True)
        # the manager's debug lines show each notification message as it was received
        res = self.run("systemd-analyze", "log-level", "debug")
        if res.returncode != 0:
            raise RuntimeError(f"systemd-analyze log-level debug: {res.stderr.strip()}")

    def _await_basic_target(self, deadline_s=60):
        """Wait (bounded) until sysinit.target and basic.target are active: every case's unit
        orders itself after them (default dependencies), and CI once saw a 257 machine whose
        boot had not reached them, so each start pulled the whole chain in again and waited."""
        end = time.monotonic() + deadline_s
        while True:
            res = self.query("is-active", "sysinit.target", "basic.target")
            if res.stdout.split() == ["active", "active"] or time.monotonic() > end:
                if res.stdout.split() != ["active", "active"]:
                    print(f"run.py: sysinit/basic not active after {deadline_s}s: "
                          f"{' '.join(res.stdout.split())}; {'; '.join(self.jobs())}", flush=True)
                return
            time.sleep(POLL_S)

    def down(self):
        """Power off and remove the cgroups; safe to call at any time, more than once. A
        controller bring_controller() enabled in the host's cgroup2 root is disabled again
        (refused while another machine still uses it: left on then)."""
        self.aborted.set()
        subprocess.run(["bash", str(HARNESS), "down", str(self.workdir)], timeout=120)
        while self._host_enabled:
            root, name = self._host_enabled.pop()
            try:
                (root / "cgroup.subtree_control").write_text(f"-{name}")
            except OSError:
                pass

    def bring_controller(self, name):
        """Enable cgroup2 controller `name` (one systemd does not manage, such as hugetlb on a
        hybrid host, whose cgroup2 has nothing else) for the children of the machine's
        system.slice: `+name` in cgroup.subtree_control from the host's cgroup2 root to the
        machine's cgroup (nspawn sits in its supervisor/, the machine in payload/, so neither
        holds a process itself), then inside from the root to system.slice. Once per machine;
        returns (ok, what was seen)."""
        with self._bring_lock:
            if name not in self._brought:
                self._brought[name] = self._bring(name)
            return self._brought[name]

    def _bring(self, name):
        res = subprocess.run(["bash", str(HARNESS), "cgroup", str(self.workdir)],
                             capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            return False, "no cgroup2 directory of the machine on the host"
        machine = Path(res.stdout.strip())
        root = machine.parent
        if name not in (root / "cgroup.controllers").read_text().split():
            return False, f"the host's cgroup2 ({root}) does not offer {name}"
        for cg in (root, machine):
            if name in (cg / "cgroup.subtree_control").read_text().split():
                continue
            try:
                (cg / "cgroup.subtree_control").write_text(f"+{name}")
            except OSError as exc:
                return False, f"+{name} in {cg}: {exc}"
            if cg == root:
                self._host_enabled.append((root, name))
        inside = ("for cg in /sys/fs/cgroup /sys/fs/cgroup/system.slice; do "
                  f"grep -qw {name} $cg/cgroup.subtree_control || echo +{name} >$cg/cgroup.subtree_control || exit 1; "
                  "done")
        res = self.run("sh", "-c", inside)
        if res.returncode != 0:
            return False, f"+{name} inside the machine: {res.stderr.strip()}"
        return True, f"{name} enabled from the host's cgroup2 root to the machine's system.slice"

    def run(self, *cmd, timeout=30):
        """Run cmd inside the machine; returns CompletedProcess (text). Raises MachineGone."""
        if self.leader is None or self.aborted.is_set():
            raise MachineGone("systemd is not running")
        try:
            res = subprocess.run(["nsenter", "-t", self.leader, "-a", *cmd],
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise MachineGone(f"{' '.join(cmd)}: no answer in {timeout}s") from exc
        if res.returncode != 0 and "nsenter:" in res.stderr:
            raise MachineGone(res.stderr.strip())
        return res

    def systemctl(self, *args, timeout=30):
        """`systemctl ARGS`; returns CompletedProcess."""
        return self.run("systemctl", *args, timeout=timeout)

    def query(self, *args, timeout=30):
        """A `systemctl ARGS` that only reads PID 1's state (show, list-jobs, is-active...):
        at most QUERIES_AT_ONCE of them run at a time. Verbs that queue jobs and wait for them
        (start, stop) go through systemctl() and are never held back."""
        with self._queries:
            return self.systemctl(*args, timeout=timeout)

    def show(self, unit, props):
        """{prop: value} from `systemctl show -p` (missing properties map to "")."""
        res = self.query("show", "-p", ",".join(props), unit)
        out = dict.fromkeys(props, "")
        for line in res.stdout.splitlines():
            key, _, value = line.partition("=")
            out[key] = value
        return out

    def journal(self, unit):
        """Everything the journal has for unit (its output and systemd's lines about it)."""
        return self.run("journalctl", "-q", "--no-pager", "-o", "cat", "-u", unit).stdout

    def cgroup_journal(self, cgroup):
        """What the journal has from processes of cgroup. journald files a stdout line under
        the writer's cgroup when it can still read it (a container beside its unit logs under
        its own cgroup, not the unit's), else under the stream's unit."""
        return self.run("journalctl", "-q", "--no-pager", "-o", "cat", f"_SYSTEMD_CGROUP={cgroup}").stdout

    def manager_journal(self):
        """The manager's own journal lines (not about one unit), e.g. its warnings."""
        return self.run("journalctl", "-q", "--no-pager", "-o", "cat", "_PID=1").stdout

    def health(self):
        """One line on the machine's own state after the cases (for the report's tail, where a
        CI log that shows only its end still has it): system state, PID 1's log level and
        target, journald's state and restarts, how many PID 1 lines the journal holds, how many
        notify messages it could not attribute to a unit, and any journald suppression or failed
        unit. "" when the machine is gone."""
        try:
            state = self.query("is-system-running").stdout.strip()
            level = self.run("systemd-analyze", "log-level").stdout.strip()
            target = self.run("systemd-analyze", "log-target").stdout.strip()
            jd = self.show("systemd-journald.service", ("ActiveState", "NRestarts"))
            pid1_lines = self.manager_journal().splitlines()
            pid1 = len(pid1_lines)
            lost = sum("Cannot find unit for notify message" in l for l in pid1_lines)
            supp = [l for l in self.run("journalctl", "-q", "--no-pager", "-o", "cat",
                                        "-u", "systemd-journald.service").stdout.splitlines()
                    if "uppressed" in l or "rate" in l.lower()]
            failed = self.query("list-units", "--failed", "--no-legend", "--plain").stdout
        except MachineGone as exc:
            return f"machine gone: {exc}"
        failed_units = ",".join(l.split()[0] for l in failed.splitlines() if l.strip()) or "none"
        return (f"state={state} log-level={level} log-target={target} "
                f"journald={jd['ActiveState']}/restarts={jd['NRestarts']} pid1-journal-lines={pid1} "
                f"unattributed-notify={lost} "
                f"failed={failed_units}" + (f" journald: {supp[-1]} ({len(supp)} such)" if supp else ""))

    def wait(self, unit, want, deadline_s):
        """Poll until all of want {prop: str | set | callable} match; returns (ok, props, why)."""
        props = tuple(dict.fromkeys((*BASE_PROPS, *want)))
        end = time.monotonic() + deadline_s
        pause = POLL_S
        while True:
            got = self.show(unit, props)
            if all(matches(got[k], v) for k, v in want.items()):
                return True, got, ""
            if got["ActiveState"] == "failed" or (got["ActiveState"] == "inactive" and not got["Job"]):
                return False, got, f"unit settled in {got['ActiveState']}"  # nothing will change
            if time.monotonic() > end:
                return False, got, f"not seen within {deadline_s:.0f}s"
            pause = self._pause(pause)

    def jobs(self):
        """The manager's job queue, most telling first, as short lines for a report: a count
        by state, the jobs that are not a case's (what a case's job may be ordered after) and
        what the first waiting jobs wait for (`list-jobs --before`)."""
        res = self.query("list-jobs", "--before", "--no-legend", "--no-pager")
        jobs, waits, current = [], [], None
        for line in res.stdout.splitlines():
            words = line.split()
            if len(words) >= 4 and words[0].isdigit():
                jobs.append(words[:4])
                current = words[1]
            elif "waiting for job" in line and current:
                what = line.split("waiting for job", 1)[1].split(")", 1)[0].strip()
                waits.append(f"{current} waits for job {what})")
        states = {}
        for job in jobs:
            states[job[3]] = states.get(job[3], 0) + 1
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
        others = [" ".join(j) for j in jobs if not j[1].startswith("sdt-")]
        lines = [f"jobs: {len(jobs)} ({counts}); not a case's: {', '.join(others[:6]) or 'none'}"]
        return lines + waits[:4]

    def wait_journal(self, unit, text, deadline_s, cgroup=None):
        """Poll the unit's journal (and, given cgroup, that cgroup's) until it contains text;
        returns (ok, matching line or "")."""
        end = time.monotonic() + deadline_s
        pause = POLL_S
        while True:
            lines = self.journal(unit) + (self.cgroup_journal(cgroup) if cgroup else "")
            for line in lines.splitlines():
                if text in line:
                    return True, line
            if time.monotonic() > end:
                return False, ""
            pause = self._pause(pause)

    def _pause(self, pause):
        """Sleep pause s between two polls (MachineGone when the machine is aborted meanwhile);
        returns the next, longer pause."""
        if self.aborted.wait(pause):
            raise MachineGone("aborted")
        return min(pause * POLL_GROWTH, POLL_MAX_S)


def matches(value, want):
    """want is an exact string, a set of allowed strings, or a predicate on the string."""
    if callable(want):
        return bool(want(value))
    if isinstance(want, (set, frozenset)):
        return value in want
    return value == str(want)
