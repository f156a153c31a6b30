"""What a training job returns to a sweeper: one objective or two (``objective`` key of ``conf/train.yaml``).

- ``reward`` (default): the best mean validation reward per day (maximise),
  what Hydra's basic sweeper records and the Optuna hyper-parameter search
  (``hydra/sweeper=painloop_optuna_hparams``) maximises;
- ``pain_energy``: ``[mean pain NRS, stimulation energy J/day]`` of the best
  model on the validation patients (minimise both), for the multi-objective
  reward-weight search (``hydra/sweeper=painloop_optuna_reward``).

A failed job gives NaN for each objective (the sweep goes on; Optuna
records the trial as failed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simenv.errors import PainloopError

OBJECTIVES = {
    "reward": ("reward_per_day",),
    "pain_energy": ("mean_pain_nrs", "stim_energy_j_per_day"),
}


def check(name: Any) -> str:
    """The objective's name, or ``PL-CONFIG-VALUE``."""
    if name not in OBJECTIVES:
        raise PainloopError("PL-CONFIG-VALUE", f"objective={name!r}; allowed: {sorted(OBJECTIVES)}.")
    return str(name)


def task_value(name: Any, run_dir: Path, reward: float) -> float | list[float]:
    """The task function's return value for objective ``name``, given the run's returned ``reward``."""
    if name not in OBJECTIVES or name == "reward":
        return reward
    from experiments.sweeps.runs import training_metrics

    if not math.isfinite(reward):
        return [math.nan] * len(OBJECTIVES[name])
    metrics = training_metrics(Path(run_dir))
    return [float(metrics.get(f"val_{m}", math.nan)) for m in OBJECTIVES[name]]
