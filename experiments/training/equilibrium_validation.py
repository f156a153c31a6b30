"""Validation at each patient's own tolerance equilibrium (``slow_costs.equilibrium_validation``).

The best model of a training is the one with the best validation reward per
day. A validation day started ``randomized`` draws each patient's tolerance
regardless of the policy, so it scores a near-continuous policy as if its
tolerance were not its own, and selects it. With this wrapper a validation
is two days of the same patients and noise: the first measures the policy's
duty on each patient, the second (the one scored) starts each patient at the
tolerance equilibrium of that duty, with the duty features at that duty
(``agents.slow_costs.start_at_equilibrium``). By the separation of time
scales that day's reward is the policy's long-run reward per day; the
evaluation reward is unchanged.
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
        """The measuring day (at the duties of the previous validation), then the scored day."""
        self.inner.run(model, normalize_obs)
        self.duties = self.measured_duties()
        result = self.inner.run(model, normalize_obs)
        text = f"equilibrium validation: duty per patient {np.array2string(self.duties, precision=2)}"
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
