#!/usr/bin/env python3
"""pier vs crun vs runc, side by side in one run (stdlib only; started by bench/run).

usage: bench.py --work DIR --exec BENCH_EXEC --bundles DIR --out JSON [--pier PATH]
  DIR/{true,ready,notify,relay} are the bundles built by bench/run; the runtimes' state roots and
  logs go under --work. Knobs come from BENCH_* variables (README.md). Prints the table on
  stdout, progress on stderr, writes the JSON record to --out.
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import report, scenarios  # noqa: E402
from benchlib.listener import NotifyListener  # noqa: E402
from benchlib.runtimes import Exec, Runtime, base_env, probe  # noqa: E402
from benchlib.store import Store  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
SCENARIOS = {
    "run": scenarios.scenario_run,
    "csd": scenarios.scenario_create_start_delete,
    "nrun": scenarios.scenario_run_ready,
    "ncsd": scenarios.scenario_csd_ready,
    "seq": scenarios.scenario_sequential,
    "detach": scenarios.scenario_detach_ready,
    "relay": scenarios.scenario_relay,
}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not an integer")


def config_from_env() -> scenarios.Config:
    n = env_int("BENCH_N", 50)
    return scenarios.Config(
        n=n, seq=env_int("BENCH_SEQ", 100), seq_n=env_int("BENCH_SEQ_N", max(3, n // 10)),
        lat_count=env_int("BENCH_LAT_COUNT", 20), lat_gap_us=env_int("BENCH_LAT_GAP_US", 1000),
        burst=env_int("BENCH_BURST", 2000), timeout_s=env_int("BENCH_TIMEOUT", 10))


def become_subreaper() -> None:
    """Orphans the helper leaves behind (e.g. after a timeout) come to us, not to PID 1 (which
    does not reap on this machine); scenarios.reap_strays() collects them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"bench: prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}", file=sys.stderr)


def hyperfine(ctx: scenarios.Ctx, out_dir: str) -> dict | None:
    """Optional cross-check (BENCH_HYPERFINE=1): hyperfine's `run` timings, runtimes NOT
    alternated (hyperfine runs each command's series in turn); reported apart from the table."""
    cmds, names = [], []
    for rt in ctx.runtimes:
        cid = ctx.cid(rt, "hf", 0)
        run = " ".join(rt.argv("run", "-b", ctx.bundles["true"], cid))
        prepare = " ".join(rt.argv("delete", "-f", cid)) + " >/dev/null 2>&1 || true"
        cmds += ["-n", rt.name, "--prepare", prepare, run]
        names.append(rt.name)
    path = os.path.join(out_dir, "hyperfine-run.json")
    argv = ["hyperfine", "--style", "basic", "--warmup", "2", "--runs", str(ctx.cfg.n),
            "--export-json", path, *cmds]
    try:
        subprocess.run(argv, env=base_env(), check=True, timeout=600, stdout=sys.stderr)
        with open(path) as f:
            res = json.load(f)["results"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
        print(f"bench: hyperfine cross-check failed: {err}", file=sys.stderr)
        return None
    return {r["command"]: {"mean_ms": r["mean"] * 1e3, "median_ms": r["median"] * 1e3,
                           "stddev_ms": r["stddev"] * 1e3} for r in res}


def runtimes_for(work: str, pier: str) -> list[Runtime]:
    """pier, crun (Debian 12), crun-1.21 (Debian 13, CRUN2), runc in table order; each with
    its own root under `work`."""
    pier_root = os.path.join(work, "root-pier")
    runtimes = [
        probe("pier", pier, pier_root) if pier
        else Runtime("pier", None, pier_root, why="no pier binary (not buildable yet? PIER=/path)"),
        probe("crun", os.environ.get("CRUN", "crun"), os.path.join(work, "root-crun")),
        probe("crun-1.21", os.environ.get("CRUN2") or None, os.path.join(work, "root-crun2"))
        if os.environ.get("CRUN2") else Runtime("crun-1.21", None, "", why="CRUN2 unset (bench/crun-trixie.sh)"),
        probe("runc", os.environ.get("RUNC", "runc"), os.path.join(work, "root-runc")),
    ]
    for rt in runtimes:
        print(f"bench: {rt.name}: {rt.binary or 'n/a (' + rt.why + ')'} {rt.version}", file=sys.stderr)
    return runtimes


def measure(ctx: scenarios.Ctx, only: list[str], out_dir: str) -> dict | None:
    """Run the chosen scenarios (and the hyperfine cross-check); always clean up after."""
    try:
        for name, fn in SCENARIOS.items():
            if ctx.runtimes and (not only or name in only):
                fn(ctx)
        if os.environ.get("BENCH_HYPERFINE") == "1" and ctx.runtimes:
            return hyperfine(ctx, out_dir)
        return None
    finally:
        ctx.listener.close()
        for rt in ctx.runtimes:
            if left := rt.sweep(ctx.cfg.timeout_s):
                print(f"bench: {rt.name}: removed leftover containers {left}", file=sys.stderr)
        scenarios.kill_strays()


def parse_args(doc):
    """The flags bench/run passes to bench.py and scale.py: --work, --exec, --bundles, --out
    (required) and --pier (a binary; "" builds none)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("--work", "--exec", "--bundles", "--out"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--pier", default="")
    return ap.parse_args()


def main() -> int:
    a = parse_args(__doc__)
    cfg = config_from_env()
    only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
    if unknown := [s for s in only if s not in SCENARIOS]:
        sys.exit(f"bench: BENCH_ONLY: unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    become_subreaper()
    runtimes = runtimes_for(a.work, a.pier)
    logs = os.path.join(a.work, "logs")
    os.makedirs(logs, exist_ok=True)
    store = Store()
    ctx = scenarios.Ctx(cfg, [rt for rt in runtimes if rt.present], Exec(getattr(a, "exec"), cfg.timeout_s),
                        {k: os.path.join(a.bundles, k) for k in ("true", "ready", "notify", "relay")},
                        NotifyListener(os.path.join(a.work, "notify.sock")), logs, store)
    t0 = time.monotonic()
    cross = measure(ctx, only, os.path.dirname(a.out))
    rows = report.metrics(cfg.seq)
    print(report.table(store, rows))
    print(report.sanity_line(report.sanity(store)))
    if cross:
        print("hyperfine cross-check (not alternated), run median ms: "
              + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in cross.items()))
    for line in report.notes(store):
        print(line, file=sys.stderr)
    conf = dict(vars(cfg), only=only or None, elapsed_s=round(time.monotonic() - t0, 1))
    data = report.record(store, rows, runtimes, conf)
    data["hyperfine"] = cross
    report.write_json(a.out, data)
    print(f"bench: wrote {a.out} ({conf['elapsed_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
