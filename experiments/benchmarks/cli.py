"""The benchmark's command line: its options, their checks and defaults, and progress messages.

Reads nothing heavy: the options are parsed, checked and completed before
NumPy loads, so ``--blas-threads`` still takes effect (the learning
section's frame is checked once the BLAS threads are set).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from experiments.benchmarks import simulator, training
from experiments.benchmarks.learning import (
    DEFAULT_AGENTS,
    DEFAULT_EXPERIMENT,
    ROOT,
    TUNE_DUTIES,
    LearningOptions,
    quick_options,
)

SECTIONS = ("all", "simulator", "evaluation", "training", "learning", "peers")
#: The sections ``--section all`` runs, in order (learning trains for hours: by name only).
ALL_SECTIONS = ("simulator", "evaluation", "training", "peers")


def log(args: argparse.Namespace, message: str) -> None:
    """A progress message on stderr, unless ``--silent``."""
    if not args.silent:
        print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.benchmark",
        description="painloop throughput benchmark (see docs/performance.md).",
    )
    p.add_argument(
        "--section",
        default="all",
        help=f"one of {', '.join(SECTIONS)} (default all: {', '.join(ALL_SECTIONS)}; learning only by name)",
    )
    p.add_argument("--repeats", type=int, default=5, help="repeats per figure (default 5; medians need >= 5)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default benchmark_results/benchmark-<timestamp>.json)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing, not the speed")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="batch sizes N (default 1 64 1024 4096)")
    p.add_argument("--blas-threads", default=None, help="OPENBLAS_NUM_THREADS (default: the environment's, else 1)")
    p.add_argument("--no-calibration", dest="calibration", action="store_false", help="skip timing the calibration")
    p.add_argument("--check-floors", action="store_true", help="exit 1 if a floor of issue 2 is not met")
    p.add_argument("--silent", action="store_true", help="no progress messages on stderr")
    p.add_argument("--eval-jobs", type=int, default=-1,
                   help="processes of the parallel evaluation figure, and of the learning section's evaluations "
                   "(default -1: every usable core; 1: one process, and no parallel figure)")
    p.add_argument("--long-term-repeats", type=int, default=1,
                   help="repeats of the evaluation section's long-term figure (default 1: about 90 s each)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads for training/learning (default 1)")
    p.add_argument("--training-sizes", type=int, nargs="+", default=None,
                   help="n_envs of the training section's rollout figures (default 8 64 256)")
    p.add_argument("--peers-venv", type=Path, default=None,
                   help="keep simglucose's venv here and reuse it (default: a temporary one, removed afterwards)")
    g = p.add_argument_group("learning section")
    g.add_argument("--agents", nargs="+", default=None, help="agents to train (default: ppo)")
    g.add_argument("--seeds", type=int, default=3, help="training seeds 0..n-1 per agent (default 3)")
    g.add_argument(
        "--budget-steps", nargs="+", default=None,
        help="steps per training: one number for every agent, or agent=steps entries "
        "(default per agent: ppo 2,048,000, a2c 4,096,000, recurrent_ppo 4,096,000, dqn 2,000,000, sac 1,000,000)",
    )
    g.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help=f"named experiment of conf/experiment/ to train (default: {DEFAULT_EXPERIMENT})")
    g.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for every training (repeatable)")
    g.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1; at most 2 on 2 cores)")
    g.add_argument("--max-train-minutes", type=float, default=20.0, help="wall limit per training (default 20)")
    g.add_argument("--runs-dir", type=Path, default=None,
                   help="where the run folders go (default benchmark_results/learning-<timestamp>; "
                   "finished runs found there are reused)")
    g.add_argument("--test-patients", type=int, default=100, help="test cohort size (default 100)")
    g.add_argument("--headroom-patients", type=int, default=20,
                   help="first test patients the headroom planner is measured on beside the runs (default 20; 0: skip)")
    g.add_argument("--frame", default="long_term",
                   help="frame of the evaluations: long_term (default: 90 days of warm-up, 28 scored) or week (7 days)")
    g.add_argument("--warmup-days", type=float, default=None,
                   help="unscored warm-up days before the scored window (default: the frame's)")
    g.add_argument("--days", type=float, default=None, help="scored days per patient (default: the frame's)")
    g.add_argument("--tune-patients", type=int, default=50, help="validation patients for tuning the threshold (default 50)")
    return p


def learning_options(args: argparse.Namespace, started: _dt.datetime) -> LearningOptions:
    """The learning section's options from the command line; raises ValueError naming a bad option."""
    agents = list(args.agents or DEFAULT_AGENTS)
    known = sorted(p.stem for p in (ROOT / "conf" / "agent").glob("*.yaml"))
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"--agents {unknown} unknown; allowed: {', '.join(known)}")
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}; allowed: a whole number >= 1")
    budgets: dict[str, int] = {}
    for item in args.budget_steps or []:
        agent, _, steps = item.rpartition("=")
        try:
            n = int(float(steps))
        except ValueError:
            n = 0
        if n < 1 or (agent and agent not in agents):
            raise ValueError(f"--budget-steps {item!r}; allowed: a number of steps >= 1, or agent=steps for an agent "
                             f"of --agents ({', '.join(agents)})")
        for a in [agent] if agent else agents:
            budgets[a] = n
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    if args.experiment not in experiments:
        raise ValueError(f"--experiment {args.experiment!r} unknown; allowed: {', '.join(experiments)}")
    from agents.evaluation_frames import FRAMES  # loads NumPy: called once the BLAS threads are set

    if args.frame not in FRAMES:
        raise ValueError(f"--frame {args.frame!r}; allowed: {', '.join(FRAMES)}")
    if args.warmup_days is not None and not 0 <= args.warmup_days < float("inf"):
        raise ValueError(f"--warmup-days {args.warmup_days}; allowed: a finite number of days >= 0")
    if args.headroom_patients < 0 or args.headroom_patients == 1:
        raise ValueError(f"--headroom-patients {args.headroom_patients}; allowed: 0 (skip) or a whole number >= 2")
    if (args.jobs < 1 or args.max_train_minutes <= 0 or args.test_patients < 2 or args.tune_patients < 2
            or (args.days is not None and not args.days > 0)):
        raise ValueError("--jobs >= 1, --max-train-minutes > 0, --test-patients >= 2, --tune-patients >= 2 and "
                         "--days > 0 are required")
    quick = bool(args.quick)
    opts = LearningOptions(
        agents=agents,
        seeds=list(range(1 if quick and args.seeds == 3 else args.seeds)),
        budgets=budgets,
        experiment=args.experiment,
        train_overrides=list(args.train_override),
        out_dir=args.runs_dir or Path("benchmark_results") / f"learning-{started.strftime('%Y%m%d-%H%M%S')}",
        jobs=args.jobs,
        max_train_s=60.0 * args.max_train_minutes,
        frame=args.frame,
        warmup_days=args.warmup_days,
        test_patients=4 if quick and args.test_patients == 100 else args.test_patients,
        test_days=args.days,
        eval_jobs=1 if quick and args.eval_jobs == -1 else args.eval_jobs,
        tune_patients=3 if quick and args.tune_patients == 50 else args.tune_patients,
        tune_duties=[0.3, 0.7] if quick else list(TUNE_DUTIES),
        headroom_patients=min(args.headroom_patients, 2) if quick else args.headroom_patients,
        quick=quick,
    )
    return quick_options(opts) if quick else opts


def argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the parsed options (the message after ``error: ``), or None."""
    if args.section not in SECTIONS:
        return f"--section {args.section!r} is unknown; allowed: {', '.join(SECTIONS)}."
    if args.repeats < 1:
        return f"--repeats {args.repeats}; allowed: a whole number >= 1."
    for name in ("sizes", "training_sizes"):
        value = getattr(args, name)
        if value is not None and any(n < 1 for n in value):
            return f"--{name.replace('_', '-')} {value}; allowed: whole numbers >= 1."
    if args.torch_threads < 1:
        return f"--torch-threads {args.torch_threads}; allowed: a whole number >= 1."
    if args.long_term_repeats < 0:
        return f"--long-term-repeats {args.long_term_repeats}; allowed: a whole number >= 0 (0: skip the figure)."
    return None


def complete(args: argparse.Namespace) -> None:
    """Fill in the sizes and steps per repeat of ``--quick`` or of a full run (``args`` in place)."""
    if args.quick:
        args.sizes = args.sizes or list(simulator.QUICK_SIZES)
        args.training_sizes = args.training_sizes or list(training.QUICK_SIZES)
        args.cartpole_steps, args.env_steps = 500, 300
        args.patient_steps, args.min_steps, args.max_steps = 2_000, 20, 200
    else:
        args.sizes = args.sizes or list(simulator.DEFAULT_SIZES)
        args.training_sizes = args.training_sizes or list(training.DEFAULT_SIZES)
        args.cartpole_steps, args.env_steps = 20_000, 20_000
        args.patient_steps, args.min_steps, args.max_steps = 2_000_000, 200, 20_000
    args.sizes = sorted(dict.fromkeys(args.sizes))
    args.training_sizes = sorted(dict.fromkeys(args.training_sizes))
