"""What a learned policy's decisions can be read from: the library of ``python -m experiments.decision_readout``.

A device detector reproduces a policy only as far as the policy's decisions
are a function of what the detector reads. This study rolls a run's policy
out on patients (after a warm-up, in the long-run state the export is judged
in), takes the decisions at the instants the policy makes them, and fits a
class-balanced logistic read-out on the first half of the days, scored
(balanced accuracy) on the second half, from:

- ``sample``: the band powers of the one step the policy's observation holds;
- ``mean_<w>``: their mean over the last ``w`` steps before the decision, what
  a detector reads whose update averages ``w`` steps (an RC+S LD with an
  update period of ``w`` steps);
- ``sample_clean``: ``sample`` without the bands the clinic on/off test finds
  stimulation moves (``agents.stim_footprint``), what the default distillation
  may use;
- ``previous``: the policy's own previous decision (a read-out of
  "alternate": balanced accuracy of 1 - previous).

It also reports the share of the ``sample`` read-out's weight (|w| of the
standardised inputs) on the footprint bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.distill_fit import balanced_accuracy
from agents.rollout import rollout
from agents.stim_footprint import measure_footprint
from simenv import layout as L
from simenv.batch import EnvSettings
from simenv.cohort import Patient

WINDOWS = (2, 5)


def _readout(x: np.ndarray, y: np.ndarray, half: int) -> tuple[float, np.ndarray]:
    """Held-out balanced accuracy of a balanced logistic read-out fitted on rows < half; and its weights."""
    from sklearn.linear_model import LogisticRegression

    if np.unique(y[:half]).size < 2 or np.unique(y[half:]).size < 2:
        return float("nan"), np.zeros(x.shape[1])
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x[:half], y[:half])
    return balanced_accuracy(y[half:], model.predict(x[half:])), model.coef_[0]


@dataclass(frozen=True)
class Readout:
    """Per patient: the policy's behaviour and the held-out balanced accuracy of each read-out."""

    duty: np.ndarray
    switches_per_hour: np.ndarray
    reversal_share: np.ndarray  # share of decisions that reverse the previous one
    balanced_accuracy: dict[str, np.ndarray]
    footprint_weight_share: np.ndarray
    decision_interval_steps: int


def decision_readout(policy, patients: Sequence[Patient], dt_s: float, days: float, warmup_days: float,
                     seed: int, footprint_limit_db: float = 0.25) -> Readout:
    """Roll ``policy`` out (``warmup_days`` unrecorded, then ``days``) and read its decisions (module doc)."""
    every = max(int(getattr(policy, "steps_per_decision", 1)), 1)
    ro = rollout(policy, patients, EnvSettings(dt_s=dt_s, horizon_days=days), seed, warmup_days=warmup_days)
    on = ro.amplitudes_ma > 0
    fp = measure_footprint(patients, np.max(ro.amplitudes_ma, axis=1), dt_s, seed)
    moved = fp.bands_moved(footprint_limit_db)
    n, T = on.shape
    # Decision instants of the recorded window (the warm-up is a whole number of decisions).
    idx = np.arange(every, T, every)
    half = idx.size // 2
    names = ["sample", *(f"mean_{w}" for w in WINDOWS if w < every), f"mean_{every}", "sample_clean", "previous"]
    bacc = {k: np.full(n, np.nan) for k in dict.fromkeys(names)}
    share = np.full(n, np.nan)
    duty = on.mean(axis=1)
    switches = np.sum(np.diff(on.astype(int), axis=1) != 0, axis=1) / (T * dt_s / 3600.0)
    reversal = np.full(n, np.nan)
    for i in range(n):
        z = (ro.features_db[i] - ro.norm_mean_db[i]) / ro.norm_sd_db[i]
        y = on[i, idx].astype(int)
        reversal[i] = float(np.mean(y[1:] != y[:-1]))
        b, coef = _readout(z[idx], y, half)
        bacc["sample"][i] = b
        total = np.sum(np.abs(coef))
        share[i] = float(np.sum(np.abs(coef[moved[i]])) / total) if total > 0 else np.nan
        for w in sorted({*(w for w in WINDOWS if w < every), every}):
            xm = np.stack([z[t - w + 1 : t + 1].mean(axis=0) for t in idx])
            bacc[f"mean_{w}"][i] = _readout(xm, y, half)[0]
        keep = [j for j in range(L.N_FEATURES) if j not in set(moved[i])]
        bacc["sample_clean"][i] = _readout(z[idx][:, keep], y, half)[0]
        prev = on[i, idx - every].astype(int)
        bacc["previous"][i] = max(balanced_accuracy(y[half:], prev[half:]), balanced_accuracy(y[half:], 1 - prev[half:]))
    return Readout(duty, switches, reversal, bacc, share, every)


def render(result: Readout) -> str:
    """Medians (and quartiles) over patients, one line each."""
    def q(a: np.ndarray) -> str:
        a = a[np.isfinite(a)]
        if a.size == 0:
            return "n/a"
        lo, mid, hi = np.percentile(a, [25, 50, 75])
        return f"{mid:.3f} [{lo:.3f}, {hi:.3f}]"

    lines = [f"decision every {result.decision_interval_steps} step(s); medians over {result.duty.size} patients "
             "[quartiles]",
             f"  duty {q(result.duty)}; switches/h {q(result.switches_per_hour)}; decisions reversing the previous "
             f"one {q(result.reversal_share)}",
             "  held-out balanced accuracy of a linear read-out of its decisions, from:"]
    for name, values in result.balanced_accuracy.items():
        lines.append(f"    {name:<13} {q(values)}")
    lines.append(f"  share of the 'sample' read-out's weight on the footprint bands: {q(result.footprint_weight_share)}")
    return "\n".join(lines)
