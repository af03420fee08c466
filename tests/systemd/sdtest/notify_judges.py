"""Judges of scenarios 1-6: readiness, status, watchdog, reload, early exit, timeouts, stopping.

Each judge drives one case with `Judge` steps; the payload scripts (payloads/*.sh) wait on FIFOs
so that every intermediate state can be observed before the next message is sent.
"""

import time

from .machine import MachineGone

#: TimeoutStartSec of the early-exit cases: a runtime that hangs is caught by it, not by us.
EARLY_EXIT_TIMEOUT_S = 10
#: TimeoutStartSec of the slow-start case, which EXTEND_TIMEOUT_USEC must override.
SLOW_START_TIMEOUT_S = 3
#: How long scenario 3a's pinging service must stay up (WatchdogSec=2).
WATCHDOG_WINDOW_S = 10.0


def _started(value):
    return value not in ("", "0")


def stop_clean(j, payload_line, exit_status=True):
    """`systemctl stop`, then inactive with Result=success and the payload's SIGTERM line."""
    t0 = time.monotonic()
    res = j.machine.systemctl("stop", j.unit, timeout=j.deadline + 10)
    if res.returncode != 0:
        j.record("systemctl stop succeeds", res.stderr.strip()[-200:], False, t0)
    want = {"ActiveState": "inactive", "Result": "success"}
    if exit_status:
        want["ExecMainStatus"] = "0"
    j.state("systemctl stop: " + ", ".join(f"{k}={v}" for k, v in want.items()), want)
    if payload_line:
        j.journal("the container got SIGTERM and exited 0 (journal)", payload_line)


def foreground(j):
    """1: Type=notify, `run`: activating until READY, StatusText follows, stop is clean."""
    j.start()
    j.state("activating before READY, StatusText=s1-starting",
            {"ActiveState": "activating", "StatusText": "s1-starting"})
    j.go("go1")
    j.state("active/running after READY, StatusText=s1-ready",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s1-ready"})
    j.go("go2")
    j.state("StatusText follows a later STATUS: s1-changed",
            {"ActiveState": "active", "StatusText": "s1-changed"})
    stop_clean(j, "payload: SIGTERM received, exiting 0")


def _main_is_init(j, main_pid, script):
    cmd = j.cmdline(main_pid)
    seen = f"MainPID={main_pid} runs '{cmd}'"
    ok = cmd.endswith(script)
    if j.mode == "runtime":
        init = j.runtime_pid()
        seen += f", runtime state pid={init}"
        ok = ok and init == main_pid
    return ok, seen


def _in_unit_cgroup(j, pid):
    unit_cg = j.machine.show(j.unit, ("ControlGroup",))["ControlGroup"]
    lines = j.machine.run("cat", f"/proc/{pid}/cgroup").stdout.splitlines()
    own = next((line[3:] for line in lines if line.startswith("0::")), "")
    ok = bool(unit_cg) and (own == unit_cg or own.startswith(unit_cg + "/"))
    return ok, f"pid {pid} in {own or '?'}, unit ControlGroup={unit_cg}"


#: The first systemd that takes MAINPIDFD=1 (sd_notify(3)); pier sends it only to such a one.
MAINPIDFD_SINCE = 257


def _main_pid_announcement(j, main):
    """How the runtime named the new main pid: the unit's debug line of the READY datagram,
    and (older systemd) no warning about an fd it did not expect."""
    lines = [line for line in j.machine.journal(j.unit).splitlines()
             if "Got notification message" in line and f"MAINPID={main}" in line]
    if not lines:
        return False, f"no notification with MAINPID={main} in the journal"
    line = lines[0].split(": ", 1)[-1]
    if j.machine.version >= MAINPIDFD_SINCE:
        refused = [x for x in j.machine.journal(j.unit).splitlines() if "MAINPIDFD=1 with" in x]
        return "MAINPIDFD=1" in line and not refused, line + (f"; {refused[0]}" if refused else "")
    stray = [x for x in j.machine.manager_journal().splitlines() if "extra auxiliary fds" in x]
    return "MAINPIDFD" not in line and not stray, line + (f"; {stray[0]}" if stray else "")


def detached(j):
    """2: `run -d` / `create`+`start`, NotifyAccess=main: MainPID is the init, STATUS goes on."""
    j.start()
    got = j.state("active/running after READY, StatusText=s2-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s2-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    j.check("MainPID is the container's init (runs payload/s2.sh)",
            lambda: _main_is_init(j, main, "payload/s2.sh"))
    j.check("the init is inside the unit's cgroup (systemd can wait for it on stop)",
            lambda: _in_unit_cgroup(j, main))
    if j.mode == "runtime":
        expected = ("MAINPID= + MAINPIDFD=1 with the init's pidfd, accepted" if
                    j.machine.version >= MAINPIDFD_SINCE else "MAINPID= only (no MAINPIDFD, no stray fd)")
        j.check(expected, lambda: _main_pid_announcement(j, main))
    j.go("go1")
    j.state("a later STATUS is still seen: s2-changed, same MainPID",
            {"ActiveState": "active", "StatusText": "s2-changed", "MainPID": str(main)})
    stop_clean(j, "payload: SIGTERM received, exiting 0", exit_status=False)


def _watchdog_env(j):
    text = j.ctl_file("env").strip()
    fields = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)
    ok = fields.get("WATCHDOG_USEC") == "2000000" and fields.get("WATCHDOG_PID") in ("-", fields.get("pid"))
    return ok, text or "payload wrote no env file"


def _stays_active(j, window_s):
    end = time.monotonic() + window_s
    props = ("ActiveState", "SubState", "Result", "NRestarts")
    while True:
        got = j.machine.show(j.unit, props)
        seen = " ".join(f"{k}={got[k]}" for k in props)
        if got["ActiveState"] != "active" or got["Result"] != "success":
            return False, f"{seen} after {window_s - (end - time.monotonic()):.1f}s"
        if time.monotonic() >= end:
            return True, f"{seen} for {window_s:.0f}s"
        if j.machine.aborted.wait(0.1):
            raise MachineGone("aborted")


def watchdog_ping(j):
    """3a: WatchdogSec=2, WATCHDOG=1 every 500 ms: stays active; WATCHDOG_USEC inside."""
    j.start()
    j.state("active/running, WatchdogUSec=2s",
            {"ActiveState": "active", "SubState": "running", "WatchdogUSec": "2s"})
    j.check(f"pinging every 500 ms: still active after {WATCHDOG_WINDOW_S:.0f}s",
            lambda: _stays_active(j, WATCHDOG_WINDOW_S))
    j.check("inside: WATCHDOG_USEC=2000000, WATCHDOG_PID unset or own pid", lambda: _watchdog_env(j))


def watchdog_silent(j):
    """3b: pings stop: the watchdog kills the unit (Result=watchdog)."""
    j.start()
    j.state("active/running, then the pings stop", {"ActiveState": "active", "SubState": "running"})
    j.state("killed by the watchdog: failed, Result=watchdog", {"ActiveState": "failed", "Result": "watchdog"})
    j.journal("systemd logged the watchdog timeout", "Watchdog timeout")


def watchdog_trigger(j):
    """3c: WATCHDOG=trigger acts at once (WatchdogSec=60 would take a minute)."""
    j.start()
    j.state("active/running, StatusText=s3c-ready",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s3c-ready"})
    j.go("go1")
    j.state("WATCHDOG=trigger: failed, Result=watchdog (long before WatchdogSec=60s)",
            {"ActiveState": "failed", "Result": "watchdog"})
    j.journal("systemd logged the watchdog request", "Watchdog request")


def reload(j):
    """4a: RELOADING=1 + MONOTONIC_USEC, then READY=1: a reload cycle systemd sees complete."""
    j.start()
    j.state("active/running, StatusText=s4-ready",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s4-ready"})
    j.go("go1")
    # systemd 253+ names the state of a reload the service announced itself reload-notify
    j.state("RELOADING=1: reloading/reload (253+: reload-notify), StatusText=s4-reloading",
            {"ActiveState": "reloading", "SubState": {"reload", "reload-notify"},
             "StatusText": "s4-reloading"})
    j.go("go2")
    j.state("READY=1 completes the reload: active/running, StatusText=s4-reloaded",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s4-reloaded"})
    stop_clean(j, None)


def notify_reload(j):
    """4b: Type=notify-reload: `systemctl reload` -> SIGHUP to the runtime -> the container, which
    answers RELOADING=1 + MONOTONIC_USEC, then READY=1; the reload job completes."""
    j.start()
    j.state("active/running, StatusText=s4b-ready",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s4b-ready"})
    j.job("reload")
    j.state("SIGHUP reached the container: RELOADING=1, reloading/reload-notify, StatusText=s4b-reloading",
            {"ActiveState": "reloading", "SubState": "reload-notify", "StatusText": "s4b-reloading"})
    j.go("go1")
    j.state("READY=1 completes the reload job: active/running, StatusText=s4b-reloaded, no job",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s4b-reloaded", "Job": ""})
    j.journal("systemd logged the reload as done", "Reloaded ")
    stop_clean(j, None)


def early_exit(j):
    """5: exit 7 before READY: failed at once with status 7, not by TimeoutStartSec."""
    j.start()
    j.state(f"failed, Result=exit-code, ExecMainStatus=7 (not timeout after {EARLY_EXIT_TIMEOUT_S}s)",
            {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "7"},
            deadline_s=EARLY_EXIT_TIMEOUT_S + 15)
    j.journal("the container ran (journal)", "payload: exiting 7 before READY")


def early_clean_exit(j):
    """5c/5d: exit 0 before READY: what systemd does with the same service uncontained, a
    Type=notify main process that exits cleanly without READY=1: failed, Result=protocol."""
    j.start()
    j.state("failed, Result=protocol, ExecMainStatus=0 (as without a container)",
            {"ActiveState": "failed", "Result": "protocol", "ExecMainStatus": "0"},
            deadline_s=EARLY_EXIT_TIMEOUT_S + 15)
    j.journal("the container ran (journal)", "payload: exiting 0 before READY")


def _outlasts_start_timeout(j):
    got = j.machine.show(j.unit, ("InactiveExitTimestampMonotonic",))
    began = int(got["InactiveExitTimestampMonotonic"] or 0) / 1e6
    target = began + SLOW_START_TIMEOUT_S + 1
    while True:
        state = j.machine.show(j.unit, ("ActiveState", "Result"))
        age = time.monotonic() - began
        if state["ActiveState"] != "activating":
            return False, f"ActiveState={state['ActiveState']} Result={state['Result']} {age:.1f}s after start"
        if time.monotonic() >= target:
            return True, f"ActiveState=activating {age:.1f}s after start"
        if j.machine.aborted.wait(0.1):
            raise MachineGone("aborted")


def timeouts(j):
    """6: EXTEND_TIMEOUT_USEC outlasts TimeoutStartSec; STOPPING=1 moves the unit to stopping."""
    j.start()
    j.state("activating, StatusText=s6-slow (EXTEND_TIMEOUT_USEC sent with it)",
            {"ActiveState": "activating", "StatusText": "s6-slow"})
    j.check(f"still activating {SLOW_START_TIMEOUT_S + 1}s after start (TimeoutStartSec={SLOW_START_TIMEOUT_S}s)",
            lambda: _outlasts_start_timeout(j))
    j.go("go1")
    j.state("active/running after the slow READY",
            {"ActiveState": "active", "SubState": "running", "StatusText": "s6-ready"})
    j.go("go2")
    j.state("STOPPING=1: deactivating/stop-sigterm, StatusText=s6-stopping, still alive",
            {"ActiveState": "deactivating", "SubState": "stop-sigterm", "StatusText": "s6-stopping",
             "MainPID": _started})
    j.go("go3")
    j.state("exits 0: inactive, Result=success", {"ActiveState": "inactive", "Result": "success"})
