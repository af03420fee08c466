"""The scenarios of issue 4 as cases: payload, unit settings, launch style and judge.

A scenario (1-8) has one or more cases ("2a", "2b", ...); a scenario passes when all its cases
do. docs/systemd.md shows the unit each case installs.
"""

from dataclasses import dataclass, field
from functools import partial

from . import cgroup_judges as cj
from . import fd_judges as fdj
from . import notify_judges as nj

#: Every unit: a stop never takes the suite long, whatever the runtime does.
COMMON = (("TimeoutStopSec", "5s"),)
NOTIFY = (("Type", "notify"),) + COMMON


@dataclass
class Case:
    """One unit (plus maybe a .socket) and the judge that drives and checks it."""

    key: str
    title: str
    args: list
    judge: object
    service: tuple = NOTIFY
    #: run | run-d | create-start | run-preserve | quadlet | exec | exec-d (into a box container
    #: the judge starts first, with the case's bundle)
    launch: str = "run"
    fifos: tuple = ()
    files: dict = field(default_factory=dict)
    socket: tuple = ()
    preserve_fds: int = 0
    #: the oldest systemd (major version) that has what the case uses, e.g. 253 for notify-reload
    min_systemd: int = 0
    #: run the container in a new user namespace (container 0.. = host 100000..; issue 12)
    userns: bool = False
    #: judged after all other cases, one at a time (it stops the whole manager)
    alone: bool = False
    #: config.json annotations (runtime mode)
    annotations: dict = field(default_factory=dict)
    #: NotifyAccess= in host mode, where the payload's sd-notify-send (a child of the payload
    #: shell) is what a container's relay would forward as the main process
    host_notify_access: str = "all"
    #: a limit written into config.json's linux.resources (a Limit; scenario 16)
    limit: object = None

    @property
    def scenario(self):
        """"3" for "3b"."""
        return self.key.rstrip("abcdefgh")


@dataclass(frozen=True)
class Limit:
    """A limit for config.json and where it shows in the container's cgroup."""

    controller: str
    resources: dict
    file: str
    value: str


#: The one controller this hybrid host's cgroup2 (hence the machine's) has: hugetlb. systemd
#: does not manage it, so the judge enables it down to system.slice (Machine.bring_controller).
#: memory and pids sit on v1 here and cannot reach cgroup2.
HUGETLB = Limit("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]},
                "hugetlb.2MB.max", "8388608")
DELEGATE = (("Delegate", "yes"),)


def sh(script):
    """Container argv running a payload script."""
    return ["/bin/sh", f"/payload/{script}"]


EXTRA = "preserved-fd-4"

CASES = [
    Case("1", "Type=notify, foreground run", sh("s1.sh"), nj.foreground, fifos=("go1", "go2")),
    Case("2a", "Type=notify, run -d, NotifyAccess=main", sh("s2.sh"), nj.detached,
         service=NOTIFY + (("NotifyAccess", "main"),), launch="run-d", fifos=("go1",)),
    Case("2b", "Type=notify, create + start, NotifyAccess=main", sh("s2.sh"), nj.detached,
         service=NOTIFY + (("NotifyAccess", "main"),), launch="create-start", fifos=("go1",)),
    Case("2c", "Type=notify, run -d in a user namespace (rootfs mapped, ctl idmapped)", sh("s2.sh"),
         nj.detached, service=NOTIFY + (("NotifyAccess", "main"),), launch="run-d", fifos=("go1",),
         userns=True),
    Case("3a", "WatchdogSec=2, WATCHDOG=1 every 500 ms", sh("s3-ping.sh"), nj.watchdog_ping,
         service=NOTIFY + (("WatchdogSec", "2s"),)),
    Case("3b", "WatchdogSec=2, pings stop", sh("s3-silent.sh"), nj.watchdog_silent,
         service=NOTIFY + (("WatchdogSec", "2s"),)),
    Case("3c", "WATCHDOG=trigger", sh("s3-trigger.sh"), nj.watchdog_trigger,
         service=NOTIFY + (("WatchdogSec", "60s"),), fifos=("go1",)),
    Case("4a", "reload: RELOADING=1 + MONOTONIC_USEC, READY=1", sh("s4.sh"), nj.reload,
         fifos=("go1", "go2")),
    Case("4b", "Type=notify-reload: systemctl reload -> SIGHUP", sh("s4-hup.sh"), nj.notify_reload,
         service=(("Type", "notify-reload"),) + COMMON, fifos=("go1",), min_systemd=253),
    Case("5a", "exit 7 before READY, foreground run", sh("s5.sh"), nj.early_exit,
         service=NOTIFY + (("TimeoutStartSec", f"{nj.EARLY_EXIT_TIMEOUT_S}s"),)),
    Case("5b", "exit 7 before READY, run -d", sh("s5.sh"), nj.early_exit, launch="run-d",
         service=NOTIFY + (("TimeoutStartSec", f"{nj.EARLY_EXIT_TIMEOUT_S}s"),)),
    Case("5c", "exit 0 before READY, foreground run", sh("s5-zero.sh"), nj.early_clean_exit,
         service=NOTIFY + (("TimeoutStartSec", f"{nj.EARLY_EXIT_TIMEOUT_S}s"),)),
    Case("5d", "exit 0 before READY, run -d", sh("s5-zero.sh"), nj.early_clean_exit, launch="run-d",
         service=NOTIFY + (("TimeoutStartSec", f"{nj.EARLY_EXIT_TIMEOUT_S}s"),)),
    Case("5e", "READY=1, then exit 3 at once, run -d", sh("s5-ready.sh"), nj.ready_then_exit,
         launch="run-d", service=NOTIFY + (("NotifyAccess", "main"),)),
    Case("5f", "READY=1, then exit 3 at once, foreground run", sh("s5-ready.sh"),
         nj.ready_then_exit, service=NOTIFY + (("NotifyAccess", "main"),)),
    Case("6", "EXTEND_TIMEOUT_USEC and STOPPING=1", sh("s6.sh"), nj.timeouts,
         service=(("Type", "notify"), ("TimeoutStartSec", f"{nj.SLOW_START_TIMEOUT_S}s"),
                  ("TimeoutStopSec", "10s")),
         fifos=("go1", "go2", "go3")),
    Case("7", "fd store across systemctl restart", ["/bin/sd-serve", "-u", "{ctl}/web.sock", "-n", "web"],
         fdj.fdstore, service=NOTIFY + (("FileDescriptorStoreMax", "4"),)),
    Case("9a", "run -d, NotifyAccess=all: READY/STATUS from `exec --notify-socket container`",
         sh("s9.sh"), nj.exec_notify, service=NOTIFY + (("NotifyAccess", "all"),), launch="run-d"),
    Case("9b", "foreground run, NotifyAccess=main: READY from an exec'd process", sh("s9.sh"),
         nj.exec_notify, service=NOTIFY + (("NotifyAccess", "main"),)),
    Case("12a", "run -d, NotifyAccess=main, org.pier.notify.access=init: a child's READY=1 is not the init's",
         sh("s12.sh"), nj.sender_check, service=NOTIFY + (("NotifyAccess", "main"),),
         launch="run-d", fifos=("go1",), annotations={"org.pier.notify.access": "init"},
         host_notify_access="main"),
    Case("13a", "ExecStart=exec --notify-socket own (foreground) into a running container, NotifyAccess=main",
         sh("s13.sh"), nj.exec_own, service=NOTIFY + (("NotifyAccess", "main"),), launch="exec",
         fifos=("go1", "go2"), annotations={"org.pier.notify.exec": "own"}),
    Case("13b", "ExecStart=exec -d --notify-socket own into a running container, NotifyAccess=main",
         sh("s13.sh"), nj.exec_own, service=NOTIFY + (("NotifyAccess", "main"),), launch="exec-d",
         fifos=("go1", "go2"), annotations={"org.pier.notify.exec": "own"}),
    Case("13c", "ExecStart=exec -d --notify-socket own: READY=1, then exit 3", sh("s13-exit.sh") + ["ready"],
         nj.exec_own_ends, service=NOTIFY + (("NotifyAccess", "main"),), launch="exec-d",
         annotations={"org.pier.notify.exec": "own"}),
    Case("13d", "ExecStart=exec -d --notify-socket own: exit 0 before READY", sh("s13-exit.sh"),
         nj.exec_own_ends, service=NOTIFY + (("NotifyAccess", "main"),), launch="exec-d",
         annotations={"org.pier.notify.exec": "own"}),
    Case("14a", "foreground run, NotifyAccess=main: a container process names itself MAINPID= (257: + MAINPIDFD)",
         sh("s14.sh"), nj.new_main_pid, service=NOTIFY + (("NotifyAccess", "main"),),
         fifos=("go1",)),
    Case("10a", "run -d while the manager is stopped: 200 STATUS + READY=1", sh("s10.sh"),
         nj.stuck_manager, service=NOTIFY + (("NotifyAccess", "main"),), launch="run-d",
         fifos=("go1",), alone=True),
    Case("15a", "run -d: the init exits before the manager reads MAINPID=: its pid stays taken",
         sh("s15.sh"), nj.reused_main_pid, service=NOTIFY + (("NotifyAccess", "main"),),
         launch="run-d", fifos=("go1",), min_systemd=257, alone=True),
    Case("11a", "podman quadlet .container, Notify=true, podman --runtime pier", sh("s11.sh"),
         nj.quadlet, service=(("TimeoutStopSec", "15s"),), launch="quadlet", fifos=("go1",),
         min_systemd=257, alone=True),
    Case("16a", "run -d, NotifyAccess=main, a hugetlb limit, no Delegate=: the container beside the unit",
         sh("s16.sh"), cj.limited, service=NOTIFY + (("NotifyAccess", "main"),), launch="run-d",
         fifos=("go1",), limit=HUGETLB),
    Case("16b", "run -d, NotifyAccess=main, a hugetlb limit, Delegate=yes: the container in the unit",
         sh("s16.sh"), cj.limited, service=NOTIFY + (("NotifyAccess", "main"),) + DELEGATE,
         launch="run-d", fifos=("go1",), limit=HUGETLB),
    Case("16c", "foreground run, a hugetlb limit, no Delegate=: the container beside the unit",
         sh("s16.sh"), cj.limited, fifos=("go1",), limit=HUGETLB),
    Case("16d", "foreground run, a hugetlb limit, Delegate=yes: the container in the unit, the runtime in a leaf",
         sh("s16.sh"), cj.limited, service=NOTIFY + DELEGATE, fifos=("go1",), limit=HUGETLB),
    Case("8a", "socket activation", ["/bin/sd-serve", "-n", "act"], fdj.socket_activation,
         socket=(("ListenStream", "{ctl}/act.sock"), ("FileDescriptorName", "act"))),
    Case("8b", "socket activation + --preserve-fds 1", ["/bin/sd-serve", "-n", "act", "-x", "4"],
         partial(fdj.socket_activation, extra=EXTRA), launch="run-preserve", preserve_fds=1,
         files={"extra0.txt": EXTRA + "\n"},
         socket=(("ListenStream", "{ctl}/act.sock"), ("FileDescriptorName", "act"))),
]

SCENARIOS = {
    "1": "Type=notify, foreground: READY, STATUS, stop",
    "2": "detached (run -d, create+start): MainPID, STATUS, stop",
    "3": "watchdog: pings, silence, WATCHDOG_USEC, trigger",
    "4": "reload: RELOADING=1 + MONOTONIC_USEC, READY=1 (253+: Type=notify-reload)",
    "5": "exit before READY fails promptly with its status (0: Result=protocol); READY then exit",
    "6": "EXTEND_TIMEOUT_USEC, STOPPING=1",
    "7": "fd store across restart",
    "8": "socket activation, --preserve-fds",
    "10": "a stopped manager: the container never waits, nothing lost, run -d returns after READY",
    "11": "podman 5 quadlet (Notify=true) with podman --runtime pier (Debian 13 root only)",
    "9": "exec'd processes notify through the container's relay (exec --notify-socket container)",
    "13": "a unit whose ExecStart is `pier exec --notify-socket own` into a running container",
    "14": "a container process names itself MAINPID=: translated, with its own pidfd on 257+",
    "15": "an init gone before the manager reads its MAINPID=: left a zombie, its pid is never reused (257)",
    "12": "who may notify: only the init's own datagrams with org.pier.notify.access=init",
    "16": "a limit in config.json, root runtime, cgroupfs: beside the unit, or in it with Delegate=yes",
}


def select(only, systemd=None):
    """Cases for --only values ("3" = all of scenario 3, "3b" = that case; all when empty) that
    the systemd major version `systemd` has what they need for (None: no version filter)."""
    usable = [c for c in CASES if systemd is None or systemd >= c.min_systemd]
    if not only:
        return usable
    picked = [c for c in usable if c.key in only or c.scenario in only]
    unknown = [o for o in only if not any(o in (c.key, c.scenario) for c in CASES)]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: "
                         + ", ".join(c.key for c in CASES))
    return picked
