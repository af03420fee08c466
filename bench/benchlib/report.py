"""The table of medians and ratios (stdout) and the JSON record (results/latest.json)."""

import json
import os
import platform
import time

from .runtimes import Runtime
from .store import Metric, Store, ratio, ratio_ci

COLUMNS = ("pier", "crun", "crun-1.21", "runc")
OTHERS = COLUMNS[1:]  # pier/<other> ratio columns

# Reference figures measured on this machine (busybox /bin/true, runc spec defaults), used
# only for the sanity line crun/runc: if ours is far off, the harness is measuring something else.
ANCHORS = {"run_ms": (9.7, 28.7), "csd_ms": (18.6, 42.5), "cpu_ms": (11.0, 30.0), "rss_mib": (3.3, 9.8)}


def metrics(seq: int) -> list[Metric]:
    """The table rows, in order."""
    return [
        Metric("run_ms", "run /bin/true", "ms"),
        Metric("csd_ms", "create+start+delete", "ms"),
        Metric("csd_cpu_ms", "CPU, create+start+delete", "ms"),
        Metric("seq_s", f"{seq} sequential runs", "s"),
        Metric("cpu_ms", "CPU user+sys per run", "ms"),
        Metric("seq_cpu_ms", f"CPU per run, {seq}-run loop", "ms"),
        Metric("rss_mib", "peak RSS per run", "MiB"),
        Metric("nrun_ms", "run, READY=1 service", "ms"),
        Metric("ncpu_ms", "CPU, run READY=1 service", "ms"),
        Metric("nrss_mib", "peak RSS, run READY=1", "MiB"),
        Metric("ncsd_ms", "c+s+d, READY=1 service", "ms"),
        Metric("ncsd_cpu_ms", "CPU, c+s+d READY=1", "ms"),
        Metric("detach_return_ms", "run -d (NOTIFY_SOCKET) returns", "ms"),
        Metric("detach_ready_ms", "run -d: READY at host", "ms"),
        Metric("ready_hop_ms", "READY hop container->host", "ms"),
        Metric("relay_hop_ms", "X_* hop, spaced", "ms"),
        Metric("relay_tput", "X_* burst throughput", "dgram/s", better="higher"),
        Metric("relay_delivered", "X_* datagrams delivered", "%", better="higher"),
    ]


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def _ratio_cell(store: Store, key: str, rt: str, other: str) -> str:
    """The ratio of medians with its 95% bootstrap interval: "0.88 [0.80,0.97]"."""
    r = ratio(store.median(key, rt), store.median(key, other))
    ci = ratio_ci(store.values(key, rt), store.values(key, other))
    return _fmt(r) + (f" [{_fmt(ci[0])},{_fmt(ci[1])}]" if r is not None and ci else "")


def _cell(store: Store, key: str, rt: str) -> str:
    med = store.median(key, rt)
    if med is None and store.failures.get(key, {}).get(rt):
        return "fail"
    return _fmt(med)


def table(store: Store, rows: list[Metric]) -> str:
    """Fixed-width table: metric, unit, medians per runtime, pier/crun and pier/runc."""
    head = ("metric", "unit", *COLUMNS, *(f"pier/{o}" for o in OTHERS))
    lines = [head]
    for m in rows:
        lines.append((m.label, m.unit, *(_cell(store, m.key, rt) for rt in COLUMNS),
                      *(_ratio_cell(store, m.key, "pier", o) for o in OTHERS)))
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [line[c].rjust(widths[c]) for c in range(2, len(head))]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def notes(store: Store) -> list[str]:
    """One line per (metric, runtime) with failures or a skip, and per warning."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, per_rt in store.skipped.items():
        for rt, reason in per_rt.items():
            grouped.setdefault((rt, f"skipped: {reason}"), []).append(key)
    for key, per_rt in store.failures.items():
        for rt, msgs in per_rt.items():
            if rt not in store.skipped.get(key, {}):
                text = f"{len(msgs)} failed sample(s), first: {msgs[0]}"
                grouped.setdefault((rt, text), []).append(key)
    out = [f"note: {rt} {', '.join(keys)}: {text}" for (rt, text), keys in grouped.items()]
    for rt, msgs in store.extra.get("warnings", {}).items():
        out += [f"warning: {rt}: {m}" for m in msgs]
    return out


def sanity(store: Store) -> dict:
    """crun/runc here vs the anchors' crun/runc, per anchored metric."""
    out = {}
    for key, (crun, runc) in ANCHORS.items():
        here = ratio(store.median(key, "crun"), store.median(key, "runc"))
        out[key] = {"crun/runc": here, "anchor crun/runc": crun / runc}
    return out


def sanity_line(checks: dict) -> str:
    parts = [f"{k} {_fmt(v['crun/runc'])} (anchor {_fmt(v['anchor crun/runc'])})" for k, v in checks.items()]
    return "sanity, crun/runc here vs anchors: " + ", ".join(parts)


def record(store: Store, rows: list[Metric], runtimes: list[Runtime], config: dict) -> dict:
    """Everything: environment, config, per metric medians, ratios, quartiles, raw samples."""
    out = {
        "schema": 1,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"kernel": platform.release(), "machine": platform.machine(), "cpus": os.cpu_count(),
                 "loadavg": os.getloadavg()},
        "config": config,
        "runtimes": {rt.name: {"binary": rt.binary, "version": rt.version, "missing": rt.why or None}
                     for rt in runtimes},
        "ratios_are": "median(pier) / median(other), per metric; lower is better unless better=higher",
        "metrics": {},
        "details": store.extra,
        "sanity": sanity(store),
    }
    for m in rows:
        meds = {rt: store.median(m.key, rt) for rt in COLUMNS}
        out["metrics"][m.key] = {
            "label": m.label, "unit": m.unit, "better": m.better, "median": meds,
            "ratio": {f"pier/{o}": ratio(meds["pier"], meds[o]) for o in OTHERS},
            "ratio_ci95": {f"pier/{o}": ratio_ci(store.values(m.key, "pier"), store.values(m.key, o))
                           for o in OTHERS},
            "spread": {rt: store.spread(m.key, rt) for rt in COLUMNS},
            "samples": {rt: store.samples.get(m.key, {}).get(rt, []) for rt in COLUMNS},
            "failures": store.failures.get(m.key, {}),
            "skipped": store.skipped.get(m.key, {}),
        }
    return out


def write_json(path: str, data: dict) -> None:
    """Write atomically (tmp + rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
