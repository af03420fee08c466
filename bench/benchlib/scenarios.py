"""The measurements. Each scenario takes one sample per runtime per round, alternating the
runtimes within a round, so a slow phase of this shared machine hits every runtime alike. The
rounds cycle through every order of the runtimes (ABC, ACB, BAC, ...): each runtime then
follows each other one equally often. A plain rotation (ABC, BCA, CAB) does not: there A
follows C twice as often as B does, and a runtime's aftermath (the kernel tearing down its
namespaces and cgroups) slows whoever comes next; an A/A run (PIER=crun) showed a 1.4x bias.

A sample function returns {metric key: value}; a value of None means "not applicable" (e.g. a
runtime that does not relay X_* keys); a failure raises SampleError.
"""

import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from .listener import NotifyListener
from .runtimes import Exec, Runtime, base_env
from .store import Store


class SampleError(Exception):
    """One invocation failed; the message says how."""


@dataclass
class Config:
    """Knobs, from the BENCH_* environment (see README.md)."""

    n: int = 50  # rounds per scenario
    seq: int = 100  # runs per sample of the sequential scenario
    seq_n: int = 5  # samples of the sequential scenario
    lat_count: int = 20  # spaced X_* datagrams per relay sample
    lat_gap_us: int = 1000
    burst: int = 2000  # back-to-back X_* datagrams per relay sample
    timeout_s: int = 10  # per runtime invocation
    max_fail: int = 3  # consecutive failures before a runtime is dropped from a scenario


@dataclass
class Ctx:
    """What every scenario needs."""

    cfg: Config
    runtimes: list[Runtime]
    exe: Exec
    bundles: dict[str, str]  # "true", "ready", "notify", "relay" -> bundle dir
    listener: NotifyListener
    logs: str  # directory for per-invocation output
    store: Store

    def log(self, rt: Runtime, what: str) -> str:
        path = os.path.join(self.logs, f"{rt.name}-{what}.log")
        open(path, "w").close()
        return path

    def cid(self, rt: Runtime, what: str, i) -> str:
        """Container id unique per runtime, bench run and iteration: with the spec's default
        cgroup path (/<id>), a shared id would make runtimes share (and race on) a cgroup."""
        return f"{rt.name}-{os.getpid()}-{what}-{i}"

    def notify_env(self) -> dict[str, str]:
        return dict(base_env(), NOTIFY_SOCKET=self.listener.path)


def alternate(ctx: Ctx, name: str, keys: list[str], rounds: int, sample) -> None:
    """Warm up each runtime once, then `rounds` rounds of sample(rt, i), order rotated."""
    t0 = time.monotonic()
    active = []
    for rt in ctx.runtimes:
        try:
            sample(rt, "w")
            active.append(rt)
        except SampleError as err:
            ctx.store.skip(keys, rt.name, f"warm-up failed: {err}")
            print(f"  {name}: {rt.name} skipped, warm-up failed: {err}", file=sys.stderr)
    failed_in_row = {rt.name: 0 for rt in active}
    orders = list(itertools.permutations(active)) or [()]
    for i in range(rounds):
        for rt in orders[i % len(orders)]:
            if failed_in_row[rt.name] >= ctx.cfg.max_fail:
                continue
            try:
                for key, value in sample(rt, i).items():
                    ctx.store.add(key, rt.name, value)
                failed_in_row[rt.name] = 0
            except SampleError as err:
                ctx.store.fail(keys, rt.name, str(err))
                failed_in_row[rt.name] += 1
                if failed_in_row[rt.name] == ctx.cfg.max_fail:
                    ctx.store.skip(keys, rt.name, f"dropped after {ctx.cfg.max_fail} failures in a row: {err}")
            reap_strays()
    print(f"  {name}: {rounds} rounds x {len(active)} runtimes in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)


def reap_strays() -> None:
    """Reap orphans reparented to us (we are a child subreaper); never blocks."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def child_pids() -> list[int]:
    """Our children (orphans that came to us as a subreaper, and our own), from /proc."""
    me, out = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == me:
            out.append(int(entry))
    return out


def kill_strays() -> None:
    """SIGKILL and reap every remaining child (orphans that came to us), at the very end."""
    for pid in child_pids():
        print(f"bench: killing leftover process {pid}", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    reap_strays()


def _checked(ctx: Ctx, rt: Runtime, res: dict, cid: str) -> dict:
    if not res.get("ok"):
        rt.cleanup(cid, ctx.cfg.timeout_s)
        raise SampleError(res.get("error", "failed"))
    return res


def _expect_ready(ctx: Ctx, bundle: str, mark: int) -> None:
    """The READY=1 bundle's datagram must have reached our listener (else the sample measured
    something other than a relayed READY=1)."""
    if bundle == "ready" and ctx.listener.wait_for(mark, lambda d: d.is_ready(), 2.0) is None:
        raise SampleError("no READY=1 reached the host listener")


def _run_sample(ctx: Ctx, bundle: str, env: dict[str, str], what: str, keys: tuple[str, str, str]):
    """One `run -b bundle`: {wall key: ms, CPU key: ms (whole tree), RSS key: MiB}."""

    def sample(rt: Runtime, i):
        cid = ctx.cid(rt, what, i)
        mark = ctx.listener.mark()
        res = ctx.exe.run([rt.argv("run", "-b", ctx.bundles[bundle], cid)], ctx.log(rt, what), env)
        _checked(ctx, rt, res, cid)
        rt.cleanup(cid, ctx.cfg.timeout_s)
        _expect_ready(ctx, bundle, mark)
        return dict(zip(keys, (res["wall_ns"] / 1e6, (res["user_us"] + res["sys_us"]) / 1e3,
                               res["maxrss_kb"] / 1024)))

    return sample


def _csd_sample(ctx: Ctx, bundle: str, env: dict[str, str], what: str, keys: tuple[str, str]):
    """create, start, delete -f of one container in one helper invocation: {wall key: ms,
    CPU key: ms of the three commands' trees}."""

    def sample(rt: Runtime, i):
        cid = ctx.cid(rt, what, i)
        cmds = [rt.argv("create", "-b", ctx.bundles[bundle], cid), rt.argv("start", cid),
                rt.argv("delete", "-f", cid)]
        mark = ctx.listener.mark()
        res = _checked(ctx, rt, ctx.exe.run(cmds, ctx.log(rt, what), env), cid)
        _expect_ready(ctx, bundle, mark)
        if i != "w":
            ctx.store.add_extra(f"{what}_steps_ms", rt.name, [s / 1e6 for s in res["step_ns"]])
        return dict(zip(keys, (res["wall_ns"] / 1e6, (res["user_us"] + res["sys_us"]) / 1e3)))

    return sample


def scenario_run(ctx: Ctx) -> None:
    """`run` of /bin/true: wall time, CPU of the whole tree, peak RSS (one invocation each)."""
    keys = ("run_ms", "cpu_ms", "rss_mib")
    alternate(ctx, "run", list(keys), ctx.cfg.n, _run_sample(ctx, "true", base_env(), "run", keys))


def scenario_create_start_delete(ctx: Ctx) -> None:
    """create, start, delete -f of /bin/true, in one helper invocation."""
    keys = ("csd_ms", "csd_cpu_ms")
    alternate(ctx, "create+start+delete", list(keys), ctx.cfg.n,
              _csd_sample(ctx, "true", base_env(), "csd", keys))


def scenario_run_ready(ctx: Ctx) -> None:
    """`run` with NOTIFY_SOCKET of a service that sends READY=1 and exits (every runtime
    relays READY=1 to our listener before the service exits)."""
    keys = ("nrun_ms", "ncpu_ms", "nrss_mib")
    alternate(ctx, "run, READY=1 service", list(keys), ctx.cfg.n,
              _run_sample(ctx, "ready", ctx.notify_env(), "nrun", keys))


def scenario_csd_ready(ctx: Ctx) -> None:
    """create+start+delete with NOTIFY_SOCKET of the READY=1 service."""
    keys = ("ncsd_ms", "ncsd_cpu_ms")
    alternate(ctx, "create+start+delete, READY=1 service", list(keys), ctx.cfg.n,
              _csd_sample(ctx, "ready", ctx.notify_env(), "ncsd", keys))


def scenario_sequential(ctx: Ctx) -> None:
    """cfg.seq sequential `run`s in one helper invocation (no Python between runs)."""
    seq = ctx.cfg.seq

    def sample(rt: Runtime, i):
        res = ctx.exe.run([rt.argv("run", "-b", ctx.bundles["true"], ctx.cid(rt, f"seq{i}", "{}"))],
                          ctx.log(rt, "seq"), base_env(), repeat=1 if i == "w" else seq)
        if not res.get("ok"):
            rt.sweep_containers(ctx.cfg.timeout_s)
            raise SampleError(res.get("error", "failed"))
        if i == "w":
            return {}
        return {"seq_s": res["wall_ns"] / 1e9, "seq_cpu_ms": (res["user_us"] + res["sys_us"]) / 1e3 / seq}

    alternate(ctx, f"{seq} sequential runs", ["seq_s", "seq_cpu_ms"], ctx.cfg.seq_n, sample)


_SEND_RE = re.compile(r"sd-notify-send op=send t=(\d+) rc=(-?\d+)")
_BURST_RE = re.compile(r"sd-notify-send op=burst tag=(\w+) sent=(\d+) errors=(\d+) t_first=(\d+)")


def _log_text(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def _wait_log(path: str, pattern: re.Pattern, max_s: float):
    """First match of pattern in the log, polling up to max_s: the sender logs its send time
    right *after* sendmsg(2) (logging before would add the write to the measured hop), so a
    fast relay can deliver READY before the line is in the file."""
    deadline = time.monotonic() + max_s
    while True:
        found = pattern.search(_log_text(path))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.001)


def scenario_detach_ready(ctx: Ctx) -> None:
    """`run -d` with NOTIFY_SOCKET: the container sends READY=1 then sleeps; times from spawn
    to the runtime's return and to the host listener's receipt of READY, and the READY hop
    (container's send timestamp -> receipt)."""

    def sample(rt: Runtime, i):
        cid, log = ctx.cid(rt, "det", i), ctx.log(rt, "detach")
        mark = ctx.listener.mark()
        res, helper = ctx.exe.start([rt.argv("run", "-d", "-b", ctx.bundles["notify"], cid)], log,
                                    ctx.notify_env(), linger_s=ctx.cfg.timeout_s * 3)
        try:
            _checked(ctx, rt, res, cid)
            ready = ctx.listener.wait_for(mark, lambda d: d.is_ready(), 5.0)
            sent = _wait_log(log, _SEND_RE, 2.0)
        finally:
            rt.cleanup(cid, ctx.cfg.timeout_s)
            if not _finish(helper, ctx.cfg.timeout_s):
                ctx.store.add_extra("warnings", rt.name, f"{cid}: processes outlived delete -f by {ctx.cfg.timeout_s} s")
        if ready is None:
            raise SampleError("no READY=1 reached the host listener within 5 s")
        if sent is None or int(sent.group(2)) < 0:
            raise SampleError(f"container did not send READY: {_log_text(log)[-200:]!r}")
        t0 = res["t_start_ns"]
        return {"detach_return_ms": res["wall_ns"] / 1e6, "detach_ready_ms": (ready.t_ns - t0) / 1e6,
                "ready_hop_ms": (ready.t_ns - int(sent.group(1))) / 1e6}

    alternate(ctx, "run -d to READY", ["detach_return_ms", "detach_ready_ms", "ready_hop_ms"],
              ctx.cfg.n, sample)


def _finish(helper, timeout_s: int) -> bool:
    """Wait for a lingering bench-exec, which exits once every orphan it adopted (the container,
    a detached relay) is gone; kill it after timeout_s and return False."""
    try:
        helper.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()
        return False


def scenario_relay(ctx: Ctx) -> None:
    """Foreground `run` whose container sends READY=1, lat_count X_* datagrams lat_gap_us
    apart, then a burst of X_* datagrams back to back; the host listener timestamps each."""

    def sample(rt: Runtime, i):
        cid, log = ctx.cid(rt, "relay", i), ctx.log(rt, "relay")
        mark = ctx.listener.mark()
        res = ctx.exe.run([rt.argv("run", "-b", ctx.bundles["relay"], cid)], log, ctx.notify_env())
        _checked(ctx, rt, res, cid)
        rt.cleanup(cid, ctx.cfg.timeout_s)
        ctx.listener.wait_quiet(0.05, 2.0)
        return relay_figures(ctx.listener.since(mark), _log_text(log))

    alternate(ctx, "relay", ["relay_hop_ms", "relay_tput", "relay_delivered"], ctx.cfg.n, sample)


def relay_figures(dgrams, log: str) -> dict:
    """X_* hop median (ms), burst throughput (datagrams/s, first send -> last receipt) and the
    share of sent X_* datagrams that arrived (%); None where nothing was relayed."""
    bursts = {m.group(1): (int(m.group(2)), int(m.group(4))) for m in _BURST_RE.finditer(log)}
    if set(bursts) != {"lat", "tput"}:
        raise SampleError(f"container did not run both bursts: {log[-200:]!r}")
    by_tag: dict[str, list] = {"lat": [], "tput": []}
    for d in dgrams:
        f = d.fields()
        if f.get("X_TAG") in by_tag and f.get("X_T", "").isdigit():
            by_tag[f["X_TAG"]].append((d.t_ns, int(f["X_T"])))
    sent = bursts["lat"][0] + bursts["tput"][0]
    got = len(by_tag["lat"]) + len(by_tag["tput"])
    hop = statistics.median(r - s for r, s in by_tag["lat"]) / 1e6 if by_tag["lat"] else None
    tput = None
    if len(by_tag["tput"]) >= 2:
        span = by_tag["tput"][-1][0] - bursts["tput"][1]
        tput = len(by_tag["tput"]) / (span / 1e9) if span > 0 else None
    return {"relay_hop_ms": hop, "relay_tput": tput,
            "relay_delivered": 100.0 * got / sent if sent else None}
