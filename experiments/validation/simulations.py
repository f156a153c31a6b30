"""The three simulations behind ``experiments.validate_model``, on the batched core.

- natural history: stimulation off, ``initial_state="randomized"`` (the slow
  drift starts from its stationary law, as in patients with long-standing
  pain; tolerance is irrelevant without stimulation);
- continuous stimulation at each patient's ``on_amplitude_ma`` from a naive
  start (a new implant): relief, tolerance, energy and battery draw;
- carry-over: a naive start, stimulation on for ``CARRYOVER_ON_H`` hours, then
  off for ``CARRYOVER_OFF_H`` hours; the relief fraction's decay after the
  switch.

Every array is recorded from ``simenv.core.BatchedCore``'s outputs and state;
nothing here re-implements the model. Arrays have shape ``(n_patients, n_steps)``
(features ``(n_patients, n_kept, N_FEATURES)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from simenv import layout as L
from simenv.cohort import Patient
from simenv.core import BatchedCore
from simenv.params import SECONDS_PER_DAY

CARRYOVER_ON_H = 12.0  # >= 12 onset time constants at the preset's 60 min ceiling
CARRYOVER_OFF_H = 30.0  # 6 carry-over time constants at the preset's 300 min ceiling
MAX_FEATURE_SAMPLES = 100_000  # per patient; longer records keep every k-th step

Progress = Callable[[int], None]


def _no_progress(_: int) -> None:
    return None


@dataclass
class NaturalHistory:
    """Stimulation-off record of every patient."""

    dt_s: float
    step_hour: np.ndarray  # (n_steps,) clock hour at each step's midpoint
    pain: np.ndarray  # (n, n_steps) latent pain, NRS (equals the clipped drive: no relief)
    flare_level: np.ndarray  # (n, n_steps) pain added by the current flare, NRS
    report: np.ndarray  # (n, n_steps) self-report, NaN where none
    awake: np.ndarray  # (n, n_steps) bool
    feature_stride: int  # features kept every ``feature_stride`` steps
    features_db: np.ndarray  # (n, n_kept, N_FEATURES) raw band powers
    feature_pain: np.ndarray  # (n, n_kept) latent pain at the kept steps
    feature_awake: np.ndarray  # (n, n_kept) bool


@dataclass
class ContinuousRun:
    """Continuous stimulation at the on amplitude from a naive start."""

    dt_s: float
    drive: np.ndarray  # (n, n_steps) pain drive, NRS (clipped at plotting time)
    pain: np.ndarray  # (n, n_steps) pain under stimulation, NRS
    relief_nrs: np.ndarray  # (n, n_steps) clip(drive, 0, 10) - pain
    report: np.ndarray  # (n, n_steps)
    efficacy: np.ndarray  # (n, n_steps) 1 - tolerance
    stim_energy_j: np.ndarray  # (n,) total stimulation energy (TEED)
    drawn_energy_j: np.ndarray  # (n,) total battery draw
    elapsed_s: np.ndarray  # (n,)


@dataclass
class CarryOverRun:
    """Relief fraction around the switch-off."""

    dt_s: float
    switch_off_step: int  # first step commanded off
    relief_fraction: np.ndarray  # (n, n_steps) state r at the end of each step


def _steps_for(days: float, dt_s: float) -> int:
    return max(1, int(round(days * SECONDS_PER_DAY / dt_s)))


def _core(patients: Sequence[Patient], dt_s: float, seed: int, initial_state: str) -> BatchedCore:
    n = len(patients)
    core = BatchedCore(n, dt_s=dt_s)
    core.reset_slots(range(n), patients, [seed] * n, [0] * n, initial_state)
    return core


def simulate_natural_history(
    patients: Sequence[Patient], days: float, dt_s: float, seed: int, progress: Progress = _no_progress
) -> NaturalHistory:
    """Run every patient with stimulation off for ``days`` days."""
    n = len(patients)
    steps = _steps_for(days, dt_s)
    stride = max(1, math.ceil(steps / MAX_FEATURE_SAMPLES))
    kept = (steps + stride - 1) // stride
    core = _core(patients, dt_s, seed, "randomized")
    pain = np.empty((steps, n), np.float32)
    flare = np.empty((steps, n), np.float32)
    report = np.empty((steps, n), np.float32)
    awake = np.empty((steps, n), bool)
    features = np.empty((kept, n, L.N_FEATURES), np.float32)
    off = np.zeros(n)
    for k in range(steps):
        out = core.step(off)
        pain[k] = out[:, L.O_PAIN_NRS]
        flare[k] = core.state[:, L.S_FLARE_LEVEL]
        report[k] = out[:, L.O_REPORT_NRS]
        awake[k] = out[:, L.O_ASLEEP] == 0.0
        if k % stride == 0:
            features[k // stride] = core.features_db
        if (k + 1) % 240 == 0 or k + 1 == steps:
            progress(240 if (k + 1) % 240 == 0 else (k + 1) % 240)
    step_hour = (core.start_hour + (np.arange(steps) + 0.5) * dt_s / 3600.0) % 24.0
    return NaturalHistory(
        dt_s=dt_s,
        step_hour=step_hour,
        pain=pain.T,
        flare_level=flare.T,
        report=report.T,
        awake=awake.T,
        feature_stride=stride,
        features_db=features.transpose(1, 0, 2),
        feature_pain=pain[::stride].T,
        feature_awake=awake[::stride].T,
    )


def simulate_continuous(
    patients: Sequence[Patient], days: float, dt_s: float, seed: int, progress: Progress = _no_progress
) -> ContinuousRun:
    """Run every patient under continuous stimulation at its ``on_amplitude_ma``."""
    n = len(patients)
    steps = _steps_for(days, dt_s)
    core = _core(patients, dt_s, seed, "naive")
    on = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
    drive = np.empty((steps, n), np.float32)
    pain = np.empty((steps, n), np.float32)
    relief = np.empty((steps, n), np.float32)
    report = np.empty((steps, n), np.float32)
    efficacy = np.empty((steps, n), np.float32)
    for k in range(steps):
        out = core.step(on)
        drive[k] = out[:, L.O_DRIVE_NRS]
        pain[k] = out[:, L.O_PAIN_NRS]
        relief[k] = out[:, L.O_RELIEF_NRS]
        report[k] = out[:, L.O_REPORT_NRS]
        efficacy[k] = out[:, L.O_EFFICACY]
        if (k + 1) % 240 == 0 or k + 1 == steps:
            progress(240 if (k + 1) % 240 == 0 else (k + 1) % 240)
    return ContinuousRun(
        dt_s=dt_s,
        drive=drive.T,
        pain=pain.T,
        relief_nrs=relief.T,
        report=report.T,
        efficacy=efficacy.T,
        stim_energy_j=core.state[:, L.S_ENERGY_STIM_J].copy(),
        drawn_energy_j=core.state[:, L.S_ENERGY_DRAWN_J].copy(),
        elapsed_s=core.state[:, L.S_TIME_S].copy(),
    )


def carryover_steps(dt_s: float) -> int:
    return _steps_for((CARRYOVER_ON_H + CARRYOVER_OFF_H) / 24.0, dt_s)


def simulate_carryover(
    patients: Sequence[Patient], dt_s: float, seed: int, progress: Progress = _no_progress
) -> CarryOverRun:
    """Stimulate at the on amplitude for ``CARRYOVER_ON_H`` h, then switch off."""
    n = len(patients)
    steps = carryover_steps(dt_s)
    off_step = _steps_for(CARRYOVER_ON_H / 24.0, dt_s)
    core = _core(patients, dt_s, seed, "naive")
    on = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
    off = np.zeros(n)
    relief = np.empty((steps, n))
    for k in range(steps):
        core.step(on if k < off_step else off)
        relief[k] = core.state[:, L.S_RELIEF]
        if (k + 1) % 240 == 0 or k + 1 == steps:
            progress(240 if (k + 1) % 240 == 0 else (k + 1) % 240)
    return CarryOverRun(dt_s=dt_s, switch_off_step=off_step, relief_fraction=relief.T)
