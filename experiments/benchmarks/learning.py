"""The learning section of ``python -m experiments.benchmark``: do learned policies beat threshold control?

For each agent and training seed, ``python -m experiments.train`` trains
with the default experiment (or ``--experiment``) in a subprocess, its wall
time and steps per second recorded (``--jobs`` trainings at once; one over
``--max-train-minutes`` is stopped with SIGTERM, checkpoints, and is
evaluated anyway, flagged). Then, in *one* paired evaluation (the same
test patients and the same noise for every controller), each trained run
(its best model by validation reward) plays beside

- ``continuous`` and ``cycling`` (``conf/controller/``),
- ``threshold``: the clinic-calibrated threshold of ``conf/controller/threshold.yaml``,
- ``threshold_tuned``: the same detector with the ``target_duty`` that gave the
  best mean reward per day on the ``validation`` cohort (a sweep, evaluated
  paired, before the test patients are touched).

The goal of the RL-training issue, checked per run: the paired 95% interval
of (learned - calibrated threshold) reward per day lies above 0, the mean
pain is at most 0.2 NRS worse and the mean stimulation energy per day is no
higher. Every figure is measured by this run; nothing is carried over.

Hydra-free except for the training subprocesses: ``run_learning(options)``
returns the results dictionary that ``experiments.benchmark`` writes as JSON.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agents.atomic_io import write_text_atomic

#: Agents trained when ``--agents`` is not given: PPO and the other agent that did best (docs/training.md).
DEFAULT_AGENTS = ("ppo", "a2c")
#: Step budgets per agent, each well inside the 20-minute limit at the speeds measured here
#: (PPO ~30k steps/s, A2C ~40k, RecurrentPPO ~11k, DQN and SAC a few thousand).
DEFAULT_BUDGETS = {
    "ppo": 4_096_000,
    "a2c": 4_096_000,
    "recurrent_ppo": 4_096_000,
    "dqn": 2_000_000,
    "sac": 1_000_000,
}
#: ``--quick``: a plumbing check, not a training.
QUICK_BUDGET = 4096
TUNE_DUTIES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
BASELINE_ENTRIES = ("continuous", "cycling", "threshold")
REFERENCE = "threshold"
TUNED = "threshold_tuned"
#: The issue's goal against the calibrated threshold.
MAX_PAIN_WORSE_NRS = 0.2
#: Metrics reported per controller (and differences for the first three).
TABLE_METRICS = ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day", "duty_cycle")
DIFF_METRICS = ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LearningOptions:
    """What the learning section trains and how it evaluates (the command line's options)."""

    agents: list[str] = field(default_factory=lambda: list(DEFAULT_AGENTS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: dict[str, int] = field(default_factory=dict)  # agent -> steps; missing: DEFAULT_BUDGETS
    experiment: str = "default"
    train_overrides: list[str] = field(default_factory=list)  # extra Hydra overrides for every training
    out_dir: Path = Path("benchmark_results/learning")
    jobs: int = 1
    max_train_s: float = 20 * 60.0
    test_patients: int = 100
    test_days: float = 7.0
    eval_seed: int = 0
    tune_patients: int = 50
    tune_days: float = 7.0
    tune_seed: int = 0
    tune_duties: list[float] = field(default_factory=lambda: list(TUNE_DUTIES))
    quick: bool = False

    def budget(self, agent: str) -> int:
        default = QUICK_BUDGET if self.quick else DEFAULT_BUDGETS.get(agent, 2_000_000)
        return int(self.budgets.get(agent, default))


# ---------------------------------------------------------------- trainings
def train_command(opts: LearningOptions, agent: str, seed: int, run_dir: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "experiments.train",
        f"hydra.run.dir={run_dir}", "progress_bar=false",
        f"experiment={opts.experiment}", f"agent={agent}",
        f"total_timesteps={opts.budget(agent)}", f"seed={seed}",
    ]
    if opts.quick:  # plumbing only: a few patients, one validation at the start and one at the end
        cmd += ["n_envs=8", "cohort.n_patients=4", "validation.n_patients=2", "validation.horizon_days=0.25",
                "eval_freq=10000000", "checkpoint_freq=10000000"]
    return cmd + list(opts.train_overrides)


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _metrics_rows(run_dir: Path) -> list[dict]:
    try:
        with open(run_dir / "metrics.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _timing_path(job: dict) -> Path:
    return Path(job["run_dir"]).parent / f"{job['label']}.timing.json"


def _timing(job: dict) -> dict:
    try:
        return json.loads(_timing_path(job).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _training_record(job: dict) -> dict:
    run_dir: Path = job["run_dir"]
    status = _status(run_dir)
    result = status.get("result") or {}
    rows = _metrics_rows(run_dir)
    fps = [float(r["fps"]) for r in rows if r.get("fps") not in (None, "", "nan")]
    fps = [f for f in fps if math.isfinite(f)]
    final = rows[-1] if rows else {}
    return {
        "label": job["label"],
        "agent": job["agent"],
        "seed": job["seed"],
        "run_dir": str(run_dir),
        "command": job["command"],
        "budget_steps": job["budget"],
        "state": status.get("state"),
        "timesteps": (status.get("progress") or {}).get("timesteps"),
        "reused": job["reused"],
        # Wall time of the training command, measured around the subprocess (kept beside the run folder,
        # so a reused run reports the wall time of the command that trained it).
        "wall_s": _timing(job).get("wall_s"),
        "run_elapsed_s": status.get("elapsed_s"),
        "train_fps": result.get("train_fps"),
        "median_interval_fps": statistics.median(fps) if fps else None,
        "over_time_limit": bool(_timing(job).get("over_time_limit", job.get("over_time_limit", False))),
        "exit_code": _timing(job).get("exit_code", job.get("exit_code")),
        "best_validation_reward_per_day": result.get("objective", (status.get("progress") or {}).get("best_reward_per_day")),
        # The evaluated model is the best by validation: at step 0 it is the untrained network.
        "best_at_timesteps": int(float(max(rows, key=lambda r: float(r["reward_per_day"]))["timesteps"])) if rows else None,
        "final_validation_duty_cycle": float(final["duty_cycle"]) if final.get("duty_cycle") else None,
        "validation_curve": [
            {k: float(r[k]) for k in ("timesteps", "reward_per_day", "duty_cycle", "mean_pain_nrs")} for r in rows
        ],
        "log": str(job["log"]),
    }


def run_trainings(opts: LearningOptions, log: Callable[[str], None]) -> list[dict]:
    """Every (agent, seed) training, ``opts.jobs`` at a time; finished run folders are reused."""
    runs_dir = opts.out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    pending = []
    for agent in opts.agents:
        for seed in opts.seeds:
            label = f"{agent}_s{seed}"
            run_dir = runs_dir / label
            pending.append({
                "label": label, "agent": agent, "seed": seed, "run_dir": run_dir, "budget": opts.budget(agent),
                "command": train_command(opts, agent, seed, run_dir), "log": runs_dir / f"{label}.log",
                "reused": _status(run_dir).get("state") == "finished",
            })
    jobs = list(pending)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    running: list[dict] = []
    while pending or running:
        while pending and len(running) < max(opts.jobs, 1):
            job = pending.pop(0)
            log(f"training {job['label']}: {job['budget']:,} steps"
                + (" (finished run folder found: reused)" if job["reused"] else ""))
            job["fh"] = open(job["log"], "a" if job["reused"] else "w")  # noqa: SIM115 (closed when the job ends)
            job["t0"] = time.perf_counter()
            job["proc"] = subprocess.Popen(job["command"], cwd=ROOT, env=env, stdout=job["fh"], stderr=subprocess.STDOUT)
            running.append(job)
        time.sleep(0.5)
        for job in list(running):
            proc: subprocess.Popen = job["proc"]
            elapsed = time.perf_counter() - job["t0"]
            if proc.poll() is None:
                if elapsed > opts.max_train_s and not job.get("over_time_limit"):
                    log(f"training {job['label']}: over {opts.max_train_s:.0f} s, sending SIGTERM (checkpoint, then stop)")
                    job["over_time_limit"] = True
                    proc.send_signal(signal.SIGTERM)
                continue
            job["exit_code"] = proc.returncode
            job["fh"].close()
            if not job["reused"]:
                write_text_atomic(_timing_path(job), json.dumps({
                    "wall_s": elapsed, "exit_code": proc.returncode,
                    "over_time_limit": bool(job.get("over_time_limit", False))}) + "\n")
            running.remove(job)
            rec = _training_record(job)
            log(f"training {job['label']}: {rec['state']} after {elapsed:.0f} s (exit {proc.returncode}), "
                f"{rec['train_fps'] or float('nan'):,.0f} steps/s")
    return [_training_record(job) for job in jobs]


# ---------------------------------------------------------------- threshold tuning
def _baseline_spec(name: str, label: str | None = None, **overrides):
    """A controller of ``conf/controller/<name>.yaml`` (the evaluate command's reader), parameters overridden."""
    from agents.controllers import ControllerSpec
    from experiments.common.controller_entries import load_controller

    spec = load_controller(name, label or name)
    return ControllerSpec(spec.label, spec.kind, {**spec.params, **overrides}) if overrides else spec


def _settings(days: float):
    from simenv.batch import EnvSettings

    # As experiments.evaluate: on_off, dt_s 30, naive initial state.
    return EnvSettings(action_mode="on_off", dt_s=30.0, horizon_days=float(days), initial_state="naive")


def tune_threshold(opts: LearningOptions, log: Callable[[str], None]) -> dict:
    """Sweep the threshold's target duty on the validation cohort; the best mean reward per day wins."""
    from agents.evaluation import evaluate, summarise
    from simenv import load_preset

    specs = [_baseline_spec("threshold", f"duty_{d:g}", target_duty=float(d)) for d in opts.tune_duties]
    patients = load_preset("validation").sample(opts.tune_patients)
    log(f"tuning the threshold on {len(patients)} validation patients x {opts.tune_days:g} days: "
        f"target_duty in {list(opts.tune_duties)}")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, _settings(opts.tune_days), seed=opts.tune_seed)
    rows = summarise(result)
    sweep = [
        {"target_duty": float(d), **{m: row[m] for m in (*TABLE_METRICS, "reward_per_day_ci_low", "reward_per_day_ci_high")}}
        for d, row in zip(opts.tune_duties, rows, strict=True)
    ]
    best = max(sweep, key=lambda r: r["reward_per_day"])
    return {
        "cohort": "validation",
        "n_patients": len(patients),
        "days": opts.tune_days,
        "seed": opts.tune_seed,
        "sweep": sweep,
        "best_target_duty": best["target_duty"],
        "best_reward_per_day": best["reward_per_day"],
        "on_grid_edge": best["target_duty"] in (min(opts.tune_duties), max(opts.tune_duties)),
        "wall_s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- evaluation on test
def evaluate_runs(opts: LearningOptions, trainings: Sequence[dict], best_duty: float, log: Callable[[str], None]) -> dict:
    """One paired evaluation on the test cohort: baselines, the tuned threshold and every trained run."""
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate, paired_differences, summarise
    from simenv import load_preset

    specs = [_baseline_spec(name) for name in BASELINE_ENTRIES]
    specs.append(_baseline_spec("threshold", TUNED, target_duty=float(best_duty)))
    evaluated = [t for t in trainings if (Path(t["run_dir"]) / "best_model.zip").is_file()
                 or (Path(t["run_dir"]) / "model.zip").is_file()]
    specs += [ControllerSpec(t["label"], "run", {"path": t["run_dir"]}) for t in evaluated]
    patients = load_preset("test").sample(opts.test_patients)
    log(f"evaluating {len(specs)} controllers on {len(patients)} test patients x {opts.test_days:g} days (paired)")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, _settings(opts.test_days), seed=opts.eval_seed)
    wall = time.perf_counter() - t0
    table = summarise(result)
    keep = [f"{m}{s}" for m in (*TABLE_METRICS, "high_pain_fraction", "battery_draw_j_per_day", "switches_per_hour",
                                 "mild_events_per_day")
            for s in ("", "_ci_low", "_ci_high")]
    controllers = [{"controller": r["controller"], **{k: r[k] for k in keep}} for r in table]
    diffs = {}
    for ref in (REFERENCE, TUNED, "continuous"):
        diffs[ref] = [
            {"controller": r["controller"],
             **{f"{m}_diff{s}": r[f"{m}_diff{s}"] for m in (*DIFF_METRICS, "duty_cycle") for s in ("", "_ci_low", "_ci_high")}}
            for r in paired_differences(result, ref)
        ]
    goal = [goal_check(row) for row in diffs[REFERENCE] if row["controller"] in {t["label"] for t in evaluated}]
    return {
        "cohort": "test",
        "n_patients": len(patients),
        "days": opts.test_days,
        "seed": opts.eval_seed,
        "initial_state": "naive",
        "threshold_tuned_target_duty": float(best_duty),
        "controllers": controllers,
        "paired_differences": diffs,
        "goal": goal,
        "not_evaluated": [t["label"] for t in trainings if t not in evaluated],
        "wall_s": wall,
    }


def goal_check(diff: dict) -> dict:
    """The issue's goal for one run, from its paired differences against the calibrated threshold."""
    reward_above = diff["reward_per_day_diff_ci_low"] > 0
    pain_ok = diff["mean_pain_nrs_diff"] <= MAX_PAIN_WORSE_NRS
    energy_ok = diff["stim_energy_j_per_day_diff"] <= 0
    return {
        "controller": diff["controller"],
        "reward_interval_above_0": bool(reward_above),
        "pain_at_most_0.2_worse": bool(pain_ok),
        "energy_no_higher": bool(energy_ok),
        "met": bool(reward_above and pain_ok and energy_ok),
    }


def run_learning(opts: LearningOptions, log: Callable[[str], None]) -> dict:
    """Trainings, threshold tuning on validation, then the paired test evaluation."""
    t0 = time.perf_counter()
    trainings = run_trainings(opts, log)
    train_wall = time.perf_counter() - t0
    tuning = tune_threshold(opts, log)
    evaluation = evaluate_runs(opts, trainings, tuning["best_target_duty"], log)
    return {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "budgets": {a: opts.budget(a) for a in opts.agents},
        "trainings": trainings,
        "trainings_wall_s": train_wall,
        "threshold_tuning": tuning,
        "evaluation": evaluation,
    }


def learning_goal(results: dict) -> list[dict]:
    """The RL-training issue's goal, one entry per trained run (floors/targets format)."""
    return [
        {
            "key": f"goal_{g['controller']}",
            "label": f"{g['controller']}: paired 95% interval of reward/day - threshold's > 0, mean pain <= 0.2 NRS "
            "worse, stimulation energy/day no higher",
            "source": "issue 4",
            "threshold": None,
            "measured_median": None,
            "met": g["met"],
            "detail": g,
        }
        for g in results["evaluation"]["goal"]
    ]
