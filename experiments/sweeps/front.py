"""Pareto fronts of a sweep, and the comparison of a learned front with the threshold's own.

Both objectives are minimised (mean pain in NRS, stimulation energy in
J/day; or pain and side effects). Plain NumPy, no plotting: the report
(``experiments.sweeps.report``) draws what this module computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def non_dominated(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (both coordinates minimised).

    A point is dominated when another is at least as good in both and
    strictly better in one. Points with a non-finite coordinate are never
    on the front; of exact duplicates, all are kept.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    keep = finite.copy()
    for i in np.flatnonzero(finite):
        better_eq = (x[finite] <= x[i]) & (y[finite] <= y[i])
        strictly = (x[finite] < x[i]) | (y[finite] < y[i])
        if np.any(better_eq & strictly):
            keep[i] = False
    return keep


def front_curve(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The non-dominated points sorted by ``x`` (energy): a falling staircase of (x, y)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = non_dominated(x, y)
    order = np.argsort(x[mask], kind="stable")
    return x[mask][order], y[mask][order]


def distinct_points(x: Sequence[float], y: Sequence[float], decimals: int = 3) -> int:
    """Number of distinct (x, y) pairs after rounding to ``decimals`` (equal policies count once)."""
    pairs = {(round(float(a), decimals), round(float(b), decimals)) for a, b in zip(x, y, strict=True)}
    return len(pairs)


@dataclass(frozen=True)
class GoalPoint:
    """One threshold point against the learned front at the same energy."""

    label: str
    energy_j_per_day: float
    threshold_pain_nrs: float
    learned_pain_nrs: float  # interpolated on the learned front; NaN outside its energy range
    margin_nrs: float  # threshold pain - learned pain (positive: learned is better)
    status: str  # "at or below", "above", "outside"


def compare_fronts(
    learned_energy: Sequence[float],
    learned_pain: Sequence[float],
    threshold_points: Sequence[tuple[str, float, float]],
    tolerance_nrs: float,
) -> list[GoalPoint]:
    """At each threshold point's energy, the learned front's linearly interpolated mean pain.

    ``threshold_points`` are (label, energy, pain). The learned front is the
    non-dominated set of the learned points, joined by straight lines in
    the (energy, pain) plane; a threshold point whose energy lies outside
    the front's energy range cannot be compared ("outside"). "at or below"
    means learned pain <= threshold pain + ``tolerance_nrs``.
    """
    fx, fy = front_curve(learned_energy, learned_pain)
    out = []
    for label, energy, pain in threshold_points:
        if fx.size == 0 or not (fx[0] <= energy <= fx[-1]) or not math.isfinite(pain):
            out.append(GoalPoint(label, energy, pain, math.nan, math.nan, "outside"))
            continue
        learned = float(np.interp(energy, fx, fy))
        margin = pain - learned
        status = "at or below" if learned <= pain + tolerance_nrs else "above"
        out.append(GoalPoint(label, energy, pain, learned, margin, status))
    return out
