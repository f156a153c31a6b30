"""The SB3 callback that drives a training run between the model's updates.

Everything happens at rollout boundaries (``_on_rollout_start``): there the
model has just finished an update, ``num_timesteps`` is a whole number of
rollouts and, for off-policy agents, the replay buffer holds exactly those
steps. So a checkpoint taken there resumes without losing or repeating a
step. At a boundary the callback, in order:

0. in budget mode, updates the energy multiplier when due
   (``experiments.training.budget_multiplier``; it books every step's
   energy in ``_on_step``);
1. on a stop signal (``StopSignals``): checkpoints and stops the training;
2. validates when ``eval_freq`` steps have passed (and once at the start):
   ``metrics.csv``, TensorBoard scalars and the trace image, the best model;
3. checkpoints when ``checkpoint_freq`` steps have passed;
4. refreshes the run's heartbeat and progress.

TensorBoard tags: ``validation/<metric>`` (clinical metrics, mean over the
validation patients), ``validation_terms/<term>`` (reward terms, mean per
decision, unweighted), ``validation_reward_per_day/<term>`` (each term's
weighted contribution; they add up to ``validation/reward_per_day``),
``validation/trace_day`` (image), ``perf/train_fps`` and
``perf/validation_s``, ``config/hyperparameters`` (text), in budget mode
``budget/*`` (multiplier, measured and target energy, and whether each
validation meets the budget; its best model is the lowest pain within the
budget, ``experiments.training.budget.better``); SB3's own
``rollout/``, ``time/`` and ``train/`` scalars come through its logger.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.atomic_io import fault_point, save_figure_atomic
from experiments.common.run_folder import RunFolder
from experiments.training import folder as tf
from experiments.training.signals import StopSignals
from experiments.training.validation import CLINICAL, Validator, figure_to_rgb, trace_figure
from simenv.reward import TERMS

METRIC_COLUMNS = [
    "timesteps",
    "wall_time_s",
    "fps",
    *CLINICAL,
    *(f"term_{t}" for t in TERMS),
    "validation_s",
    "best",
]


def _next_multiple(done: int, every: int) -> int:
    return (done // every + 1) * every


class TrainingCallback(BaseCallback):
    """Validation, checkpoints, signals, progress bar and heartbeat at rollout boundaries."""

    def __init__(
        self,
        *,
        run_dir: Path,
        folder: RunFolder,
        signals: StopSignals,
        validator: Validator,
        vecnormalize: Any,
        writer: Any,
        budget: int,
        start_timesteps: int,
        eval_freq: int,
        checkpoint_freq: int,
        off_policy: bool,
        metrics: tf.MetricsTable,
        best_reward: float = -math.inf,
        last_validation: int | None = None,
        wall_offset_s: float = 0.0,
        show_progress: bool | None = None,
        title: str = "train",
        hyperparameter_table: str = "",
        multiplier: Any = None,
    ) -> None:
        super().__init__(verbose=0)
        self.run_dir = Path(run_dir)
        self.folder = folder
        self.signals = signals
        self.validator = validator
        self.vecnormalize = vecnormalize
        self.writer = writer
        self.budget = budget
        self.start_timesteps = start_timesteps
        self.eval_freq = eval_freq
        self.checkpoint_freq = checkpoint_freq
        self.off_policy = off_policy
        self.metrics = metrics
        self.best_reward = best_reward
        self.last_validation = last_validation
        self.next_checkpoint = _next_multiple(start_timesteps, checkpoint_freq)
        self.wall_offset_s = wall_offset_s
        self.show_progress = show_progress
        self.title = title
        self.hyperparameter_table = hyperparameter_table
        self.multiplier = multiplier  # budget mode (experiments.training.budget_multiplier), else None
        self.stopped = False
        self.stop_timesteps: int | None = None
        self.last_checkpoint: str | None = None
        self.last_result = None
        self._bar = None

    # -- SB3 hooks ---------------------------------------------------------------------------------
    def _on_training_start(self) -> None:
        from tqdm import tqdm

        now = time.perf_counter()
        self._t0 = now
        self._overhead_s = 0.0  # time spent validating and checkpointing (not training)
        self._fps_mark = (self.model.num_timesteps, now, 0.0)
        self._bar = tqdm(
            total=self.budget,
            initial=self.model.num_timesteps,
            unit="step",
            unit_scale=True,
            desc=self.title,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=None if self.show_progress is None else not self.show_progress,
        )
        if self.hyperparameter_table:
            self.writer.add_text("config/hyperparameters", self.hyperparameter_table, self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        self.boundary()

    def _on_step(self) -> bool:
        if self.multiplier is not None:
            self.multiplier.observe()
        if self._bar is not None:
            self._bar.update(self.model.n_envs)
        return not self.stopped

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()

    # -- boundary work -------------------------------------------------------------------------------
    def boundary(self) -> None:
        """The work due at a rollout boundary (also called once after the last update)."""
        if self.stopped:
            return
        n = int(self.model.num_timesteps)
        if self.multiplier is not None:  # first: a checkpoint at this boundary holds the updated multiplier
            self.multiplier.update(n, self.writer)
        if self.signals.requested:
            self.checkpoint(n)
            self.stopped = True
            self.stop_timesteps = n
            return
        if self.last_validation is None or (
            n > self.last_validation and n >= _next_multiple(self.last_validation, self.eval_freq)
        ):
            self.validate(n)
        if n > self.start_timesteps and n >= self.next_checkpoint:
            self.checkpoint(n)
        self.heartbeat(n)
        fault_point("rollout-boundary")  # test hook (docs/reliability.md); nothing unless PAINLOOP_FAULT is set

    def finish(self) -> None:
        """After ``learn`` returned at the budget: a last validation if the final step has none."""
        n = int(self.model.num_timesteps)
        if self.multiplier is not None:
            self.multiplier.update(n, self.writer)
        if self.last_validation != n:
            self.validate(n)
        self.heartbeat(n, force=True)

    def heartbeat(self, n: int, force: bool = False) -> None:
        self.folder.heartbeat(
            progress={
                "timesteps": n,
                "total_timesteps": self.budget,
                "last_checkpoint": self.last_checkpoint,
                "best_reward_per_day": None if math.isinf(self.best_reward) else self.best_reward,
            },
            force=force,
        )

    def checkpoint(self, n: int) -> Path:
        t = time.perf_counter()
        if self.multiplier is not None:  # before the model zip, which completes the checkpoint
            self.multiplier.save(self.run_dir, n)
        path = tf.save_checkpoint(self.model, self.vecnormalize, self.run_dir, n, self.off_policy)
        self.last_checkpoint = str(path.relative_to(self.run_dir))
        self.next_checkpoint = _next_multiple(n, self.checkpoint_freq)
        self._overhead_s += time.perf_counter() - t
        self.heartbeat(n, force=True)
        return path

    def _train_fps(self, n: int, now: float) -> float:
        steps0, t0, overhead0 = self._fps_mark
        busy = (now - t0) - (self._overhead_s - overhead0)
        fps = (n - steps0) / busy if n > steps0 and busy > 0 else math.nan
        self._fps_mark = (n, now, self._overhead_s)
        return fps

    def validate(self, n: int) -> None:
        t = time.perf_counter()
        fps = self._train_fps(n, t)
        result = self.validator.run(self.model, self.vecnormalize.normalize_obs)
        m = result.metrics
        # Budget mode: the lowest pain within the budget (experiments.training.budget.better).
        is_best = m["reward_per_day"] > self.best_reward if self.multiplier is None else self.multiplier.is_best(m)
        if is_best:
            self.best_reward = m["reward_per_day"]
            tf.save_model(
                self.model,
                self.vecnormalize,
                self.run_dir / tf.BEST_MODEL,
                self.run_dir / tf.BEST_VECNORMALIZE,
            )
        w = self.writer
        for name, value in m.items():
            w.add_scalar(f"validation/{name}", value, n)
        w.add_scalar("validation/best_reward_per_day", self.best_reward, n)
        if self.multiplier is not None:
            w.add_scalar("budget/validation_meets_budget", float(self.multiplier.meets(m)), n)
        for term in TERMS:
            w.add_scalar(f"validation_terms/{term}", result.terms[term], n)
            w.add_scalar(f"validation_reward_per_day/{term}", result.term_reward_per_day[term], n)
        if math.isfinite(fps):
            w.add_scalar("perf/train_fps", fps, n)
        fig = trace_figure(result, n, self.title)
        w.add_image("validation/trace_day", figure_to_rgb(fig), n, dataformats="HWC")
        save_figure_atomic(fig, self.run_dir / tf.TRACE_PNG)
        elapsed = time.perf_counter() - t
        w.add_scalar("perf/validation_s", elapsed, n)
        w.flush()
        self.metrics.append(
            {
                "timesteps": n,
                "wall_time_s": self.wall_offset_s + (time.perf_counter() - self._t0),
                "fps": fps,
                **m,
                **{f"term_{t}": result.terms[t] for t in TERMS},
                "validation_s": elapsed,
                "best": int(is_best),
            }
        )
        self.last_validation = n
        self.last_result = result
        self._overhead_s += time.perf_counter() - t
        msg = (
            f"[{n:>10,} steps] validation reward/day {m['reward_per_day']:8.2f}{' (best)' if is_best else '       '} "
            f"pain {m['mean_pain_nrs']:.2f} high {m['high_pain_fraction']:.3f} duty {m['duty_cycle']:.2f} "
            f"switches/h {m['switches_per_hour']:.2f}" + (f" | {fps:,.0f} steps/s" if math.isfinite(fps) else "")
        )
        if self._bar is not None and not self._bar.disable:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, flush=True)
