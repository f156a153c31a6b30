"""Building a training: the env, the model (new, from a checkpoint, or from a fine-tuning source) and the validator.

The training env is ``VecMonitor`` + ``VecNormalize`` over the SB3 adapter
(``agents.sb3_vec_env.PainStimSB3VecEnv``). A folder that already holds the
training resumes from its newest checkpoint that loads, with the env reseeded
from (seed, steps) so a resumed run draws fresh noise; ``finetune_from``
starts from the source run's model and statistics. Nothing is written here:
a refusal is still bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import run_files, run_manifest, run_statistics
from agents.slow_costs import SlowCosts, SlowCostSettings, check_action_mode
from experiments.training import folder as tf
from experiments.training.plan import TrainPlan
from experiments.training.resume import ResumeState
from simenv.errors import PainloopError


def torch_setup(config: dict) -> None:
    import torch

    torch.set_num_threads(int(config["torch_threads"]))


@dataclass
class Built:
    model: Any
    vecnormalize: Any
    validator: Any
    start_timesteps: int
    resumed_from: str | None  # the checkpoint resumed from (None: step 0)
    metrics: tf.MetricsTable
    env_seed: int
    resumed: bool  # the folder already held this training (resume, requeue, re-run)
    multiplier: Any = None  # budget mode: experiments.training.budget_multiplier.EnergyMultiplier


def slow_costs_for(plan: TrainPlan) -> SlowCosts | None:
    """The training env's slow-cost hook from the config's ``slow_costs`` keys (None: off, or absent in an old run)."""
    settings = SlowCostSettings.from_mapping(plan.config.get("slow_costs"))
    check_action_mode(settings, plan.settings.action_mode)
    if not settings.shapes_training:
        return None
    decisions = plan.settings.horizon_steps // plan.settings.steps_per_decision
    return SlowCosts(plan.train_patients, settings, plan.reward, decisions)


def _derived_seed(seed: int, timesteps: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, timesteps, 0x7E5]).generate_state(1, dtype=np.uint32)[0])


def build(plan: TrainPlan, run_dir: Path, existing: ResumeState | None) -> Built:
    """The training env (``VecMonitor`` + ``VecNormalize`` over the SB3 adapter), the model and the validator.

    Still bad input if anything is refused: nothing has been written yet.
    """
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from agents.atomic_io import remove_temporaries
    from agents.sb3_vec_env import PainStimSB3VecEnv
    from experiments.training import budget_multiplier
    from experiments.training.agents import build_model, load_model
    from experiments.training.callbacks import METRIC_COLUMNS
    from experiments.training.equilibrium_validation import EquilibriumValidator
    from experiments.training.validation import Validator

    slow = slow_costs_for(plan)
    env = PainStimSB3VecEnv(patient_pool=plan.train_patients, n_envs=plan.n_envs, settings=plan.settings,
                            reward=plan.reward, slow_costs=slow)
    monitored = VecMonitor(env)
    gamma = plan.hyperparams["gamma"]
    start = 0
    resumed_from = None

    def load_checkpoint(start: int, paths: dict) -> tuple:
        stats = run_statistics.load_statistics(run_dir, paths["vecnormalize"])
        venv = run_statistics.vecnormalize_from(stats, monitored, str(paths["vecnormalize"]))
        seed = _derived_seed(plan.seed, start)
        env.seed(seed)
        model = load_model(plan.algo, paths["model"], venv, run_dir=run_dir, train_config=existing.recorded,
                           statistics=stats)
        if int(model.num_timesteps) != start or start % plan.rollout or start > plan.budget:
            raise PainloopError(
                "PL-RUN-FOLDER",
                f"checkpoint '{paths['model']}' holds {model.num_timesteps} steps; allowed: {start}, a whole number "
                f"of rollouts of {plan.rollout} steps, at most the budget {plan.budget}.",
            )
        model.set_random_seed(seed)
        model._last_obs = None  # new episodes: the env's state is not part of a checkpoint
        if plan.algo.off_policy:
            buffer = run_files.load_replay_buffer(run_dir, paths["replay_buffer"], bool(plan.config.get("trust_run_folder")))
            model.replay_buffer = buffer
            buffer.device = model.device
        return venv, model, seed

    if existing is not None:  # hidden temporaries a killed writer left (docs/reliability.md)
        run_manifest.require_manifest(run_dir)  # a folder written before the manifest: refused, nothing touched
        for folder in (run_dir, run_dir / tf.CHECKPOINTS):
            remove_temporaries(folder)
    # A truncated or unloadable newest checkpoint falls back to the previous one, with a warning.
    checkpoint = tf.load_latest_checkpoint(run_dir, plan.algo.off_policy, load_checkpoint) if existing is not None else None
    if checkpoint is not None:
        start, paths, (venv, model, seed) = checkpoint
        resumed_from = str(paths["model"].relative_to(run_dir))
    elif plan.finetune is not None:
        src = plan.finetune
        venv = run_statistics.vecnormalize_from(run_statistics.load_statistics(src.path, src.stats), monitored, str(src.stats))
        env.seed(plan.seed)
        model = load_model(plan.algo, src.model, venv, overrides=dict(plan.hyperparams), run_dir=src.path,
                           train_config=src.config)
        model.set_random_seed(plan.seed)
        model._last_obs = None
        seed = plan.seed
    else:
        venv = VecNormalize(monitored, gamma=gamma, norm_obs=True, norm_reward=True, clip_obs=10.0)
        env.seed(plan.seed)
        model = build_model(plan.algo, plan.agent_cfg, plan.agent, venv, plan.seed)
        seed = plan.seed
    validator: Any = Validator(plan.val_patients, plan.val_settings, plan.reward, plan.val_cohort["seed"],
                               plan.trace_patient, recurrent=plan.algo.recurrent)
    slow_settings = SlowCostSettings.from_mapping(plan.config.get("slow_costs"))
    if slow_settings.equilibrium_validation:
        validator = EquilibriumValidator(validator, slow_settings.initial_duty, slow)
    metrics = tf.MetricsTable(run_dir / tf.METRICS, METRIC_COLUMNS)
    multiplier = budget_multiplier.start(plan.energy_budget, venv, run_dir, start)
    return Built(model, venv, validator, start, resumed_from, metrics, seed, existing is not None, multiplier)
