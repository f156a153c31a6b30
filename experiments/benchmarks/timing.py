"""Timing primitives every benchmark section shares: a timed loop, and a figure summarised over repeats.

Imports no section, so any section can use it (``experiments.benchmarks``
has no import cycle).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def summarize(values: Sequence[float], unit: str) -> dict:
    """Median, min, max and the raw values of one figure."""
    vals = [float(v) for v in values]
    return {
        "unit": unit,
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n_repeats": len(vals),
        "repeats": vals,
    }


def paired_ratio(values: Sequence[float], yardstick: Sequence[float]) -> float:
    """Median over repeats of value / CartPole of the same repeat (robust to a slow moment)."""
    return statistics.median(v / y for v, y in zip(values, yardstick, strict=True))


def timed_loop(step: Callable[[int], None], n: int) -> float:
    """Seconds to call ``step(i)`` for i in range(n)."""
    t0 = time.perf_counter()
    for i in range(n):
        step(i)
    return time.perf_counter() - t0


def timed_core(core, step: Callable[[int], None], n: int) -> float:
    """Seconds for ``n`` core steps, including the noise draws still in flight on the worker thread.

    Those draws are the next chunks the timed steps used up; leaving them out
    would credit the core with work it has not finished, and they would run
    into the next figure's time.
    """
    t0 = time.perf_counter()
    timed_loop(step, n)
    core.noise.wait_for_draws()
    return time.perf_counter() - t0
