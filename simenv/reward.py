"""Reward: minus a weighted sum of named terms, each logged on its own.

Terms per decision (means over the simulator steps of the decision, so
their scale does not depend on ``dt_s`` or ``decision_interval_s``):

- ``pain``: mean pain, NRS;
- ``high_pain``: fraction of time at or above 7 NRS (what patients and
  trials weigh most);
- ``energy``: mean stimulation power in units of 100 uW (continuous default
  stimulation at 3 mA, 1 kohm, 110 Hz, 100 us is 0.99);
- ``side_effects``: expected side-effect events per day (mild events plus
  the seizure weight times after-discharge probability), an expectation
  rather than the rare events themselves, so the signal is not all noise;
- ``switching``: commanded amplitude changes in the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from simenv.errors import PainloopError

TERMS: tuple[str, ...] = ("pain", "high_pain", "energy", "side_effects", "switching")
ENERGY_UNIT_W = 100e-6


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (config keys ``reward.<term>``); all >= 0."""

    pain: float = 1.0
    high_pain: float = 1.0
    energy: float = 0.2
    side_effects: float = 1.0
    switching: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise PainloopError(
                    "PL-REWARD-WEIGHT",
                    f"reward.{f.name}={value!r}; allowed: a finite number >= 0.",
                )
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def from_mapping(cls, mapping: dict | None) -> RewardWeights:
        """Build from ``{term: weight}``; an unknown term lists the valid ones."""
        mapping = dict(mapping or {})
        unknown = sorted(set(mapping) - set(TERMS))
        if unknown:
            raise PainloopError(
                "PL-REWARD-WEIGHT", f"unknown reward term(s) {unknown}; allowed: {list(TERMS)}."
            )
        return cls(**mapping)

    def as_tuple(self) -> tuple[float, ...]:
        return tuple(getattr(self, t) for t in TERMS)
