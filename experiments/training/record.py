"""What a training records about itself: ``train_config.json``, ``run.json`` and the hyper-parameter table.

``train_config.json`` is what resume, fine-tuning and the ``run:<dir>``
policy loader read (``experiments.training.folder`` lists every file);
``run.json`` is the run-folder contract of every command
(``experiments.common.run_folder``), to which each resume appends itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from importlib import metadata

from agents import run_manifest
from experiments.common.run_folder import RunFolder, write_json_atomic
from experiments.training import folder as tf
from experiments.training.build import Built
from experiments.training.plan import TrainPlan
from experiments.training.signals import under_submitit


def record_run(plan: TrainPlan, folder: RunFolder, built: Built, argv: Sequence[str] | None) -> None:
    """``train_config.json`` and ``run.json`` (a resume appends itself to run.json's ``resumes``).

    ``argv`` is the command line recorded in run.json (default ``sys.argv``).
    """
    from simenv import PHYSICS_VERSION

    run_dir = folder.path
    argv = list(sys.argv) if argv is None else list(argv)
    if built.resumed:
        try:
            info = json.loads(folder.run_path.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        info.setdefault("resumes", []).append(
            {"argv": argv, "from_checkpoint": built.resumed_from, "timesteps": built.start_timesteps,
             "env_seed": built.env_seed, "started_unix": time.time(), "host": socket.gethostname(),
             "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "submitit": under_submitit()}
        )
        write_json_atomic(folder.run_path, info)
        return
    try:
        version = metadata.version("painloop")
    except metadata.PackageNotFoundError:
        version = None
    train_config = {
        "agent": plan.agent,
        "algo_class": plan.algo.algo_class,
        "policy": plan.agent_cfg["policy"],
        "env_settings": dataclasses.asdict(plan.settings),
        "reward": dataclasses.asdict(plan.reward),
        "train_cohort": plan.train_cohort,
        "validation_cohort": plan.val_cohort,
        "seed": plan.seed,
        "total_timesteps": plan.budget,
        "requested_total_timesteps": plan.requested_budget,
        "n_envs": plan.n_envs,
        "rollout_timesteps": plan.rollout,
        "hyperparams": plan.hyperparams,
        "finetuned_from": None if plan.finetune is None else {
            "run": str(plan.finetune.path.resolve()),
            "model": plan.finetune.model.name,
            "agent": plan.finetune.config.get("agent"),
            "total_timesteps": plan.finetune.config.get("total_timesteps"),
        },
        "physics_version": PHYSICS_VERSION,
        "painloop_version": version,
        # trust_run_folder is a permission of one command line, not a setting of the training.
        "config": {k: v for k, v in plan.config.items() if k != "trust_run_folder"},
    }
    if plan.energy_budget is not None:  # budget mode only: a run without a budget records what it always did
        train_config["energy_budget"] = dataclasses.asdict(plan.energy_budget)
    write_json_atomic(run_dir / tf.TRAIN_CONFIG, train_config)
    seeds = {
        "seed": plan.seed,
        "noise": "numpy.random.SeedSequence([seed, patient_uid, episode]) per patient; pool draws from [seed, 0x9001]",
        "validation_seed": plan.val_cohort["seed"],
        "train_uids": plan.train_cohort["uids"],
        "validation_uids": plan.val_cohort["uids"],
    }
    folder.write_run_info(argv=argv, seeds=seeds, config=plan.config)
    run_manifest.record_files(run_dir, [tf.TRAIN_CONFIG])


def hyperparameter_table(plan: TrainPlan) -> str:
    rows = [("agent", plan.agent), ("algo", plan.algo.algo_class), ("policy", plan.agent_cfg["policy"]),
            ("n_envs", plan.n_envs), ("rollout_timesteps", plan.rollout), ("total_timesteps", plan.budget),
            ("seed", plan.seed)]
    rows += [(f"hyperparams.{k}", v) for k, v in plan.hyperparams.items()]
    rows += [(f"policy_kwargs.{k}", v) for k, v in (plan.agent_cfg.get("policy_kwargs") or {}).items()]
    rows += [(f"env.{k}", v) for k, v in dataclasses.asdict(plan.settings).items()]
    rows += [(f"reward.{k}", v) for k, v in dataclasses.asdict(plan.reward).items()]
    rows += [("train_cohort", f"{plan.train_cohort.get('name', plan.train_cohort.get('patient_file'))} "
                              f"x {plan.train_cohort['n_patients']}"),
             ("validation", f"{plan.val_cohort['name']} x {plan.val_cohort['n_patients']}, "
                            f"{plan.val_cohort['horizon_days']:g} d, {plan.val_cohort['initial_state']}")]
    if plan.energy_budget is not None:
        rows += [(f"energy_budget.{k}", v) for k, v in dataclasses.asdict(plan.energy_budget).items()]
    if plan.finetune is not None:
        rows.append(("finetune_from", f"{plan.finetune.path} ({plan.finetune.model.name})"))
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
