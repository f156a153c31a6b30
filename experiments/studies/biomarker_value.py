"""What the biomarker is worth: threshold control against random at the same duty, over a grid of the model.

The library of ``python -m experiments.biomarker_value``. For every
combination of biomarker AUC and carry-over time constant (set for the whole
cohort; patient uids, hence noise, unchanged), one paired evaluation of the
clinic-calibrated ``threshold`` controller, a ``random`` on/off controller
matched to its per-patient duty cycle and mean burst length, and
``continuous``. The paired difference threshold - random is what the
biomarker adds beyond "stimulate this much, in bursts this long".
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from simenv.batch import EnvSettings
from simenv.cohort import Patient, with_overrides

METRICS = ("mean_pain_nrs", "high_pain_fraction", "stim_energy_j_per_day", "duty_cycle")


def grid_overrides(auc: float, carryover_min: float) -> dict[str, float]:
    """The cohort-wide parameter overrides of one grid point."""
    return {"biomarker.auc": auc, "relief.carryover_tau_min": carryover_min}


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b and its paired 95% t interval."""
    from scipy import stats

    d = a - b
    n = d.size
    half = float(stats.t.ppf(0.975, n - 1)) * float(np.std(d, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    mean = float(np.mean(d))
    return mean, mean - half, mean + half


def evaluate_grid(base: list[Patient], grid: Sequence[tuple[float, float]], days: float, seed: int) -> list[dict]:
    """One row per (AUC, carry-over in min) of ``grid``: cohort means and threshold - random, paired."""
    specs = [
        ControllerSpec("continuous", "continuous"),
        ControllerSpec("threshold", "threshold"),
        ControllerSpec("random", "random", {"match": "threshold"}),
    ]
    settings = EnvSettings(horizon_days=days)
    rows = []
    for auc, carry in tqdm(grid, desc="grid", unit="point", file=sys.stderr):
        patients = with_overrides(base, grid_overrides(auc, carry))
        res = evaluate(specs, patients, settings, seed=seed)
        m = res.per_patient
        row = {"auc": auc, "carryover_min": carry, "n_patients": len(patients), "days": days}
        for metric in METRICS:
            row[f"threshold_{metric}"] = float(np.mean(m["threshold"][metric]))
            row[f"random_{metric}"] = float(np.mean(m["random"][metric]))
            row[f"continuous_{metric}"] = float(np.mean(m["continuous"][metric]))
            row[f"diff_{metric}"], row[f"diff_{metric}_ci_low"], row[f"diff_{metric}_ci_high"] = paired(
                m["threshold"][metric], m["random"][metric]
            )
        rows.append(row)
    return rows


def render(rows: Sequence[dict], n_patients: int, days: float, cohort: str, seed: int) -> str:
    """The printed table: per grid point, the duties and threshold - random with its 95% interval."""
    lines = [
        f"\nthreshold - random (matched duty and bursts), paired over {n_patients} patients, "
        f"{days:g} days, cohort '{cohort}', seed {seed}:",
        f"{'AUC':>5} {'carry-over':>11} {'duty thr/rnd':>13} {'d pain NRS [95% CI]':>28} {'d high-pain frac [95% CI]':>30} {'thr pain':>9} {'cont pain':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r['auc']:>5.2f} {r['carryover_min']:>8.0f} min "
            f"{r['threshold_duty_cycle']:>6.2f}/{r['random_duty_cycle']:<6.2f}"
            f"{r['diff_mean_pain_nrs']:>+10.3f} [{r['diff_mean_pain_nrs_ci_low']:+.3f}, {r['diff_mean_pain_nrs_ci_high']:+.3f}]"
            f"{r['diff_high_pain_fraction']:>+12.4f} [{r['diff_high_pain_fraction_ci_low']:+.4f}, {r['diff_high_pain_fraction_ci_high']:+.4f}]"
            f"{r['threshold_mean_pain_nrs']:>9.2f} {r['continuous_mean_pain_nrs']:>9.2f}"
        )
    return "\n".join(lines)
