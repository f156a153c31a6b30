"""Look-ahead on copies of simulator slots: every candidate for every patient, in one batch, by the evaluation's reward.

A planner hands over the slots it controls in the evaluation's core. This
module keeps one ``PainStimBatch`` of ``n_candidates x n_patients`` slots
(slot ``c * n_patients + i``: patient ``i`` under candidate ``c``), built
over the same patients, settings and reward weights, so the physics, the
decision bookkeeping and the reward are the simulator's own code (there is
no second copy of either). A look-ahead copies each patient's full state
(state, biomarker noise state, the kernel's charge memo) into its candidate
slots, writes the window of exogenous noise the look-ahead is to run on
into the batch's noise rows (one row per patient, read by all its
candidates: common random numbers across candidates), and steps the batch
through the candidates' on/off tables.

The batch's noise buffers are written directly: a chunk longer than any
look-ahead, no worker thread, and every window starting at the chunk's
first row; the batch's own generators are never drawn from after the reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from agents.planner_noise import FutureNoise
from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import Patient
from simenv.core import BatchedCore
from simenv.noise import NoiseStreams
from simenv.reward import RewardWeights
from simenv.settings import EnvSettings

#: The look-ahead batch's horizon: long enough that no copied slot is ever truncated.
_NEVER_DAYS = 3650.0


@dataclass(frozen=True)
class LookaheadResult:
    """What a look-ahead measured, per slot of the look-ahead batch (shape ``(n_candidates * n_patients, ...)``)."""

    reward: np.ndarray  # reward summed over the look-ahead's decisions
    on_time_s: np.ndarray  # time with amplitude > 0 over the look-ahead (ramps count as on), s
    first_rewards: np.ndarray  # reward of each of the first ``keep`` decisions, shape (n_slots, keep)
    state_after_first: np.ndarray  # the state after the first ``keep`` decisions, shape (n_slots, N_STATE)


class Lookahead:
    """``n_candidates`` copies of ``n_patients`` slots, stepped together through candidate on/off tables."""

    def __init__(self, patients: Sequence[Patient], core: BatchedCore, slots: slice, settings: EnvSettings,
                 reward: RewardWeights, n_candidates: int, max_decisions: int) -> None:
        self.n_patients = len(patients)
        self.n_candidates = n_candidates
        plan_settings = replace(settings, horizon_days=_NEVER_DAYS, debug_checks=False)
        self.steps_per_decision = plan_settings.steps_per_decision
        batch = PainStimBatch(list(patients) * n_candidates, plan_settings, reward)
        max_steps = max_decisions * self.steps_per_decision
        batch.core.noise = NoiseStreams(batch.n, chunk_steps=max_steps + 1, prefetch=False)
        batch.reset(seed=0)
        noise = batch.core.noise
        # Slots with the same (seed, uid, episode) share their leader's noise row: one row per patient.
        self._rows = noise.row[: self.n_patients].copy()
        if not np.array_equal(noise.row, np.tile(self._rows, n_candidates)):
            raise ValueError("look-ahead slots of one patient must share one noise row")
        own, theirs = batch.core, core
        for name in ("params", "mean_db", "gain_db_per_nrs", "amplitude_max_ma", "amplitude_ceiling_ma"):
            self._by_candidate(getattr(own, name))[:] = getattr(theirs, name)[slots]
        self._on_ma = batch.discrete_table("on_off")[:, 1].copy()
        self.batch = batch

    def _by_candidate(self, array: np.ndarray) -> np.ndarray:
        """A view of a per-slot array as (n_candidates, n_patients, ...)."""
        return array.reshape(self.n_candidates, self.n_patients, *array.shape[1:])

    def amplitude_table(self, on_off: np.ndarray, candidate_of_slot: np.ndarray) -> np.ndarray:
        """Amplitudes (mA) per look-ahead decision and slot, shape (n_decisions, n_slots), from ``on_off`` (n_candidates, n_decisions)."""
        return np.ascontiguousarray((on_off[candidate_of_slot] * self._on_ma[:, None]).T)

    def run(self, core: BatchedCore, slots: slice, noise: FutureNoise, amplitudes_ma: np.ndarray,
            keep: int) -> LookaheadResult:
        """Copy the patients' slots ``slots`` of ``core`` and step every candidate through ``amplitudes_ma`` (n_decisions, n_slots)."""
        batch = self.batch
        own = batch.core
        n_decisions = amplitudes_ma.shape[0]
        buffers = own.noise
        noise.write(core.state[slots, L.S_STEPS], n_decisions * self.steps_per_decision,
                    [buffers.drawn_normals[r] for r in self._rows], [buffers.drawn_uniforms[r] for r in self._rows])
        buffers.restart_chunks_here()
        self._by_candidate(own.state)[:] = core.state[slots]
        self._by_candidate(own.ar_db)[:] = core.ar_db[slots]
        self._by_candidate(own.charge_memo)[:] = core.charge_memo[slots]
        on_start = own.state[:, L.S_ON_TIME_S].copy()
        keep = min(keep, n_decisions)
        first = batch.run_decisions(amplitudes_ma[:keep])
        after = own.state.copy()
        rest = batch.run_decisions(amplitudes_ma[keep:])
        total = np.zeros(batch.n)
        for rewards in (first, rest):  # summed decision by decision, in order
            for j in range(rewards.shape[1]):
                total += rewards[:, j]
        return LookaheadResult(total, own.state[:, L.S_ON_TIME_S] - on_start, first, after)
