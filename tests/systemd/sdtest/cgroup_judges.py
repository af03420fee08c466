"""Judges of scenario 16: a root runtime in a Type=notify unit with a limit in config.json
(issue 12), the default cgroupsPath (the container id, relative), with and without Delegate=yes.

Where the container goes on this pure cgroup2 tree: without Delegate=yes beside the unit
(`<the unit's parent>/<id>`, runc's fs2 placement: the limit needs a controller the unit's
cgroup does not enable, and enabling it there would break the unit); with Delegate=yes inside
it (`<the unit's cgroup>/<id>`, the runtime in a leaf of its own, since the unit's cgroup, now
with controllers for its children, may hold no process). The limit must be in that cgroup,
READY and a later STATUS must reach the unit, MainPID must be the init (run -d) or the runtime
(run), the container's output is in the journal (under the unit only when it is inside it:
journald goes by the writer's cgroup), and after the stop no cgroup and no container is left.
"""

import posixpath
import time

from .notify_judges import _started, stop_clean
from .units import RUNTIME_IN_MACHINE, RUNTIME_ROOT, container_id


def _delegated(j):
    return ("Delegate", "yes") in j.case.service


def expected_cgroup(j, unit_cg):
    """The container's cgroup for the default cgroupsPath, given the unit's ControlGroup."""
    cid = container_id(j.case)
    return f"{unit_cg}/{cid}" if _delegated(j) else f"{posixpath.dirname(unit_cg)}/{cid}"


def _cgroup_of(j, pid):
    lines = j.machine.run("cat", f"/proc/{pid}/cgroup").stdout.splitlines()
    return next((line[3:] for line in lines if line.startswith("0::")), "")


def _cat(j, path):
    res = j.machine.run("cat", path)
    return res.stdout.strip() if res.returncode == 0 else f"({res.stderr.strip()})"


def _main_is(j, main):
    """run -d: MainPID is the container's init; run: the runtime itself."""
    init = j.runtime_pid()
    cmd = j.cmdline(main)
    seen = f"MainPID={main} runs '{cmd}', runtime state pid={init}"
    if j.case.launch == "run-d":
        return main == init, seen
    return cmd.startswith(f"{RUNTIME_IN_MACHINE} ") and " run " in cmd and main != init, seen


def _leaves_only(j, unit_cg):
    """With Delegate=yes: no process in the unit's own cgroup (they are in leaves below it)."""
    procs = _cat(j, f"/sys/fs/cgroup{unit_cg}/cgroup.procs")
    below = j.machine.run("find", f"/sys/fs/cgroup{unit_cg}", "-mindepth", "1", "-type", "d").stdout
    subdirs = " ".join(sorted(p[len("/sys/fs/cgroup" + unit_cg) + 1:] for p in below.split()))
    return procs == "", f"unit cgroup.procs: '{procs}', cgroups below it: {subdirs}"


def _nothing_left(j, cgroups):
    """Bounded poll (systemd prunes the unit's cgroup as it goes inactive): none of cgroups
    exists and the runtime lists no container of the case."""
    end = time.monotonic() + j.deadline
    while True:
        left = [c for c in cgroups if j.machine.run("test", "-e", f"/sys/fs/cgroup{c}").returncode == 0]
        listed = j.machine.run(RUNTIME_IN_MACHINE, "--root", RUNTIME_ROOT, "list", "-q").stdout.split()
        listed = [c for c in listed if c == container_id(j.case)]
        if (not left and not listed) or time.monotonic() > end:
            return not left and not listed, f"cgroups left: {left or 'none'}, listed: {listed or 'none'}"
        time.sleep(0.05)


def limited(j):
    """16: the controller reaches system.slice's children, READY with the limit set in the
    container's cgroup, the placement, a later STATUS, a clean stop, nothing left."""
    lim = j.case.limit
    j.check(f"{lim.controller} enabled for system.slice's children", lambda: j.machine.bring_controller(lim.controller))
    j.start()
    got = j.state("active/running after READY, StatusText=s16-ready",
                  {"ActiveState": "active", "SubState": "running", "StatusText": "s16-ready",
                   "MainPID": _started})
    main = int(got["MainPID"])
    unit_cg = j.machine.show(j.unit, ("ControlGroup",))["ControlGroup"]
    cgroups = [unit_cg]
    if j.mode == "runtime":
        j.check("MainPID is " + ("the container's init" if j.case.launch == "run-d" else "the runtime"),
                lambda: _main_is(j, main))
        want = expected_cgroup(j, unit_cg)
        cgroups.append(want)
        where = "inside the unit's cgroup" if _delegated(j) else "beside the unit (runc's placement)"
        init = j.runtime_pid()
        j.check(f"the init is {where}: {want}", lambda: (_cgroup_of(j, init) == want,
                                                        f"init {init} in {_cgroup_of(j, init)}"))
        j.check(f"{lim.file} there is {lim.value}",
                lambda: (_cat(j, f"/sys/fs/cgroup{want}/{lim.file}") == lim.value,
                         f"{lim.file}: {_cat(j, f'/sys/fs/cgroup{want}/{lim.file}')}"))
        if _delegated(j):
            j.check("no process in the unit's own cgroup (the runtime in a leaf)",
                    lambda: _leaves_only(j, unit_cg))
        elif j.case.launch == "run-d":  # the announcement goes with the runtime's uid 0
            j.journal("systemd took the init outside the unit's cgroup as MainPID from root",
                      "does not belong to service, but we'll accept it")
    j.go("go1")
    j.state("a later STATUS is still seen: s16-changed, same MainPID",
            {"ActiveState": "active", "StatusText": "s16-changed", "MainPID": str(main)})
    if j.mode != "runtime":  # host mode: journald of 252 does not always attribute the
        stop_clean(j, None)  # exiting shell's last line (as in scenario 9)
        return
    line = "payload: SIGTERM received, exiting 0"
    beside = not _delegated(j)
    stop_clean(j, None if beside else line, exit_status=j.case.launch == "run")
    if beside:
        j.journal("the container got SIGTERM and exited 0 (journal of its cgroup or the unit's)",
                  line, cgroup=cgroups[-1])
    j.check("nothing left: no cgroup (unit's, container's), no container", lambda: _nothing_left(j, cgroups))
