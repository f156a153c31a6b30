"""The training plan: every input of a training checked, and what training needs built, before anything is written.

``make_plan`` turns a resolved training config (a plain mapping with the keys
of ``experiments.config.train_schema.TrainConfig``) into a ``TrainPlan``: the
algorithm, its hyper-parameters, the environment settings, the training and
validation patients, the budget rounded to whole rollouts and, for
``finetune_from``, the source run. Any bad input raises ``PainloopError``
here, so the run folder is untouched when a training is refused.
``read_run_config`` reads a run folder's ``train_config.json`` (what resume
and fine-tuning start from).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import run_manifest
from experiments.sweeps import objective as sweep_objective
from experiments.training import folder as tf
from experiments.training.agents import (
    Algorithm,
    algorithm,
    check_action_mode,
    policy_kwargs,
    round_budget,
    sb3_hyperparams,
)
from experiments.training.budget import EnergyBudget, make_budget
from simenv.errors import PainloopError

#: Settings that shape the policy's observation or action: a fine-tuned model keeps its source's.
POLICY_SHAPING = ("action_mode", "dt_s", "decision_interval_s", "n_levels", "feature_history",
                  "include_self_report", "calibration_days", "observation")


@dataclass
class FinetuneSource:
    path: Path
    config: dict
    model: Path
    stats: Path


@dataclass
class TrainPlan:
    config: dict  # the resolved config (recorded in train_config.json; resume continues with it)
    agent: str
    algo: Algorithm
    agent_cfg: dict
    hyperparams: dict
    settings: Any  # EnvSettings of training
    val_settings: Any
    reward: Any
    train_patients: list
    train_cohort: dict
    val_patients: list
    val_cohort: dict
    seed: int
    n_envs: int
    rollout: int
    budget: int
    requested_budget: int
    eval_freq: int
    checkpoint_freq: int
    trace_patient: int
    finetune: FinetuneSource | None
    energy_budget: EnergyBudget | None = None  # budget mode (experiments.training.budget); None: the reward's weight


def _whole(config: dict, key: str, low: int, name: str | None = None) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PainloopError("PL-CONFIG-VALUE", f"{name or key}={value!r}; allowed: a whole number >= {low}.")
    return value


def _train_patients(cohort: dict) -> tuple[list, dict]:
    from simenv.cohort import load_patient_yaml, load_preset, resolve_patients

    if cohort.get("patient_file"):
        patient = load_patient_yaml(cohort["patient_file"])
        return [patient], {"patient_file": str(Path(cohort["patient_file"]).resolve()), "n_patients": 1,
                           "uids": [patient.uid]}
    preset = load_preset(str(cohort["name"]))
    if cohort.get("indices") is not None:
        patients = resolve_patients(preset, patient_indices=list(cohort["indices"]))
        if not patients:
            raise PainloopError("PL-COHORT-SIZE", "cohort.indices=[] is empty; allowed: at least one index.")
    else:
        patients = preset.sample(cohort["n_patients"])
    info = {"name": preset.name, "preset_seed": preset.seed, "n_patients": len(patients),
            "indices": [p.index for p in patients], "uids": [p.uid for p in patients]}
    return patients, info


def read_run_config(run: Path) -> dict:
    """A training run folder's ``train_config.json``, checked to hold what resume and fine-tuning need."""
    from agents.rl_policy import read_train_config

    data = read_train_config(Path(run))
    needed = ("agent", "algo_class", "env_settings", "config", "total_timesteps", "physics_version")
    missing = [k for k in needed if not isinstance(data, dict) or k not in data]
    if missing:
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"'{Path(run) / tf.TRAIN_CONFIG}' lacks {missing}; allowed: a train_config.json written by experiments.train.",
        )
    return data


def _check_physics(source: dict, run: Path, allow: bool) -> None:
    from simenv import PHYSICS_VERSION

    if source.get("physics_version") == PHYSICS_VERSION:
        return
    if not allow:
        raise PainloopError(
            "PL-RUN-PHYSICS",
            f"run '{run}' was trained under physics version {source.get('physics_version')}, this simulator is "
            f"version {PHYSICS_VERSION}; refused (retrain, or set allow_physics_mismatch=true knowingly).",
        )
    warnings.warn(
        f"run '{run}' was trained under physics version {source.get('physics_version')}, "
        f"this simulator is {PHYSICS_VERSION} (allow_physics_mismatch=true)",
        stacklevel=2,
    )


def _finetune_source(config: dict, agent: str, algo: Algorithm, settings: Any) -> FinetuneSource:
    run = Path(config["finetune_from"])
    source = read_run_config(run)
    _check_physics(source, run, bool(config["allow_physics_mismatch"]))
    if source["algo_class"] != algo.algo_class:
        raise PainloopError(
            "PL-RUN-SETTINGS",
            f"finetune_from='{run}' holds a {source['algo_class']} model (agent '{source['agent']}') but agent "
            f"'{agent}' is {algo.algo_class}; allowed: agent={source['agent']} (the default with finetune_from).",
        )
    from simenv.settings import with_added_settings

    used = dataclasses.asdict(settings)
    recorded = with_added_settings(source["env_settings"])  # a run from before env.observation: 'full'
    differ = {k: (recorded.get(k), used[k]) for k in POLICY_SHAPING if recorded.get(k) != used[k]}
    if differ:
        text = ", ".join(f"env.{k}={new!r} (trained with {old!r})" for k, (old, new) in differ.items())
        raise PainloopError(
            "PL-RUN-SETTINGS",
            f"fine-tuning changes settings that shape the policy's observations or actions: {text}; "
            "allowed: the source run's values (the default with finetune_from).",
        )
    which = config["finetune_model"]
    names = {"best": (tf.BEST_MODEL, tf.BEST_VECNORMALIZE), "final": (tf.MODEL, tf.VECNORMALIZE)}
    if which not in names:
        raise PainloopError("PL-CONFIG-VALUE", f"finetune_model='{which}'; allowed: {list(names)}.")
    run_manifest.require_manifest(run)  # a folder written before the manifest: refused before anything runs
    model, stats = (run / n for n in names[which])
    missing = [p.name for p in (model, stats) if not p.is_file()]
    if missing:
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"finetune_from='{run}' has no {missing} (finetune_model={which}); allowed: a run that saved them "
            f"({'finished' if which == 'final' else 'validated at least once'}), or finetune_model="
            f"{'best' if which == 'final' else 'final'}.",
        )
    return FinetuneSource(run, source, model, stats)


def make_plan(config: dict) -> TrainPlan:
    """Check the whole config and build what training needs; raises ``PainloopError`` on bad input."""
    from simenv.batch import EnvSettings
    from simenv.cohort import load_preset
    from simenv.reward import RewardWeights

    agent_cfg = dict(config["agent"])
    agent = str(agent_cfg.get("name"))
    algo = algorithm(str(agent_cfg.get("algo")), agent)
    settings = EnvSettings(**config["env"])
    check_action_mode(agent, algo.algo_class, settings.action_mode)
    seed = _whole(config, "seed", 0)
    n_envs = _whole(config, "n_envs", 1)
    requested = _whole(config, "total_timesteps", 1)
    eval_freq = _whole(config, "eval_freq", 1)
    checkpoint_freq = _whole(config, "checkpoint_freq", 1)
    _whole(config, "torch_threads", 1)
    sweep_objective.check(config.get("objective", "reward"))
    hyperparams = sb3_hyperparams(agent_cfg, agent)
    policy_kwargs(agent_cfg, agent)  # checked here, built with the model
    rollout = algo.rollout_steps(hyperparams, n_envs)
    budget = round_budget(requested, rollout)
    reward = RewardWeights.from_mapping(config["reward"])
    train_patients, train_cohort = _train_patients(config["cohort"])
    val = config["validation"]
    preset = load_preset(str(val["cohort"]))
    val_n = _whole(val, "n_patients", 1, "validation.n_patients")
    val_patients = preset.sample(val_n)
    val_settings = dataclasses.replace(
        settings, horizon_days=val["horizon_days"], initial_state=val["initial_state"]
    )
    val_seed = _whole(val, "seed", 0, "validation.seed")
    trace = val["trace_patient"]
    if isinstance(trace, bool) or not isinstance(trace, int) or not 0 <= trace < len(val_patients):
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"validation.trace_patient={trace!r}; allowed: a patient index from 0 to {len(val_patients) - 1} "
            f"(validation.n_patients={len(val_patients)}).",
        )
    shared = {p.uid for p in train_patients} & {p.uid for p in val_patients}
    if shared:
        warnings.warn(f"{len(shared)} validation patient(s) are also in the training pool", stacklevel=2)
    val_cohort = {"name": preset.name, "preset_seed": preset.seed, "n_patients": val_n,
                  "horizon_days": val_settings.horizon_days, "initial_state": val_settings.initial_state,
                  "seed": val_seed, "uids": [p.uid for p in val_patients]}
    finetune = _finetune_source(config, agent, algo, settings) if config.get("finetune_from") else None
    return TrainPlan(config, agent, algo, agent_cfg, hyperparams, settings, val_settings, reward, train_patients,
                     train_cohort, val_patients, val_cohort, seed, n_envs, rollout, budget, requested, eval_freq,
                     checkpoint_freq, int(trace), finetune, energy_budget=make_budget(config, train_patients, val_patients))

