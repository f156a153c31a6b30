"""Compiled assembly of one decision's results: what ``PainStimBatch`` returns after the physics.

The physics is ``simenv.kernel.step_kernel`` alone. This module compiles the
environment's bookkeeping around it (feature history, sums over a decision,
reward terms, the observation, the packed ``info`` columns) into a few numba
loops, so a decision costs a handful of calls whatever the batch size,
instead of some forty small NumPy operations (which dominated the single
environment's step). ``simenv.batch`` is the only caller; the column order
of the packed arrays is defined in ``simenv.info_layout``.

Every function is a plain loop over slots, so a slot's values never depend
on the batch size.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from simenv import layout as L
from simenv.kernel import step_kernel
from simenv.numba_cache import forget_when_changed
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_YEAR

_TWO_PI_OVER_24 = 2.0 * np.pi / 24.0


@numba.njit(cache=True)
def amplitudes_safe(target_ma, ceiling_ma) -> bool:
    """True if every commanded amplitude is in [0, its ceiling] (NaN fails)."""
    for p in range(target_ma.shape[0]):
        if not (target_ma[p] >= 0.0 and target_ma[p] <= ceiling_ma[p]):
            return False
    return True


@numba.njit(cache=True)
def discrete_amplitudes(actions, table_ma, out_ma) -> int:
    """``out_ma[p] = table_ma[p, actions[p]]``; returns the first slot with an invalid action, or -1.

    ``actions`` may hold integers or floats; a float must be a whole number
    (NaN never is).
    """
    n_actions = table_ma.shape[1]
    for p in range(actions.shape[0]):
        a = actions[p]
        if not (a >= 0 and a < n_actions and a == math.floor(a)):
            return p
        out_ma[p] = table_ma[p, int(a)]
    return -1


@numba.njit(cache=True)
def after_sim_step(state, outputs, features_db, norm_mean, norm_scale, history, horizon_steps, acc_cols, acc,
                   steps_done, report) -> int:
    """Book one simulator step into the decision's sums; returns the slots still inside their episode.

    Pushes the normalised band powers into the feature history (every slot),
    and, for slots whose step was inside the episode, adds the ``acc_cols``
    outputs to ``acc``, counts the step and keeps a self-report made in it.
    """
    n = state.shape[0]
    n_hist = history.shape[1]
    running = 0
    for p in range(n):
        for h in range(n_hist - 1, 0, -1):
            for j in range(L.N_FEATURES):
                history[p, h, j] = history[p, h - 1, j]
        for j in range(L.N_FEATURES):
            history[p, 0, j] = (features_db[p, j] - norm_mean[p, j]) * norm_scale[p, j]
        steps = state[p, L.S_STEPS]
        if steps <= horizon_steps:  # the step just taken was inside the episode
            for c in range(acc_cols.shape[0]):
                acc[p, c] += outputs[p, acc_cols[c]]
            steps_done[p] += 1.0
            r = outputs[p, L.O_REPORT_NRS]
            if not math.isnan(r):
                report[p] = r
        if steps < horizon_steps:
            running += 1
    return running


@numba.njit(cache=True, nogil=True)  # nogil: the noise thread draws meanwhile (simenv.noise)
def simulate_steps(target_ma, ceiling_ma, state, ar_db, params, mean_db, gain_db_per_nrs, sleep_profile,
                   suppression_mask, artifact_mask, normals, uniforms, noise_row, noise_chunk_start, noise_clock,
                   dt_s, duty_decays, outputs, features_db, charge_memo, n_steps, norm_mean, norm_scale, history,
                   horizon_steps, acc_cols, acc, steps_done, report, running):
    """Up to ``n_steps`` simulator steps at ``target_ma``, each booked by ``after_sim_step``.

    Stops early once no slot is inside its episode (``running`` is 0). The
    noise streams are not moved: step ``k`` of the run reads the columns of
    ``noise_clock + k`` and the caller advances the streams by the steps taken,
    so ``n_steps`` must not exceed the streams' ``steps_left``. Returns (steps
    taken, slots still running); steps taken is -1, with nothing simulated, if an amplitude is
    outside [0, its ceiling] (the caller diagnoses it). One compiled call per
    decision replaces a Python loop of kernel, noise and booking calls.
    """
    if not amplitudes_safe(target_ma, ceiling_ma):
        return -1, running
    taken = 0
    while taken < n_steps and running > 0:
        step_kernel(target_ma, state, ar_db, params, mean_db, gain_db_per_nrs, sleep_profile, suppression_mask,
                    artifact_mask, normals, uniforms, noise_row, noise_chunk_start, noise_clock + taken, dt_s,
                    duty_decays, outputs, features_db, charge_memo)
        running = after_sim_step(state, outputs, features_db, norm_mean, norm_scale, history, horizon_steps,
                                 acc_cols, acc, steps_done, report)
        taken += 1
    return taken, running


@numba.njit(cache=True)
def time_of_day_h(state, start_hour, hour):
    """Clock hour at the end of the last step of each slot.

    Slots usually share the clock: the previous slot's hour is reused when its time is the same (same bits),
    saving a division and a modulo per slot.
    """
    last_time, h = math.nan, math.nan
    for p in range(state.shape[0]):
        t = state[p, L.S_TIME_S]
        if t != last_time:
            last_time = t
            h = (start_hour + t / SECONDS_PER_HOUR) % 24.0
        hour[p] = h


@numba.njit(cache=True)
def observe_into(state, history, amplitude_max_ma, hour, include_self_report, full, obs):
    """The observation (float32): feature history [, stimulation state, duty cycles, clock] [, last report].

    ``full`` false leaves out the stimulation state, duty cycles and clock
    (``EnvSettings.observation == "biomarkers"``): what a band-power detector can see.
    """
    n_hist = history.shape[1] * L.N_FEATURES
    # Slots usually share the clock: the sine and cosine of the previous slot's hour are reused (same bits).
    last_hour, sin_h, cos_h = math.nan, 0.0, 1.0
    for p in range(state.shape[0]):
        s = state[p]
        k = 0
        for h in range(history.shape[1]):
            for j in range(L.N_FEATURES):
                obs[p, k] = history[p, h, j]
                k += 1
        if full:
            if hour[p] != last_hour:
                last_hour = hour[p]
                angle = _TWO_PI_OVER_24 * last_hour
                sin_h, cos_h = math.sin(angle), math.cos(angle)
            obs[p, n_hist] = s[L.S_AMPLITUDE_MA] / amplitude_max_ma[p]
            obs[p, n_hist + 1] = math.log1p(s[L.S_SINCE_SWITCH_S] / SECONDS_PER_HOUR)
            obs[p, n_hist + 2] = s[L.S_DUTY_30MIN]
            obs[p, n_hist + 3] = s[L.S_DUTY_24H]
            obs[p, n_hist + 4] = s[L.S_DUTY_7D]
            obs[p, n_hist + 5] = sin_h
            obs[p, n_hist + 6] = cos_h
            k = n_hist + 7
        if include_self_report:
            last = s[L.S_LAST_REPORT_NRS]
            if math.isnan(last):
                obs[p, k] = 0.0
                obs[p, k + 1] = 1.0
            else:
                obs[p, k] = last / 10.0
                obs[p, k + 1] = min(s[L.S_REPORT_AGE_S] / SECONDS_PER_DAY, 1.0)


@numba.njit(cache=True)
def pack_state_info(state, state_cols, capacity_j, hour, packed):
    """State-derived info columns: ``state_cols``, battery energy left, battery life (years), clock hour."""
    i = state_cols.shape[0]
    for p in range(state.shape[0]):
        s = state[p]
        for c in range(i):
            packed[p, c] = s[state_cols[c]]
        drawn = s[L.S_ENERGY_DRAWN_J]
        t = s[L.S_TIME_S]
        packed[p, i] = capacity_j[p] - drawn
        # Projected life of a full battery at the mean draw so far (NaN before any time has passed).
        if drawn > 0.0:
            packed[p, i + 1] = capacity_j[p] * t / SECONDS_PER_YEAR / drawn
        elif t > 0.0:
            packed[p, i + 1] = math.inf
        else:
            packed[p, i + 1] = math.nan
        packed[p, i + 2] = hour[p]


@numba.njit(cache=True)
def finish_decision(state, outputs, acc, steps_done, report, term_scale, weights, horizon_steps, state_cols,
                    out_cols, capacity_j, start_hour, history, amplitude_max_ma, include_self_report, hour, terms,
                    reward, truncated, packed, obs, observe, full):
    """Clock, reward terms and reward, truncation, packed info and observation of a finished decision.

    Returns the number of truncated slots. ``obs`` is left untouched when ``observe`` is false;
    ``full`` is ``observe_into``'s (false: band powers [and last report] only). The decision's
    sums (``acc``, ``steps_done``, ``report``) are emptied for the next decision.

    Terms are the sums in ``acc`` scaled by ``term_scale``; the first four
    are means over the decision's steps, switching stays a count. The reward
    is minus the weighted terms summed in order, row by row.
    """
    n_terms = terms.shape[1]
    j0 = packed.shape[1] - out_cols.shape[0] - 5
    n_truncated = 0
    time_of_day_h(state, start_hour, hour)
    pack_state_info(state, state_cols, capacity_j, hour, packed)
    if observe:
        observe_into(state, history, amplitude_max_ma, hour, include_self_report, full, obs)
    for p in range(state.shape[0]):
        per = max(steps_done[p], 1.0)
        total = 0.0
        for i in range(n_terms):
            v = acc[p, i] * term_scale[i]
            if i < 4:
                v /= per
            terms[p, i] = v
            total += v * weights[i]
        reward[p] = -total
        truncated[p] = state[p, L.S_STEPS] >= horizon_steps
        n_truncated += truncated[p]
        j = j0
        for c in range(out_cols.shape[0]):
            packed[p, j] = outputs[p, out_cols[c]]
            j += 1
        for c in range(4):
            packed[p, j + c] = acc[p, n_terms + c]
        packed[p, j + 4] = report[p]
        for c in range(acc.shape[1]):
            acc[p, c] = 0.0
        steps_done[p] = 0.0
        report[p] = math.nan
    return n_truncated


@numba.njit(cache=True)
def simulate_decisions(targets_ma, steps_per_decision, ceiling_ma, state, ar_db, params, mean_db, gain_db_per_nrs,
                       sleep_profile, suppression_mask, artifact_mask, normals, uniforms, noise_row,
                       noise_chunk_start, noise_clock, dt_s, duty_decays, outputs, features_db, charge_memo,
                       norm_mean, norm_scale, history, horizon_steps, acc_cols, acc, steps_done, report, term_scale,
                       weights, state_cols, out_cols, capacity_j, start_hour, amplitude_max_ma, include_self_report,
                       hour, terms, reward, truncated, packed, obs, full, rewards_out):
    """Decision ``j`` at ``targets_ma[j]`` for every row ``j``: ``simulate_steps`` then ``finish_decision``, unobserved.

    The same calls, in the same order, as one ``PainStimBatch.step_arrays``
    per row (so the same bits), without returning to Python between
    decisions: a look-ahead of many short decisions spent most of its time
    in that round trip. Each decision's reward goes to ``rewards_out[:, j]``.
    The caller guarantees that the noise chunks hold every step and that no
    slot reaches ``horizon_steps``. Returns the decisions run: fewer than
    the rows, with nothing simulated for the rest, where a row's amplitude is
    outside [0, its ceiling] (the caller diagnoses it).
    """
    running = state.shape[0]
    for j in range(targets_ma.shape[0]):
        taken, running = simulate_steps(
            targets_ma[j], ceiling_ma, state, ar_db, params, mean_db, gain_db_per_nrs, sleep_profile,
            suppression_mask, artifact_mask, normals, uniforms, noise_row, noise_chunk_start,
            noise_clock + j * steps_per_decision, dt_s, duty_decays, outputs, features_db, charge_memo,
            steps_per_decision, norm_mean, norm_scale, history, horizon_steps, acc_cols, acc, steps_done, report,
            running)
        if taken < 0:
            return j
        finish_decision(state, outputs, acc, steps_done, report, term_scale, weights, horizon_steps, state_cols,
                        out_cols, capacity_j, start_hour, history, amplitude_max_ma, include_self_report, hour, terms,
                        reward, truncated, packed, obs, False, full)
        rewards_out[:, j] = reward
    return targets_ma.shape[0]


forget_when_changed(__name__, depends_on=("simenv.layout", "simenv.params", "simenv.kernel"))
