"""``python -m experiments.train``: train one RL agent on a training cohort, validated on held-out patients.

The agent (``conf/agent/<name>.yaml``: ppo, a2c, dqn, recurrent_ppo, sac)
trains on ``PainStimSB3VecEnv`` over the batched core, each slot drawing a
new patient of the training pool at every episode (domain randomisation),
with observation and reward normalisation (``VecNormalize``). Periodically,
at rollout boundaries, the current model plays the validation patients; the
run folder (Hydra's output directory) receives the files listed in
``experiments.training.folder``. docs/training.md is the user's guide.

Examples::

    python -m experiments.train agent=ppo
    python -m experiments.train agent=sac total_timesteps=500000
    python -m experiments.train resume=outputs/train/2025-01-01/12-00-00
    python -m experiments.train finetune_from=<run> cohort=test cohort.indices=[7] total_timesteps=100000

Bad input (unknown key or agent, an agent that cannot act in the action
mode, a missing or corrupt ``resume``/``finetune_from`` folder, ...) is
refused before training: ``error: <CODE>: message`` on stderr, exit code 2.
A failure after the start is recorded in ``status.json`` (``failed``) and
exits 1. SIGINT, SIGTERM and SIGUSR2 checkpoint at the next rollout
boundary, record ``interrupted`` with that checkpoint and exit with 128 +
the signal number; SIGUSR2 is then handed to submitit's handler when there
is one (the job is requeued and resumes by itself in the same folder).
The task function returns the best mean validation reward per day.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from agents import run_files, run_manifest, run_statistics  # noqa: E402
from experiments.common.run_folder import (  # noqa: E402
    RunFolder,
    RunInterrupted,
    fail_run,
    read_status,
    report_error,
    stop,
    write_json_atomic,
)
from experiments.config import schema as hydra_schema
from experiments.config import train_schema as training_schema  # noqa: E402
from experiments.sweeps import objective as sweep_objective
from experiments.sweeps import rerun as sweep_rerun
from experiments.training import folder as tf  # noqa: E402
from experiments.training.agents import (  # noqa: E402
    Algorithm,
    agent_algo,
    algorithm,
    available_agents,
    check_action_mode,
    policy_kwargs,
    round_budget,
    sb3_hyperparams,
)
from experiments.training.signals import StopSignals, under_submitit  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

COMMAND = "train"
DOCS = "docs/training.md"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: Settings that shape the policy's observation or action: a fine-tuned model keeps its source's.
POLICY_SHAPING = ("action_mode", "dt_s", "decision_interval_s", "n_levels", "feature_history",
                  "include_self_report", "calibration_days", "observation")
#: Keys that may differ between a run and its resumption.
VOLATILE = ("resume", "progress_bar", "objective", "redo", "trust_run_folder")

training_schema.register()
_TYPED_ARGV: list[str] | None = None


# -- the plan: every input checked before anything is written ------------------------------------
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
                     checkpoint_freq, int(trace), finetune)


# -- resuming -------------------------------------------------------------------------------------
@dataclass
class ResumeState:
    """Where an existing run folder stands."""

    run_dir: Path
    recorded: dict  # its train_config.json
    state: str
    finished: bool = False
    objective: float = math.nan


def _holder_alive(status: dict) -> bool:
    """Is the process that wrote a ``running`` status still alive?"""
    if status.get("state") != "running":
        return False
    if status.get("slurm_job_id") and status.get("slurm_job_id") == os.environ.get("SLURM_JOB_ID"):
        return False  # we are the requeued attempt of that same job
    if status.get("host") == socket.gethostname():
        pid = int(status.get("pid") or 0)
        if pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return True  # another host, heartbeat fresh (read_status turns an old one into 'stale')


def _existing_run(run_dir: Path) -> ResumeState | None:
    """The training recorded in ``run_dir``, or None if it holds none."""
    if not (run_dir / tf.TRAIN_CONFIG).is_file():
        return None
    recorded = read_run_config(run_dir)
    status = read_status(run_dir)
    state = status.get("state", "missing")
    if _holder_alive(status):
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"run '{run_dir}' is still running (pid {status.get('pid')} on {status.get('host')}, heartbeat "
            f"{status.get('heartbeat_age_s', 0):.0f} s ago); allowed: a run that is interrupted, failed or stale "
            "(stop the other process first).",
        )
    if state == "finished":
        result = status.get("result") or {}
        objective = result.get("objective")
        return ResumeState(run_dir, recorded, state, True, math.nan if objective is None else float(objective))
    return ResumeState(run_dir, recorded, state)


# -- running --------------------------------------------------------------------------------------
def run(
    cfg: DictConfig | dict,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    show_progress: bool | None = None,
) -> float:
    """Train as ``cfg`` says into ``run_dir``; returns the best mean validation reward per day.

    ``cfg.resume=<dir>`` continues that run in its own folder with its own
    config (``run_dir`` is then unused); a ``run_dir`` that already holds the
    same training (a requeued Slurm job, a re-run sweep) resumes it, or
    returns its result if it finished. On error: ``SystemExit`` with code 2
    (bad input, nothing written but a failed status in a new folder) or 1
    (failure after the start; an unexpected exception is re-raised) if
    ``exit_on_error``, else the error is recorded and NaN returned (sweeps).
    A signal always records ``interrupted`` and exits with 128 + its number.
    """
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    run_dir = Path(run_dir)
    fresh = False
    try:
        if config.get("resume"):
            run_dir = Path(config["resume"])
            recorded = read_run_config(run_dir)
            existing = _existing_run(run_dir)
            overrides = {k: config[k] for k in ("progress_bar", "trust_run_folder") if config.get(k) is not None}
            config = dict(recorded["config"]) | overrides | {"resume": None}
        else:
            existing = _existing_run(run_dir)
            fresh = existing is None
            if existing is not None and sweep_rerun.comparable(existing.recorded["config"], VOLATILE) != sweep_rerun.comparable(config, VOLATILE):
                old, new = (sweep_rerun.comparable(c, VOLATILE) for c in (existing.recorded["config"], config))
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise PainloopError(
                    "PL-RUN-FOLDER",
                    f"'{run_dir}' already holds another training (keys that differ: {keys}); allowed: a new folder "
                    "(hydra.run.dir=...), or resume=<dir> to continue that training.",
                )
        if existing is not None and existing.finished:
            if not config.get("redo"):
                print(f"painloop train: run '{run_dir}' is already finished; nothing to do (redo=true "
                      "trains it again).", flush=True)
                return existing.objective
            sweep_rerun.clear_training(run_dir)
            existing, fresh = None, True
        plan = make_plan(config)
        torch_setup(config)
        built = build(plan, run_dir, existing)
    except PainloopError as exc:
        if fresh:
            run_dir.mkdir(parents=True, exist_ok=True)
            RunFolder(run_dir, COMMAND).fail(exc.code, exc.detail, EXIT_BAD_INPUT, type(exc).__name__)
        report_error(exc)
        return stop(EXIT_BAD_INPUT, exit_on_error)

    folder = RunFolder(run_dir, COMMAND)
    signals = StopSignals()
    t0 = time.perf_counter()
    try:
        with signals:
            record_run(plan, folder, built, argv)
            folder.start(slurm_job_id=os.environ.get("SLURM_JOB_ID"), resumed_from=built.start_timesteps or None)
            with folder.heartbeat_thread():
                outcome = train(plan, built, folder, signals, show_progress)
    except RunInterrupted as exc:  # a second signal: stop at once, the last periodic checkpoint stands
        last = _last_checkpoint_name(run_dir, plan)
        folder.interrupt(exc.signal_name, last_checkpoint=last)
        print(f"interrupted by {exc.signal_name} (second signal); last checkpoint {last}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except Exception as exc:  # after work started: status failed, exit 1 (NaN inside a sweep)
        return fail_run(folder, exc, exit_on_error, EXIT_FAILED)
    if outcome["interrupted"]:
        folder.interrupt(signals.signal_name, last_checkpoint=outcome["last_checkpoint"])
        print(
            f"interrupted by {signals.signal_name} at {outcome['timesteps']:,} of {plan.budget:,} steps; checkpoint "
            f"{outcome['last_checkpoint']}; continue with: python -m experiments.train resume={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        if signals.hand_on():
            print("SIGUSR2 handed on to the previous handler (submitit: requeue)", file=sys.stderr, flush=True)
        raise SystemExit(128 + signals.signum)
    objective = outcome["best_reward_per_day"]
    folder.finish(
        result={
            "objective": objective,
            "objective_name": "best mean validation reward per day",
            "timesteps": outcome["timesteps"],
            "final_validation": outcome["final_validation"],
            "wall_s": time.perf_counter() - t0,
            "train_fps": outcome["train_fps"],
        }
    )
    print(f"painloop train: finished {outcome['timesteps']:,} steps; best validation reward/day {objective:.3f}; "
          f"run folder {run_dir}", flush=True)
    return objective


def torch_setup(config: dict) -> None:
    import torch

    torch.set_num_threads(int(config["torch_threads"]))


def _last_checkpoint_name(run_dir: Path, plan: TrainPlan) -> str | None:
    try:
        found = tf.latest_checkpoint(run_dir, plan.algo.off_policy)
    except PainloopError:
        return None
    return None if found is None else str(found[1]["model"].relative_to(run_dir))


# -- building the env and the model -------------------------------------------------------------
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
    from experiments.training.agents import build_model, load_model
    from experiments.training.callbacks import METRIC_COLUMNS
    from experiments.training.validation import Validator

    env = PainStimSB3VecEnv(patient_pool=plan.train_patients, n_envs=plan.n_envs, settings=plan.settings,
                            reward=plan.reward)
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
    validator = Validator(plan.val_patients, plan.val_settings, plan.reward, plan.val_cohort["seed"],
                          plan.trace_patient, recurrent=plan.algo.recurrent)
    metrics = tf.MetricsTable(run_dir / tf.METRICS, METRIC_COLUMNS)
    return Built(model, venv, validator, start, resumed_from, metrics, seed, existing is not None)


def record_run(plan: TrainPlan, folder: RunFolder, built: Built, argv: Sequence[str] | None) -> None:
    """``train_config.json`` and ``run.json`` (a resume appends itself to run.json's ``resumes``)."""
    from simenv import PHYSICS_VERSION

    run_dir = folder.path
    argv = list(_TYPED_ARGV or sys.argv) if argv is None else list(argv)
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


def _hyperparameter_table(plan: TrainPlan) -> str:
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
    if plan.finetune is not None:
        rows.append(("finetune_from", f"{plan.finetune.path} ({plan.finetune.model.name})"))
    return "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def train(plan: TrainPlan, built: Built, folder: RunFolder, signals: StopSignals, show_progress: bool | None) -> dict:
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
        best_reward=max(rewards) if rewards else -math.inf,
        last_validation=int(kept[-1]["timesteps"]) if kept else None,
        wall_offset_s=float(kept[-1].get("wall_time_s", 0.0)) if kept else 0.0,
        show_progress=plan.config.get("progress_bar") if show_progress is None else show_progress,
        title=f"{plan.agent} seed {plan.seed}",
        hyperparameter_table=_hyperparameter_table(plan),
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


# -- the command line ----------------------------------------------------------------------------
@hydra.main(config_path="../conf", config_name="train", version_base=None)
def hydra_main(cfg: DictConfig) -> float | list[float]:
    """The Hydra task function (also what a sweeper or the submitit launcher calls); returns the objective(s)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    argv = _TYPED_ARGV if _TYPED_ARGV is not None else sys.argv
    objective = run(cfg, Path(hc.runtime.output_dir), argv=argv, exit_on_error=hc.mode != RunMode.MULTIRUN)
    return sweep_objective.task_value(cfg.get("objective"), Path(hc.runtime.output_dir), objective)


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def precheck(argv: Sequence[str]) -> tuple[list[str], Path | None, dict[str, Any]]:
    """Check the command line before Hydra runs.

    Returns (the command line to hand to Hydra, the folder ``resume`` names or
    None, the keys a resume takes from the command line: ``progress_bar`` and
    ``trust_run_folder``, parsed). With ``finetune_from``, the source
    run's agent and policy-shaping env settings are added unless given.
    Raises ``PainloopError``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    flags, overrides = hydra_schema.split_argv(argv)
    parser = OverridesParser.create()
    parsed = {}
    for text in overrides:
        try:
            ov = parser.parse_overrides([text])[0]
        except OverrideParseException:
            continue  # check_overrides reports it
        parsed[ov.key_or_group] = ov
    sweeping = any(o.is_sweep_override() for o in parsed.values()) or any(f in ("-m", "--multirun") for f in flags)
    kept: dict[str, Any] = {"progress_bar": parsed["progress_bar"].value() if "progress_bar" in parsed else None}
    resume = parsed.get("resume")
    if resume is not None and resume.value() is not None and not resume.is_sweep_override():
        others = sorted(k for k in parsed if k not in ("resume", "progress_bar", "trust_run_folder")
                        and not k.startswith("hydra"))
        if others or sweeping:
            raise PainloopError(
                "PL-CONFIG-VALUE",
                f"resume={resume.value()} continues that run with its own config; other keys are not allowed with it "
                f"({others or 'a sweep'}); allowed with resume: progress_bar, trust_run_folder.",
            )
        hydra_schema.check_overrides(overrides, training_schema.TrainConfig, training_schema.GROUPS)
        path = Path(str(resume.value()))
        read_run_config(path)
        trust = parsed["trust_run_folder"].value() if "trust_run_folder" in parsed else False
        if trust not in (True, False):  # also 1 and 0
            raise PainloopError("PL-CONFIG-VALUE", f"trust_run_folder={trust!r}; allowed: true or false.")
        kept["trust_run_folder"] = bool(trust)
        return list(argv), path, kept
    extra: list[str] = []
    finetune = parsed.get("finetune_from")
    if finetune is not None and finetune.value() is not None and not finetune.is_sweep_override():
        source = read_run_config(Path(str(finetune.value())))
        if "agent" not in parsed:
            if source["agent"] not in available_agents():
                raise PainloopError(
                    "PL-RUN-FOLDER",
                    f"finetune_from={finetune.value()}: its agent '{source['agent']}' is not in conf/agent/ "
                    f"{available_agents()}; allowed: name an agent with the same algo ({source['algo_class']}).",
                )
            extra.append(f"agent={source['agent']}")
        for key in POLICY_SHAPING:
            if f"env.{key}" not in parsed and key in source["env_settings"]:
                extra.append(f"env.{key}={_format_value(source['env_settings'][key])}")
    overrides = extra + list(overrides)
    argv = [*flags, *overrides] if extra else list(argv)
    fixed = hydra_schema.check_overrides(
        overrides, training_schema.TrainConfig, training_schema.GROUPS,
        group_codes=training_schema.GROUP_CODES, skip_prefixes=("agent.",),
    )
    agent_keys = [o for o in fixed if o.lstrip("+~").startswith("agent.")]
    if agent_keys:
        if sweeping:
            algos = {a for name in available_agents() if (a := agent_algo(name)) in training_schema.AGENT_SCHEMAS}
        else:
            groups = [o for o in fixed if o.split("=", 1)[0].lstrip("+~") in training_schema.GROUPS]
            cfg = hydra_schema.compose_check("train", groups, DOCS)
            algos = {str(cfg.agent.algo)}
            algorithm(str(cfg.agent.algo), str(cfg.agent.name))
        keys = sorted({k for a in algos if a in training_schema.AGENT_SCHEMAS
                       for k in hydra_schema.schema_keys(training_schema.schema_for_agent(a))})
        hydra_schema.check_overrides(agent_keys, training_schema.TrainConfig, training_schema.GROUPS,
                                     group_codes=training_schema.GROUP_CODES, valid_keys=keys)
    if not sweeping:
        hydra_schema.compose_check("train", fixed, DOCS)
    return hydra_schema.splice_overrides(argv, overrides, fixed), None, kept


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry: check the command line, then hand it to Hydra (or resume a folder directly)."""
    global _TYPED_ARGV
    args = list(sys.argv[1:] if argv is None else argv)
    _TYPED_ARGV = [sys.argv[0], *args]
    try:
        args, resume, kept = precheck(args)
    except PainloopError as exc:
        report_error(exc)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if resume is not None:  # the folder has its config and is its own run folder: no Hydra composition
        run({"resume": str(resume), **kept}, resume, argv=_TYPED_ARGV)
        return
    sys.argv = [sys.argv[0], *args]
    hydra_main()


if __name__ == "__main__":
    main()
