"""The headroom planner's settings and its candidate set: stimulation patterns, checked and laid out in decisions.

A candidate is a periodic on/off pattern (``on_min`` on, ``off_min`` off,
repeated) entered at one phase. The set always holds ``off`` and
``continuous``, and every pattern of ``patterns_min`` at every phase a
fixed schedule of that pattern can be in when the planner re-plans (the
orbit of the re-planning interval around the period) plus the start of its
off block. So continuing any of these fixed schedules, cycling 5 min / 5 min
among them, is always a candidate, whatever the planner did before: that is
what makes the planner's choice at least as good as each of them over its
look-ahead (docs/evaluation.md, "The headroom planner").

Durations are in minutes and must be whole numbers of decision intervals
(``decision_s``); a bad value raises ``PL-CONTROLLER-PARAM`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simenv.errors import PainloopError

#: Default patterns (on, off) in minutes: 5/5 (cycling_5min), faster and slower bursts, lower and higher duty.
DEFAULT_PATTERNS_MIN: tuple[tuple[float, float], ...] = ((5.0, 5.0), (2.5, 2.5), (5.0, 10.0), (10.0, 5.0))
#: The longest look-ahead allowed, minutes (a day).
MAX_LOOKAHEAD_MIN = 1440.0


def _refuse(name: str, value: Any, allowed: str) -> PainloopError:
    return PainloopError("PL-CONTROLLER-PARAM", f"planner {name}={value!r}; allowed: {allowed}.")


def _decisions(name: str, value: Any, decision_s: float, low_min: float, high_min: float) -> int:
    """``value`` minutes as a whole number of decisions in [low_min, high_min] minutes, else ``PL-CONTROLLER-PARAM``."""
    allowed = f"a whole multiple of the decision interval {decision_s:g} s, from {low_min:g} to {high_min:g} min"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(name, value, allowed)
    n = value * 60.0 / decision_s
    if abs(n - round(n)) > 1e-9 or not low_min - 1e-12 <= value <= high_min + 1e-12:
        raise _refuse(name, value, allowed)
    return int(round(n))


@dataclass(frozen=True)
class PlannerSettings:
    """The planner's parameters (controller file keys), checked against the decision interval when made."""

    decision_s: float = 30.0
    lookahead_min: float = 60.0
    replan_min: float = 5.0
    patterns_min: tuple[tuple[float, float], ...] = DEFAULT_PATTERNS_MIN
    clairvoyant: bool = False
    price_tolerance: bool = True

    def __post_init__(self) -> None:
        for name in ("clairvoyant", "price_tolerance"):
            if not isinstance(getattr(self, name), bool):
                raise _refuse(name, getattr(self, name), "true or false")
        replan = _decisions("replan_min", self.replan_min, self.decision_s, self.decision_s / 60.0, 24 * 60.0)
        _decisions("lookahead_min", self.lookahead_min, self.decision_s, self.replan_min, MAX_LOOKAHEAD_MIN)
        patterns = self.patterns_min
        allowed = "a list of [on_min, off_min] pairs, each a duration > 0 in whole decision intervals"
        if isinstance(patterns, (str, bytes)) or not isinstance(patterns, Sequence):
            raise _refuse("patterns_min", patterns, allowed)
        pairs = []
        for pair in patterns:
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise _refuse("patterns_min", patterns, allowed)
            for value in pair:
                _decisions("patterns_min", value, self.decision_s, self.decision_s / 60.0, MAX_LOOKAHEAD_MIN)
            pairs.append((float(pair[0]), float(pair[1])))
        object.__setattr__(self, "patterns_min", tuple(pairs))
        assert replan >= 1

    @property
    def replan_decisions(self) -> int:
        return int(round(self.replan_min * 60.0 / self.decision_s))

    @property
    def lookahead_decisions(self) -> int:
        return int(round(self.lookahead_min * 60.0 / self.decision_s))


def pattern_phases(on: int, off: int, replan: int) -> list[int]:
    """Phases (decisions into the period) a fixed ``on``/``off`` schedule can be in at a re-plan, and its off block's start."""
    period = on + off
    orbit = {(k * replan) % period for k in range(period)}
    return sorted(orbit | {on})


def candidate_table(settings: PlannerSettings) -> tuple[np.ndarray, list[str]]:
    """On (1) / off (0) of each candidate at each look-ahead decision, shape (n_candidates, lookahead decisions).

    Row 0 is ``off``, row 1 ``continuous``, then each pattern at each phase;
    the names (e.g. ``5/5@5`` for 5 min on / 5 min off entered 5 min into
    its period) say which.
    """
    horizon = settings.lookahead_decisions
    to_dec = 60.0 / settings.decision_s
    rows = [np.zeros(horizon, dtype=np.int64), np.ones(horizon, dtype=np.int64)]
    names = ["off", "continuous"]
    j = np.arange(horizon)
    for on_min, off_min in settings.patterns_min:
        on, off = int(round(on_min * to_dec)), int(round(off_min * to_dec))
        for phase in pattern_phases(on, off, settings.replan_decisions):
            rows.append(((phase + j) % (on + off) < on).astype(np.int64))
            names.append(f"{on_min:g}/{off_min:g}@{phase / to_dec:g}")
    return np.stack(rows), names
