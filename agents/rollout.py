"""Record a policy's run on a batch of patients: what a detector would read, and what was commanded.

At each decision: the raw band powers a detector update reads (measured over
the step before it) and the amplitude the controlling policy commanded; with
a ``shadow`` policy, also the amplitude it would have commanded on the same
trajectory. The distillation fits detectors to these records
(``agents.distill``) and the export's fidelity report measures shadow
agreement with them. With ``warmup_days`` > 0 (the long-term frame,
``agents.evaluation_window``) the run first goes through an unscored warm-up,
both policies deciding, and only the scored window after it is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.evaluation_window import run_window
from agents.policy import PatientContext
from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import Patient


@dataclass
class Rollout:
    """Per patient: raw band powers read at each decision (n, T, N_FEATURES; T = 0 when not recorded),
    the amplitudes the controlling policy commanded (n, T), and, with a shadow policy, the amplitudes
    it would have commanded on the same trajectory (n, T). T counts the recorded (scored) decisions;
    ``warmup_decisions`` came before them, unrecorded."""

    features_db: np.ndarray
    amplitudes_ma: np.ndarray
    norm_mean_db: np.ndarray  # (n, N_FEATURES)
    norm_sd_db: np.ndarray
    shadow_ma: np.ndarray | None = None
    warmup_decisions: int = 0
    #: Each slot's tolerance when the recorded window began (after the warm-up), shape (n,).
    window_tolerance: np.ndarray | None = None


def _amplitudes(policy, action, batch) -> np.ndarray:
    mode = getattr(policy, "action_mode", "on_off")
    if mode == "amplitude_ma":
        return np.asarray(action, dtype=np.float64).reshape(-1)
    return batch.amplitudes_for(action, mode, slice(None), getattr(policy, "n_levels", None))


def rollout(
    policy,
    patients: Sequence[Patient],
    settings: EnvSettings,
    seed: int,
    contexts_extra=None,
    shadow=None,
    *,
    warmup_days: float = 0.0,
    record_features: bool = True,
    start_tolerance: np.ndarray | None = None,
) -> Rollout:
    """Run ``policy`` (already built) on ``patients`` and record what a detector would see and the decisions.

    ``shadow`` (another policy) sees the same observations and info at every
    decision but does not act: its would-be amplitudes are recorded (the
    source's labels on the exported controller's trajectory, as in DAgger).
    ``contexts_extra(i)`` may return keyword arguments for slot i's
    ``PatientContext`` (e.g. a fitted detector).
    ``warmup_days`` (checked and rounded to whole decisions as
    ``agents.evaluation.evaluate`` does; ``PL-EVAL-WARMUP`` otherwise) are
    run from ``settings.initial_state`` first, both policies deciding, and
    not recorded; then ``settings.horizon_days`` are recorded.
    ``record_features=False`` leaves the band powers out (a shadow agreement
    needs only the amplitudes).
    ``start_tolerance`` (one value per slot) replaces each slot's tolerance
    after the reset: a run that starts where a long treatment has brought the
    patient (tolerance is the model's only state of weeks), without
    simulating the weeks.
    """
    window = run_window(settings, warmup_days)
    batch = PainStimBatch(list(patients), window.run_settings)
    obs, info = batch.reset(seed=seed)
    if start_tolerance is not None:
        batch.core.state[:, L.S_TOLERANCE] = np.asarray(start_tolerance, dtype=np.float64)
    contexts = [
        PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p], **(contexts_extra(i) if contexts_extra else {}))
        for i, p in enumerate(patients)
    ]
    policy.reset(contexts)
    if shadow is not None:
        shadow.reset(contexts)
    configure = getattr(policy, "configure_core", None)
    if configure is not None:
        configure(batch.core, slice(None))
    warm = window.warmup_decisions
    T = window.scored_decisions
    n = len(patients)
    feats = np.zeros((n, T if record_features else 0, L.N_FEATURES))
    amps = np.zeros((n, T))
    shadow_amps = np.zeros((n, T)) if shadow is not None else None
    window_tolerance = None
    for d in range(warm + T):
        t = d - warm  # the decision's index in the recorded window (< 0 in the warm-up)
        if t == 0:
            window_tolerance = batch.core.state[:, L.S_TOLERANCE].copy()
        if record_features and t >= 0:
            feats[:, t] = info["features_raw"]
        if shadow is not None:
            shadow_amp = _amplitudes(shadow, shadow.act(obs, info), batch)
            if shadow_amps is not None and t >= 0:  # both or neither
                shadow_amps[:, t] = shadow_amp
        amp = _amplitudes(policy, policy.act(obs, info), batch)
        if t >= 0:
            amps[:, t] = amp
        obs, _, _, _ = batch.step_arrays(None, amp)
        info = batch.step_info()
    return Rollout(feats, amps, batch.norm_mean.copy(), 1.0 / batch.norm_scale, shadow_amps, warm, window_tolerance)
