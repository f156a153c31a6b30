"""The named frames of an evaluation: how long the unscored warm-up is and how long the scored window.

Which controller is best depends on the time scale it is judged on
(DESIGN.md, "Time scales"): over a week from a naive start continuous
stimulation looks best, over months tolerance (build-up time constant 30 days,
recovery 7 days; DOMAIN.md) and energy decide. Two frames are named, so every
command, table and benchmark says which one it used:

- ``long_term`` (the default): 90 days of warm-up from the start state, not
  scored, then 28 scored days. 90 days are three tolerance build-up time
  constants of the median patient (30 days): its tolerance is then within
  exp(-3) = 5% of its equilibrium under any fixed schedule (recovery, at 7
  days, is faster still), so the scored window sees long-run efficacy rather
  than the honeymoon of a naive patient. Patients whose tolerance builds
  slowly (the cohorts draw 14-90 days) are not yet there: on the test cohort
  continuous stimulation's mean efficacy still falls from 0.47 to 0.44 over
  the scored month, so the frame, if anything, understates what continuous
  stimulation loses over years. 28 scored days are four whole weeks and four
  recovery time constants, long enough for slow drift and flares to average
  over several episodes per patient.
- ``week``: 7 scored days from the start state, no warm-up: the frame in
  which painloop judged controllers before, kept for comparison and for
  quick looks.

A frame only fills in ``warmup_days`` and ``horizon_days``; either can be set
on its own and then overrides the frame's value.
"""

from __future__ import annotations

from dataclasses import dataclass

from simenv.errors import PainloopError


@dataclass(frozen=True)
class Frame:
    """A named evaluation frame: unscored warm-up, then the scored window, both in days."""

    name: str
    warmup_days: float
    horizon_days: float


FRAMES: dict[str, Frame] = {
    "long_term": Frame("long_term", warmup_days=90.0, horizon_days=28.0),
    "week": Frame("week", warmup_days=0.0, horizon_days=7.0),
}
DEFAULT_FRAME = "long_term"


def frame_named(name: object) -> Frame:
    """The frame called ``name``; ``PL-CONFIG-VALUE`` naming the allowed ones otherwise."""
    if not isinstance(name, str) or name not in FRAMES:
        raise PainloopError("PL-CONFIG-VALUE", f"frame={name!r}; allowed: {', '.join(FRAMES)}.")
    return FRAMES[name]


def describe_frame(warmup_days: float, horizon_days: float, initial_state: str) -> str:
    """One line saying how a result was judged, for every table and figure title.

    Names the frame when the days match one, and says so when they do not
    (a custom frame), so no table is read in the wrong frame.
    """
    named = next(
        (f.name for f in FRAMES.values() if f.warmup_days == warmup_days and f.horizon_days == horizon_days), None
    )
    if warmup_days > 0:
        text = f"{warmup_days:g} days of warm-up from a {initial_state} start (not scored), then {horizon_days:g} scored days"
    else:
        text = f"{horizon_days:g} scored days from a {initial_state} start, no warm-up"
    return f"frame {named or 'custom'}: {text}"
