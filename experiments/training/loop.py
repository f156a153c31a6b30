"""The training loop: ``model.learn`` to the budget (or to a stop signal) under the training callback.

The callback (``experiments.training.callbacks``) validates, checkpoints and
beats the heartbeat at rollout boundaries; this module sets up its logger
and starting point (a resumed run keeps the metrics rows up to its
checkpoint), runs the learning, and saves the final model. The run's
status (finished, interrupted, failed) is ``experiments.training.runner``'s.
"""

from __future__ import annotations

import math
import sys
import time

from experiments.common.run_folder import RunFolder
from experiments.training import folder as tf
from experiments.training.build import Built
from experiments.training.plan import TrainPlan
from experiments.training.record import hyperparameter_table
from experiments.training.signals import StopSignals


def learn(plan: TrainPlan, built: Built, folder: RunFolder, signals: StopSignals, show_progress: bool | None) -> dict:
    """Learn to the budget (or to a stop signal); save the final model. Returns the outcome."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat, configure

    from experiments.training.callbacks import TrainingCallback

    run_dir = folder.path
    model = built.model
    logger = configure(str(run_dir / tf.TENSORBOARD), ["tensorboard"])
    model.set_logger(logger)
    writer = next(f.writer for f in logger.output_formats if isinstance(f, TensorBoardOutputFormat))
    start = built.start_timesteps
    kept = built.metrics.keep_until(start) if built.resumed else []
    rewards = [r["reward_per_day"] for r in kept if math.isfinite(r.get("reward_per_day", math.nan))]
    multiplier = built.multiplier  # budget mode: its own rule for the best model, replayed over the kept rows
    best_reward = multiplier.restore_best(kept) if multiplier is not None else max(rewards) if rewards else -math.inf
    callback = TrainingCallback(
        run_dir=run_dir,
        folder=folder,
        signals=signals,
        validator=built.validator,
        vecnormalize=built.vecnormalize,
        writer=writer,
        budget=plan.budget,
        start_timesteps=start,
        eval_freq=plan.eval_freq,
        checkpoint_freq=plan.checkpoint_freq,
        off_policy=plan.algo.off_policy,
        metrics=built.metrics,
        best_reward=best_reward,
        last_validation=int(kept[-1]["timesteps"]) if kept else None,
        wall_offset_s=float(kept[-1].get("wall_time_s", 0.0)) if kept else 0.0,
        show_progress=plan.config.get("progress_bar") if show_progress is None else show_progress,
        title=f"{plan.agent} seed {plan.seed}",
        hyperparameter_table=hyperparameter_table(plan),
        multiplier=multiplier,
    )
    what = (f"resuming at {start:,} steps from {built.resumed_from}" if built.resumed_from
            else f"fine-tuning {plan.finetune.path} ({plan.finetune.model.name})" if plan.finetune else "new run")
    print(
        f"painloop train: agent {plan.agent} ({plan.algo.algo_class}), {len(plan.train_patients)} training patients, "
        f"{plan.n_envs} envs, budget {plan.budget:,} steps ({plan.budget // plan.rollout} rollouts of {plan.rollout:,}"
        f"{'' if plan.budget == plan.requested_budget else f'; total_timesteps={plan.requested_budget:,} rounded up'}"
        f"); {what}; run folder {run_dir}",
        flush=True,
    )
    if multiplier is not None:
        multiplier.begin(start, writer, built.resumed)
        print(f"painloop train: {plan.energy_budget.describe()}; multiplier now {multiplier.value:g}", flush=True)
    t0 = time.perf_counter()
    try:
        if start < plan.budget:
            model.learn(
                total_timesteps=plan.budget - start,
                callback=callback,
                reset_num_timesteps=start == 0,
                log_interval=1 if not plan.algo.off_policy else plan.n_envs,
                progress_bar=False,
            )
        else:  # a checkpoint at the budget whose final save did not happen
            callback.init_callback(model)
            callback.on_training_start(locals(), globals())
            callback.on_training_end()
        if callback.stopped:
            return {"interrupted": True, "timesteps": callback.stop_timesteps,
                    "last_checkpoint": callback.last_checkpoint}
        if signals.requested:
            print(f"{signals.signal_name} arrived after the last update; finishing the run", file=sys.stderr)
        if int(model.num_timesteps) != plan.budget:
            raise RuntimeError(f"training ended at {model.num_timesteps} steps, not at the budget {plan.budget}")
        callback.finish()
        tf.save_model(model, built.vecnormalize, run_dir / tf.MODEL, run_dir / tf.VECNORMALIZE,
                      fault="final-model-write")
    finally:
        logger.close()
    wall = time.perf_counter() - t0
    final = callback.last_result.metrics if callback.last_result is not None else None
    return {
        "interrupted": False,
        "timesteps": int(model.num_timesteps),
        "last_checkpoint": callback.last_checkpoint,
        "best_reward_per_day": callback.best_reward,
        "final_validation": final,
        "train_fps": (plan.budget - start) / wall if wall > 0 else math.nan,
    }
