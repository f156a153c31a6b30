"""What an agent sees and commands under given settings: observation names and the Gymnasium spaces.

Built from ``EnvSettings`` alone, without simulating anything, so a saved
model's spaces can be rebuilt from its recorded settings
(``agents.model_zip.spaces_for``) exactly as ``PainStimBatch`` builds them.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from simenv import layout as L
from simenv.settings import EnvSettings


def observation_names(settings: EnvSettings) -> list[str]:
    """Names of the observation vector's entries, in order (``settings.observation`` selects them)."""
    if settings.observation == "detector":
        from simenv.detector_view import CLEAN_FEATURE_NAMES

        return [f"{f}_norm_mean" for f in CLEAN_FEATURE_NAMES]
    names = [f"{f}_norm" for f in L.FEATURE_NAMES]
    for lag in range(1, settings.feature_history + 1):
        names += [f"{f}_norm_lag{lag}" for f in L.FEATURE_NAMES]
    if settings.observation == "full":
        names += [
            "amplitude_fraction",
            "log1p_hours_since_switch",
            "duty_30min",
            "duty_24h",
            "duty_7d",
            "time_of_day_sin",
            "time_of_day_cos",
        ]
    if settings.include_self_report:
        names += ["last_report_tenths", "report_age_days_capped"]
    return names


def action_space_for(settings: EnvSettings) -> spaces.Space:
    """The action space under ``settings``: RL agents' ranges, built from the action mode alone."""
    mode = settings.action_mode
    if mode == "on_off":
        return spaces.Discrete(2)
    if mode == "levels":
        return spaces.Discrete(settings.n_levels)
    return spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)


def observation_space_for(settings: EnvSettings) -> spaces.Box:
    """The observation space under ``settings`` (also what a saved model's spaces are rebuilt from)."""
    obs_dim = len(observation_names(settings))
    low = np.full(obs_dim, -np.inf, dtype=np.float32)
    high = np.full(obs_dim, np.inf, dtype=np.float32)
    start = L.N_FEATURES * (settings.feature_history + 1)
    # [amplitude fraction, log1p hours, three duties, sin, cos,] [report, age]
    bounded_low: list[float] = []
    bounded_high: list[float] = []
    if settings.observation == "full":
        bounded_low += [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0]
        bounded_high += [1.0, np.inf, 1.0, 1.0, 1.0, 1.0, 1.0]
    if settings.include_self_report:
        bounded_low += [0.0, 0.0]
        bounded_high += [1.0, 1.0]
    low[start:] = bounded_low
    high[start:] = bounded_high
    return spaces.Box(low=low, high=high, dtype=np.float32)
