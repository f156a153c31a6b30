"""The headroom planner's settings and its candidate set: stimulation patterns, checked and laid out in decisions.

A candidate is ``off``, ``continuous``, or a periodic on/off pattern of
``patterns_min`` (``on_min`` on, then ``off_min`` off, repeated) started
now. The planner commits to a chosen candidate for its *commitment*: a
pattern's whole period, ``off`` and ``continuous`` one re-planning interval
(each rounded up to whole re-planning intervals), so every on block it
starts is followed by the off block it was scored with. Without that a
receding horizon ratchets: the look-ahead does not credit relief built near
its end, so "on first, off later" always looks better than "off first", the
promised off blocks never come, and the planner ends near-continuous while
each plan charges the duty of its pattern (measured: docs/evaluation.md,
"The headroom planner").

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

#: Default patterns (on, off) in minutes: 5/5 (cycling_5min), faster and slower bursts at duty 1/2, lower and
#: higher duties (1/5 to 2/3). Four patterns (without 5/20, 2.5/5, 10/10, 15/15) cost 15% less and fell short
#: of the learned policy on two test patients by 16 and 121 reward a day (docs/evaluation.md).
DEFAULT_PATTERNS_MIN: tuple[tuple[float, float], ...] = (
    (5.0, 5.0), (2.5, 2.5), (5.0, 10.0), (10.0, 5.0), (5.0, 20.0), (2.5, 5.0), (10.0, 10.0), (15.0, 15.0))
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
        longest = max((on + off for on, off in pairs), default=0.0)
        if self.lookahead_min < longest - 1e-12:
            raise _refuse("lookahead_min", self.lookahead_min, f"at least the longest pattern's period, {longest:g} min "
                          "(each pattern is scored over a whole period at least)")
        assert replan >= 1

    @property
    def replan_decisions(self) -> int:
        return int(round(self.replan_min * 60.0 / self.decision_s))

    @property
    def lookahead_decisions(self) -> int:
        return int(round(self.lookahead_min * 60.0 / self.decision_s))


def candidate_table(settings: PlannerSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The candidates: on (1) / off (0) at each look-ahead decision, shape (n_candidates, lookahead decisions),
    each one's commitment in decisions (n_candidates,) and its name.

    Row 0 is ``off``, row 1 ``continuous``, then each pattern (named e.g.
    ``5/10`` for 5 min on, 10 min off), on block first.
    """
    horizon = settings.lookahead_decisions
    replan = settings.replan_decisions
    to_dec = 60.0 / settings.decision_s
    rows = [np.zeros(horizon, dtype=np.int64), np.ones(horizon, dtype=np.int64)]
    commit = [replan, replan]
    names = ["off", "continuous"]
    j = np.arange(horizon)
    for on_min, off_min in settings.patterns_min:
        on, off = int(round(on_min * to_dec)), int(round(off_min * to_dec))
        rows.append((j % (on + off) < on).astype(np.int64))
        commit.append(-(-(on + off) // replan) * replan)
        names.append(f"{on_min:g}/{off_min:g}")
    return np.stack(rows), np.array(commit, dtype=np.int64), names
