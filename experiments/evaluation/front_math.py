"""Pain-energy fronts as numbers: the non-dominated set, its lower envelope, reading it at an energy, paired.

A *front* is what one family of controllers (the threshold over its duty
grid, cycling over periods and duties, ...) reaches: each evaluated
setting is a point (mean stimulation energy in J/day, mean pain in NRS),
both lower-is-better. ``Front.at(energy)`` reads the family's best pain at
that energy from its **monotone lower envelope**:

- the non-dominated settings (no other setting of the family has both less
  energy and less pain), sorted by energy, so pain falls as energy rises;
- between two adjacent ones, the straight line (weights ``1 - w`` and ``w``
  by energy);
- above the most energetic one, flat at its pain ("above range"): more
  energy is never needed to reach it, so a controller may always run the
  cheaper setting;
- below the least energetic one, nothing ("below range", NaN): no setting
  of the family is that cheap, so the family is not compared there.

Why not the lower convex hull: the hull joins far-apart settings across
non-convex stretches, and a point on such a chord is reached only by
mixing two settings as a linear average; a time-share of two duties is one
patient's third duty, and tolerance (build-up 30 days, recovery 7) makes
its pain not the average of the two. Between *adjacent* grid settings the
family's intermediate parameter (a target duty, an on time) lands near
the chord, which is what the envelope assumes. The hull lies at or below
the envelope; the envelope is the family's front as evaluated.

The reading is **paired**: the same weights combine each patient's values
of the two settings (``FrontReading.per_patient``), so ``policy - front``
is a per-patient difference with a paired 95% interval
(``paired_interval``), as every other difference of an evaluation. The
interval is conditional on the weights (taken from the means); it does not
carry the uncertainty of which settings are non-dominated.

Plain NumPy (SciPy for the t quantile); no simulation. The sweep report's
``non_dominated`` and ``front_curve`` live here too, as one definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ENERGY = "stim_energy_j_per_day"
PAIN = "mean_pain_nrs"
#: How a front was read at an energy.
INSIDE, ABOVE_RANGE, BELOW_RANGE = "inside", "above range", "below range"


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


def envelope_indices(energy: Sequence[float], pain: Sequence[float]) -> list[int]:
    """Indices of the envelope's points: the non-dominated ones by rising energy, one of exact duplicates."""
    energy = np.asarray(energy, dtype=float)
    pain = np.asarray(pain, dtype=float)
    mask = non_dominated(energy, pain)
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(energy[idx], kind="stable")]
    out: list[int] = []
    for i in idx:
        if not out or energy[i] > energy[out[-1]]:  # on the front, equal energy means equal pain: keep the first
            out.append(int(i))
    return out


def paired_interval(diff: Sequence[float]) -> tuple[float, float, float]:
    """Mean of per-patient differences and its paired 95% interval (t, n - 1 df); NaN interval for n < 2."""
    from scipy import stats

    d = np.asarray(diff, dtype=float)
    n = d.size
    mean = float(np.mean(d)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * float(np.std(d, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class FrontReading:
    """A front read at one energy: the settings' weights and the weighted per-patient values."""

    family: str
    energy_j_per_day: float  # where the front was read
    status: str  # INSIDE | ABOVE_RANGE (flat at the most energetic setting) | BELOW_RANGE (no value)
    weights: dict[str, float]  # setting label -> weight (sum 1); empty below range
    per_patient: dict[str, np.ndarray] = field(repr=False)  # metric -> (n_patients,), NaN below range

    def mean(self, metric: str = PAIN) -> float:
        """The front's mean of ``metric`` at this energy (NaN below range)."""
        return float(np.mean(self.per_patient[metric]))


@dataclass(frozen=True)
class Front:
    """One family's evaluated settings: labels, and per label each patient's metrics (paired across labels)."""

    family: str
    per_patient: Mapping[str, Mapping[str, np.ndarray]]  # label -> metric -> (n_patients,)

    @property
    def labels(self) -> list[str]:
        return list(self.per_patient)

    def means(self, metric: str) -> np.ndarray:
        """Each setting's mean of ``metric`` across patients, in label order."""
        return np.array([float(np.mean(self.per_patient[label][metric])) for label in self.labels])

    def envelope(self) -> list[str]:
        """Labels of the settings on the monotone lower envelope, by rising energy."""
        labels = self.labels
        return [labels[i] for i in envelope_indices(self.means(ENERGY), self.means(PAIN))]

    def at(self, energy_j_per_day: float) -> FrontReading:
        """The envelope read at ``energy_j_per_day`` (module docstring: inside, above or below its range)."""
        energy = float(energy_j_per_day)
        env = self.envelope()
        means = dict(zip(self.labels, self.means(ENERGY), strict=True))
        xs = np.array([means[label] for label in env])
        if not env or not math.isfinite(energy) or energy < xs[0]:
            return FrontReading(self.family, energy, BELOW_RANGE, {}, self._combine({}))
        if energy >= xs[-1]:
            weights = {env[-1]: 1.0}
            status = INSIDE if energy == xs[-1] else ABOVE_RANGE
        else:
            k = int(np.searchsorted(xs, energy, side="right")) - 1  # xs[k] <= energy < xs[k + 1]
            w = (energy - xs[k]) / (xs[k + 1] - xs[k])
            weights = {env[k]: 1.0 - w} | ({env[k + 1]: w} if w > 0 else {})
            status = INSIDE
        return FrontReading(self.family, energy, status, weights, self._combine(weights))

    def _combine(self, weights: Mapping[str, float]) -> dict[str, np.ndarray]:
        first = next(iter(self.per_patient.values()))
        out = {}
        for metric, values in first.items():
            if not weights:
                out[metric] = np.full(np.shape(values), math.nan)
                continue
            out[metric] = sum(w * np.asarray(self.per_patient[label][metric], dtype=float)
                              for label, w in weights.items())
        return out


@dataclass(frozen=True)
class FrontComparison:
    """A policy against one front at the policy's energy: paired difference (policy - front) of a metric."""

    family: str
    policy: str
    policy_energy_j_per_day: float
    read_at_j_per_day: float  # the policy's energy times (1 + energy tolerance)
    status: str  # the reading's
    weights: dict[str, float]
    metric: str
    policy_value: float
    front_value: float  # NaN below range
    diff: float  # policy - front, mean over patients
    diff_ci_low: float
    diff_ci_high: float

    @property
    def verdict(self) -> str:
        """'at or below' (mean difference <= 0), 'above', or 'not compared' (the front starts above this energy)."""
        if self.status == BELOW_RANGE:
            return "not compared"
        return "at or below" if self.diff <= 0 else "above"


def compare_with_front(
    front: Front,
    policy: str,
    per_patient: Mapping[str, np.ndarray],
    energy_tolerance: float = 0.05,
    metric: str = PAIN,
) -> FrontComparison:
    """``policy``'s ``metric`` against ``front`` read at the policy's mean energy times ``1 + energy_tolerance``.

    "At the policy's energy (+- 5%), no setting of the family is lower":
    the envelope falls with energy, so its lowest value within +-5% of the
    energy is the one at +5%. ``per_patient`` holds the policy's metrics
    on the front's patients, in the same order (a paired evaluation).
    """
    energy = float(np.mean(per_patient[ENERGY]))
    reading = front.at(energy * (1.0 + energy_tolerance))
    policy_values = np.asarray(per_patient[metric], dtype=float)
    diff, lo, hi = paired_interval(policy_values - reading.per_patient[metric])
    return FrontComparison(front.family, policy, energy, reading.energy_j_per_day, reading.status,
                           dict(reading.weights), metric, float(np.mean(policy_values)), reading.mean(metric),
                           diff, lo, hi)
