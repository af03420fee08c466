"""Samples per metric and runtime, their medians, and the ratios of medians."""

import random
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A table row: `key` in the JSON, a label, its unit and which direction is better."""

    key: str
    label: str
    unit: str
    better: str = "lower"  # or "higher" (throughput)


class Store:
    """Per (metric key, runtime): samples (None = not applicable), failures, skip reasons."""

    def __init__(self):
        self.samples: dict[str, dict[str, list]] = {}
        self.failures: dict[str, dict[str, list[str]]] = {}
        self.skipped: dict[str, dict[str, str]] = {}
        self.extra: dict[str, dict[str, list]] = {}

    def add(self, key: str, runtime: str, value) -> None:
        self.samples.setdefault(key, {}).setdefault(runtime, []).append(value)

    def add_extra(self, key: str, runtime: str, value) -> None:
        """Detail kept in the JSON only (e.g. per-step times)."""
        self.extra.setdefault(key, {}).setdefault(runtime, []).append(value)

    def fail(self, keys, runtime: str, message: str) -> None:
        for key in keys:
            self.failures.setdefault(key, {}).setdefault(runtime, []).append(message)

    def skip(self, keys, runtime: str, reason: str) -> None:
        for key in keys:
            self.skipped.setdefault(key, {})[runtime] = reason

    def values(self, key: str, runtime: str) -> list[float]:
        """The numeric samples (n/a entries removed)."""
        return [v for v in self.samples.get(key, {}).get(runtime, []) if v is not None]

    def median(self, key: str, runtime: str) -> float | None:
        vals = self.values(key, runtime)
        return statistics.median(vals) if vals else None

    def spread(self, key: str, runtime: str) -> dict | None:
        """Quartiles and count of the samples, for the JSON."""
        vals = sorted(self.values(key, runtime))
        if not vals:
            return None
        if len(vals) == 1:
            return {"n": 1, "p25": vals[0], "p75": vals[0], "min": vals[0], "max": vals[0]}
        q = statistics.quantiles(vals, n=4)
        return {"n": len(vals), "p25": q[0], "p75": q[2], "min": vals[0], "max": vals[-1]}


def ratio(num: float | None, den: float | None) -> float | None:
    """num/den, or None when either side is missing or den is 0."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def ratio_ci(num: list[float], den: list[float], resamples: int = 2000) -> tuple | None:
    """95% bootstrap interval of median(num)/median(den): both sample sets resampled with
    replacement `resamples` times (seeded, so a record is reproducible); None with < 3 samples
    on a side."""
    if len(num) < 3 or len(den) < 3:
        return None
    rng = random.Random(0)
    ratios = []
    for _ in range(resamples):
        d = statistics.median(rng.choices(den, k=len(den)))
        if d:
            ratios.append(statistics.median(rng.choices(num, k=len(num))) / d)
    if len(ratios) < resamples // 2:
        return None
    ratios.sort()
    return ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]
