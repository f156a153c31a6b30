"""The batched simulator core: N patients as arrays, one ``step`` for all.

Everything else (the single Gymnasium env, the vector env, the SB3 adapter,
calibration, evaluation) is a thin layer over ``BatchedCore``. The physics
itself is ``simenv.kernel.step_kernel``; this module owns the arrays, the
per-patient constants, the noise streams, resets and input checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from simenv import layout as L
from simenv.biomarkers import (
    ARTIFACT_MASK,
    SLEEP_PROFILE,
    SUPPRESSION_MASK,
    patient_biomarker_layout,
)
from simenv.cohort import Patient
from simenv.decision import amplitudes_safe, time_of_day_h
from simenv.errors import NonFiniteStateError, PainloopError, UnsafeStimulationError
from simenv.kernel import dose_response, seizure_hazard, step_kernel
from simenv.noise import NoiseStreams
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR, PatientParams

INITIAL_STATES = ("naive", "randomized")

#: Version of the model's equations; bumped whenever they change, so models
#: and configs made under other physics can be recognised.
PHYSICS_VERSION = 1


def _decay(dt_s: float, tau_s: float) -> float:
    return math.exp(-dt_s / tau_s)


def _ou_kick(sd: float, decay: float) -> float:
    """Innovation SD of an exactly discretised OU process with stationary SD ``sd``."""
    return sd * math.sqrt(max(1.0 - decay * decay, 0.0))


@lru_cache(maxsize=16_384)
def param_row(params: PatientParams, dt_s: float, start_hour: float) -> np.ndarray:
    """Per-patient constants for the step size ``dt_s`` (exact discretisations)."""
    p, r, t, b, rep, st, se, bat = (
        params.pain,
        params.relief,
        params.tolerance,
        params.biomarker,
        params.reports,
        params.stimulation,
        params.side_effects,
        params.battery,
    )
    row = np.zeros(L.N_PARAMS)
    row[L.P_BASELINE_NRS] = p.baseline_nrs
    row[L.P_CIRC_AMP_NRS] = p.circadian_amplitude_nrs
    row[L.P_CIRC_PEAK_H] = p.circadian_peak_hour
    d = _decay(dt_s, p.fast_tau_h * SECONDS_PER_HOUR)
    row[L.P_FAST_DECAY], row[L.P_FAST_KICK] = d, _ou_kick(p.fast_sd_nrs, d)
    d = _decay(dt_s, p.slow_tau_days * SECONDS_PER_DAY)
    row[L.P_SLOW_DECAY], row[L.P_SLOW_KICK] = d, _ou_kick(p.slow_sd_nrs, d)
    row[L.P_FLARE_ONSET_PROB] = 1.0 - math.exp(-p.flare_rate_per_week / (7 * SECONDS_PER_DAY) * dt_s)
    row[L.P_FLARE_SIZE_NRS] = p.flare_size_nrs
    row[L.P_FLARE_MEDIAN_S] = p.flare_median_duration_h * SECONDS_PER_HOUR
    row[L.P_FLARE_LOG_SD] = p.flare_duration_log_sd
    row[L.P_RELIEF_MAX] = r.max_relief_fraction
    row[L.P_FLOOR_NRS] = r.floor_nrs
    row[L.P_HALF_CHARGE_UC] = r.half_effect_charge_uc
    row[L.P_HILL] = r.hill_coefficient
    row[L.P_ONSET_DECAY] = _decay(dt_s, r.onset_tau_min * 60.0)
    row[L.P_CARRY_DECAY] = _decay(dt_s, r.carryover_tau_min * 60.0)
    row[L.P_TOL_BUILD_DECAY] = _decay(dt_s, t.build_tau_days * SECONDS_PER_DAY)
    row[L.P_TOL_RECOVER_DECAY] = _decay(dt_s, t.recovery_tau_days * SECONDS_PER_DAY)
    row[L.P_TOL_MAX] = 1.0 - t.efficacy_floor
    d = _decay(dt_s, b.noise_tau_s)
    row[L.P_NOISE_DECAY], row[L.P_NOISE_KICK] = d, _ou_kick(b.noise_sd_db, d)
    d = _decay(dt_s, b.drift_tau_days * SECONDS_PER_DAY)
    row[L.P_DRIFT_DECAY], row[L.P_DRIFT_KICK] = d, _ou_kick(b.drift_sd_db, d)
    row[L.P_SLEEP_SHIFT_DB] = b.sleep_shift_db
    row[L.P_SUPPRESSION] = b.stim_suppression_fraction
    row[L.P_SETTLE_DECAY] = _decay(dt_s, b.stim_settle_s / 3.0)
    row[L.P_ARTIFACT_DB] = b.artifact_db
    awake_s = ((rep.sleep_hour - rep.wake_hour) % 24.0) * SECONDS_PER_HOUR
    row[L.P_REPORT_PROB] = min(rep.reports_per_day * dt_s / awake_s, 1.0)
    row[L.P_ADHERENCE] = rep.adherence
    row[L.P_REPORT_SD_NRS] = rep.report_sd_nrs
    row[L.P_WAKE_H] = rep.wake_hour
    row[L.P_SLEEP_H] = rep.sleep_hour
    row[L.P_PULSE_WIDTH_US] = st.pulse_width_us
    # P = I^2 R f PW with I in A and PW in s: (1e-3)^2 * 1e-6 per mA^2 * us.
    row[L.P_POWER_W_PER_MA2] = 1e-6 * st.impedance_ohm * st.frequency_hz * st.pulse_width_us * 1e-6
    row[L.P_RAMP_MA_PER_S] = st.ramp_ma_per_s
    row[L.P_RAMP_DOWN_MA_PER_S] = st.ramp_ma_per_s
    row[L.P_AMP_MAX_MA] = st.amplitude_max_ma
    row[L.P_MILD_RATE_PER_S] = se.mild_max_rate_per_day / SECONDS_PER_DAY
    row[L.P_MILD_HALF_UC] = se.mild_half_charge_uc
    row[L.P_MILD_SLOPE_UC] = se.mild_slope_charge_uc
    row[L.P_SEIZURE_PROB] = se.seizure_prob_abrupt
    row[L.P_SEIZURE_REF_MA] = se.seizure_reference_ma
    row[L.P_SEIZURE_HALF_RATE] = se.seizure_half_rate_ma_per_s
    row[L.P_SEIZURE_WEIGHT] = se.seizure_burden_weight
    row[L.P_SEIZURE_EXPONENT] = se.seizure_rate_exponent
    row[L.P_BURDEN_DECAY] = _decay(dt_s, se.burden_tau_days * SECONDS_PER_DAY)
    row[L.P_EFFICIENCY] = bat.efficiency
    row[L.P_OVERHEAD_W] = bat.overhead_uw * 1e-6
    row[L.P_START_HOUR] = start_hour
    row[L.P_SWITCH_TOL_MA] = 0.5 * st.amplitude_step_ma
    _set_seizure_hazards(row)
    row.setflags(write=False)
    return row


def _set_seizure_hazards(row: np.ndarray) -> None:
    """The seizure hazard of each ramp direction of one parameter row (the kernel's own function)."""
    for ramp, hazard in ((L.P_RAMP_MA_PER_S, L.P_SEIZURE_HAZARD_UP), (L.P_RAMP_DOWN_MA_PER_S, L.P_SEIZURE_HAZARD_DOWN)):
        row[hazard] = seizure_hazard(row[ramp], row[L.P_SEIZURE_HALF_RATE], row[L.P_SEIZURE_EXPONENT])


@lru_cache(maxsize=16_384)
def _biomarker_layout(params: PatientParams, uid: int) -> tuple[np.ndarray, np.ndarray]:
    mean, gain = patient_biomarker_layout(params, uid)
    mean.setflags(write=False)
    gain.setflags(write=False)
    return mean, gain


def tolerance_equilibrium(params: PatientParams) -> float:
    """Tolerance reached under continuous stimulation at the on amplitude."""
    q = params.stimulation.on_amplitude_ma * params.stimulation.pulse_width_us * 1e-3
    effect = dose_response(q, params.relief.half_effect_charge_uc, params.relief.hill_coefficient)
    return (1.0 - params.tolerance.efficacy_floor) * effect


class BatchedCore:
    """State of N patient slots in arrays; ``step`` advances all of them.

    Arrays have shape ``(n_slots, ...)``. A slot holds one patient for one
    episode at a time; ``reset_slots`` starts new episodes (possibly with
    other patients) in any subset of slots without touching the others.
    """

    def __init__(self, n_slots: int, dt_s: float = 30.0, start_hour: float = 0.0, debug_checks: bool = False) -> None:
        if isinstance(n_slots, bool) or int(n_slots) != n_slots or n_slots < 1:
            raise PainloopError("PL-ENV-ARG", f"n_slots={n_slots!r}; allowed: a whole number >= 1.")
        if not (5.0 <= float(dt_s) <= 600.0):
            raise PainloopError("PL-ENV-ARG", f"dt_s={dt_s!r}; allowed: 5 to 600 seconds.")
        if not (0.0 <= float(start_hour) < 24.0):
            raise PainloopError("PL-ENV-ARG", f"start_hour={start_hour!r}; allowed: [0, 24).")
        n = int(n_slots)
        self.n_slots = n
        self.dt_s = float(dt_s)
        self.start_hour = float(start_hour)
        self.debug_checks = debug_checks
        self.state = np.zeros((n, L.N_STATE))
        self.ar_db = np.zeros((n, L.N_FEATURES))
        self.params = np.zeros((n, L.N_PARAMS))
        self.mean_db = np.zeros((n, L.N_FEATURES))
        self.gain_db_per_nrs = np.zeros((n, L.N_FEATURES))
        self.amplitude_max_ma = np.zeros(n)
        self.amplitude_ceiling_ma = np.zeros(n)  # max plus rounding slack: the safety check's limit
        self.outputs = np.zeros((n, L.N_OUTPUTS))
        self.features_db = np.zeros((n, L.N_FEATURES))
        # The kernel's per-slot memo of charge-dependent values (emptied whenever a slot's parameters change).
        self.charge_memo = np.full((n, 9), np.nan)
        self.noise = NoiseStreams(n)
        self.duty_decays = np.array([_decay(self.dt_s, tau) for tau in L.DUTY_TAUS_S])
        self.patients: list[Patient | None] = [None] * n
        self.seeds = np.zeros(n, dtype=np.int64)
        self.episodes = np.zeros(n, dtype=np.int64)

    # ------------------------------------------------------------------ resets
    def reset_slots(
        self,
        slots: Sequence[int] | np.ndarray,
        patients: Sequence[Patient],
        seeds: Sequence[int] | np.ndarray,
        episodes: Sequence[int] | np.ndarray,
        initial_state: str = "naive",
    ) -> None:
        """Start an episode in each given slot: patient, seed and episode index per slot."""
        if initial_state not in INITIAL_STATES:
            raise PainloopError(
                "PL-ENV-ARG", f"initial_state='{initial_state}'; allowed: {list(INITIAL_STATES)}."
            )
        slots = [int(s) for s in slots]
        z, u = self.noise.start_many(slots, seeds, [p.uid for p in patients], episodes)
        for k, (slot, patient, seed, episode) in enumerate(zip(slots, patients, seeds, episodes, strict=True)):
            self._reset_one(slot, patient, int(seed), int(episode), initial_state, z[k], u[k])
        self.check_finite(slots, when="reset")  # episode boundary: always checked

    def _reset_one(
        self, slot: int, patient: Patient, seed: int, episode: int, initial_state: str, z: np.ndarray, u: np.ndarray
    ) -> None:
        prm = patient.params
        self.patients[slot] = patient
        self.seeds[slot] = seed
        self.episodes[slot] = episode
        self.params[slot] = param_row(prm, self.dt_s, self.start_hour)
        self.charge_memo[slot] = np.nan
        self.mean_db[slot], self.gain_db_per_nrs[slot] = _biomarker_layout(prm, patient.uid)
        self.amplitude_max_ma[slot] = prm.stimulation.amplitude_max_ma
        self.amplitude_ceiling_ma[slot] = prm.stimulation.amplitude_max_ma + 1e-9
        s = self.state[slot]
        s[:] = 0.0
        s[L.S_X_FAST] = prm.pain.fast_sd_nrs * z[L.N_FAST]
        for site in range(L.N_SITES):
            s[L.S_DRIFT0 + site] = prm.biomarker.drift_sd_db * z[L.N_DRIFT0 + site]
        self.ar_db[slot] = prm.biomarker.noise_sd_db * z[L.N_AR0 : L.N_AR0 + L.N_FEATURES]
        s[L.S_LAST_REPORT_NRS] = np.nan
        if initial_state == "randomized":
            s[L.S_X_SLOW] = prm.pain.slow_sd_nrs * z[L.N_SLOW]
            s[L.S_TOLERANCE] = u[0] * tolerance_equilibrium(prm)

    # ------------------------------------------------------------------- step
    def check_amplitudes(self, target_ma: np.ndarray) -> np.ndarray:
        """Validate commanded amplitudes (shape (n_slots,)); refuse, never clip."""
        target = np.asarray(target_ma, dtype=np.float64)
        if target.shape != (self.n_slots,):
            raise PainloopError(
                "PL-ACTION-INVALID",
                f"amplitude array has shape {target.shape}; allowed: ({self.n_slots},), one per patient slot.",
            )
        # One vectorised test on the hot path (NaN fails both comparisons);
        # the diagnosis below runs only when something is wrong.
        if amplitudes_safe(target, self.amplitude_ceiling_ma):
            return target
        invalid = ~np.isfinite(target) | (target < 0.0)
        if invalid.any():
            bad = int(np.flatnonzero(invalid)[0])
            raise PainloopError(
                "PL-ACTION-INVALID",
                f"amplitude {target[bad]!r} mA requested for slot {bad}; allowed: finite values >= 0 mA.",
            )
        bad = int(np.flatnonzero(target > self.amplitude_ceiling_ma)[0])
        raise UnsafeStimulationError(
            "PL-SAFETY-AMPLITUDE",
            f"amplitude {target[bad]:g} mA requested for slot {bad} exceeds its safe ceiling "
            f"stimulation.amplitude_max_ma={self.amplitude_max_ma[bad]:g} mA; refused, not clipped.",
        )

    def step(self, target_ma: np.ndarray) -> np.ndarray:
        """Advance every slot by ``dt_s`` toward the commanded amplitudes (mA, shape (n_slots,)).

        Returns the per-step outputs, shape ``(n_slots, N_OUTPUTS)`` (columns in
        ``simenv.layout``, prefix ``O_``); ``features_db`` holds the band powers.
        The returned arrays are reused by the next step: copy what you keep.
        """
        target = self.check_amplitudes(target_ma)
        step_kernel(
            target,
            self.state,
            self.ar_db,
            self.params,
            self.mean_db,
            self.gain_db_per_nrs,
            SLEEP_PROFILE,
            SUPPRESSION_MASK,
            ARTIFACT_MASK,
            self.noise.drawn_normals,
            self.noise.drawn_uniforms,
            self.noise.row,
            self.noise.chunk_start,
            self.noise.clock,
            self.dt_s,
            self.duty_decays,
            self.outputs,
            self.features_db,
            self.charge_memo,
        )
        self.noise.advance()
        if self.debug_checks:
            self.check_finite(range(self.n_slots), when="step")
        return self.outputs

    # ----------------------------------------------------------------- checks
    def check_finite(self, slots: Sequence[int] | range | np.ndarray, when: str) -> None:
        """Raise ``PL-STATE-NONFINITE`` naming slot, step and variable if any state is NaN/inf."""
        idx = np.asarray(list(slots), dtype=np.int64)
        if idx.size == 0:
            return
        state = self.state[idx].copy()
        state[:, L.S_LAST_REPORT_NRS] = 0.0  # NaN means "no report yet"
        bad_state = ~np.isfinite(state)
        bad_ar = ~np.isfinite(self.ar_db[idx])
        if bad_state.any() or bad_ar.any():
            names = {v: k for k, v in vars(L).items() if k.startswith("S_") and isinstance(v, int)}
            if bad_state.any():
                row, col = np.argwhere(bad_state)[0]
                variable = names.get(int(col), f"state[{col}]")
            else:
                row, col = np.argwhere(bad_ar)[0]
                variable = f"biomarker noise {L.FEATURE_NAMES[col]}"
            slot = int(idx[row])
            raise NonFiniteStateError(
                "PL-STATE-NONFINITE",
                f"non-finite value at {when}: slot {slot}, step {int(self.state[slot, L.S_STEPS])}, "
                f"variable {variable}.",
            )

    # --------------------------------------------------------------- helpers
    def set_ramp_rates(self, slots: Sequence[int] | slice, up_ma_per_s: np.ndarray, down_ma_per_s: np.ndarray) -> None:
        """Override the ramp rates of some slots until their next reset (e.g. a device config's).

        Rates must be positive; the slots' safety ceilings are unchanged.
        """
        up = np.asarray(up_ma_per_s, dtype=np.float64)
        down = np.asarray(down_ma_per_s, dtype=np.float64)
        if not (np.all(up > 0) and np.all(down > 0) and np.all(np.isfinite(up)) and np.all(np.isfinite(down))):
            raise PainloopError("PL-ENV-ARG", f"ramp rates up={up!r}, down={down!r} mA/s; allowed: finite values > 0.")
        self.params[slots, L.P_RAMP_MA_PER_S] = up
        self.params[slots, L.P_RAMP_DOWN_MA_PER_S] = down
        for row in np.arange(self.n_slots)[slots]:
            _set_seizure_hazards(self.params[row])

    def time_of_day_h(self) -> np.ndarray:
        """Clock hour at the end of the last step, shape (n_slots,)."""
        hour = np.empty(self.n_slots)
        time_of_day_h(self.state, self.start_hour, hour)
        return hour
