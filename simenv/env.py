"""``painloop/PainStim-v0``: one patient, the N = 1 case of the batched core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from simenv.batch import PainStimBatch
from simenv.cohort import Patient, load_patient_yaml, resolve_patients
from simenv.errors import PainloopError
from simenv.info_layout import STEP_INFO
from simenv.reward import TERMS, RewardWeights
from simenv.settings import EnvSettings


def split_reward_kwargs(kwargs: dict[str, Any]) -> tuple[RewardWeights, dict[str, Any]]:
    """Pull reward weights out of env kwargs: ``reward={...}`` and/or ``reward_<term>=w``."""
    kwargs = dict(kwargs)
    weights = dict(kwargs.pop("reward", None) or {})
    for term in TERMS:
        key = f"reward_{term}"
        if key in kwargs:
            weights[term] = kwargs.pop(key)
    return RewardWeights.from_mapping(weights), kwargs


def settings_from_kwargs(kwargs: dict[str, Any]) -> EnvSettings:
    """``EnvSettings`` from keyword arguments; an unknown one lists the allowed names."""
    allowed = set(EnvSettings.__dataclass_fields__)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise PainloopError(
            "PL-ENV-ARG",
            f"unknown environment argument(s) {unknown}; allowed: cohort, patient_index, patient, "
            f"n_patients, patient_indices, reward, reward_<term>, {sorted(allowed)}.",
        )
    return EnvSettings(**kwargs)


def resolve_single_patient(cohort: str, patient_index: int, patient: Patient | str | Path | None) -> Patient:
    """The patient of a single env: an object, a YAML file, or (cohort, index)."""
    if patient is not None:
        return patient if isinstance(patient, Patient) else load_patient_yaml(patient)
    return resolve_patients(cohort, patient_indices=[patient_index])[0]


class PainStimEnv(gym.Env):
    """One virtual patient under closed-loop stimulation.

    Observations: normalised band powers, stimulation state, time since the
    last switch, recent duty cycles, time of day (and optionally the last
    self-report); with ``observation="biomarkers"`` only the band powers (and
    their lags, and the report); with ``observation="detector"`` the band powers
    stimulation leaves alone, averaged over the decision interval (what a device
    detector updating once per decision reads); never the latent pain, which
    ``info`` carries instead.
    Episodes end by truncation after ``horizon_days``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        cohort: str = "default",
        patient_index: int = 0,
        patient: Patient | str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        reward, rest = split_reward_kwargs(kwargs)
        settings = settings_from_kwargs(rest)
        self.patient = resolve_single_patient(cohort, patient_index, patient)
        # Every output but the observation is read at once (into Python values): reused, not allocated.
        self.batch = PainStimBatch([self.patient], settings, reward, reuse_outputs=True)
        self.action_space = self.batch.action_space
        self.observation_space = self.batch.observation_space
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self.batch.reset(seed=seed)
        self._needs_reset = False
        return obs[0], _unbatch(info)

    def step(self, action):
        if self._needs_reset:
            raise PainloopError("PL-ENV-ORDER", "step() called before reset() or after the episode ended; call reset().")
        b = self.batch
        obs, reward, terminated, truncated = b.step_arrays(np.asarray(action)[None, ...])
        term, trunc = bool(terminated[0]), bool(truncated[0])
        self._needs_reset = term or trunc
        return obs[0], float(reward[0]), term, trunc, self._info()

    def _info(self) -> dict:
        """Info of the last step as Python scalars, built straight from the packed arrays.

        Built anew at every step (callers keep infos), so it is kept to one
        list conversion per packed array: it is a fifth of the step's time.
        """
        b = self.batch
        info = dict(zip(STEP_INFO, b.last_info[0].tolist(), strict=True))
        for key in _MAYBE_MISSING:
            if info[key] != info[key]:
                info[key] = None
        info["patient_uid"] = self.patient.uid
        info["patient_index"] = self.patient.index
        info["episode"] = int(b.slot_episode[0])
        info["features_raw"] = b.core.features_db[0].copy()
        info["reward_terms"] = dict(zip(TERMS, b.last_terms[0].tolist(), strict=True))
        return info


# Info values that are NaN when absent (batched) and None in the single env.
_MAYBE_MISSING = ("self_report", "battery_life_years")


def _unbatch(info: dict) -> dict:
    """Slot 0 of a batched info dict as Python scalars (arrays stay arrays); NaN becomes None.

    Missing values (no self-report in this step, no battery history yet) are
    NaN in batched info and None here, so that equality checks hold.
    """
    scalars = [k for k, v in info.items() if not isinstance(v, dict) and v.ndim == 1]
    values = np.array([info[k][0] for k in scalars], dtype=np.float64).tolist()
    out: dict = {k: (None if v != v else v) for k, v in zip(scalars, values, strict=True)}
    for key in ("patient_uid", "patient_index", "episode"):
        out[key] = int(info[key][0])
    for key, value in info.items():
        if isinstance(value, dict):
            out[key] = dict(zip(value, np.array([v[0] for v in value.values()]).tolist(), strict=True))
        elif value.ndim > 1:
            out[key] = value[0]
    return out
