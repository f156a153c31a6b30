"""Pareto fronts of a sweep, and the comparison of a learned front with the threshold's own.

Both objectives are minimised (mean pain in NRS, stimulation energy in
J/day; or pain and side effects). The non-dominated set itself is
``experiments.evaluation.front_math``'s (one definition for the sweeps and
the baseline fronts). Plain NumPy, no plotting: the report
(``experiments.sweeps.report``) draws what this module computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from experiments.evaluation.front_math import front_curve


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
