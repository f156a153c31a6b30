"""Per-patient normalisation from a simulated calibration period.

Before closed-loop use, a clinic records the patient with stimulation off
for a while (default 7 days) and an implant's detector stores, per feature,
a value to subtract and a value to multiply by. ``simenv`` simulates that
period for each patient and keeps the mean and SD of every band power, so
an observation is exactly ``(raw - mean) / sd``, what the device computes.

The calibration noise comes from the patient's own stream
``SeedSequence([uid, CALIBRATION_KEY])``, independent of any episode seed, so
a patient's normalisation is a property of the patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simenv.cohort import Patient
from simenv.core import BatchedCore
from simenv.params import SECONDS_PER_DAY

CALIBRATION_SEED = 0x7CA1_1B8A  # episode seed reserved for calibration runs
CALIBRATION_EPISODE = -1 & 0x7FFF_FFFF
DEFAULT_CALIBRATION_DAYS = 7.0


@dataclass(frozen=True)
class Normalisation:
    """Per-feature subtract (mean) and divide (SD) vectors, dB; shape (N_FEATURES,)."""

    mean_db: np.ndarray
    sd_db: np.ndarray


def _run(patients: Sequence[Patient], dt_s: float, days: float, start_hour: float) -> list[Normalisation]:
    n = len(patients)
    core = BatchedCore(n, dt_s=dt_s, start_hour=start_hour)
    core.reset_slots(range(n), patients, [CALIBRATION_SEED] * n, [CALIBRATION_EPISODE] * n)
    steps = int(round(days * SECONDS_PER_DAY / dt_s))
    total = np.zeros(core.features_db.shape)
    total_sq = np.zeros(core.features_db.shape)
    off = np.zeros(n)
    for _ in range(steps):
        core.step(off)
        f = core.features_db
        total += f
        total_sq += f * f
    mean = total / steps
    sd = np.sqrt(np.maximum(total_sq / steps - mean * mean, 1e-12))
    return [Normalisation(mean[i].copy(), sd[i].copy()) for i in range(n)]


_STORE: dict[tuple, Normalisation] = {}


def normalisation_for(
    patients: Sequence[Patient],
    dt_s: float,
    days: float = DEFAULT_CALIBRATION_DAYS,
    start_hour: float = 0.0,
) -> list[Normalisation]:
    """Normalisation of each patient; those not cached yet are simulated together in one batch."""
    key = (float(dt_s), float(days), float(start_hour))
    missing = [p for p in dict.fromkeys(patients) if (p, *key) not in _STORE]
    if missing:
        for patient, norm in zip(missing, _run(missing, *key), strict=True):
            _STORE[(patient, key[0], key[1], key[2])] = norm
    return [_STORE[(p, key[0], key[1], key[2])] for p in patients]
