"""painloop's simulator: virtual chronic-pain patients under closed-loop stimulation.

``import simenv`` registers ``painloop/PainStim-v0`` (single patient, and its
native vector form through ``gymnasium.make_vec(...,
vectorization_mode="vector_entry_point")``). It imports neither torch nor
Hydra: a notebook can build an environment and run a policy with NumPy only.
"""

from __future__ import annotations

import gymnasium as gym

from simenv.batch import PainStimBatch
from simenv.cohort import (
    Patient,
    available_presets,
    load_patient_yaml,
    load_preset,
    resolve_patients,
)
from simenv.core import PHYSICS_VERSION, BatchedCore
from simenv.errors import PainloopError, UnsafeStimulationError
from simenv.params import PatientParams
from simenv.reward import TERMS, RewardWeights
from simenv.settings import ACTION_MODES, EnvSettings

ENV_ID = "painloop/PainStim-v0"

if ENV_ID not in gym.registry:
    # No max_episode_steps: episodes are counted in days and dt_s varies, so
    # the core truncates by itself.
    gym.register(
        id=ENV_ID,
        entry_point="simenv.env:PainStimEnv",
        vector_entry_point="simenv.vector_env:PainStimVectorEnv",
        disable_env_checker=False,
    )

__all__ = [
    "ACTION_MODES",
    "ENV_ID",
    "PHYSICS_VERSION",
    "TERMS",
    "BatchedCore",
    "EnvSettings",
    "PainStimBatch",
    "PainloopError",
    "Patient",
    "PatientParams",
    "RewardWeights",
    "UnsafeStimulationError",
    "available_presets",
    "load_patient_yaml",
    "load_preset",
    "resolve_patients",
]
