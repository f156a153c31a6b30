"""The native vector form of ``painloop/PainStim-v0``: N patients, one core.

Built by ``gymnasium.make_vec("painloop/PainStim-v0", num_envs=N,
vectorization_mode="vector_entry_point", ...)``. Slot ``p`` runs patient
``patient_indices[p]`` (default ``p``) of the cohort, and with the same seed
reproduces ``gymnasium.make(..., patient_index=p)`` bit for bit. Autoreset
follows Gymnasium's NEXT_STEP convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simenv.batch import PainStimBatch
from simenv.cohort import resolve_patients
from simenv.env import settings_from_kwargs, split_reward_kwargs
from simenv.errors import PainloopError


class PainStimVectorEnv(VectorEnv):
    """Gymnasium ``VectorEnv`` over one ``PainStimBatch`` (no subprocesses, no copies)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        cohort: str = "default",
        patient_indices: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        reward, rest = split_reward_kwargs(kwargs)
        settings = settings_from_kwargs(rest)
        indices = list(range(num_envs)) if patient_indices is None else list(patient_indices)
        patients = resolve_patients(cohort, patient_indices=indices)
        if len(patients) != num_envs:
            raise PainloopError(
                "PL-ENV-ARG", f"patient_indices has {len(patients)} entries for num_envs={num_envs}; allowed: one per env."
            )
        self.batch = PainStimBatch(patients, settings, reward)
        self.num_envs = num_envs
        self.single_action_space = self.batch.action_space
        self.single_observation_space = self.batch.observation_space
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):
            raise PainloopError(
                "PL-ENV-ARG", "seed must be one whole number: every slot is seeded with it (patients differ by uid)."
            )
        obs, info = self.batch.reset(seed=seed)
        self._autoreset[:] = False
        return obs, info

    def step(self, actions):
        actions = np.asarray(actions)
        done = self._autoreset
        if done.any():
            # NEXT_STEP autoreset: slots that ended last step reset now; their action is ignored.
            safe = actions.copy()
            safe[done] = 0
            actions = safe
        obs, reward, terminated, truncated, info = self.batch.step(actions)
        if done.any():
            idx = np.flatnonzero(done)
            self.batch._reset_slots(idx, advance=True)
            obs = self.batch.observe()
            # Gymnasium reports the reset's info for the slots that reset now.
            reset_info = self.batch.info_after_reset()
            for key, value in reset_info.items():
                info[key][idx] = value[idx]
            for value in info["reward_terms"].values():
                value[idx] = 0.0
            for key in set(info) - set(reset_info) - {"reward_terms"}:
                info[key][idx] = np.nan
            reward[idx] = 0.0
            terminated[idx] = False
            truncated[idx] = False
        self._autoreset = terminated | truncated
        return obs, reward, terminated, truncated, info
