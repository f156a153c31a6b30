"""The ``detector`` observation: what a device detector reads, as it reads it.

A device detector (the Summit RC+S LD) that updates once per decision reads
each band's power averaged over the update period; and a detector that must
not read the stimulation's own footprint senses only the bands stimulation
leaves alone (docs/export.md: in the model, the artifact on the stimulated
site's high gamma and the suppression of beta and low gamma at both sites,
``simenv.biomarkers``). A policy trained on this observation decides from
exactly what such a detector reads, so a linear detector can reproduce it as
far as the policy is linear.

One function computes it from the last normalised band powers (newest first),
for the simulator (``PainStimBatch``, from its feature history) and for a
run's policy outside it (``agents.rl_policy``, from the band powers it is
given step by step), so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from simenv import layout as L
from simenv.biomarkers import ARTIFACT_MASK, SUPPRESSION_MASK

#: Feature indices a ``detector`` observation holds: the bands stimulation does not move.
CLEAN_FEATURES = np.flatnonzero((SUPPRESSION_MASK == 0) & (ARTIFACT_MASK == 0))
#: Their names (``simenv.layout.FEATURE_NAMES``).
CLEAN_FEATURE_NAMES = [L.FEATURE_NAMES[j] for j in CLEAN_FEATURES]


def detector_observation(window: np.ndarray) -> np.ndarray:
    """float32 (n, len(CLEAN_FEATURES)): the mean over ``window``'s steps of the clean bands.

    ``window`` holds normalised band powers, shape (n, steps, N_FEATURES), newest step first.
    """
    return window[:, :, CLEAN_FEATURES].mean(axis=1).astype(np.float32)
