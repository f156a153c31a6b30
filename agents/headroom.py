"""Share of headroom closed: how far each controller is from the best non-privileged baseline toward a bound.

A score alone does not say how much is left to gain. With a privileged
bound in the evaluation (the headroom planner, ``agents.planner``: it reads
the latent state, and the clairvoyant variant the patient's future noise),
each controller's place between the best hand-designed baseline ``B`` (the
non-latent, non-learned controller with the highest mean reward) and the
bound ``P`` is, per metric, a ratio of paired means over the same patients:

    reward:  share = mean(r_c - r_B) / mean(r_P - r_B)
    pain:    share = mean(p_B - p_c) / mean(p_B - p_P)     (less pain is better)

0 is the baseline, 1 the bound; below 0 worse than the baseline, above 1
better than the bound (on that metric; the bound maximises reward, not
pain).

**Pain at matched energy.** Plain pain rewards spending energy; a fair
pain share compares each controller with what the baselines reach *at
its own energy*. Given ``matched_pain`` (per label, each patient's pain
of the baselines' front read at that label's mean energy; the caller
builds the front, ``experiments.evaluation.headroom``):

    pain at matched energy:  share = mean(F(E_c) - p_c) / mean(F(E_P) - p_P)

0 is the baselines' front, 1 the bound's lead over the front at its own
energy; a baseline on the front scores 0, one off it below 0.

The 95% interval is a paired percentile bootstrap over patients (the same
resampled patients for numerator and denominator, a fixed seed, so the
table is reproducible). Each headroom itself (``mean(r_P - r_B)``, and
the pain leads) is reported with its paired t-interval: when it crosses 0
the shares are ratios of noise and the table says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agents.evaluation_result import EvaluationResult

#: Resamples of the bootstrap; its seed is fixed so a table is reproducible.
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


def best_baseline(result: EvaluationResult, baselines: Sequence[str]) -> str:
    """The label among ``baselines`` with the highest mean reward per day (the first one on a tie)."""
    if not baselines:
        raise ValueError("no non-privileged baseline to measure the headroom from")
    return max(baselines, key=lambda label: (float(np.mean(result.per_patient[label]["reward_per_day"])),
                                             -list(baselines).index(label)))


def _t_interval(diff: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats

    n = diff.size
    mean = float(np.mean(diff))
    half = float(stats.t.ppf(0.975, n - 1)) * float(np.std(diff, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return mean, mean - half, mean + half


def _share(gain: np.ndarray, room: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """mean(gain) / mean(room) and its paired percentile-bootstrap 95% interval (``draws``: patient indices)."""
    total = float(np.mean(room))
    share = float(np.mean(gain)) / total if total != 0 else math.nan
    rooms = room[draws].mean(axis=1)
    ratios = np.where(rooms != 0, gain[draws].mean(axis=1) / np.where(rooms != 0, rooms, 1.0), np.nan)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size < draws.shape[0] // 2:
        return share, math.nan, math.nan
    low, high = np.percentile(ratios, [2.5, 97.5])
    return share, float(low), float(high)


def headroom_rows(result: EvaluationResult, bound: str, baselines: Sequence[str],
                  kinds: Mapping[str, str] | None = None,
                  matched_pain: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """One row per controller: its share of the headroom between the best of ``baselines`` and ``bound``.

    ``baselines`` are the non-privileged, hand-designed labels the best
    baseline is chosen from; ``kinds`` (label -> controller kind) only
    annotate the rows. ``matched_pain`` (label -> per-patient pain of the
    baselines' front at that label's energy, every label and ``bound``)
    adds the share on pain at matched energy (module docstring); without
    it those columns are NaN.
    """
    base = best_baseline(result, baselines)
    n = len(result.patients)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(N_BOOTSTRAP, n))
    pp = result.per_patient
    room_reward = pp[bound]["reward_per_day"] - pp[base]["reward_per_day"]
    room_pain = pp[base]["mean_pain_nrs"] - pp[bound]["mean_pain_nrs"]
    headroom, headroom_low, headroom_high = _t_interval(room_reward)
    pain_room, pain_room_low, pain_room_high = _t_interval(room_pain)
    nan3 = (math.nan, math.nan, math.nan)
    room_matched = None if matched_pain is None else matched_pain[bound] - pp[bound]["mean_pain_nrs"]
    matched_room = nan3 if room_matched is None else _t_interval(room_matched)

    def matched_share(label: str) -> tuple[float, float, float]:
        if matched_pain is None or room_matched is None:
            return nan3
        return _share(matched_pain[label] - pp[label]["mean_pain_nrs"], room_matched, draws)

    rows = []
    for label in result.labels:
        share_r, r_low, r_high = _share(pp[label]["reward_per_day"] - pp[base]["reward_per_day"], room_reward, draws)
        share_p, p_low, p_high = _share(pp[base]["mean_pain_nrs"] - pp[label]["mean_pain_nrs"], room_pain, draws)
        share_m, m_low, m_high = matched_share(label)
        rows.append({
            "controller": label, "kind": (kinds or {}).get(label, ""), "uses_latent": result.uses_latent[label],
            "baseline": base, "bound": bound,
            "reward_share": share_r, "reward_share_ci_low": r_low, "reward_share_ci_high": r_high,
            "pain_share": share_p, "pain_share_ci_low": p_low, "pain_share_ci_high": p_high,
            "matched_pain_share": share_m, "matched_pain_share_ci_low": m_low, "matched_pain_share_ci_high": m_high,
            "headroom_reward_per_day": headroom, "headroom_ci_low": headroom_low, "headroom_ci_high": headroom_high,
            "headroom_pain_nrs": pain_room, "headroom_pain_ci_low": pain_room_low,
            "headroom_pain_ci_high": pain_room_high,
            "headroom_matched_pain_nrs": matched_room[0], "headroom_matched_pain_ci_low": matched_room[1],
            "headroom_matched_pain_ci_high": matched_room[2], "n_patients": n,
        })
    return rows
