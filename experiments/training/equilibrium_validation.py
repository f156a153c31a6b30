"""Validation at each patient's own tolerance equilibrium (``slow_costs.equilibrium_validation``).

The best model of a training is the one with the best validation reward per
day. A validation day started ``randomized`` draws each patient's tolerance
regardless of the policy, so it scores a near-continuous policy as if its
tolerance were not its own, and selects it. With this wrapper a validation
is three days of the same patients and noise. The first starts each patient
at the equilibrium of the duty the previous validation scored it at and
measures the policy's duty ``d1``; the second starts at the equilibrium of
``d1`` and measures ``d2``; the third (the one scored) starts at the
equilibrium of ``(d1 + d2) / 2`` (``agents.slow_costs.start_at_equilibrium``:
tolerance ``T_eq`` and duty features at that duty). The policy's duty
depends on where it starts (its duty features), so this is a damped step of
the fixed-point iteration ``d -> duty(d)`` toward the duty it keeps in the
long run: a policy that alternates between heavy and light stimulation
(``d1`` and ``d2`` far apart) is scored between them, not at the low
tolerance of its light days with the stimulation of its heavy ones. By the
separation of time scales that day's reward estimates the policy's long-run
reward per day; the evaluation reward is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.slow_costs import SlowCosts, start_at_equilibrium
from experiments.training.validation import ValidationResult, Validator
from simenv import layout as L
from simenv.batch import PainStimBatch


class EquilibriumValidator:
    """A ``Validator`` whose scored day starts at each patient's ``T_eq`` of the policy's measured duty."""

    def __init__(self, validator: Validator, initial_duty: float, training: SlowCosts | None = None) -> None:
        self.inner = validator
        self.training = training  # its running values are printed with each validation
        self.duties = np.full(validator.batch.n, float(initial_duty))
        validator.batch.reset_hook = self._start

    def _start(self, batch: PainStimBatch, slots: np.ndarray) -> None:
        start_at_equilibrium(batch, slots, self.duties[slots])

    def run(self, model: Any, normalize_obs: Any) -> ValidationResult:
        """Two measuring days, then the scored day at the mean of their duties."""
        self.inner.run(model, normalize_obs)  # from the duties of the previous validation
        first = self.measured_duties()
        self.duties = first
        self.inner.run(model, normalize_obs)
        self.duties = 0.5 * (first + self.measured_duties())
        result = self.inner.run(model, normalize_obs)
        text = f"equilibrium validation: start duty per patient {np.array2string(self.duties, precision=2)}"
        if self.training is not None:
            text += " | training: " + ", ".join(f"{k} {v:.3f}" for k, v in self.training.summary().items())
        print(text, flush=True)
        return result

    def measured_duties(self) -> np.ndarray:
        """On-time fraction of each validation patient over the day just played."""
        state = self.inner.batch.core.state
        return state[:, L.S_ON_TIME_S] / state[:, L.S_TIME_S]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
