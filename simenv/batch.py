"""The environment logic shared by every front end, over one ``BatchedCore``.

``PainStimBatch`` turns actions into amplitudes, holds them for the decision
interval, builds observations (what a device could sense), computes the
reward and its named terms, counts the horizon and fills ``info`` with the
latent quantities. The single Gymnasium env (N = 1), the Gymnasium vector
env and the stable-baselines3 adapter are thin shells around it, so none of
this exists twice.

Arrays are batched: shape ``(n_slots, ...)``. The settings
(``simenv.settings``), the observation names and spaces (``simenv.spaces``)
and the packed info's columns (``simenv.info_layout``) have modules of their
own; ``EnvSettings`` and ``observation_names``, which the docs name as
``simenv.batch.*``, are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from simenv import layout as L
from simenv.biomarkers import ARTIFACT_MASK, SLEEP_PROFILE, SUPPRESSION_MASK
from simenv.calibration import normalisation_for
from simenv.cohort import Patient
from simenv.core import BatchedCore
from simenv.decision import (
    discrete_amplitudes,
    finish_decision,
    observe_into,
    pack_state_info,
    simulate_decisions,
    simulate_steps,
)
from simenv.detector_view import detector_observation
from simenv.errors import PainloopError
from simenv.info_layout import ACC_COLS, OUT_COLS, STATE_COLS, STATE_INFO, STEP_INFO
from simenv.params import SECONDS_PER_DAY
from simenv.reward import ENERGY_UNIT_W, TERMS, RewardWeights
from simenv.settings import ACTION_MODES, EnvSettings
from simenv.spaces import action_space_for, observation_names, observation_space_for


class PainStimBatch:
    """A batch of patient slots with actions, observations, rewards and info.

    ``patients`` fixes the patient of each slot. With ``patient_pool`` (and
    ``patients`` only giving the first draw), each slot draws a new patient
    from the pool at every reset: domain randomisation for training.
    """

    def __init__(
        self,
        patients: Sequence[Patient],
        settings: EnvSettings | None = None,
        reward: RewardWeights | None = None,
        patient_pool: Sequence[Patient] | None = None,
        reuse_outputs: bool = False,
    ) -> None:
        self.settings = settings or EnvSettings()
        self.reward_weights = reward or RewardWeights()
        self._w = np.array(self.reward_weights.as_tuple())
        # Raw sums -> reward terms: energy J/step -> mean power in 100 uW units,
        # expected events/step -> events per day.
        dt = self.settings.dt_s
        self._term_scale = np.array([1.0, 1.0, 1.0 / (dt * ENERGY_UNIT_W), SECONDS_PER_DAY / dt, 1.0])
        self._hour: np.ndarray | None = None
        self._horizon_steps = self.settings.horizon_steps  # settings are frozen: computed once
        self._steps_per_decision = self.settings.steps_per_decision
        self._running: int | None = None
        self._no_observation: np.ndarray | None = None  # step_arrays(observe=False) returns it
        # A decision's sums (emptied again by finish_decision) and clock: work arrays, reused.
        self._acc = np.zeros((len(patients), len(ACC_COLS)))
        self._steps_done = np.zeros(len(patients))
        self._report = np.full(len(patients), np.nan)
        self._hour_buffer = np.empty(len(patients))
        self._own_table: np.ndarray | None = None  # set at each reset (_refresh_slot_constants)
        # reuse_outputs: step_arrays returns the same reward, terminated and truncated arrays each time
        # (and last_info, last_terms), for a caller that reads them at once (the single env; allocating
        # them cost about 7% of its step); the observation stays new.
        self._reused: tuple[np.ndarray, ...] | None = None
        if reuse_outputs:
            m = len(patients)
            self._reused = (np.empty((m, len(TERMS))), np.empty(m), np.empty(m, dtype=bool),
                            np.empty((m, len(STEP_INFO))), np.zeros(m, dtype=bool))
        s = self.settings
        self.n = len(patients)
        self.core = BatchedCore(self.n, dt_s=s.dt_s, start_hour=s.start_hour, debug_checks=s.debug_checks)
        self.pool = list(patient_pool) if patient_pool else None
        self.slot_patients: list[Patient] = list(patients)
        self._all_patients = list(dict.fromkeys(list(patients) + (self.pool or [])))
        normals = normalisation_for(self._all_patients, s.dt_s, s.calibration_days, s.start_hour)
        self._norm = {p: n for p, n in zip(self._all_patients, normals, strict=True)}
        self.norm_mean = np.zeros((self.n, L.N_FEATURES))
        self.norm_scale = np.ones((self.n, L.N_FEATURES))  # 1 / SD
        self.obs_names = observation_names(s)
        self._full = s.observation == "full"
        # ``detector``: the band powers of the decision's steps, averaged (``simenv.detector_view``).
        self._detector = s.observation == "detector"
        self.obs_dim = len(self.obs_names)
        depth = s.steps_per_decision if self._detector else s.feature_history + 1
        self._history = np.zeros((self.n, depth, L.N_FEATURES))
        self.seed_value = 0
        self._started = False
        self.slot_episode = np.zeros(self.n, dtype=np.int64)
        self._pool_rng: np.random.Generator | None = None
        self._next_pool_episode = 0
        self.action_space = action_space_for(s)
        self.observation_space = observation_space_for(s)
        #: ``reset_hook(batch, slots)`` runs when slots start episodes, before anything observes them
        #: (None, the default: nothing; ``agents.slow_costs`` sets a start state for training).
        self.reset_hook: Callable[[PainStimBatch, np.ndarray], None] | None = None

    def set_reward_weights(self, reward: RewardWeights) -> None:
        """Weigh the reward terms with ``reward`` from the next decision on.

        A constrained training changes the energy weight between rollouts
        (``experiments.training.budget_multiplier``); nothing else changes.
        """
        self.reward_weights = reward
        self._w = np.array(reward.as_tuple())

    # ------------------------------------------------------------- actions
    def amplitudes_for(
        self,
        actions: Any,  # whatever a policy returned: refused with PL-ACTION-INVALID unless valid
        mode: str | None = None,
        slots: slice = slice(None),
        n_levels: int | None = None,
    ) -> np.ndarray:
        """Map actions to commanded amplitudes in mA for ``slots`` (default: all, shape (n_slots,)).

        ``mode`` and ``n_levels`` default to this environment's; a paired
        evaluation passes each controller's own, so controllers with different
        action modes share one batch. Out-of-range or NaN actions raise
        ``PL-ACTION-INVALID``: never a silent clip.
        """
        mode = mode or self.settings.action_mode
        if mode == "continuous":
            amax = self.core.amplitude_max_ma[slots]
            n = amax.shape[0]
            a = np.asarray(actions, dtype=np.float64).reshape(-1)
            if a.shape != (n,) or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
                raise PainloopError(
                    "PL-ACTION-INVALID",
                    f"continuous actions {np.asarray(actions).ravel()[:8]!r} (shape {np.shape(actions)}); "
                    f"allowed: {n} finite values in [-1, 1] (-1 = 0 mA, 1 = amplitude_max_ma).",
                )
            step = self._amp_step[slots]
            amps = np.round((np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * amax / step) * step
            return np.minimum(amps, amax)
        if mode not in ACTION_MODES:
            raise PainloopError("PL-ENV-ARG", f"action_mode='{mode}'; allowed: {list(ACTION_MODES)}.")
        return self._discrete_amplitudes(actions, self.discrete_table(mode, slots, n_levels), mode)

    def _discrete_amplitudes(self, actions: Any, table_ma: np.ndarray, mode: str) -> np.ndarray:
        """``table_ma[p, actions[p]]`` per slot; an action that is not a whole number in range raises."""
        a = np.asarray(actions).reshape(-1)
        n, n_actions = table_ma.shape
        amps = np.empty(n)
        if a.dtype.kind == "b":
            a = a.astype(np.int64)
        # Integers or whole-number floats in 0..n_actions-1 (NaN fails); one compiled pass maps and checks.
        if a.shape != (n,) or a.dtype.kind not in "iuf" or discrete_amplitudes(a, table_ma, amps) >= 0:
            raise PainloopError(
                "PL-ACTION-INVALID",
                f"{mode} actions {np.asarray(actions).ravel()[:8]!r} (shape {np.shape(actions)}); "
                f"allowed: {n} whole numbers in 0..{n_actions - 1}.",
            )
        return amps

    def discrete_table(self, mode: str, slots: slice = slice(None), n_levels: int | None = None) -> np.ndarray:
        """Amplitude (mA) of each discrete action (``on_off`` or ``levels`` mode) per slot of ``slots``.

        Row ``p``, column ``a`` is what action ``a`` commands in slot ``p``; the
        table holds until the next reset. ``amplitudes_for`` maps through it, and
        a caller mapping the same slots at every decision can keep it.
        """
        levels = n_levels or self.settings.n_levels
        if mode == "on_off":
            return self._on_off_ma[slots]
        if levels == self.settings.n_levels:
            return self._level_ma[slots]
        return self._levels_table(levels)[slots]

    def _levels_table(self, levels: int) -> np.ndarray:
        """Amplitude (mA) of each of ``levels`` evenly spaced levels per slot, on each patient's step grid."""
        amax = self.core.amplitude_max_ma
        step = self._amp_step
        idx = np.arange(levels)[None, :]
        return np.minimum(np.round(amax[:, None] * idx / (levels - 1) / step[:, None]) * step[:, None], amax[:, None])

    def _refresh_slot_constants(self) -> None:
        pats = self.slot_patients
        self._on_ma = np.array([p.params.stimulation.on_amplitude_ma for p in pats])
        self._amp_step = np.array([p.params.stimulation.amplitude_step_ma for p in pats])
        k = self.settings.n_levels
        amax = np.array([p.params.stimulation.amplitude_max_ma for p in pats])
        levels = amax[:, None] * np.linspace(0.0, 1.0, k)[None, :]
        self._level_ma = np.minimum(np.round(levels / self._amp_step[:, None]) * self._amp_step[:, None], amax[:, None])
        self._on_off_ma = np.stack([np.zeros(len(pats)), self._on_ma], axis=1)
        # What this environment's own (discrete) actions command, per slot: step_arrays maps through it.
        mode = self.settings.action_mode
        self._own_table = None if mode == "continuous" else self.discrete_table(mode)
        self._capacity_j = np.array([p.params.battery.capacity_j for p in pats])
        self._uids = np.array([p.uid for p in pats], dtype=np.int64)
        self._indices = np.array([p.index for p in pats], dtype=np.int64)

    # ------------------------------------------------------------- resets
    def reset(self, seed: int | None = None, slots: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
        """Start new episodes; ``seed`` re-seeds every slot with the same value (DESIGN.md)."""
        if seed is None and not self._started:
            # Like Gymnasium: a first reset without a seed draws one from OS
            # entropy (``seed_value`` tells which), so episode 0 is still played.
            seed = int(cast(int, np.random.SeedSequence().entropy) % (2**63))  # a fresh sequence's entropy is an int
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise PainloopError("PL-ENV-ARG", f"seed={seed!r}; allowed: a whole number >= 0.")
            self.seed_value = int(seed)
            self.slot_episode[:] = 0
            self._next_pool_episode = 0
            self._pool_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x9001])))
            first = True
        else:
            first = False
        self._started = True
        idx = np.arange(self.n) if slots is None else np.asarray(list(slots), dtype=np.int64)
        self._reset_slots(idx, advance=not first)
        return self.observe(), self.info_after_reset()

    def _reset_slots(self, idx: np.ndarray, advance: bool) -> None:
        if advance:
            self.slot_episode[idx] += 1
        if self.pool is not None:
            if self._pool_rng is None:
                self._pool_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed_value, 0x9001])))
            for slot in idx:
                self.slot_patients[int(slot)] = self.pool[int(self._pool_rng.integers(len(self.pool)))]
            episodes = np.arange(self._next_pool_episode, self._next_pool_episode + len(idx))
            self._next_pool_episode += len(idx)
        else:
            episodes = self.slot_episode[idx]
        self._refresh_slot_constants()
        patients = [self.slot_patients[int(i)] for i in idx]
        self.core.reset_slots(idx, patients, [self.seed_value] * len(idx), episodes, self.settings.initial_state)
        for i, p in zip(idx, patients, strict=True):
            norm = self._norm.get(p)
            if norm is None:  # a patient outside the pool cannot appear, but stay safe
                norm = normalisation_for([p], self.settings.dt_s, self.settings.calibration_days, self.settings.start_hour)[0]
                self._norm[p] = norm
            self.norm_mean[i] = norm.mean_db
            self.norm_scale[i] = 1.0 / norm.sd_db
        # Before the first step the device has no band power yet: the history
        # starts at the calibration mean (normalised 0).
        self._history[idx] = 0.0
        # Empty already, unless an error interrupted a decision.
        self._acc[idx] = 0.0
        self._steps_done[idx] = 0.0
        self._report[idx] = np.nan
        self._hour = None  # the clock of the reset slots changed
        self._running = None  # slots inside their episode: recounted at the next step
        if self.reset_hook is not None:
            self.reset_hook(self, idx)

    # ------------------------------------------------------------- stepping
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Apply actions for one decision interval; returns obs, reward, terminated, truncated, info.

        Slots whose episode ends are reported ``truncated``; they are not reset
        here (front ends choose same-step or next-step autoreset).
        """
        obs, reward, terminated, truncated = self.step_arrays(actions)
        return obs, reward, terminated, truncated, self.step_info()

    def step_arrays(
        self, actions: np.ndarray | None, amplitudes_ma: np.ndarray | None = None, observe: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``step`` without building the info dict (``step_info()`` builds it on demand).

        ``observe=False`` skips assembling the observation (a caller whose
        policies read only ``info``, such as an evaluation of baselines): the
        returned observation is then an array of NaN, shared between calls.

        ``amplitudes_ma`` (shape (n_slots,)) replaces ``actions`` when the caller
        has already mapped each slot's action (``amplitudes_for``).

        A batch made with ``reuse_outputs`` returns the same reward, terminated
        and truncated arrays at every step (the next step overwrites them, as it
        does ``last_info`` and ``last_terms``); the observation is always new.
        """
        core = self.core
        if amplitudes_ma is not None:
            target = core.check_amplitudes(amplitudes_ma)
        elif self._own_table is not None:
            target = self._discrete_amplitudes(actions, self._own_table, self.settings.action_mode)
        else:
            target = self.amplitudes_for(actions)
        horizon = self._horizon_steps
        n = self.n
        self._simulate_decision(target)
        terms, reward, truncated, packed, terminated = self._outputs()
        hour = self._hour = self._hour_buffer
        kernel_observes = observe and not self._detector
        obs = np.empty((n, self.obs_dim), dtype=np.float32) if kernel_observes else self._unobserved()
        n_truncated = finish_decision(
            core.state, core.outputs, self._acc, self._steps_done, self._report, self._term_scale, self._w, horizon, STATE_COLS,
            OUT_COLS, self._capacity_j, core.start_hour, self._history, core.amplitude_max_ma,
            self.settings.include_self_report, hour, terms, reward, truncated, packed, obs, kernel_observes, self._full,
        )
        if observe and self._detector:
            obs = detector_observation(self._history)
        if n_truncated:
            core.check_finite(np.flatnonzero(truncated), when="end of episode")
        self.last_info = packed
        self.last_terms = terms
        return obs, reward, terminated, truncated

    def run_decisions(self, amplitudes_ma: np.ndarray) -> np.ndarray:
        """``step_arrays(None, amplitudes_ma[j], observe=False)`` for each row ``j``; each decision's reward.

        ``amplitudes_ma`` has shape (n_decisions, n_slots); the rewards come
        back as (n_slots, n_decisions), and ``last_info`` and ``last_terms``
        are the last decision's. The same simulation, bit for bit, as the
        loop of ``step_arrays``: where the noise chunks hold every step, no
        slot reaches its horizon and ``debug_checks`` is off, one compiled
        call runs all the decisions (``simenv.decision.simulate_decisions``:
        a look-ahead of many short decisions is dominated by the round trip
        per decision); otherwise that loop runs here.
        """
        amplitudes_ma = np.asarray(amplitudes_ma, dtype=np.float64)
        if amplitudes_ma.ndim != 2 or amplitudes_ma.shape[1] != self.n:
            raise PainloopError("PL-ACTION-INVALID", f"amplitude table has shape {amplitudes_ma.shape}; allowed: "
                                f"(n_decisions, {self.n}), one row per decision and a column per slot.")
        core = self.core
        n_decisions = amplitudes_ma.shape[0]
        steps = n_decisions * self._steps_per_decision
        rewards = np.empty((self.n, n_decisions))
        fits = (not core.debug_checks and steps <= core.noise.steps_left
                and bool(np.all(core.state[:, L.S_STEPS] + steps < self._horizon_steps)))
        if not fits:
            for j in range(n_decisions):
                rewards[:, j] = self.step_arrays(None, amplitudes_ma[j], observe=False)[1]
            return rewards
        terms, reward, truncated, packed, _ = self._outputs()
        noise = core.noise
        hour = self._hour = self._hour_buffer
        done = simulate_decisions(
            amplitudes_ma, self._steps_per_decision, core.amplitude_ceiling_ma, core.state, core.ar_db, core.params,
            core.mean_db, core.gain_db_per_nrs, SLEEP_PROFILE, SUPPRESSION_MASK, ARTIFACT_MASK, noise.drawn_normals,
            noise.drawn_uniforms, noise.row, noise.chunk_start, noise.clock, core.dt_s, core.duty_decays,
            core.outputs, core.features_db, core.charge_memo, self.norm_mean, self.norm_scale, self._history,
            self._horizon_steps, ACC_COLS, self._acc, self._steps_done, self._report, self._term_scale, self._w,
            STATE_COLS, OUT_COLS, self._capacity_j, core.start_hour, core.amplitude_max_ma,
            self.settings.include_self_report, hour, terms, reward, truncated, packed, self._unobserved(),
            self._full, rewards,
        )
        if done:
            noise.advance(done * self._steps_per_decision)
        self._running = self.n
        self.last_info = packed
        self.last_terms = terms
        if done < n_decisions:
            core.check_amplitudes(amplitudes_ma[done])  # raises, naming the slot and the limit
        return rewards

    def _outputs(self) -> tuple[np.ndarray, ...]:
        """A decision's terms, reward, truncated, packed info and terminated: the reused arrays, or new ones."""
        if self._reused is not None:
            return self._reused
        n = self.n
        return (np.empty((n, len(TERMS))), np.empty(n), np.empty(n, dtype=bool), np.empty((n, len(STEP_INFO))),
                np.zeros(n, dtype=bool))

    def _unobserved(self) -> np.ndarray:
        """The observation returned when none is assembled: NaN, one array shared between calls."""
        if self._no_observation is None:
            self._no_observation = np.full((self.n, self.obs_dim), np.nan, dtype=np.float32)
        return self._no_observation

    def _simulate_decision(self, target: np.ndarray) -> None:
        """Run the decision's simulator steps at ``target`` (mA), booked into the decision's sums.

        One compiled call runs every step the noise chunks hold; the streams
        are advanced (and refilled) between calls. With ``debug_checks`` each
        step is its own call, followed by the finite-state check.
        """
        core = self.core
        noise = core.noise
        horizon = self._horizon_steps
        running = self._running
        if running is None:
            running = int(np.count_nonzero(core.state[:, L.S_STEPS] < horizon))
        remaining = self._steps_per_decision
        while remaining and running:
            n_steps = 1 if core.debug_checks else min(remaining, noise.steps_left)
            taken, running = simulate_steps(
                target, core.amplitude_ceiling_ma, core.state, core.ar_db, core.params, core.mean_db,
                core.gain_db_per_nrs, SLEEP_PROFILE, SUPPRESSION_MASK, ARTIFACT_MASK, noise.drawn_normals,
                noise.drawn_uniforms, noise.row, noise.chunk_start, noise.clock, core.dt_s, core.duty_decays,
                core.outputs, core.features_db, core.charge_memo, n_steps, self.norm_mean, self.norm_scale,
                self._history, horizon, ACC_COLS, self._acc, self._steps_done, self._report, running,
            )
            if taken < 0:
                core.check_amplitudes(target)  # raises, naming the slot and the limit
            noise.advance(taken)
            if core.debug_checks:
                core.check_finite(range(core.n_slots), when="step")
            remaining -= taken
        self._running = running

    # ------------------------------------------------------------- observation
    def observe(self, hour: np.ndarray | None = None) -> np.ndarray:
        """Observation batch, float32, shape (n_slots, obs_dim); never the latent pain."""
        if self._detector:
            return detector_observation(self._history)
        if hour is None:
            hour = self.core.time_of_day_h()
        obs = np.empty((self.n, self.obs_dim), dtype=np.float32)
        observe_into(self.core.state, self._history, self.core.amplitude_max_ma, hour,
                     self.settings.include_self_report, self._full, obs)
        return obs

    # ------------------------------------------------------------- info
    def _packed_state_info(self) -> np.ndarray:
        """State-derived info as one (n_slots, len(STATE_INFO)) array."""
        packed = np.empty((self.n, len(STATE_INFO)))
        hour = self._hour if self._hour is not None else self.core.time_of_day_h()
        pack_state_info(self.core.state, STATE_COLS, self._capacity_j, hour, packed)
        return packed

    @property
    def slot_uids(self) -> np.ndarray:
        """Patient uid of each slot's current episode (do not modify)."""
        return self._uids

    def _ids(self) -> dict:
        return {"patient_uid": self._uids.copy(), "patient_index": self._indices.copy(), "episode": self.slot_episode.copy()}

    def info_after_reset(self) -> dict:
        """Info at reset: identity and state-derived values; ``features_raw`` is the calibration mean."""
        packed = self._packed_state_info()
        info = {name: packed[:, i] for i, name in enumerate(STATE_INFO)}
        info.update(self._ids())
        info["features_raw"] = self.norm_mean.copy()  # no band power measured yet
        return info

    def step_info(self) -> dict:
        """Info of the last decision, batched: latent quantities, energies, events, reward terms."""
        packed = self.last_info
        info: dict[str, Any] = {name: packed[:, i] for i, name in enumerate(STEP_INFO)}
        info.update(self._ids())
        info["features_raw"] = self.core.features_db.copy()
        info["reward_terms"] = {name: self.last_terms[:, i] for i, name in enumerate(TERMS)}
        return info

    # ------------------------------------------------------------- helpers
    @property
    def calibration(self) -> list:
        """Normalisation (subtract / divide vectors) of each slot's current patient."""
        return [self._norm[p] for p in self.slot_patients]

    def describe_patients(self) -> list[dict]:
        """Slot-by-slot patient descriptions for the policy protocol's ``reset(patients)``."""
        return [
            {
                "uid": p.uid,
                "cohort": p.cohort,
                "index": p.index,
                "params": p.params,
                "normalisation": self._norm[p],
            }
            for p in self.slot_patients
        ]

