"""The compiled step: the only implementation of the model's physics.

``step_kernel`` advances every patient of a batch by one control step of
``dt_s`` seconds. It is a plain loop over patients compiled by numba (cached
on disk), so the single environment (N = 1) and the batched core (N > 1) run
the same code at C speed, without NumPy's per-call overhead at N = 1.

Every random number comes from the pre-drawn, per-patient noise buffers
(``simenv.noise``), so the step is a deterministic function of its inputs
and two policies see exactly the same exogenous noise. Equations are given
symbol for symbol in ``docs/model.md``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from simenv import layout as L
from simenv.numba_cache import forget_when_changed

_SQRT_EPS = 1e-300


@numba.njit(cache=True, inline="always")
def norm_ppf(u: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |rel err| < 1.2e-9).

    Used to turn a pre-drawn uniform into a normal for rare events (flare
    durations, report errors), so no normal is drawn on the steps where
    nothing happens.
    """
    u = min(max(u, 1e-16), 1.0 - 1e-16)
    a1, a2, a3 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a4, a5, a6 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b1, b2, b3 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b4, b5 = 6.680131188771972e01, -1.328068155288572e01
    c1, c2, c3 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c4, c5, c6 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d1, d2, d3, d4 = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00
    if u < 0.02425:
        q = math.sqrt(-2.0 * math.log(u))
        return (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / (
            (((d1 * q + d2) * q + d3) * q + d4) * q + 1.0
        )
    if u > 1.0 - 0.02425:
        q = math.sqrt(-2.0 * math.log(1.0 - u))
        return -(((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / (
            (((d1 * q + d2) * q + d3) * q + d4) * q + 1.0
        )
    q = u - 0.5
    r = q * q
    return (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q / (
        ((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1.0
    )


@numba.njit(cache=True, inline="always")
def dose_response(charge_uc: float, half_uc: float, hill: float) -> float:
    """Saturating (Hill) effect of charge per phase, 0 at zero charge, 1 at saturation."""
    if charge_uc <= 0.0:
        return 0.0
    x = (charge_uc / half_uc) ** hill
    return x / (1.0 + x)


@numba.njit(cache=True, inline="always")
def mild_event_probability(charge_uc: float, q, dt_s: float) -> float:
    """Probability of a mild side-effect event within one step at this charge per phase.

    The rate rises as a logistic of the charge above its baseline at zero
    charge, so without charge it is exactly 0 (and not computed).
    """
    if charge_uc <= 0.0:
        return 0.0
    half = q[L.P_MILD_HALF_UC]
    slope = q[L.P_MILD_SLOPE_UC]
    base = 1.0 / (1.0 + math.exp(half / slope))
    logistic = 1.0 / (1.0 + math.exp(-(charge_uc - half) / slope))
    mild_rate = q[L.P_MILD_RATE_PER_S] * max(logistic - base, 0.0) / (1.0 - base)
    return 1.0 - math.exp(-mild_rate * dt_s)


@numba.njit(cache=True)
def seizure_hazard(ramp_ma_per_s: float, half_rate_ma_per_s: float, exponent: float) -> float:
    """Rate dependence of the after-discharge risk, x / (1 + x) with x = (ramp / half rate) ** exponent.

    It depends on constants only, so the core computes it once per slot and
    ramp direction (``P_SEIZURE_HAZARD_UP``/``_DOWN``) with this function.
    """
    x = (ramp_ma_per_s / half_rate_ma_per_s) ** exponent
    return x / (1.0 + x)


@numba.njit(cache=True, inline="always")
def is_awake(hour: float, wake_h: float, sleep_h: float) -> bool:
    """True between the waking and sleeping clock hours (wrapping past midnight)."""
    if wake_h < sleep_h:
        return wake_h <= hour < sleep_h
    return hour >= wake_h or hour < sleep_h


# error_model="numpy": a division by zero gives inf/NaN (caught by the finite-state
# checks) instead of a Python exception, so no zero test precedes every division.
# nogil: the noise thread (simenv.noise) draws the next chunks while the kernel runs.
@numba.njit(cache=True, error_model="numpy", nogil=True)
def step_kernel(
    target_ma,  # (N,) commanded amplitude, mA, already checked safe
    state,  # (N, N_STATE) updated in place
    ar_db,  # (N, N_FEATURES) AR(1) feature noise, updated in place
    params,  # (N, N_PARAMS)
    mean_db,  # (N, N_FEATURES) feature means without pain, sleep or stimulation
    gain_db_per_nrs,  # (N, N_FEATURES) feature loading on pain
    sleep_profile,  # (N_FEATURES,) sign and size of the sleep shift per feature
    suppression_mask,  # (N_FEATURES,) 1 where stimulation lowers band power
    artifact_mask,  # (N_FEATURES,) 1 where stimulation adds artifact
    normals,  # (N, C, N_NORMALS) pre-drawn standard normals
    uniforms,  # (N, C, N_UNIFORMS) pre-drawn uniforms
    noise_row,  # (N,) int64 buffer row each patient reads (patients sharing a stream share a row)
    noise_chunk_start,  # (N,) int64 step counter when each patient's buffer chunk began
    noise_clock,  # step counter of this step: the patient reads column noise_clock - noise_chunk_start
    dt_s,
    duty_decays,  # (3,) exp(-dt / tau) for the duty-cycle averages
    out,  # (N, N_OUTPUTS) written
    features_db,  # (N, N_FEATURES) written
    charge_memo,  # (N, 9) per slot, 3 x (charge per phase uC, dose response, mild-event probability), newest first
):
    n = state.shape[0]
    # Slots usually share the clock: the previous slot's hour is reused when its inputs are the same (same bits).
    last_start, last_t, hour = math.nan, math.nan, 0.0
    for p in range(n):
        s = state[p]
        q = params[p]
        column = noise_clock - noise_chunk_start[p]
        z = normals[noise_row[p], column]
        u = uniforms[noise_row[p], column]
        o = out[p]

        # --- clock ----------------------------------------------------------
        t_s = s[L.S_TIME_S]
        if t_s != last_t or q[L.P_START_HOUR] != last_start:
            last_t, last_start = t_s, q[L.P_START_HOUR]
            hour = (last_start + (t_s + 0.5 * dt_s) / 3600.0) % 24.0
        awake = is_awake(hour, q[L.P_WAKE_H], q[L.P_SLEEP_H])

        # --- amplitude ramp: slew at most ramp * dt toward the target ---------
        a0 = s[L.S_AMPLITUDE_MA]
        target = target_ma[p]
        delta = target - a0
        # Up and down ramps may differ (device configs set both; a patient's
        # stimulation.ramp_ma_per_s sets both by default).
        ramp = q[L.P_RAMP_MA_PER_S] if delta >= 0.0 else q[L.P_RAMP_DOWN_MA_PER_S]
        max_move = ramp * dt_s
        if delta > max_move:
            a1 = a0 + max_move
        elif delta < -max_move:
            a1 = a0 - max_move
        else:
            a1 = target
        ramp_s = abs(a1 - a0) / ramp  # time spent slewing within the step
        flat_s = dt_s - ramp_s
        a_mean = (ramp_s * 0.5 * (a0 + a1) + flat_s * a1) / dt_s
        a_sq_mean = (ramp_s * (a0 * a0 + a0 * a1 + a1 * a1) / 3.0 + flat_s * a1 * a1) / dt_s
        if a1 > 0.0:
            on_fraction = 1.0
        elif a0 > 0.0:
            on_fraction = ramp_s / dt_s
        else:
            on_fraction = 0.0

        switched = 1.0 if abs(target - s[L.S_TARGET_MA]) > q[L.P_SWITCH_TOL_MA] else 0.0

        # --- pain drive ------------------------------------------------------
        x_fast = q[L.P_FAST_DECAY] * s[L.S_X_FAST] + q[L.P_FAST_KICK] * z[L.N_FAST]
        x_slow = q[L.P_SLOW_DECAY] * s[L.S_X_SLOW] + q[L.P_SLOW_KICK] * z[L.N_SLOW]
        flare_left = s[L.S_FLARE_LEFT_S]
        flare_level = s[L.S_FLARE_LEVEL]
        if flare_left > 0.0:
            flare_left -= dt_s
            if flare_left <= 0.0:
                flare_left = 0.0
                flare_level = 0.0
        elif u[L.U_FLARE_ONSET] < q[L.P_FLARE_ONSET_PROB]:
            flare_level = q[L.P_FLARE_SIZE_NRS] * (0.75 + 0.5 * u[L.U_FLARE_SIZE])
            flare_left = q[L.P_FLARE_MEDIAN_S] * math.exp(
                q[L.P_FLARE_LOG_SD] * norm_ppf(u[L.U_FLARE_DURATION])
            )
        circadian = q[L.P_CIRC_AMP_NRS] * math.cos(2.0 * math.pi * (hour - q[L.P_CIRC_PEAK_H]) / 24.0)
        drive = q[L.P_BASELINE_NRS] + circadian + x_fast + x_slow + flare_level

        # --- tolerance and relief (first-order, asymmetric time constants) ----
        charge_uc = a_mean * q[L.P_PULSE_WIDTH_US] * 1e-3
        # The dose response and the mild-event probability depend on the charge and the slot's constants only.
        # On/off control repeats three charges (the step of a switch on, steady on, the step of a switch off),
        # so each slot keeps its last three distinct charges with both values, newest first: a hit returns the
        # very values the computation gives. The core empties a slot's memo (NaN) when its parameters change.
        m = charge_memo[p]
        if charge_uc <= 0.0:
            effect, p_mild = 0.0, 0.0
        elif charge_uc == m[0]:
            effect, p_mild = m[1], m[2]
        elif charge_uc == m[3]:
            effect, p_mild = m[4], m[5]
        elif charge_uc == m[6]:
            effect, p_mild = m[7], m[8]
        else:
            effect = dose_response(charge_uc, q[L.P_HALF_CHARGE_UC], q[L.P_HILL])
            p_mild = mild_event_probability(charge_uc, q, dt_s)
            for c in range(3):
                m[6 + c] = m[3 + c]
                m[3 + c] = m[c]
            m[0], m[1], m[2] = charge_uc, effect, p_mild
        tol = s[L.S_TOLERANCE]
        tol_target = q[L.P_TOL_MAX] * effect
        k = q[L.P_TOL_BUILD_DECAY] if tol_target > tol else q[L.P_TOL_RECOVER_DECAY]
        tol = tol_target + (tol - tol_target) * k
        relief_untolerated = q[L.P_RELIEF_MAX] * effect
        relief_target = relief_untolerated * (1.0 - tol)
        r = s[L.S_RELIEF]
        k = q[L.P_ONSET_DECAY] if relief_target > r else q[L.P_CARRY_DECAY]
        r = relief_target + (r - relief_target) * k

        excess = drive - q[L.P_FLOOR_NRS]
        if excess < 0.0:
            excess = 0.0
        pain = drive - r * excess
        pain = min(max(pain, 0.0), 10.0)
        drive_clipped = min(max(drive, 0.0), 10.0)

        # --- biomarkers ------------------------------------------------------
        settled = a_mean + (s[L.S_STIM_SETTLED_MA] - a_mean) * q[L.P_SETTLE_DECAY]
        amp_max = q[L.P_AMP_MAX_MA]
        supp_db = 10.0 * math.log10(max(1.0 - q[L.P_SUPPRESSION] * settled / amp_max, 1e-6))
        artifact = q[L.P_ARTIFACT_DB] * a_mean / amp_max
        sleep_db = 0.0 if awake else q[L.P_SLEEP_SHIFT_DB]
        pain_dev = pain - q[L.P_BASELINE_NRS]
        nd = q[L.P_NOISE_DECAY]
        nk = q[L.P_NOISE_KICK]
        for site in range(L.N_SITES):
            drift = (
                q[L.P_DRIFT_DECAY] * s[L.S_DRIFT0 + site] + q[L.P_DRIFT_KICK] * z[L.N_DRIFT0 + site]
            )
            s[L.S_DRIFT0 + site] = drift
            for b in range(L.N_BANDS):
                j = site * L.N_BANDS + b
                ar = nd * ar_db[p, j] + nk * z[L.N_AR0 + j]
                ar_db[p, j] = ar
                features_db[p, j] = (
                    mean_db[p, j]
                    + gain_db_per_nrs[p, j] * pain_dev
                    + ar
                    + drift
                    + sleep_profile[j] * sleep_db
                    + suppression_mask[j] * supp_db
                    + artifact_mask[j] * artifact
                )

        # --- self-reports (awake only) ---------------------------------------
        report = math.nan
        age = s[L.S_REPORT_AGE_S] + dt_s
        if awake and u[L.U_REPORT_PROMPT] < q[L.P_REPORT_PROB] and u[L.U_REPORT_ANSWER] < q[L.P_ADHERENCE]:
            raw = pain + q[L.P_REPORT_SD_NRS] * norm_ppf(u[L.U_REPORT_ERROR])
            report = min(max(math.floor(raw + 0.5), 0.0), 10.0)
            s[L.S_LAST_REPORT_NRS] = report
            age = 0.0

        # --- energy ----------------------------------------------------------
        stim_j = q[L.P_POWER_W_PER_MA2] * a_sq_mean * dt_s
        drawn_j = stim_j / q[L.P_EFFICIENCY] + q[L.P_OVERHEAD_W] * dt_s

        # --- side effects (p_mild: with the dose response above) ---------------
        p_seizure = 0.0
        step_ma = abs(a1 - a0)
        if step_ma > 0.0:
            h = q[L.P_SEIZURE_HAZARD_UP] if delta >= 0.0 else q[L.P_SEIZURE_HAZARD_DOWN]  # seizure_hazard(ramp)
            ref = q[L.P_SEIZURE_REF_MA]
            p_seizure = min(q[L.P_SEIZURE_PROB] * h * (step_ma / ref) * (max(a0, a1) / ref), 1.0)
        mild = 1.0 if u[L.U_MILD] < p_mild else 0.0
        seizure = 1.0 if u[L.U_SEIZURE] < p_seizure else 0.0
        weight = q[L.P_SEIZURE_WEIGHT]

        # --- write state -----------------------------------------------------
        s[L.S_X_FAST] = x_fast
        s[L.S_X_SLOW] = x_slow
        s[L.S_FLARE_LEVEL] = flare_level
        s[L.S_FLARE_LEFT_S] = flare_left
        s[L.S_TOLERANCE] = tol
        s[L.S_RELIEF] = r
        s[L.S_AMPLITUDE_MA] = a1
        s[L.S_STIM_SETTLED_MA] = settled
        s[L.S_BURDEN] = s[L.S_BURDEN] * q[L.P_BURDEN_DECAY] + mild + weight * seizure
        s[L.S_ENERGY_STIM_J] += stim_j
        s[L.S_ENERGY_DRAWN_J] += drawn_j
        s[L.S_TIME_S] = t_s + dt_s
        s[L.S_REPORT_AGE_S] = age
        for i in range(3):
            d = duty_decays[i]
            s[L.S_DUTY_30MIN + i] = d * s[L.S_DUTY_30MIN + i] + (1.0 - d) * on_fraction
        s[L.S_SINCE_SWITCH_S] = 0.0 if switched > 0.0 else s[L.S_SINCE_SWITCH_S] + dt_s
        s[L.S_MILD_EVENTS] += mild
        s[L.S_SEIZURE_EVENTS] += seizure
        s[L.S_TARGET_MA] = target
        s[L.S_SWITCHES] += switched
        s[L.S_ON_TIME_S] += on_fraction * dt_s
        s[L.S_STEPS] += 1.0

        o[L.O_PAIN_NRS] = pain
        o[L.O_DRIVE_NRS] = drive
        o[L.O_RELIEF_NRS] = drive_clipped - pain
        o[L.O_RELIEF_LOST_NRS] = (relief_untolerated - relief_target) * excess
        o[L.O_AMP_MEAN_MA] = a_mean
        o[L.O_ON_FRACTION] = on_fraction
        o[L.O_STIM_ENERGY_J] = stim_j
        o[L.O_DRAWN_ENERGY_J] = drawn_j
        o[L.O_MILD_EVENT] = mild
        o[L.O_SEIZURE_EVENT] = seizure
        o[L.O_SIDE_EFFECT_EXPECTED] = p_mild + weight * p_seizure
        o[L.O_REPORT_NRS] = report
        o[L.O_SWITCHED] = switched
        o[L.O_ASLEEP] = 0.0 if awake else 1.0
        o[L.O_HIGH_PAIN] = 1.0 if pain >= L.HIGH_PAIN_NRS else 0.0
        o[L.O_EFFICACY] = 1.0 - tol


def warm_up() -> None:
    """Compile (or load from the cache) the kernel on a one-patient batch."""
    n = 1
    step_kernel(
        np.zeros(n),
        np.zeros((n, L.N_STATE)),
        np.zeros((n, L.N_FEATURES)),
        np.ones((n, L.N_PARAMS)),
        np.zeros((n, L.N_FEATURES)),
        np.zeros((n, L.N_FEATURES)),
        np.zeros(L.N_FEATURES),
        np.zeros(L.N_FEATURES),
        np.zeros(L.N_FEATURES),
        np.zeros((n, 1, L.N_NORMALS)),
        np.full((n, 1, L.N_UNIFORMS), 0.5),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        0,
        30.0,
        np.ones(3),
        np.zeros((n, L.N_OUTPUTS)),
        np.zeros((n, L.N_FEATURES)),
        np.full((n, 9), np.nan),
    )


forget_when_changed(__name__, depends_on=("simenv.layout",))
