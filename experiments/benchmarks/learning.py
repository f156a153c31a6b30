"""The learning section of ``python -m experiments.benchmark``: do learned policies beat hand-designed control?

For each agent and training seed, ``python -m experiments.train`` trains
with the ``long_term`` experiment (or ``--experiment``, any file of
``conf/experiment/``) in a subprocess, its wall time and steps per second
recorded (``--jobs`` trainings at once; one over ``--max-train-minutes`` is
stopped with SIGTERM, checkpoints, and is evaluated anyway, flagged). The
runs are then judged (``experiments.benchmarks.learning_judge``) in the
section's frame (default ``long_term``: 90 days of unscored warm-up, 28
scored; ``--frame week``: 7 days from a naive start): the threshold tuned
on ``validation``, then one paired evaluation on ``test`` of the baseline
fronts, the tuned threshold and every run's best model, with the goals of
the RL-training issue and of the long-term issue per run, and the time to
reach the evaluated model (training wall time and steps). Every figure is
measured by this run; nothing is carried over.

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
from typing import TYPE_CHECKING

from agents.atomic_io import write_text_atomic
from experiments.benchmarks.learning_headroom import evaluate_headroom
from experiments.benchmarks.learning_judge import evaluate_runs, tune_threshold

if TYPE_CHECKING:  # the fronts load NumPy: not before the command line has set the BLAS threads
    from experiments.evaluation.fronts import FrontGrid

#: The experiment trained when ``--experiment`` is not given: the one built for the long-term frame
#: the section judges in (docs/training.md, "Training for the long term").
DEFAULT_EXPERIMENT = "long_term"
#: Agents trained when ``--agents`` is not given: PPO, the agent the long-term method is measured with.
DEFAULT_AGENTS = ("ppo",)
#: Step budgets per agent, each well inside the 20-minute limit at the speeds measured here
#: (PPO ~15-30k steps/s, A2C ~40k, RecurrentPPO ~11k, DQN and SAC a few thousand). PPO's is
#: ``total_timesteps`` of conf/train.yaml: the long-term curves are flat after about 0.6 M steps.
DEFAULT_BUDGETS = {
    "ppo": 2_048_000,
    "a2c": 4_096_000,
    "recurrent_ppo": 4_096_000,
    "dqn": 2_000_000,
    "sac": 1_000_000,
}
#: ``--quick``: a plumbing check, not a training.
QUICK_BUDGET = 4096
TUNE_DUTIES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: ``--quick``: a few hours of warm-up and of scored time, so the long-term path runs in seconds.
QUICK_DAYS = 0.25
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LearningOptions:
    """What the learning section trains and how it evaluates (the command line's options)."""

    agents: list[str] = field(default_factory=lambda: list(DEFAULT_AGENTS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: dict[str, int] = field(default_factory=dict)  # agent -> steps; missing: DEFAULT_BUDGETS
    experiment: str = DEFAULT_EXPERIMENT
    train_overrides: list[str] = field(default_factory=list)  # extra Hydra overrides for every training
    out_dir: Path = Path("benchmark_results/learning")
    jobs: int = 1
    max_train_s: float = 20 * 60.0
    #: The frame of every evaluation (``agents.evaluation_frames``); the days below override its values.
    frame: str = "long_term"
    warmup_days: float | None = None  # unscored days before each scored window (None: the frame's)
    test_patients: int = 100
    test_days: float | None = None  # scored days on test (None: the frame's)
    eval_seed: int = 0
    eval_jobs: int = 2  # processes sharing the patients of each evaluation (identical results)
    tune_patients: int = 50
    tune_days: float | None = None  # scored days on validation (None: the frame's)
    tune_seed: int = 0
    tune_duties: list[float] = field(default_factory=lambda: list(TUNE_DUTIES))
    grid: FrontGrid | None = None  # the baseline fronts' settings (None: the default grid, the small one if quick)
    #: Test patients (the first ones) the headroom planner is measured on (``learning_headroom``); 0 skips it.
    headroom_patients: int = 20
    quick: bool = False

    def budget(self, agent: str) -> int:
        default = QUICK_BUDGET if self.quick else DEFAULT_BUDGETS.get(agent, 2_000_000)
        return int(self.budgets.get(agent, default))

    @property
    def warmup(self) -> float:
        from experiments.evaluation.fronts import frame_days

        return frame_days(self.frame, self.warmup_days, self.test_days)[0]

    @property
    def scored_days(self) -> float:
        from experiments.evaluation.fronts import frame_days

        return frame_days(self.frame, self.warmup_days, self.test_days)[1]

    @property
    def tune_scored_days(self) -> float:
        return self.scored_days if self.tune_days is None else float(self.tune_days)

    @property
    def front_grid(self) -> FrontGrid:
        from experiments.evaluation.fronts import QUICK_GRID, FrontGrid

        return self.grid or (QUICK_GRID if self.quick else FrontGrid())


def quick_options(opts: LearningOptions) -> LearningOptions:
    """``opts`` made a plumbing check: a few hours of warm-up and of scored time, unless given."""
    opts.warmup_days = (QUICK_DAYS if opts.warmup > 0 else 0.0) if opts.warmup_days is None else opts.warmup_days
    opts.test_days = QUICK_DAYS if opts.test_days is None else opts.test_days
    opts.tune_days = QUICK_DAYS if opts.tune_days is None else opts.tune_days
    return opts


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


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def best_row(rows: Sequence[dict]) -> dict | None:
    """The validation row of the saved best model: the last row marked ``best``, else the highest reward per day."""
    marked = [r for r in rows if str(r.get("best", "")).strip().lower() in ("1", "1.0", "true")]
    if marked:
        return marked[-1]
    return max(rows, key=lambda r: float(r["reward_per_day"])) if rows else None


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
    best = best_row(rows)
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
        # The evaluated model is the best by validation: at step 0 it is the untrained network. Steps and
        # training wall time to reach it: the time to the goal.
        "best_at_timesteps": int(float(best["timesteps"])) if best else None,
        "best_at_wall_s": _number(best.get("wall_time_s")) if best else None,
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


def run_learning(opts: LearningOptions, log: Callable[[str], None]) -> dict:
    """Trainings, threshold tuning on validation, then the paired test evaluation."""
    t0 = time.perf_counter()
    trainings = run_trainings(opts, log)
    train_wall = time.perf_counter() - t0
    tuning = tune_threshold(opts, log)
    evaluation = evaluate_runs(opts, trainings, tuning["best_target_duty"], log)
    headroom = evaluate_headroom(opts, trainings, tuning["best_target_duty"], log)
    return {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
        | {"warmup_days": opts.warmup, "test_days": opts.scored_days, "tune_days": opts.tune_scored_days,
           "grid": asdict(opts.front_grid)},
        "budgets": {a: opts.budget(a) for a in opts.agents},
        "trainings": trainings,
        "trainings_wall_s": train_wall,
        "threshold_tuning": tuning,
        "evaluation": evaluation,
        "headroom": headroom,
    }


def learning_goal(results: dict) -> list[dict]:
    """Per trained run, the RL-training issue's goal and the long-term issue's three (floors/targets format)."""
    ev = results["evaluation"]
    out = [
        {
            "key": f"goal_{g['controller']}",
            "label": f"{g['controller']}: paired 95% interval of reward/day - threshold's > 0, mean pain <= 0.2 NRS "
            f"worse, stimulation energy/day no higher ({ev['frame_text']})",
            "source": "issue 4",
            "threshold": None,
            "measured_median": None,
            "met": g["met"],
            "detail": g,
        }
        for g in ev["goal"]
    ]
    out += [
        {
            "key": f"long_term_goal_{g['controller']}",
            "label": f"{g['controller']}: (i) pain below continuous's with <= 60% of its energy, (ii) at or below "
            f"every baseline front at its energy (+5%), (iii) time in high pain <= the calibrated threshold's "
            f"({ev['frame_text']})",
            "source": "issue 15",
            "threshold": None,
            "measured_median": None,
            "met": g["met"],
            "detail": {"beats_continuous": g["beats_continuous"]["met"], "front": g["front"]["met"],
                       "high_pain": g["high_pain_vs_threshold"]["met"]},
        }
        for g in ev["long_term_goals"]
    ]
    return out
