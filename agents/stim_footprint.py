"""The stimulation's own footprint on each band power, measured as a clinic would: an on/off test.

Stimulation shows in the band powers it is meant to be driven by (in the
model: an artifact on the stimulated site's high gamma, suppression of beta
and low gamma at both sites; ``simenv.biomarkers``). A detector that reads
those bands can learn to read its own stimulation state, a latch that holds
stimulation on (or off) whatever the pain does (docs/export.md). A device
team avoids this by sensing away from the bands stimulation moves, which it
finds with a stimulation test in clinic: stimulation switched on and off in
short alternating blocks while the bands are recorded.

``measure_footprint`` is that test in the simulator: each patient alternates
every step between its on amplitude and 0 mA for ``hours`` of waking time,
from the start state, on its own noise (``seed``). Pain moves little within
one step (relief builds with a 5-minute time constant), so the mean band
power over the "on" steps minus that over the "off" steps is the
stimulation's footprint; alternation cancels slow drift to first order. It
is measured, not read from the patient's parameters, so it holds for any
footprint the model is given. ``footprint_bands`` names the bands it moves
by more than a limit, which the distillation then leaves out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import Patient
from simenv.params import SECONDS_PER_HOUR

#: Hours of the clinic test: 240 alternating 30-s steps, a standard error of about 0.08 dB per band.
PROBE_HOURS = 2.0
#: The test starts at the wake hour plus this, so it is awake throughout (band powers shift in sleep).
_START_AFTER_WAKE_H = 2.0


@dataclass(frozen=True)
class Footprint:
    """Per patient and band (n, N_FEATURES): mean band power with stimulation on minus off, dB, and its SE."""

    shift_db: np.ndarray
    se_db: np.ndarray
    amplitudes_ma: np.ndarray  # (n,) the amplitude each patient was tested at
    hours: float

    def bands_moved(self, limit_db: float) -> list[list[int]]:
        """Per patient, the band indices whose footprint exceeds ``limit_db`` and three standard errors."""
        moved = (np.abs(self.shift_db) > limit_db) & (np.abs(self.shift_db) > 3.0 * self.se_db)
        return [np.flatnonzero(row).tolist() for row in moved]


def measure_footprint(
    patients: Sequence[Patient],
    amplitudes_ma: np.ndarray,
    dt_s: float,
    seed: int,
    hours: float = PROBE_HOURS,
) -> Footprint:
    """Alternate each patient between ``amplitudes_ma[i]`` and 0 mA every step for ``hours``; the band shift.

    The first step (from rest) is left out; the rest are paired on/off and
    the shift is the mean of (on - off) over the pairs, its SE from their spread.
    """
    amplitudes = np.asarray(amplitudes_ma, dtype=np.float64).reshape(-1)
    if amplitudes.shape != (len(patients),):
        raise ValueError(f"one amplitude per patient is needed: {amplitudes.shape} for {len(patients)} patients")
    steps = max(int(round(hours * SECONDS_PER_HOUR / dt_s)) // 2 * 2, 4)
    wake = np.array([p.params.reports.wake_hour for p in patients])
    # One batch, one clock: start when every patient is awake (the latest waking hour, plus a margin).
    start_hour = float((np.max(wake) + _START_AFTER_WAKE_H) % 24.0)
    settings = EnvSettings(dt_s=dt_s, horizon_days=(steps + 2) * dt_s / 86400.0, start_hour=start_hour)
    batch = PainStimBatch(list(patients), settings)
    batch.reset(seed=seed)
    zero = np.zeros(len(patients))
    batch.step_arrays(None, amplitudes, observe=False)  # from rest: not a settled "on" step
    features = np.empty((steps, len(patients), L.N_FEATURES))
    for k in range(steps):
        batch.step_arrays(None, zero if k % 2 == 0 else amplitudes, observe=False)
        features[k] = batch.core.features_db
    diff = features[1::2] - features[0::2]  # on - off, pairs of adjacent steps
    n_pairs = diff.shape[0]
    return Footprint(diff.mean(axis=0), diff.std(axis=0, ddof=1) / np.sqrt(n_pairs), amplitudes, steps * dt_s / 3600.0)
