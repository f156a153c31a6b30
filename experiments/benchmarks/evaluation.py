"""The benchmark's evaluation section: wall time of the paired evaluation engine, in both frames.

Times ``agents.evaluation.evaluate`` (the engine of ``experiments.evaluate``),
clinic calibration included, end to end:

- 7 baselines x 100 patients of the test cohort x 28 days from a naive
  start, in one process and in one process per core, against the floor of
  the evaluation issue and the target of the speed issue;
- the long-term frame: 8 controllers (off, continuous, cycling,
  cycling_5min, threshold, threshold_duty20, dual_threshold, random, as
  their ``conf/controller/`` files) x 100 test patients x (90 days of
  warm-up + 28 scored), 2 processes, against the long-term issue's target
  (< 90 s), with the load average before and after.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from experiments.benchmarks.timing import summarize

EVALUATION_FLOORS = (
    ("evaluation_wall_s", "7 controllers x 100 patients x 28 days in <= 60 s (issue 3)", ("evaluation",), 60.0),
)
EVALUATION_TARGETS = (
    ("evaluation_wall_s", "7 controllers x 100 patients x 28 days in < 20 s (issue 7), one process",
     ("evaluation",), 20.0),
    ("evaluation_parallel_wall_s",
     "7 controllers x 100 patients x 28 days in < 20 s (issue 7), one process per core",
     ("evaluation_parallel",), 20.0),
)
LONG_TERM_TARGETS = (
    ("evaluation_long_term_wall_s",
     "8 controllers x 100 patients x (90 + 28) days in < 90 s (issue 15), 2 processes", ("evaluation_long_term",), 90.0),
)
BASELINES = ("off", "continuous", "cycling", "threshold", "dual_threshold", "latent_threshold", "random")
LONG_TERM_CONTROLLERS = ("off", "continuous", "cycling", "cycling_5min", "threshold", "threshold_duty20",
                         "dual_threshold", "random")
LONG_TERM_JOBS = 2


def run_evaluation(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """Wall time of the paired evaluation engine, end to end (calibrations included), in one and in N processes.

    The repeats are interleaved (each repeat times one process, then N), so a slow moment of the machine hits
    both alike. The worker pool is started once, timed apart (``pool_start_s``: a tiny evaluation in a
    fresh pool, imports and cache loads included), and kept for the repeats, as in any process that
    evaluates more than once; each repeat's own set-up (clinic calibration, detector fits) is inside its time.
    """
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate
    from agents.evaluation_pool import resolve_jobs
    from simenv import EnvSettings, load_preset

    n, days = (4, 1.0) if args.quick else (100, 28.0)
    specs = [
        ControllerSpec(name, name, {"match": "threshold"} if name == "random" else {}) for name in BASELINES
    ]
    patients = load_preset("test").sample(n)
    jobs = resolve_jobs(args.eval_jobs, n)
    evaluate(specs[:2], patients[:1], EnvSettings(horizon_days=0.01), seed=0)  # compile / warm caches
    pool_start_s = None
    if jobs > 1:
        t0 = time.perf_counter()
        evaluate(specs[:2], patients[:jobs], EnvSettings(horizon_days=0.01), seed=0, jobs=jobs)
        pool_start_s = time.perf_counter() - t0
    walls: dict[int, list[float]] = {1: []} | ({jobs: []} if jobs > 1 else {})
    for r in range(args.repeats):
        for n_jobs, times in walls.items():
            log(f"evaluation repeat {r + 1}/{args.repeats}: {len(specs)} controllers x {n} patients x "
                      f"{days:g} days, {n_jobs} process{'es' if n_jobs > 1 else ''}")
            t0 = time.perf_counter()
            evaluate(specs, patients, EnvSettings(horizon_days=days), seed=r, jobs=n_jobs)
            times.append(time.perf_counter() - t0)
    controller_patient_days = len(specs) * n * days
    what = f"agents.evaluation.evaluate: {len(specs)} baselines x {n} patients of 'test' x {days:g} days, dt_s 30"
    out = {}
    for n_jobs, times in walls.items():
        summary = summarize(times, "s")
        key = "evaluation" if n_jobs == 1 else "evaluation_parallel"
        out[key] = {
            "what": what + (f", {n_jobs} worker processes" if n_jobs > 1 else ", one process"),
            **summary,
            "jobs": n_jobs,
            "controllers": list(BASELINES),
            "n_patients": n,
            "days": days,
            "controller_patient_days_per_s": controller_patient_days / summary["median"],
        }
    if jobs > 1:
        out["evaluation_parallel"]["pool_start_s"] = pool_start_s
        out["evaluation_parallel"]["speedup_paired"] = statistics.median(
            one / many for one, many in zip(walls[1], walls[jobs], strict=True)
        )
    if args.long_term_repeats > 0:
        out["evaluation_long_term"] = run_long_term(args, log)
    return out


def run_long_term(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """Wall time of one long-term evaluation (``LONG_TERM_CONTROLLERS``, 90 + 28 days, 2 processes), end to end."""
    from agents.evaluation import evaluate
    from agents.evaluation_frames import FRAMES, describe_frame
    from agents.evaluation_pool import resolve_jobs
    from experiments.benchmarks.machine import load_average
    from experiments.common.controller_entries import load_controller
    from simenv import EnvSettings, load_preset

    frame = FRAMES["long_term"]
    n, warmup, days = (4, 0.5, 0.25) if args.quick else (100, frame.warmup_days, frame.horizon_days)
    specs = [load_controller(name, name) for name in LONG_TERM_CONTROLLERS]
    patients = load_preset("test").sample(n)
    jobs = resolve_jobs(LONG_TERM_JOBS, n)
    load_before = load_average()
    times = []
    for r in range(args.long_term_repeats):
        log(f"long-term evaluation repeat {r + 1}/{args.long_term_repeats}: {len(specs)} controllers x {n} patients x "
            f"({warmup:g} + {days:g}) days, {jobs} process(es)")
        t0 = time.perf_counter()
        evaluate(specs, patients, EnvSettings(horizon_days=days), seed=r, jobs=jobs, warmup_days=warmup)
        times.append(time.perf_counter() - t0)
    summary = summarize(times, "s")
    return {
        "what": f"agents.evaluation.evaluate: {len(specs)} controllers x {n} patients of 'test' x ({warmup:g} + "
                f"{days:g}) days, dt_s 30, {jobs} worker process{'es' if jobs > 1 else ''}",
        **summary,
        "frame_text": describe_frame(warmup, days, "naive"),
        "jobs": jobs,
        "controllers": list(LONG_TERM_CONTROLLERS),
        "n_patients": n,
        "warmup_days": warmup,
        "days": days,
        "controller_patient_days_per_s": len(specs) * n * (warmup + days) / summary["median"],
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def render_evaluation(report: dict) -> str:
    """The section's wall times, floor and targets."""
    lines = []
    for key in ("evaluation", "evaluation_parallel", "evaluation_long_term"):
        fig = report["results"].get(key)
        if fig is None:
            continue
        lines += [
            f"evaluation: {fig['what']}",
            f"  wall time: median {fig['median']:.1f} s (min {fig['min']:.1f}, max {fig['max']:.1f}) over "
            f"{fig['n_repeats']} repeat(s); {fig['controller_patient_days_per_s']:,.0f} "
            "controller-patient-days/s",
        ]
        if fig.get("frame_text"):
            lines.append(f"  {fig['frame_text']}; load average before {fig['load_average_before']}, "
                         f"after {fig['load_average_after']}")
        if fig.get("pool_start_s") is not None:
            lines.append(f"  worker pool start-up (once per process, timed apart): {fig['pool_start_s']:.1f} s; "
                         f"speed-up over one process (median of paired ratios): {fig['speedup_paired']:.2f}x")
    for group, title in (("floors", "floor"), ("targets", "target")):
        for f in report[group]:
            state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
            value = "-" if f["measured_median"] is None else f"{f['measured_median']:.1f} s"
            lines.append(f"  {title} ({f['source']}): {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)
