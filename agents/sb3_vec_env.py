"""A stable-baselines3 ``VecEnv`` directly over the batched core.

SB3 does not accept a Gymnasium ``VectorEnv``, and a ``DummyVecEnv`` of
single envs would step N cores one by one. This adapter steps one
``PainStimBatch`` for all envs and follows SB3's conventions: same-step
autoreset, ``terminal_observation`` and ``TimeLimit.truncated`` in the info
of a finished env. Wrap it in ``VecMonitor`` for episode statistics.

Seeding: ``seed(s)`` seeds *every* slot with ``s`` (DESIGN.md: patients
differ by uid, so slots never share noise), not SB3's ``s + i``.

``slow_costs`` (default None: nothing changes) makes the training see the
long-run cost of stimulating: a training-only price on on-time and episodes
started at the policy's own tolerance equilibrium (``agents.slow_costs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import Patient, resolve_patients
from simenv.reward import RewardWeights

if TYPE_CHECKING:
    from agents.slow_costs import SlowCosts


class PainStimSB3VecEnv(VecEnv):
    """``n_envs`` patient slots as one SB3 ``VecEnv``.

    With ``patient_pool`` each slot draws a new patient from the pool at every
    episode (domain randomisation); otherwise slot i keeps ``patients[i]``.
    """

    def __init__(
        self,
        patients: Sequence[Patient] | None = None,
        settings: EnvSettings | None = None,
        reward: RewardWeights | None = None,
        patient_pool: Sequence[Patient] | None = None,
        n_envs: int | None = None,
        cohort: str = "default",
        slow_costs: SlowCosts | None = None,
    ) -> None:
        if patients is None:
            if patient_pool is not None and n_envs is not None:
                patients = [patient_pool[i % len(patient_pool)] for i in range(n_envs)]
            else:
                patients = resolve_patients(cohort, n_patients=n_envs)
        self.batch = PainStimBatch(patients, settings, reward, patient_pool=patient_pool)
        self.slow_costs = slow_costs
        if slow_costs is not None:
            slow_costs.attach(self.batch)
        super().__init__(len(patients), self.batch.observation_space, self.batch.action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def reset(self) -> VecEnvObs:
        obs, _ = self.batch.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must come before step_wait"
        # The batched info dict is not built: SB3 only needs the finished slots' entries.
        obs, reward, terminated, truncated = self.batch.step_arrays(self._actions)
        self._actions = None
        done = terminated | truncated
        if self.slow_costs is not None:  # before the autoreset: the finished episodes are booked
            reward = self.slow_costs.after_decision(self.batch, reward, done)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if not done.any():
            return obs, reward.astype(np.float32), done, infos
        idx = np.flatnonzero(done)
        uids = self.batch.slot_uids
        for i in idx:
            infos[i]["terminal_observation"] = obs[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos[i]["episode_patient_uid"] = int(uids[i])
        self.batch._reset_slots(idx, advance=True)
        obs = self.batch.observe()
        return obs, reward.astype(np.float32), done, infos

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.batch, attr_name, None) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.batch, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        method = getattr(self.batch, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)
