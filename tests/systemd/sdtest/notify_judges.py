"""Judges of scenarios 1-6, 9 and 10: readiness, status, watchdog, reload, early exit, timeouts,
stopping, exec'd senders, a stopped manager.

Each judge drives one case with `Judge` steps; the payload scripts (payloads/*.sh) wait on FIFOs
so that every intermediate state can be observed before the next message is sent.
"""

import os
import signal
import subprocess
import time

from .machine import MachineGone
from .units import (RUNTIME_IN_MACHINE, RUNTIME_ROOT, container_id, podman_global_args,
                    quadlet_image, unit_name)

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


def ready_then_exit(j):
    """5e/5f: READY=1, STATUS=, then exit 3 at once: failed, Result=exit-code, ExecMainStatus=3,
    as uncontained, and the runtime does not log the exit as one "before READY=1" (the exit
    races the READY's acknowledgement). Foreground (5f) the STATUS reached the manager too
    (pier is the main process throughout). Under run -d (5e) systemd refuses the announced
    MAINPID= when the init is a zombie by the time it reads the READY ("New main PID ... is a
    zombie"); pier then exits with the init's status, so the unit still fails with 3, but the
    STATUS that followed, sent as the init, is refused under NotifyAccess=main: not checked
    there (docs/notify.md, "An init that exits right after READY=1"). Host mode: the sender has
    exited, so its STATUS may be unattributed."""
    j.start()
    want = {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "3"}
    if j.mode == "runtime" and j.case.launch == "run":
        want["StatusText"] = "s5-ready-then-exit"
    j.state("failed: " + ", ".join(f"{k}={v}" for k, v in want.items()), want,
            deadline_s=EARLY_EXIT_TIMEOUT_S + 15)
    j.journal("the container ran (journal)", "payload: READY sent, exiting 3")
    if j.mode == "runtime":
        j.check("no 'exited before READY=1' from the runtime", lambda: _no_line(j, "before READY"))


def _no_line(j, text):
    """(ok, seen) for a check that the unit's journal has no line containing text."""
    hits = [line for line in j.machine.journal(j.unit).splitlines() if text in line]
    return not hits, (f"journal: {hits[0].strip()[:200]}" if hits else f"no line with {text!r}")


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


def _notify_from_another_process(j, *msgs):
    """Step: MSGs sent by another process of the service than its main one. Runtime mode:
    `RUNTIME exec --notify-socket container ID sd-notify-send -b -v MSG...`, whose datagrams the
    container's relay forwards; host mode: the same sender moved into the unit's cgroup first,
    which is what such a process is without a container."""
    t0 = time.monotonic()
    msgs = ("-b", "-v", *msgs)  # ends with a barrier, traces to the journal
    if j.mode == "runtime":
        cmd = [RUNTIME_IN_MACHINE, "--root", RUNTIME_ROOT, "exec", "--notify-socket", "container",
               container_id(j.case), "sd-notify-send", *msgs]
    else:
        cgroup = j.machine.show(j.unit, ("ControlGroup",))["ControlGroup"]
        sender = f"/h/b/{j.case.key}/rootfs/bin/sd-notify-send"
        cmd = ["sh", "-c", f'echo $$ > "/sys/fs/cgroup{cgroup}/cgroup.procs" && exec "$@"', "sh",
               "env", "NOTIFY_SOCKET=/run/systemd/notify", sender, *msgs]
    res = j.machine.run(*cmd, timeout=j.deadline + 10)
    what = "exec --notify-socket container" if j.mode == "runtime" else "a process in the unit's cgroup"
    seen = f"exit {res.returncode}" + (f": {res.stderr.strip()[-200:]}" if res.returncode else "")
    j.record(f"{what} sends {' '.join(msgs)}", seen, res.returncode == 0, t0)


def _sent_as(j, pid, text):
    """The manager's debug line for the datagram with text names pid as its sender."""
    lines = [line for line in j.machine.journal(j.unit).splitlines()
             if "Got notification message" in line and text in line]
    if not lines:
        return False, f"no notification with {text} in the journal"
    line = lines[-1].split(": ", 1)[-1]
    return f"PID {pid}" in line, line


def exec_notify(j):
    """9: READY=1 and a later STATUS come from an exec'd process, not the container's init:
    the unit becomes active (MainPID the init when detached) and follows the STATUS."""
    j.start()
    j.state("activating: the init itself never notifies", {"ActiveState": "activating"})
    _notify_from_another_process(j, "-j", "READY=1", "STATUS=s9-exec-ready")
    got = j.state("active/running after the exec'd READY, StatusText=s9-exec-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s9-exec-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    if j.mode == "runtime" and j.case.launch == "run-d":
        j.check("MainPID is the container's init (runs payload/s9.sh)",
                lambda: _main_is_init(j, main, "payload/s9.sh"))
    _notify_from_another_process(j, "STATUS=s9-exec-later")
    j.state("a later STATUS from an exec'd process: StatusText=s9-exec-later, same MainPID",
            {"ActiveState": "active", "StatusText": "s9-exec-later", "MainPID": str(main)})
    if j.mode == "runtime":
        who = "the container's init" if j.case.launch == "run-d" else "the runtime (main pid)"
        j.check(f"the manager saw it sent by {who} (pid {main})",
                lambda: _sent_as(j, main, "STATUS=s9-exec-later"))
    # host mode: journald of 252 does not always attribute the exiting shell's last line
    line = "payload: SIGTERM received, exiting 0" if j.mode == "runtime" else None
    stop_clean(j, line, exit_status=j.case.launch != "run-d")


def _box_unit(j):
    return f"sdt-{j.case.key}-box.service"


def _start_box(j):
    """Step (runtime mode): the container the unit execs into, started by another unit (a
    transient oneshot, so it gets no NOTIFY_SOCKET: its org.pier.notify.exec=own annotation is
    what gives it /run/notify); it runs the case's payload as its init, which only waits."""
    t0 = time.monotonic()
    rt = [RUNTIME_IN_MACHINE, "--root", RUNTIME_ROOT]
    res = j.machine.run("systemd-run", "--quiet", f"--unit={_box_unit(j)}", "-p", "Type=oneshot",
                        "-p", "RemainAfterExit=yes", *rt, "run", "-d", "--bundle",
                        f"/h/b/{j.case.key}", container_id(j.case), timeout=j.deadline + 10)
    seen = f"exit {res.returncode}" + (f": {res.stderr.strip()[-200:]}" if res.returncode else "")
    j.record(f"box container {container_id(j.case)} running (run -d from {_box_unit(j)})", seen,
             res.returncode == 0 and j.runtime_pid() is not None, t0)


def _stop_box(j):
    try:
        j.machine.run(RUNTIME_IN_MACHINE, "--root", RUNTIME_ROOT, "delete", "-f", container_id(j.case))
        j.machine.systemctl("stop", _box_unit(j), timeout=30)
    except MachineGone:
        pass


def _main_is_exec(j, main):
    """MainPID is what the unit asked for: `pier exec` itself (foreground) or, after `exec -d`,
    the exec'd process (the payload, not the box's init)."""
    cmd = j.cmdline(main)
    seen = f"MainPID={main} runs '{cmd}'"
    if j.case.launch == "exec":
        return " exec --notify-socket own " in cmd, seen
    init = j.runtime_pid()
    return cmd.endswith("payload/s13.sh") and main != init, f"{seen}, box init={init}"


def exec_own(j):
    """13: a unit whose ExecStart is `pier exec [-d] --notify-socket own BOX sh s13.sh` into a
    container started elsewhere: the exec'd process's STATUS, READY and later STATUS reach this
    unit (NotifyAccess=main: sent as its main pid), MainPID is pier exec (foreground) or the
    exec'd process (-d, with MAINPIDFD=1 under 257), and systemctl stop ends it cleanly."""
    if j.mode == "runtime":
        _start_box(j)
    try:
        _exec_own_unit(j)
    finally:
        if j.mode == "runtime":
            _stop_box(j)


def _exec_own_unit(j):
    j.start()
    j.state("activating, StatusText=s13-starting (sent before READY)",
            {"ActiveState": "activating", "StatusText": "s13-starting"})
    j.go("go1")
    got = j.state("active/running after the exec'd READY, StatusText=s13-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s13-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    if j.mode == "runtime":
        what = "pier exec" if j.case.launch == "exec" else "the exec'd process (payload/s13.sh)"
        j.check(f"MainPID is {what}", lambda: _main_is_exec(j, main))
        if j.case.launch == "exec-d":
            expected = ("MAINPID= + MAINPIDFD=1 with the process's pidfd, accepted" if
                        j.machine.version >= MAINPIDFD_SINCE else "MAINPID= only (no MAINPIDFD, no stray fd)")
            j.check(expected, lambda: _main_pid_announcement(j, main))
    j.go("go2")
    j.state("a later STATUS: StatusText=s13-changed, same MainPID",
            {"ActiveState": "active", "StatusText": "s13-changed", "MainPID": str(main)})
    if j.mode == "runtime":
        j.check(f"the manager saw it sent by the main pid {main}",
                lambda: _sent_as(j, main, "STATUS=s13-changed"))
    # Not the journal line: journald attributes a stream's lines by its peer, pier exec, which
    # may be gone when the exec'd process writes (always after exec -d).
    stop_clean(j, None)
    j.check("the exec'd process got SIGTERM and exited 0 (it wrote ctl/stopped)",
            lambda: (j.ctl_file("stopped").strip() == "sigterm", j.ctl_file("stopped").strip() or "no ctl/stopped"))


def exec_own_ends(j):
    """13c/13d: the exec'd process ends at once. After READY=1 (13c) it is the unit's main pid,
    so systemd gets its own exit status 3 (pier exec -d leaves it to the manager to reap):
    failed, Result=exit-code; before READY=1 (13d) pier exec -d exits with its 0: failed,
    Result=protocol. Both as systemd judges the same service without a container."""
    if j.mode == "runtime":
        _start_box(j)
    try:
        j.start()
        if j.case.key == "13c":
            want = {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "3",
                    "StatusText": "s13-ready-then-exit"}
        else:
            want = {"ActiveState": "failed", "Result": "protocol", "ExecMainStatus": "0"}
        j.state("failed: " + ", ".join(f"{k}={v}" for k, v in want.items()) + " (as without a container)",
                want, deadline_s=EARLY_EXIT_TIMEOUT_S + 15)
    finally:
        if j.mode == "runtime":
            _stop_box(j)


def new_main_pid(j):
    """14: in a foreground `run`, a child of the init sends MAINPID=<its own pid> + READY=1:
    the unit's MainPID becomes that process (its host pid), announced under 257 with
    MAINPIDFD=1 and the process's own pidfd (pier receives MAINPID= datagrams with a pidfd of
    their sender), MAINPID= only under 252; its later STATUS is accepted under
    NotifyAccess=main (sent as the new main pid)."""
    j.start()
    got = j.state("active/running after READY, StatusText=s14-ready, MainPID set",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s14-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    j.check("MainPID is the process that named itself (runs payload/s14.sh after)",
            lambda: (j.cmdline(main).endswith("payload/s14.sh after"),
                     f"MainPID={main} runs '{j.cmdline(main)}'"))
    if j.mode == "runtime":
        expected = ("MAINPID= + MAINPIDFD=1 with the process's own pidfd, accepted" if
                    j.machine.version >= MAINPIDFD_SINCE else "MAINPID= only (no MAINPIDFD, no stray fd)")
        j.check(expected, lambda: _main_pid_announcement(j, main))
    j.go("go1")
    j.state("a later STATUS of the new main pid: StatusText=s14-changed, same MainPID",
            {"ActiveState": "active", "StatusText": "s14-changed", "MainPID": str(main)})
    if j.mode == "runtime":
        j.check(f"the manager saw it sent by the new main pid {main}",
                lambda: _sent_as(j, main, "STATUS=s14-changed"))
    stop_clean(j, None, exit_status=False)


def _never_notified(j, text):
    """No manager debug line for a datagram with text (it never reached the manager)."""
    lines = [line for line in j.machine.journal(j.unit).splitlines()
             if "Got notification message" in line and text in line]
    return not lines, (lines[-1].split(": ", 1)[-1] if lines else f"no notification with {text}")


def sender_check(j):
    """12: a child of the init sends READY=1 + STATUS first, then the init itself a STATUS: the
    unit is still activating with the init's STATUS (datagrams are handled in order, so the
    child's was judged before it), and becomes active only with the init's own READY=1. In a
    container pier drops the child's (org.pier.notify.access=init, by pidfd where the kernel
    has SO_PASSPIDFD); uncontained, NotifyAccess=main does."""
    j.start()
    j.state("the init's STATUS after the child's READY=1: still activating, StatusText=s12-init-waiting",
            {"ActiveState": "activating", "StatusText": "s12-init-waiting"})
    j.go("go1")
    got = j.state("the init's own READY=1: active/running, StatusText=s12-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s12-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    j.check("MainPID is the container's init (runs payload/s12-run.sh)",
            lambda: _main_is_init(j, main, "payload/s12-run.sh"))
    if j.mode == "runtime":
        j.journal("the manager's debug line for the init's READY", "READY=1, STATUS=s12-ready")
        j.check("the child's datagram never reached the manager (pier dropped it)",
                lambda: _never_notified(j, "s12-child"))
    stop_clean(j, "payload: SIGTERM received, exiting 0", exit_status=False)


#: How many STATUS datagrams payloads/s10.sh sends while the manager is stopped.
S10_BURST = 200


def _ctl_file_appears(j, name):
    """Poll (state changes only) until the payload wrote ctl/NAME; (ok, seen)."""
    end = time.monotonic() + j.deadline
    while not j.ctl_file(name):
        if time.monotonic() > end:
            return False, f"no {name} within {j.deadline:.0f}s: a send of the container is held"
        if j.machine.aborted.wait(0.05):
            raise MachineGone("aborted")
    return True, f"{name}: {j.ctl_file(name).strip()}"


def _runtime_waiting(j):
    """The `run -d` process is still there (it returns only after the manager took READY)."""
    res = j.machine.run("pgrep", "-f", f"run -d --bundle /h/b/{j.case.key} ")
    pids = res.stdout.split()
    return bool(pids), f"run -d pid {' '.join(pids)}" if pids else "run -d has exited"


def _burst_all_seen(j):
    """The manager's debug lines show every STATUS of the burst, and pier logged no drop."""
    journal = j.machine.journal(j.unit)
    seen = {line.rsplit("STATUS=s10-burst-", 1)[1].split()[0].rstrip(")")
            for line in journal.splitlines()
            if "Got notification message" in line and "STATUS=s10-burst-" in line}
    drops = [line for line in journal.splitlines() if "dropping" in line or "dropped" in line]
    ok = len(seen) == S10_BURST and not drops
    return ok, f"{len(seen)}/{S10_BURST} burst STATUS processed" + (f"; {drops[0]}" if drops else "")


def stuck_manager(j):
    """10: the manager (PID 1) is stopped while a run -d container sends a burst and READY=1:
    the container's sends never wait for it, `run -d` has not returned, and once the manager
    runs again it gets every datagram in order and the unit becomes active."""
    j.start()
    j.state("activating: run -d waits for READY=1", {"ActiveState": "activating"})
    leader = int(j.machine.leader)
    t0 = time.monotonic()
    os.kill(leader, signal.SIGSTOP)
    try:
        j.record("the manager (inner PID 1) is stopped", f"SIGSTOP {leader}", True, t0)
        j.go("go1")
        if j.mode == "runtime":
            j.check(f"the container sent {S10_BURST} STATUS + READY=1 without waiting for the manager",
                    lambda: _ctl_file_appears(j, "done"))
            j.check("run -d has not returned: READY=1 has not reached the manager yet",
                    lambda: _runtime_waiting(j))
    finally:
        os.kill(leader, signal.SIGCONT)
    got = j.state("manager running again: active/running, StatusText=s10-ready (the last)",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s10-ready",
                   "MainPID": _started})
    if j.mode == "runtime":
        main = int(got["MainPID"])
        j.check("MainPID is the container's init", lambda: _main_is_init(j, main, "payload/s10.sh"))
        j.check("every datagram reached the manager, none dropped", lambda: _burst_all_seen(j))
    stop_clean(j, None, exit_status=False)


def _started_init(j):
    """Poll (state changes only) until `RUNTIME state` names the init; (ok, seen)."""
    end = time.monotonic() + j.deadline
    while not j.runtime_pid():  # None: no state yet; 0: still being created
        if time.monotonic() > end:
            return False, "no runtime state with a pid"
        if j.machine.aborted.wait(0.05):
            raise MachineGone("aborted")
    return True, f"init pid {j.runtime_pid()}"


def _impostor(j, pid):
    """A process of the machine that gets `pid`, left running; (ok, seen). The machine's
    /proc/sys is read-only, so this enters only its pid namespace (with the host's /proc):
    ns_last_pid = pid - 1 there, then one fork. `;`, not `&&`: `a && b &` would fork a
    subshell for both first, and that would take the pid."""
    out = j.ctl / "impostor"
    script = (f'echo {pid - 1} > /proc/sys/kernel/ns_last_pid; '
              f'sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {out}')
    res = subprocess.run(["nsenter", "-t", str(j.machine.leader), "-p", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    got = j.ctl_file("impostor").strip()
    seen = f"impostor pid {got or '?'} (wanted {pid})" + (f": {res.stderr.strip()[-200:]}" if res.returncode else "")
    return res.returncode == 0 and got == str(pid), seen


def reused_main_pid(j):
    """15: the manager is stopped while a run -d container sends READY=1 and exits; pier
    forwards MAINPID=<init> + MAINPIDFD=1 (with the init's pidfd) and exits with the init's
    status without reaping it, so the init stays a zombie (reparented to the manager) and its
    pid cannot go to another process before the manager has read the MAINPID= naming it; the
    manager runs again and never makes an impostor the unit's main pid. (Before, pier reaped
    the init and the pid could be reused: then only MAINPIDFD=1 kept systemd 257 off the
    impostor, and MAINPID= alone, as to 252, named it.)"""
    if j.mode != "runtime":
        j.record("runtime mode only (the case is the runtime's MAINPID=)", "host mode: skipped", True,
                 time.monotonic())
        return
    j.start()
    j.state("activating: run -d waits for READY=1", {"ActiveState": "activating"})
    j.check("the container is started (runtime state has its init)", lambda: _started_init(j))
    init = j.runtime_pid()
    leader = int(j.machine.leader)
    t0 = time.monotonic()
    os.kill(leader, signal.SIGSTOP)
    try:
        j.record(f"the manager is stopped (init pid {init})", f"SIGSTOP {leader}", bool(init), t0)
        j.go("go1")
        j.check("the init sent READY=1 and exited; pier exited without reaping it (a zombie of PID 1)",
                lambda: _orphaned_zombie(j, init))
        j.check(f"pid {init} cannot go to another process", lambda: _not_reused(j, init))
    finally:
        os.kill(leader, signal.SIGCONT)
    impostor = int(j.ctl_file("impostor").strip() or 0)
    try:
        got = j.state("the manager read it: the unit leaves activating, MainPID is not the other process",
                      {"ActiveState": lambda v: v != "activating",
                       "MainPID": lambda v: v != str(impostor)},
                      deadline_s=j.deadline + 10)
        j.journal("the manager got MAINPID= with MAINPIDFD=1", f"MAINPID={init}, MAINPIDFD=1")
        j.check("the other process was never the unit's main pid",
                lambda: _never_main(j, impostor, got))
    finally:
        if impostor:
            j.machine.run("kill", str(impostor))


def _orphaned_zombie(j, pid):
    """Poll (state changes only) until pid is a zombie whose parent is the machine's PID 1
    (its parent, pier, exited without reaping it); (ok, seen)."""
    end = time.monotonic() + j.deadline
    seen = ""
    while True:
        status = j.machine.run("cat", f"/proc/{pid}/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        seen = f"State {fields.get('State', '?').strip()}, PPid {fields.get('PPid', '?').strip()}"
        if fields.get("State", "").startswith("Z") and fields.get("PPid", "").strip() == "1":
            return True, seen
        if not status:
            return False, f"pid {pid} is gone (reaped while the manager was stopped)"
        if time.monotonic() > end:
            return False, f"pid {pid} after {j.deadline:.0f}s: {seen}"
        if j.machine.aborted.wait(0.05):
            raise MachineGone("aborted")


def _not_reused(j, pid):
    """The next process forked after `ns_last_pid = pid - 1` does not get pid (it is taken),
    left running; (ok, seen)."""
    ok, seen = _impostor(j, pid)
    got = j.ctl_file("impostor").strip()
    return (not ok and got.isdigit()), seen


def _never_main(j, impostor, got):
    lines = [line for line in j.machine.journal(j.unit).splitlines()
             if f"main PID {impostor}" in line.lower() or f"New main PID {impostor}" in line]
    ok = not lines and got["MainPID"] != str(impostor)
    return ok, (lines[0].split(": ", 1)[-1] if lines else f"MainPID={got['MainPID']}, no 'New main PID {impostor}'")


def _machine_step(j, expected, *cmd, timeout=60):
    """Step: cmd inside the machine exits 0."""
    t0 = time.monotonic()
    res = j.machine.run(*cmd, timeout=timeout)
    seen = f"exit {res.returncode}" + (f": {(res.stderr or res.stdout).strip()[-200:]}" if res.returncode else "")
    j.record(expected, seen, res.returncode == 0, t0)
    return res


def _runs_under_runtime(j, podman):
    """The quadlet's container was started by the runtime under test: pier has its state."""
    cid = j.machine.run(*podman, "inspect", "-f", "{{.Id}}", f"systemd-{j.unit_base}").stdout.strip()
    res = j.machine.run(RUNTIME_IN_MACHINE, "state", cid)
    return res.returncode == 0, f"pier state {cid[:12]}: exit {res.returncode}"


def quadlet(j):
    """11: podman 5's quadlet turns a .container with Notify=true into a Type=notify unit
    running `podman run --sdnotify=container`; with `--runtime pier` the container's READY and
    STATUS reach the unit (conmon relays them: podman gives the runtime no NOTIFY_SOCKET), and
    the unit stops cleanly."""
    j.unit_base = unit_name(j.case).removesuffix(".service")
    podman = ["podman", *podman_global_args(j.mode).split()]
    bundle = f"/h/b/{j.case.key}"
    _machine_step(j, "podman is in the machine's root", "podman", "--version")
    _machine_step(j, "the bundle's rootfs imported as an image",
                  "sh", "-c", f'tar -C {bundle}/rootfs -cf {bundle}/image.tar . && '
                  f'exec "$@" import {bundle}/image.tar {quadlet_image(j.case)}', "sh", *podman)
    container = f"{j.unit_base}.container"
    _machine_step(j, "quadlet file installed, daemon-reload generates the unit",
                  "sh", "-c", f"mkdir -p /etc/containers/systemd && cp /h/quadlet/{container} "
                  f"/etc/containers/systemd/ && systemctl daemon-reload && systemctl cat {j.unit} >/dev/null")
    j.start()
    got = j.state("active/running after READY, StatusText=s11-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s11-ready",
                   "MainPID": _started}, deadline_s=j.deadline + 30)
    if j.mode == "runtime":
        j.check("the container runs under pier (pier state knows it)", lambda: _runs_under_runtime(j, podman))
    j.go("go1")
    j.state("a later STATUS is still seen: s11-changed, same MainPID",
            {"ActiveState": "active", "StatusText": "s11-changed", "MainPID": got["MainPID"]})
    stop_clean(j, None, exit_status=False)
