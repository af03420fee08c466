#!/usr/bin/env python3
"""pier's real-systemd suite: for each systemd under test, boot ONE systemd (PID 1 in
systemd-nspawn), run every scenario as units whose ExecStart runs the runtime under test, judge
them with `systemctl show` and `journalctl`, power off.

usage: run.py [--runtime PATH|none] [--systemd host,debian13] [--only N[,N..]] [--jobs N]
              [--deadline S] [--keep] [--print-units]
  --runtime PATH  the runtime binary (bind-mounted into the machine); default: pier from
                  $CARGO_TARGET_DIR or target/{release,debug}. "none" = host mode: each unit
                  runs its payload directly, without a container (validates scenarios + judging)
  --systemd       which systemds, one after the other (default: both): "host" boots the host's
                  own /usr (Debian 12: systemd 252), "debian13" a Debian 13 root (systemd 257)
                  that mmdebstrap builds into /var/cache/pier-tests/trixie when missing
  --only          scenarios ("3") or cases ("3b"), comma-separated or repeated
  --jobs          cases judged at once (default: all; they use separate units)
  --deadline      seconds any single expected state may take to appear (default 10)
  --keep          keep the work dir (bundles, units, console log) for debugging
  --print-units   print the units the selected cases install, and exit
Prints, per systemd, one row per step (scenario, expected, seen, seconds), a line per scenario
and the wall time; then a last line "N passed, M failed" counting scenarios of all systemds.
Exit status 0 only when every scenario passed under every systemd.
Needs root, systemd-container, busybox-static, gcc + libc6-dev (sd-serve), cargo (sd-notify-send),
mmdebstrap (see docs/systemd.md).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdtest import build, cases, debroot, units  # noqa: E402
from sdtest.judge import Judge, Row, StepFailed  # noqa: E402
from sdtest.machine import Machine, MachineGone  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def default_runtime():
    """pier from $CARGO_TARGET_DIR or REPO/target, release before debug; None when not built."""
    roots = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    roots.append(REPO / "target")
    for root in roots:
        for profile in ("release", "debug"):
            # .cargo/config.toml names the target, so cargo puts binaries below it
            for base in (root / "x86_64-unknown-linux-gnu", root):
                if (base / profile / "pier").is_file():
                    return str(base / profile / "pier")
    return None


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", default=None, help='runtime binary, or "none" for host mode')
    ap.add_argument("--systemd", default="host,debian13", help="host, debian13 or both (default)")
    ap.add_argument("--only", action="append", default=[], help="scenarios/cases, e.g. 1,3b")
    ap.add_argument("--jobs", type=int, default=0, help="cases judged at once (0 = all)")
    ap.add_argument("--deadline", type=float, default=10.0, help="seconds per expected state")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--print-units", action="store_true", help="print the units and exit")
    a = ap.parse_args(argv)
    a.only = [o.strip() for item in a.only for o in item.split(",") if o.strip()]
    a.systemd = [t.strip() for t in a.systemd.split(",") if t.strip()]
    bad = [t for t in a.systemd if t not in SYSTEMDS]
    if bad or not a.systemd:
        ap.error(f"--systemd: unknown {', '.join(bad) or '(empty)'}; known: {', '.join(SYSTEMDS)}")
    if a.runtime is None and a.print_units:
        a.runtime = units.RUNTIME_IN_MACHINE
    if a.runtime is None:
        a.runtime = default_runtime()
        if a.runtime is None:
            ap.error("no pier binary under target/: build it (cargo build --release) or pass --runtime")
    if a.runtime != "none" and not a.print_units:
        a.runtime = os.path.realpath(a.runtime)
        if not os.access(a.runtime, os.X_OK):
            ap.error(f"--runtime {a.runtime}: not an executable file")
    return a


def judge_case(machine, case, mode, deadline_s):
    """Run one case's judge; always returns its rows (an error becomes a failed row)."""
    j = Judge(machine, case, mode, deadline_s)
    try:
        case.judge(j)
    except StepFailed:
        try:  # what the unit logged, for the report's tail
            lines = [*j.queue, *machine.journal(j.unit).splitlines()[-6:]]
            j.rows[-1].context = tuple(line[:200] for line in lines)
        except MachineGone:
            pass
    except MachineGone as exc:
        j.rows.append(Row(case.key, "systemd reachable", str(exc), 0.0, False))
    except Exception as exc:  # a bug in the suite must still show up in the table
        j.rows.append(Row(case.key, "judge runs", f"{type(exc).__name__}: {exc}", 0.0, False))
    finally:
        j.cleanup()
    return j.rows


def run_cases(machine, selected, mode, a):
    """Judge the cases (in parallel up to --jobs), then the `alone` ones one by one (they stop
    the manager all cases share); returns {key: rows}."""
    shared = [c for c in selected if not c.alone]
    results = _run_parallel(machine, shared, mode, a) if shared else {}
    for case in (c for c in selected if c.alone):
        results[case.key] = judge_case(machine, case, mode, a.deadline)
    return results


def _run_parallel(machine, selected, mode, a):
    """Judge the cases in parallel up to --jobs; returns {key: rows}."""
    jobs = a.jobs if a.jobs > 0 else len(selected)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="case")
    futures = {pool.submit(judge_case, machine, c, mode, a.deadline): c.key for c in selected}
    try:
        pending = set(futures)
        while pending:  # short waits so that Ctrl-C is seen at once
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {key: f.result() for f, key in futures.items() if f.done() and not f.cancelled()}


def print_report(label, selected, results, timings, health=""):
    """The table, a line per scenario and the wall time; returns {scenario: passed}."""
    rows = [r for case in selected
            for r in results.get(case.key, [Row(case.key, "case ran", "not run", 0.0, False)])]
    w_exp = max([len("expected")] + [len(r.expected) for r in rows])
    w_seen = max([len("seen")] + [len(r.seen) for r in rows])
    print(f"\n{label}\n{'scen':<5}{'ok':<5}{'expected':<{w_exp}}  {'seen':<{w_seen}}  {'seconds':>7}")
    for r in rows:
        print(f"{r.key:<5}{'ok' if r.ok else 'FAIL':<5}{r.expected:<{w_exp}}  {r.seen:<{w_seen}}  {r.seconds:>7.2f}")
    verdict = {}
    for case in selected:
        rows = results.get(case.key, [])
        ok = bool(rows) and all(r.ok for r in rows)
        verdict[case.scenario] = verdict.get(case.scenario, True) and ok
    print()
    for scen, ok in verdict.items():
        print(f"scenario {scen}: {'passed' if ok else 'FAILED'}  ({cases.SCENARIOS[scen]})")
    print("wall time: {:.2f} s ({})".format(
        timings["total"], ", ".join(f"{k} {v:.2f} s" for k, v in timings.items() if k != "total")))
    if health:
        print(f"machine after the cases: {health}")
    return verdict


def print_failing_rows(reports, limit=20, width=240):
    """Each failing row again, after the summary, one line each and cut to `width` characters:
    a CI log that keeps only its end still says which step failed and what it saw."""
    rows = [(sd.version, r) for sd, _, results, _ in reports
            for case_rows in results.values() for r in case_rows if not r.ok]
    if rows:
        print("failing steps:")
    for version, r in rows[:limit]:
        print(f"  {version}/{r.key}: {r.expected} -- seen: {r.seen}"[:width])
        for line in r.context:
            print(f"      | {line}")
    if len(rows) > limit:
        print(f"  ... and {len(rows) - limit} more")


def print_units(selected, mode):
    """The units as installed in the machine (paths as seen there: /h = the work dir)."""
    for case in selected:
        if case.launch == "quadlet":
            print(f"# {units.unit_name(case, 'container')}\n{units.quadlet_unit(case, mode)}")
            continue
        for kind, text in (("socket", units.socket_unit(case)), ("service", units.service_unit(case, mode))):
            if text:
                print(f"# {units.unit_name(case, kind)}\n{text}")


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Systemd:
    """One systemd under test: its label, root (None: the host's /usr) and major version."""

    def __init__(self, name, root, version):
        self.name, self.root, self.version = name, root, version
        #: Machine.health() after its cases ("" until then)
        self.health = ""

    @property
    def label(self):
        where = "host /usr" if self.root is None else str(self.root)
        return f"systemd {self.version} ({self.name}: {where})"


def host_systemd():
    """The host's systemd (what `harness.sh` boots from /usr without SD_ROOT)."""
    out = subprocess.run(["systemd-nspawn", "--version"], capture_output=True, text=True).stdout
    words = out.split()
    return Systemd("host", None, int(words[1]) if len(words) > 1 and words[1].isdigit() else 0)


def debian13_systemd():
    """Debian 13's systemd, in the cached mmdebstrap root (built now when missing)."""
    root = debroot.ensure_root(log=lambda m: print(f"run.py: {m}", flush=True))
    return Systemd("debian13", root, debroot.systemd_version(root))


SYSTEMDS = {"host": host_systemd, "debian13": debian13_systemd}


def run_one(sd, a, mode):
    """Build, boot `sd`, judge its cases, power off; returns (cases, results, timings)."""
    t0 = time.monotonic()
    selected = cases.select(a.only, sd.version)
    if mode == "host":  # a quadlet always runs a container: nothing to run "without" one
        selected = [c for c in selected if c.launch != "quadlet"]
    workdir = Path(tempfile.mkdtemp(prefix="pier-sdt-", dir="/tmp"))
    timings, results = {}, {}
    binds = [] if mode == "host" else [f"--bind-ro={a.runtime}:{units.RUNTIME_IN_MACHINE}"]
    machine = Machine(workdir, binds, sd.root, sd.version)
    print(f"{sd.label}: {len(selected)} cases", flush=True)
    try:
        build.build_all(workdir, selected)
        units.write_units(workdir / "units", selected, mode)
        timings["build"] = time.monotonic() - t0
        t = time.monotonic()
        machine.up()
        timings["boot"] = time.monotonic() - t
        t = time.monotonic()
        results = run_cases(machine, selected, mode, a)
        timings["scenarios"] = time.monotonic() - t
        sd.health = machine.health()
    except build.BuildError as exc:
        print(f"run.py: build failed: {exc}", file=sys.stderr)
    except RuntimeError as exc:
        print(f"run.py: {exc}", file=sys.stderr)
    finally:
        t = time.monotonic()
        machine.down()
        timings["poweroff"] = time.monotonic() - t
        if a.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    timings["total"] = time.monotonic() - t0
    return selected, results, timings


def main(argv):
    t0 = time.monotonic()
    a = parse_args(argv)
    mode = "host" if a.runtime == "none" else "runtime"
    try:
        cases.select(a.only)
    except ValueError as exc:
        sys.exit(f"run.py: {exc}")
    if a.print_units:
        print_units(cases.select(a.only), mode)
        return
    if os.geteuid() != 0:
        sys.exit("run.py: needs root (it boots systemd in systemd-nspawn)")
    if not shutil.which("systemd-nspawn"):
        sys.exit("run.py: needs systemd-nspawn (apt install systemd-container)")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    print(f"runtime: {a.runtime if mode == 'runtime' else 'none (host mode: payloads run without a container)'}")
    reports, verdicts = [], {}
    try:
        for name in a.systemd:
            try:
                sd = SYSTEMDS[name]()
            except debroot.RootError as exc:
                print(f"run.py: {name}: {exc}", file=sys.stderr)
                verdicts[f"{name}: root"] = False
                continue
            selected, results, timings = run_one(sd, a, mode)
            reports.append((sd, selected, results, timings))
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        sys.exit(130)
    for sd, selected, results, timings in reports:
        for scen, ok in print_report(sd.label, selected, results, timings, sd.health).items():
            verdicts[f"{sd.version}/{scen}"] = ok
    failed = sum(1 for ok in verdicts.values() if not ok)
    print(f"\ntotal wall time: {time.monotonic() - t0:.2f} s; "
          f"{', '.join(sd.label for sd, *_ in reports)}")
    if failed:
        print("failed: " + ", ".join(k for k, ok in verdicts.items() if not ok))
        print_failing_rows(reports)
    un = os.uname()
    print(f"host: {un.sysname} {un.release}, {os.cpu_count()} cpus, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB")
    print(f"{len(verdicts) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
