"""The Lagrange multiplier of a constrained training: measured, updated, logged, checkpointed and restored.

In budget mode (``experiments.training.budget``) the training reward's energy
weight is a multiplier ``lambda`` adapted by projected dual ascent on the
constraint ``E <= B`` (``B`` the target in J/day):

    E_k = 8.64 J/day x mean over (slot, decision) of the reward's ``energy`` term
          (mean power in units of 100 uW) over the steps since the last update
    lambda_{k+1} = max(0, lambda_k + lr * (E_k - B) / B)

The error is relative, so ``lr`` is the weight change per 100% excess
whatever the budget. ``E_k`` is measured on the training rollouts (the
stochastic policy, all slots), ``stim_energy_j_per_day``'s quantity. An
update happens at the first rollout boundary ``update_freq`` steps after the
previous one (``_next_multiple``, like validations); the new weight reaches
the training env at once (``PainStimBatch.set_reward_weights``) and applies
from the next decision. Validation keeps the evaluation reward.

Each update appends a row to ``budget.csv`` (``timesteps``, ``multiplier``,
``energy_j_per_day``, ``target_j_per_day``, ``decisions``; a first row at
step 0 with the initial multiplier) and writes the TensorBoard scalars
``budget/multiplier``, ``budget/energy_j_per_day`` and
``budget/target_j_per_day``. A checkpoint saves the multiplier and the
steps measured since the last update in
``checkpoints/ckpt_<steps>_steps_budget.json`` (before the model zip, in the
manifest), so a resume continues the multiplier exactly where it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents import run_manifest
from agents.atomic_io import write_bytes_atomic
from experiments.training import budget as energy_budget
from experiments.training import folder as tf
from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY
from simenv.reward import ENERGY_UNIT_W, TERMS

BUDGET_CSV = "budget.csv"
COLUMNS = ["timesteps", "multiplier", "energy_j_per_day", "target_j_per_day", "decisions"]
J_PER_DAY_PER_UNIT = ENERGY_UNIT_W * SECONDS_PER_DAY  # the energy term is mean power in 100 uW: 8.64 J/day
_ENERGY = TERMS.index("energy")
_STATE_KEYS = ("timesteps", "multiplier", "pending_energy_units", "pending_decisions", "last_update")


def state_path(run_dir: Path, steps: int) -> Path:
    """The multiplier's file beside checkpoint ``steps``."""
    model = tf.checkpoint_paths(run_dir, steps)["model"]
    return model.with_name(f"ckpt_{steps}_steps_budget.json")


def _next_multiple(done: int, every: int) -> int:
    return (done // every + 1) * every


class EnergyMultiplier:
    """The multiplier of one training run, bound to its training batch (``PainStimBatch``)."""

    def __init__(self, budget: energy_budget.EnergyBudget, batch: Any, table: tf.MetricsTable) -> None:
        self.budget = budget
        self.batch = batch
        self.table = table
        self.value = budget.initial_multiplier
        self.pending_energy_units = 0.0  # sum of the energy term over the decisions since the last update
        self.pending_decisions = 0
        self.last_update = 0
        self.best: Mapping[str, float] | None = None  # validation metrics of the best model (budget rule)

    # -- during training ---------------------------------------------------------------------------
    def apply(self) -> None:
        """Give the training env the current multiplier as its energy weight."""
        self.batch.set_reward_weights(dataclasses.replace(self.batch.reward_weights, energy=self.value))

    def observe(self) -> None:
        """After each env step: book the decision's energy term of every slot."""
        energy = self.batch.last_terms[:, _ENERGY]
        self.pending_energy_units += float(energy.sum())
        self.pending_decisions += int(energy.size)

    def due(self, n: int) -> bool:
        return self.pending_decisions > 0 and n >= _next_multiple(self.last_update, self.budget.update_freq)

    def update(self, n: int, writer: Any) -> None:
        """At a rollout boundary: one dual-ascent step if one is due (logged, recorded, applied)."""
        if not self.due(n):
            return
        target = self.budget.target_j_per_day
        measured = J_PER_DAY_PER_UNIT * self.pending_energy_units / self.pending_decisions
        self.value = max(0.0, self.value + self.budget.multiplier_lr * (measured - target) / target)
        self.table.append({"timesteps": n, "multiplier": self.value, "energy_j_per_day": measured,
                           "target_j_per_day": target, "decisions": self.pending_decisions})
        self.pending_energy_units, self.pending_decisions, self.last_update = 0.0, 0, n
        self.apply()
        writer.add_scalar("budget/multiplier", self.value, n)
        writer.add_scalar("budget/energy_j_per_day", measured, n)
        writer.add_scalar("budget/target_j_per_day", target, n)

    def begin(self, n: int, writer: Any, resumed: bool) -> None:
        """At the start of learning: ``budget.csv`` cut to the checkpoint (a resume), or its first row."""
        if resumed:
            self.table.keep_until(n)  # as metrics.csv: rows after the checkpoint are dropped
        if self.table.rows():
            return
        self.table.append({"timesteps": n, "multiplier": self.value, "energy_j_per_day": math.nan,
                           "target_j_per_day": self.budget.target_j_per_day, "decisions": 0})
        writer.add_scalar("budget/multiplier", self.value, n)
        writer.add_scalar("budget/target_j_per_day", self.budget.target_j_per_day, n)

    # -- model selection -----------------------------------------------------------------------------
    def meets(self, metrics: Mapping[str, float]) -> bool:
        return energy_budget.meets(metrics, self.budget)

    def is_best(self, metrics: Mapping[str, float]) -> bool:
        """Is this validation the best model so far (``budget.better``)? Remembers it if so."""
        if energy_budget.better(metrics, self.best, self.budget):
            self.best = dict(metrics)
            return True
        return False

    def restore_best(self, rows: Sequence[Mapping[str, float]]) -> float:
        """Replay the rule over a resumed run's kept validations; returns the best one's reward (or -inf)."""
        for row in rows:
            self.is_best(row)
        return -math.inf if self.best is None else float(self.best["reward_per_day"])

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, run_dir: Path, n: int) -> None:
        """The state at checkpoint ``n``, written before its model zip and recorded in the manifest."""
        state = {"timesteps": n, "multiplier": self.value, "pending_energy_units": self.pending_energy_units,
                 "pending_decisions": self.pending_decisions, "last_update": self.last_update}
        data = (json.dumps(state, indent=2, allow_nan=False) + "\n").encode()
        path = state_path(run_dir, n)
        write_bytes_atomic(path, data)
        run_manifest.record(run_dir, {path: run_manifest.sha256_bytes(data)})

    def restore(self, run_dir: Path, n: int) -> None:
        """Continue from checkpoint ``n``'s state (checked against the manifest); ``PL-RUN-FOLDER`` if unusable."""
        path = state_path(run_dir, n)
        try:
            state = json.loads(run_manifest.read_verified(run_dir, path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PainloopError("PL-RUN-FOLDER", f"'{path}' is not JSON ({exc}); allowed: the multiplier state "
                                "training wrote beside its checkpoint.") from None
        ok = isinstance(state, dict) and set(state) == set(_STATE_KEYS) and all(
            isinstance(state[k], (int, float)) and not isinstance(state[k], bool) and math.isfinite(state[k])
            for k in _STATE_KEYS)
        if not ok or state["timesteps"] != n or state["multiplier"] < 0 or state["pending_decisions"] < 0:
            raise PainloopError("PL-RUN-FOLDER", f"'{path}' holds {state!r}; allowed: the keys {list(_STATE_KEYS)} "
                                f"with finite numbers, timesteps={n} and a multiplier >= 0.")
        self.value = float(state["multiplier"])
        self.pending_energy_units = float(state["pending_energy_units"])
        self.pending_decisions = int(state["pending_decisions"])
        self.last_update = int(state["last_update"])


def start(budget: energy_budget.EnergyBudget | None, vecnormalize: Any, run_dir: Path,
          start_timesteps: int) -> EnergyMultiplier | None:
    """The run's multiplier (``None`` without a budget): restored from checkpoint ``start_timesteps`` if any.

    Nothing is written (a refusal is still bad input); the training env gets
    the multiplier as its energy weight now.
    """
    if budget is None:
        return None
    table = tf.MetricsTable(Path(run_dir) / BUDGET_CSV, COLUMNS)
    multiplier = EnergyMultiplier(budget, vecnormalize.unwrapped.batch, table)
    if start_timesteps > 0:
        multiplier.restore(Path(run_dir), start_timesteps)
    multiplier.apply()
    return multiplier
