"""``python -m experiments.benchmark``: run the chosen sections and write one report.

The report (schema ``painloop.benchmark/v1``) holds each section's settings,
results, floors and targets beside the machine, the package versions and
the git revision; it is written atomically as JSON (``--out``, default
``benchmark_results/benchmark-<timestamp>.json``) and printed as a table.
``--section all`` nests each section's report under ``sections``. Exit 2 on
a bad option before anything runs; exit 1 with ``--check-floors`` when a
floor is not met.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.atomic_io import write_text_atomic
from experiments.benchmarks import evaluation, simulator
from experiments.benchmarks.cli import (
    ALL_SECTIONS,
    argument_error,
    build_parser,
    complete,
    learning_options,
    log,
)
from experiments.benchmarks.learning import LearningOptions, learning_goal, run_learning
from experiments.benchmarks.machine import (
    git_revision,
    load_average,
    machine_info,
    package_versions,
)
from experiments.benchmarks.peers import run_peers
from experiments.benchmarks.render import render
from experiments.benchmarks.targets import check
from experiments.benchmarks.training import TrainingOptions, check_training, run_training

SCHEMA = "painloop.benchmark/v1"
ROOT = Path(__file__).resolve().parents[2]


def section_settings(args: argparse.Namespace, numpy_preloaded: bool) -> dict:
    """The settings every section but learning records."""
    return {
        "repeats": args.repeats,
        "long_term_repeats": args.long_term_repeats,
        "quick": args.quick,
        "sizes": args.sizes,
        "training_sizes": args.training_sizes,
        "cartpole_steps_per_repeat": args.cartpole_steps,
        "single_env_steps_per_repeat": args.env_steps,
        "batched_patient_steps_per_repeat": args.patient_steps,
        "openblas_num_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "painloop_noise_thread": os.environ.get("PAINLOOP_NOISE_THREAD", "auto"),
        "torch_threads": args.torch_threads,
        "numpy_imported_before_setting_blas_threads": numpy_preloaded,
        "calibration_timed": args.calibration,
    }


def run_section(section: str, args: argparse.Namespace, root: Path, learning: LearningOptions | None,
                numpy_preloaded: bool) -> dict:
    """One section's part of the report: settings, results, floors, targets."""
    settings = section_settings(args, numpy_preloaded)
    floors: list[dict] = []
    if section == "learning":
        assert learning is not None
        results = run_learning(learning, lambda message: log(args, message))
        targets = learning_goal(results)
        settings = {"quick": args.quick, "openblas_num_threads": os.environ["OPENBLAS_NUM_THREADS"], **results["options"]}
    elif section == "evaluation":
        results = evaluation.run_evaluation(args, lambda message: log(args, message))
        floors = check(results, evaluation.EVALUATION_FLOORS, "issue 3", lower_is_better=True)
        targets = check(results, evaluation.EVALUATION_TARGETS, "issue 7", lower_is_better=True)
        targets += check(results, evaluation.LONG_TERM_TARGETS, "issue 15", lower_is_better=True)
    elif section == "training":
        opts = TrainingOptions(sizes=args.training_sizes, repeats=args.repeats, torch_threads=args.torch_threads,
                               quick=args.quick)
        if args.quick:
            opts.rollout_steps, opts.end_to_end_rollouts = 64, 1
        results = run_training(opts, lambda message: log(args, message))
        targets = check_training(results)
    elif section == "peers":
        results = run_peers(lambda message: log(args, message), steps=50 if args.quick else 500,
                            repeats=args.repeats, venv_dir=args.peers_venv)
        results["painloop_single_env"] = simulator.run_painloop_single_env(args)
        sg = results["simglucose"]
        if "median" in sg:
            results["painloop_single_env"]["ratio_to_simglucose"] = results["painloop_single_env"]["median"] / sg["median"]
        targets = []
    else:
        results = simulator.run_simulator(args, root, lambda message: log(args, message))
        floors, targets = check(results, simulator.FLOORS, "issue 2"), check(results, simulator.TARGETS, "issue 7")
        targets += check(results, simulator.NOISE_TARGETS, "issue 7")
    return {"section": section, "settings": settings, "results": results, "floors": floors, "targets": targets}


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 done, 1 a floor not met under ``--check-floors``, 2 a bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    error = argument_error(args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2

    started = _dt.datetime.now(_dt.timezone.utc)
    numpy_preloaded = "numpy" in sys.modules
    blas = args.blas_threads or os.environ.get("OPENBLAS_NUM_THREADS") or "1"
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas)
    learning = None
    if args.section == "learning":  # checked after the BLAS threads are set: the frame check loads NumPy
        try:
            learning = learning_options(args, started)
        except ValueError as exc:
            print(f"error: {exc}.", file=sys.stderr)
            return 2

    complete(args)

    out = args.out or Path("benchmark_results") / f"benchmark-{started.strftime('%Y%m%d-%H%M%S')}.json"
    wall0 = time.perf_counter()
    machine = machine_info()
    machine["load_average_at_start"] = load_average()
    git = git_revision(ROOT)
    sections = ALL_SECTIONS if args.section == "all" else (args.section,)
    parts = {}
    for name in sections:
        log(args, f"section {name}")
        t0 = time.perf_counter()
        parts[name] = run_section(name, args, ROOT, learning, numpy_preloaded)
        parts[name]["wall_s"] = time.perf_counter() - t0
    machine["load_average_at_end"] = load_average()
    torch_used = any(name in ("training", "learning") for name in sections)
    report = {
        "schema": SCHEMA,
        "section": args.section,
        "created_utc": started.isoformat(timespec="seconds"),
        "command": [sys.executable, "-m", "experiments.benchmark", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "versions": package_versions(torch_used),
        "git": git,
    }
    if args.section == "all":
        report["sections"] = {name: {**part, "machine": machine} for name, part in parts.items()}
        report["floors"] = [f for part in parts.values() for f in part["floors"]]
        report["targets"] = [t for part in parts.values() for t in part["targets"]]
    else:
        report.update(parts[args.section])
    report["wall_s"] = time.perf_counter() - wall0
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {out} ({report['wall_s']:.0f} s)")
    if args.check_floors and any(f["met"] is False for f in report["floors"]):
        return 1
    return 0


