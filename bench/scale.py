#!/usr/bin/env python3
"""Scale: does a runtime's cost per container grow with the containers already running?
(issue 14's "Scale" goal; stdlib only; started by `bench/run scale`, see README.md "Scale").

usage: scale.py --work DIR --exec BENCH_EXEC --bundles DIR --out JSON [--pier PATH]
  DIR/sleep is the busybox bundle whose init sleeps. Knobs: BENCH_SCALE_* (README.md).
1. In a row: BENCH_SCALE_N containers per runtime, each `create` + `start`ed (timed by
   bench-exec) and left running. The runtimes are interleaved in batches of BENCH_SCALE_BATCH,
   every cycle of batches in another order of the runtimes, so each runtime's k-th container
   meets the same machine (about k containers of every runtime running) and a slow moment hits
   all of them. Then all are killed, reaped, `delete -f`d (timed) and checked gone.
2. In parallel: BENCH_SCALE_PAR containers of one runtime created+started at once (a thread per
   container), BENCH_SCALE_PAR_ROUNDS rounds, runtimes alternated; each round torn down and
   checked before the next.
Prints the table on stdout, progress on stderr, writes the JSON record to --out.
"""

import itertools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import become_subreaper, env_int, parse_args, runtimes_for  # noqa: E402
from benchlib import report  # noqa: E402
from benchlib.runtimes import Exec, Runtime, base_env  # noqa: E402
from benchlib.scenarios import child_pids, kill_strays, reap_strays  # noqa: E402
from benchlib.store import Metric, Store  # noqa: E402


@dataclass
class Scale:
    """Knobs (BENCH_SCALE_*, BENCH_TIMEOUT) and what every phase needs."""

    n: int
    batch: int
    bucket: int
    par: int
    par_rounds: int
    timeout_s: int
    min_free_mib: int
    runtimes: list[Runtime]
    exe: Exec
    bundle: str
    logs: str
    store: Store
    left: dict[str, int] = field(default_factory=dict)  # runtime -> leftovers found

    def cid(self, rt: Runtime, what: str, i: int) -> str:
        return f"{prefix(rt)}{what}-{i}"

    def create_start(self, rt: Runtime, cid: str, exe: Exec | None = None) -> dict:
        """`create` then `start` in one bench-exec; its result ("error" when it failed)."""
        cmds = [rt.argv("create", "-b", self.bundle, cid), rt.argv("start", cid)]
        return (exe or self.exe).run(cmds, os.path.join(self.logs, f"{rt.name}.log"), base_env())


def prefix(rt: Runtime) -> str:
    """Every container id of this run and runtime starts with it (ids never collide across
    runtimes: the spec's default cgroup path is named after the id)."""
    return f"{rt.name}-{os.getpid()}-"


def orders(runtimes: list[Runtime]) -> list[tuple]:
    """Every order of the runtimes, arranged so that any len(runtimes) consecutive ones start
    with each runtime once (itertools gives them grouped by their first runtime)."""
    perms = list(itertools.permutations(runtimes))
    per_first = len(perms) // max(1, len(runtimes))
    return [perms[g * per_first + j] for j in range(per_first) for g in range(len(runtimes))] or [()]


def mem_available_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def record_start(sc: Scale, rt: Runtime, res: dict, running: list[str], cid: str) -> None:
    """Store one in-a-row create+start: its bucket of "already running", and the raw series."""
    k = len(running)
    if not res.get("ok"):
        sc.store.fail([f"row_{k // sc.bucket}"], rt.name, res.get("error", "failed"))
        rt.cleanup(cid, sc.timeout_s)
        return
    running.append(cid)
    sc.store.add(f"row_{k // sc.bucket}", rt.name, res["wall_ns"] / 1e6)
    sc.store.add_extra("row_series", rt.name, [k, *(s / 1e6 for s in res["step_ns"])])


def in_a_row(sc: Scale, running: dict[str, list[str]]) -> None:
    """Phase 1's creation: batches of sc.batch per runtime, runtimes' order cycled."""
    cycle = orders(sc.runtimes)
    t0 = time.monotonic()
    for b, first in enumerate(range(0, sc.n, sc.batch)):
        if (free := mem_available_mib()) < sc.min_free_mib:
            sc.store.add_extra("warnings", "all", f"stopped at {first}: MemAvailable {free} MiB")
            break
        for rt in cycle[b % len(cycle)]:
            for i in range(first, min(first + sc.batch, sc.n)):
                cid = sc.cid(rt, "row", i)
                record_start(sc, rt, sc.create_start(rt, cid), running[rt.name], cid)
        if b % 10 == 9:
            counts = ", ".join(f"{k} {len(v)}" for k, v in running.items())
            print(f"  in a row: {counts} running ({time.monotonic() - t0:.0f} s)", file=sys.stderr)


def warm_up(sc: Scale) -> None:
    """One untimed create+start per runtime (torn down); a runtime that fails it is dropped."""
    for rt in list(sc.runtimes):
        res = sc.create_start(rt, cid := sc.cid(rt, "warm", 0))
        teardown(sc, {rt.name: [cid]}, None)
        if not res.get("ok"):
            sc.store.skip(["row_0"], rt.name, f"warm-up failed: {res.get('error')}")
            sc.runtimes.remove(rt)


def summarize_row(sc: Scale) -> None:
    """With every container still running: `list` (timed, its "running" lines counted); then
    per runtime the total and the slope (median of the last bucket / median of the first)."""
    last = (sc.n - 1) // sc.bucket
    for rt in sc.runtimes:
        log = os.path.join(sc.logs, f"{rt.name}-list.log")
        open(log, "w").close()
        res = sc.exe.run([rt.argv("list")], log, base_env())
        if res.get("ok"):
            sc.store.add("row_list_ms", rt.name, res["wall_ns"] / 1e6)
            with open(log) as f:
                sc.store.add("row_listed", rt.name, sum(" running " in line for line in f))
        series = sc.store.extra.get("row_series", {}).get(rt.name, [])
        sc.store.add("row_total_s", rt.name, sum(c + s for _, c, s in series) / 1e3)
        first_med, last_med = sc.store.median("row_0", rt.name), sc.store.median(f"row_{last}", rt.name)
        if first_med and last_med:
            sc.store.add("row_slope", rt.name, last_med / first_med)


def wait_children_gone(timeout_s: float) -> list[int]:
    """Reap our children (killed container inits came to us) until none is left; the rest."""
    deadline = time.monotonic() + timeout_s
    while True:
        reap_strays()
        left = child_pids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def teardown(sc: Scale, sets: dict[str, list[str]], key: str | None) -> None:
    """`kill KILL` every container, reap the inits, `delete -f` each (its time under `key`),
    then check that nothing of them is left."""
    by_name = {rt.name: rt for rt in sc.runtimes}
    for name, cids in sets.items():
        for cid in cids:
            sc.exe.run([by_name[name].argv("kill", cid, "KILL")], os.devnull, base_env())
    if left := wait_children_gone(sc.timeout_s):
        sc.store.add_extra("warnings", "all", f"processes alive {sc.timeout_s} s after kill: {left[:10]}")
    for name, cids in sets.items():
        rt = by_name[name]
        for cid in cids:
            res = sc.exe.run([rt.argv("delete", "-f", cid)], os.devnull, base_env())
            if key and res.get("ok"):
                sc.store.add(key, name, res["wall_ns"] / 1e6)
            elif not res.get("ok"):
                sc.store.add_extra("warnings", name, f"delete -f {cid}: {res.get('error')}")
        check_gone(sc, rt)


def check_gone(sc: Scale, rt: Runtime) -> None:
    """Count what is left of this runtime's containers: state dirs in its root, cgroup dirs
    named after an id (any hierarchy, any depth), processes in such a cgroup."""
    pre = prefix(rt)
    dirs = [e for e in os.listdir(rt.root) if e.startswith(pre)] if os.path.isdir(rt.root) else []
    cgroups = [os.path.join(d, s) for d, subs, _ in os.walk("/sys/fs/cgroup") for s in subs if s.startswith(pre)]
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if pre in f.read():
                    procs.append(int(pid))
        except OSError:
            pass
    sc.left[rt.name] = sc.left.get(rt.name, 0) + len(dirs) + len(cgroups) + len(procs)
    if dirs or cgroups or procs:
        sc.store.add_extra("leftovers", rt.name, {"state_dirs": dirs[:20], "cgroups": cgroups[:20], "pids": procs[:20]})


def parallel_round(sc: Scale, rt: Runtime, r: int) -> None:
    """sc.par containers of `rt` created+started at once; total = first spawn -> last exit
    (bench-exec's CLOCK_MONOTONIC), per container its own wall time; then torn down."""
    cids = [sc.cid(rt, f"par{r}", j) for j in range(sc.par)]
    slow = Exec(sc.exe.helper, sc.timeout_s * 3)  # 100 at once on 2 cores: seconds each
    with ThreadPoolExecutor(sc.par) as pool:
        results = list(pool.map(lambda cid: sc.create_start(rt, cid, slow), cids))
    ok = [res for res in results if res.get("ok")]
    for res in results:
        if not res.get("ok"):
            sc.store.fail(["par_ms"], rt.name, res.get("error", "failed"))
    if ok:
        t0 = min(res["t_start_ns"] for res in ok)
        sc.store.add("par_total_s", rt.name, (max(res["t_end_ns"] for res in ok) - t0) / 1e9)
        sc.store.add_extra("par_stagger_ms", rt.name, (max(res["t_start_ns"] for res in ok) - t0) / 1e6)
        for res in ok:
            sc.store.add("par_ms", rt.name, res["wall_ns"] / 1e6)
    sc.store.add("par_failed", rt.name, len(results) - len(ok))
    teardown(sc, {rt.name: cids}, None)


def in_parallel(sc: Scale) -> None:
    cycle = orders(sc.runtimes)
    for r in range(sc.par_rounds):
        for rt in cycle[r % len(cycle)]:
            t0 = time.monotonic()
            parallel_round(sc, rt, r)
            print(f"  in parallel: round {r} {rt.name} ({time.monotonic() - t0:.1f} s with teardown)", file=sys.stderr)


def rows(sc: Scale) -> list[Metric]:
    """The table rows: one per bucket of "already running", then the summaries."""
    out = [Metric(f"row_{k}", f"create+start, {k * sc.bucket}-{min(sc.n, (k + 1) * sc.bucket) - 1} running", "ms")
           for k in range((sc.n + sc.bucket - 1) // sc.bucket)]
    return out + [
        Metric("row_slope", "slope: last bucket / first", "x"),
        Metric("row_total_s", f"{sc.n} in a row: sum", "s"),
        Metric("row_listed", f"list: running, of {sc.n}", "n"),
        Metric("row_list_ms", f"list, {sc.n} running", "ms"),
        Metric("row_delete_ms", f"delete -f (killed), {sc.n} running", "ms"),
        Metric("par_total_s", f"{sc.par} in parallel: total", "s"),
        Metric("par_ms", f"{sc.par} in parallel: each", "ms"),
        Metric("par_failed", f"{sc.par} in parallel: failed", "n"),
        Metric("leftovers", "left after delete (dirs,cgroups,pids)", "n"),
    ]


def measure(sc: Scale) -> dict:
    """Both phases; whatever happens, every container is force-deleted at the end."""
    mem = {"before_mib": mem_available_mib()}
    running = {rt.name: [] for rt in sc.runtimes}
    try:
        warm_up(sc)
        in_a_row(sc, running)
        mem["all_running_mib"] = mem_available_mib()
        summarize_row(sc)
        teardown(sc, running, "row_delete_ms")
        running = {}
        mem["after_row_mib"] = mem_available_mib()
        in_parallel(sc)
    finally:
        if running:  # failed half-way: kill first, or runc's delete -f waits on our zombies
            teardown(sc, running, None)
        for rt in sc.runtimes:
            if left := rt.sweep(sc.timeout_s):
                print(f"bench: {rt.name}: removed leftover containers {left[:5]}...", file=sys.stderr)
            sc.store.add("leftovers", rt.name, sc.left.get(rt.name, 0))
        kill_strays()
    return mem


def scale_from_env(a, runtimes: list[Runtime]) -> Scale:
    n = env_int("BENCH_SCALE_N", 1000)
    timeout_s = env_int("BENCH_TIMEOUT", 10)
    logs = os.path.join(a.work, "logs")
    os.makedirs(logs, exist_ok=True)
    return Scale(n=n, batch=env_int("BENCH_SCALE_BATCH", 10), bucket=env_int("BENCH_SCALE_BUCKET", max(1, n // 10)),
                 par=env_int("BENCH_SCALE_PAR", 100), par_rounds=env_int("BENCH_SCALE_PAR_ROUNDS", 4),
                 timeout_s=timeout_s, min_free_mib=env_int("BENCH_SCALE_MIN_FREE_MIB", 2048),
                 runtimes=[rt for rt in runtimes if rt.present], exe=Exec(getattr(a, "exec"), timeout_s),
                 bundle=os.path.join(a.bundles, "sleep"), logs=logs, store=Store())


def main() -> int:
    a = parse_args(__doc__)
    become_subreaper()
    runtimes = runtimes_for(a.work, a.pier)
    sc = scale_from_env(a, runtimes)
    t0 = time.monotonic()
    mem = measure(sc)
    table_rows = rows(sc)
    print(report.table(sc.store, table_rows))
    for line in report.notes(sc.store):
        print(line, file=sys.stderr)
    conf = {k: v for k, v in vars(sc).items() if isinstance(v, int)}
    conf.update(elapsed_s=round(time.monotonic() - t0, 1), mem_available=mem)
    data = report.record(sc.store, table_rows, runtimes, conf)
    data.pop("sanity")
    report.write_json(a.out, data)
    print(f"bench: wrote {a.out} ({conf['elapsed_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
