"""The frame of an evaluation: an unscored warm-up, then the scored window, as one continuous run.

Tolerance builds over weeks and the battery drains over years, so a
controller is judged in the long-term frame (DESIGN.md, "Time scales"): each
controller runs on its own copy of each patient from the start state
(``EnvSettings.initial_state``) through ``warmup_days``, not scored, and on
through ``horizon_days``, scored. It is one simulation of warm-up + horizon,
seeded like any other (common random numbers unchanged), so the scored window
is exactly the tail of one long run. ``warmup_days = 0`` is the short frame
(scoring from the start state).

This module owns the arithmetic of that frame: the check of ``warmup_days``,
where the scored window starts (a whole number of decision intervals, the
warm-up rounded to the nearest), and the per-patient metrics of the scored
window from the running sums and from the simulator's cumulative counters at
the window's start and end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from simenv import layout as L
from simenv.batch import EnvSettings
from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR
from simenv.reward import TERMS

#: The longest run (warm-up + scored window) the simulator's settings allow, days.
MAX_RUN_DAYS = 3650.0


@dataclass(frozen=True)
class RunWindow:
    """Where scoring starts and ends in a run of warm-up + scored window, in decisions and steps."""

    #: Settings of the whole run (``horizon_days`` = warm-up + scored window); the caller's otherwise.
    run_settings: EnvSettings
    #: Decisions of the warm-up (not scored); the scored window starts at this decision.
    warmup_decisions: int
    #: Simulator steps of the scored window (``settings.horizon_steps``).
    scored_steps: int

    @property
    def steps_per_decision(self) -> int:
        return self.run_settings.steps_per_decision

    @property
    def warmup_steps(self) -> int:
        return self.warmup_decisions * self.steps_per_decision

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.scored_steps

    @property
    def total_decisions(self) -> int:
        """Decisions of the whole run (the last one may be shorter than a decision interval)."""
        return self.warmup_decisions + self.scored_decisions

    @property
    def scored_decisions(self) -> int:
        return -(-self.scored_steps // self.steps_per_decision)

    @property
    def warmup_days(self) -> float:
        """The warm-up actually simulated, days (the one asked for, rounded to whole decisions)."""
        return self.warmup_steps * self.run_settings.dt_s / SECONDS_PER_DAY


def check_warmup_days(warmup_days: object) -> float:
    """``warmup_days`` as a float; anything but a finite number >= 0 raises ``PL-EVAL-WARMUP``."""
    if isinstance(warmup_days, (int, float, np.integer, np.floating)) and not isinstance(warmup_days, bool):
        days = float(warmup_days)
        if math.isfinite(days) and days >= 0:
            return days
    raise PainloopError(
        "PL-EVAL-WARMUP",
        f"warmup_days={warmup_days!r}; allowed: a finite number of days >= 0 "
        "(0: score from the start state; e.g. 90 for the long-term frame).",
    )


def run_window(settings: EnvSettings, warmup_days: object = 0.0) -> RunWindow:
    """The run of ``warmup_days`` (checked, rounded to whole decisions) followed by ``settings.horizon_days``."""
    days = check_warmup_days(warmup_days)
    spd = settings.steps_per_decision
    decision_s = spd * settings.dt_s
    warm = int(round(days * SECONDS_PER_DAY / decision_s))
    scored = settings.horizon_steps
    if warm == 0:
        return RunWindow(settings, 0, scored)
    total_days = (warm * spd + scored) * settings.dt_s / SECONDS_PER_DAY
    if total_days > MAX_RUN_DAYS:
        raise PainloopError(
            "PL-EVAL-WARMUP",
            f"warmup_days={warmup_days!r} with horizon_days={settings.horizon_days!r} makes a run of "
            f"{total_days:g} days; allowed: warm-up and scored window together at most {MAX_RUN_DAYS:g} days.",
        )
    # A horizon of exactly warm-up + window steps (the day count converts back to the same whole step count).
    return RunWindow(replace(settings, horizon_days=total_days), warm, scored)


def window_metrics(
    end: np.ndarray,
    start: np.ndarray,
    sums: np.ndarray,
    term_sums: np.ndarray,
    decisions: int,
    capacity_j: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-slot metrics of the scored window (``agents.evaluation.METRICS`` but the responders).

    ``end`` and ``start`` are the core's state at the window's end and start
    (its counters are cumulative since the run began: their differences
    belong to the window); ``sums`` (pain, high pain, relief lost, reward)
    and ``term_sums`` are the window's running sums over its ``decisions``.
    """
    elapsed = end[:, L.S_TIME_S] - start[:, L.S_TIME_S]
    days = elapsed / SECONDS_PER_DAY

    def grown(col: int) -> np.ndarray:
        return end[:, col] - start[:, col]

    drawn = grown(L.S_ENERGY_DRAWN_J)
    metrics = {
        "mean_pain_nrs": sums[:, 0] / decisions,
        "high_pain_fraction": sums[:, 1] / decisions,
        "duty_cycle": grown(L.S_ON_TIME_S) / elapsed,
        "stim_energy_j_per_day": grown(L.S_ENERGY_STIM_J) / days,
        "battery_draw_j_per_day": drawn / days,
        "battery_life_years": capacity_j / (drawn / elapsed) / (365.25 * SECONDS_PER_DAY),
        "mild_events_per_day": grown(L.S_MILD_EVENTS) / days,
        "seizure_events": grown(L.S_SEIZURE_EVENTS),
        "switches_per_hour": grown(L.S_SWITCHES) / (elapsed / SECONDS_PER_HOUR),
        "relief_lost_nrs": sums[:, 2] / decisions,
        "reward_per_day": sums[:, 3] / days,
    }
    for i, t in enumerate(TERMS):
        metrics[f"term_{t}"] = term_sums[:, i] / decisions
    return metrics
