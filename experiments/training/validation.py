"""Periodic validation during training: the current model on held-out patients, and its figure.

A small ``PainStimBatch`` loop of its own: observation -> the training
``VecNormalize`` statistics -> ``model.predict(deterministic=True)``; each
action is held for the decision interval (one batch step). Every validation
resets with the same seed, so successive values differ only by the policy.
Metrics use the names of ``agents.evaluation.METRICS`` where they overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import Patient
from simenv.info_layout import STEP_INFO
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR
from simenv.reward import TERMS, RewardWeights
from simenv.settings import EnvSettings

#: Clinical metrics of a validation (mean over patients), in metrics.csv order.
CLINICAL: dict[str, str] = {
    "reward_per_day": "reward summed over each day (the selection criterion)",
    "mean_pain_nrs": "mean pain, NRS 0-10",
    "high_pain_fraction": "fraction of time with pain >= 7 NRS",
    "duty_cycle": "fraction of time with amplitude > 0",
    "stim_energy_j_per_day": "stimulation energy delivered, J/day",
    "battery_draw_j_per_day": "energy drawn from the battery, J/day",
    "side_effect_events_per_day": "side-effect events (mild + seizure) per day",
    "mild_events_per_day": "mild side-effect events per day",
    "seizure_events_per_day": "after-discharge (seizure) events per day",
    "switches_per_hour": "commanded amplitude changes per hour",
}
_COL = {name: i for i, name in enumerate(STEP_INFO)}


@dataclass
class ValidationResult:
    """Means over the validation patients, per-term values, and the trace of one patient."""

    metrics: dict[str, float]
    terms: dict[str, float]  # reward term, mean per decision (unweighted)
    term_reward_per_day: dict[str, float]  # -weight * term, summed per day: these add up to reward_per_day
    trace: dict[str, np.ndarray] = field(default_factory=dict)
    trace_patient: int = 0
    patient_uid: int = 0


class Validator:
    """Runs a model on fixed validation patients; builds the batch (and its calibration) once."""

    def __init__(
        self,
        patients: Sequence[Patient],
        settings: EnvSettings,
        reward: RewardWeights,
        seed: int,
        trace_patient: int = 0,
        recurrent: bool = False,
    ) -> None:
        self.patients = list(patients)
        self.settings = settings
        self.reward = reward
        self.seed = seed
        self.trace_patient = trace_patient
        self.recurrent = recurrent
        self.batch = PainStimBatch(self.patients, settings, reward)

    def run(self, model: Any, normalize_obs: Any) -> ValidationResult:
        """Play one episode (``settings.horizon_days``) of every validation patient with ``model``."""
        batch = self.batch
        n = batch.n
        obs, _ = batch.reset(seed=self.seed)
        decisions_per_day = SECONDS_PER_DAY / (self.settings.steps_per_decision * self.settings.dt_s)
        trace_len = int(round(min(self.settings.horizon_days, 1.0) * decisions_per_day))
        trace = {k: np.full(trace_len, np.nan) for k in ("hour", "pain_nrs", "pain_drive_nrs", "amplitude_ma", "p_on")}
        score = _on_probability(model) if self.settings.action_mode == "on_off" and not self.recurrent else None
        term_sums = np.zeros((n, len(TERMS)))
        reward_sum = np.zeros(n)
        state = None
        starts = np.ones(n, dtype=bool)
        k = 0
        tp = self.trace_patient
        while True:
            nobs = normalize_obs(obs)
            if self.recurrent:
                actions, state = model.predict(nobs, state=state, episode_start=starts, deterministic=True)
                starts[:] = False
            else:
                actions, _ = model.predict(nobs, deterministic=True)
            if score is not None and k < trace_len:
                trace["p_on"][k] = score(nobs[tp : tp + 1])
            obs, reward, _, truncated = batch.step_arrays(actions)
            term_sums += batch.last_terms
            reward_sum += reward
            if k < trace_len:
                info = batch.last_info
                trace["hour"][k] = info[tp, _COL["elapsed_s"]] / SECONDS_PER_HOUR
                trace["pain_nrs"][k] = info[tp, _COL["pain_nrs"]]
                trace["pain_drive_nrs"][k] = info[tp, _COL["pain_drive_nrs"]]
                trace["amplitude_ma"][k] = info[tp, _COL["amplitude_ma"]]
            k += 1
            if truncated.all():
                break
        st = batch.core.state
        elapsed = st[:, L.S_TIME_S]
        days = elapsed / SECONDS_PER_DAY
        per_patient = {
            "reward_per_day": reward_sum / days,
            "mean_pain_nrs": term_sums[:, 0] / k,
            "high_pain_fraction": term_sums[:, 1] / k,
            "duty_cycle": st[:, L.S_ON_TIME_S] / elapsed,
            "stim_energy_j_per_day": st[:, L.S_ENERGY_STIM_J] / days,
            "battery_draw_j_per_day": st[:, L.S_ENERGY_DRAWN_J] / days,
            "side_effect_events_per_day": (st[:, L.S_MILD_EVENTS] + st[:, L.S_SEIZURE_EVENTS]) / days,
            "mild_events_per_day": st[:, L.S_MILD_EVENTS] / days,
            "seizure_events_per_day": st[:, L.S_SEIZURE_EVENTS] / days,
            "switches_per_hour": st[:, L.S_SWITCHES] / (elapsed / SECONDS_PER_HOUR),
        }
        metrics = {name: float(np.mean(per_patient[name])) for name in CLINICAL}
        w = self.reward.as_tuple()
        terms = {t: float(np.mean(term_sums[:, i] / k)) for i, t in enumerate(TERMS)}
        per_day = {t: float(np.mean(-w[i] * term_sums[:, i] / days)) for i, t in enumerate(TERMS)}
        return ValidationResult(metrics, terms, per_day, trace, tp, int(self.patients[tp].uid))


def _on_probability(model: Any):
    """A function obs (1, d) -> the policy's probability of 'on', if the policy has a distribution."""
    policy = getattr(model, "policy", None)
    if policy is None or not hasattr(policy, "get_distribution"):
        return None
    import torch

    def p_on(nobs: np.ndarray) -> float:
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(nobs)
            dist = policy.get_distribution(tensor).distribution
            return float(dist.probs[0, 1])

    return p_on


def trace_figure(result: ValidationResult, timesteps: int, title: str):
    """A matplotlib ``Figure`` of one validation day: pain, P(on) where available, stimulation raster."""
    from matplotlib.figure import Figure

    tr = result.trace
    has_score = bool(np.isfinite(tr["p_on"]).any())
    rows = 3 if has_score else 2
    fig = Figure(figsize=(9, 1.9 * rows + 0.6), dpi=80)
    axes = fig.subplots(rows, 1, sharex=True)
    h = tr["hour"]
    ax = axes[0]
    ax.plot(h, tr["pain_drive_nrs"], color="0.6", lw=0.8, label="pain drive (no relief, latent)")
    ax.plot(h, tr["pain_nrs"], color="C3", lw=1.0, label="pain")
    ax.axhline(L.HIGH_PAIN_NRS, color="k", ls=":", lw=0.8)
    ax.set_ylim(0, 10)
    ax.set_ylabel("NRS")
    ax.legend(loc="upper right", fontsize=7)
    if has_score:
        axes[1].plot(h, tr["p_on"], color="C0", lw=0.8)
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_ylabel("policy P(on)")
    ax = axes[-1]
    ax.fill_between(h, 0, tr["amplitude_ma"], step="pre", color="C2", lw=0)
    ax.set_ylabel("amplitude, mA")
    ax.set_xlabel("hour of the validation day")
    m = result.metrics
    fig.suptitle(
        f"{title} | step {timesteps:,} | patient {result.trace_patient} | cohort mean: pain {m['mean_pain_nrs']:.2f}, "
        f"duty {m['duty_cycle']:.2f}, reward/day {m['reward_per_day']:.1f}",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def figure_to_rgb(fig) -> np.ndarray:
    """Render a ``Figure`` to an (H, W, 3) uint8 array (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
