"""The benchmark's evaluation section: wall time of the paired evaluation engine.

Times ``agents.evaluation.evaluate`` (the engine of ``experiments.evaluate``)
on the 7 baselines x 100 patients of the test cohort x 28 days, clinic
calibration included, end to end, in one process and in one process per
core, against the floor of the evaluation issue and the target of the speed
issue.
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
BASELINES = ("off", "continuous", "cycling", "threshold", "dual_threshold", "oracle", "random")


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
    return out


def render_evaluation(report: dict) -> str:
    """The section's wall times, floor and targets."""
    lines = []
    for key in ("evaluation", "evaluation_parallel"):
        fig = report["results"].get(key)
        if fig is None:
            continue
        lines += [
            f"evaluation: {fig['what']}",
            f"  wall time: median {fig['median']:.1f} s (min {fig['min']:.1f}, max {fig['max']:.1f}) over "
            f"{report['settings']['repeats']} repeats; {fig['controller_patient_days_per_s']:,.0f} "
            "controller-patient-days/s",
        ]
        if fig.get("pool_start_s") is not None:
            lines.append(f"  worker pool start-up (once per process, timed apart): {fig['pool_start_s']:.1f} s; "
                         f"speed-up over one process (median of paired ratios): {fig['speedup_paired']:.2f}x")
    for group, title in (("floors", "floor (issue 3)"), ("targets", "target (issue 7)")):
        for f in report[group]:
            state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
            value = "-" if f["measured_median"] is None else f"{f['measured_median']:.1f} s"
            lines.append(f"  {title}: {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)
