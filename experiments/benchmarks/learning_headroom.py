"""The learning section's headroom: each trained run's and baseline's share of what the headroom planner reaches.

A run judged against the baselines alone does not say how much is left to
gain. Here the clairvoyant headroom planner (``planner_clairvoyant``, the
bound; docs/evaluation.md, "The headroom planner") runs beside the
evaluated baselines (off, continuous, cycling, cycling_5min, the calibrated
and the tuned threshold, dual threshold) and every trained run, paired, on
the first ``LearningOptions.headroom_patients`` test patients in the
section's frame: the same patients and noise as the main evaluation's
first ones. The planner costs seconds per patient-day on these cores
(docs/performance.md), so it is measured on fewer patients than the main
evaluation; the shares (``agents.headroom``, on reward, on plain pain and on
pain at matched energy, with paired bootstrap intervals) come with the
number of patients they rest on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.benchmarks.learning import LearningOptions

#: The bound, and the baselines evaluated beside it (``conf/controller/`` names).
BOUND = "planner_clairvoyant"
BASELINES = ("off", "continuous", "cycling", "cycling_5min", "threshold", "dual_threshold")


def evaluate_headroom(opts: LearningOptions, trainings: Sequence[dict], tuned_duty: float,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """The shares of headroom closed on the first ``opts.headroom_patients`` test patients ({} when 0)."""
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate
    from agents.evaluation_pool import resolve_jobs
    from experiments.benchmarks.learning_judge import TUNED, evaluation_settings
    from experiments.common.controller_entries import load_controller
    from experiments.evaluation.fronts import controller_from_file
    from experiments.evaluation.headroom import headroom_of
    from simenv.cohort import load_preset

    n = min(opts.headroom_patients, opts.test_patients)
    if n < 2:
        return {}
    runs = [t for t in trainings if (Path(t["run_dir"]) / "best_model.zip").is_file()
            or (Path(t["run_dir"]) / "model.zip").is_file()]
    specs = [load_controller(name, name) for name in BASELINES]
    specs.append(controller_from_file("threshold", TUNED, target_duty=float(tuned_duty)))
    specs += [ControllerSpec(t["label"], "run", {"path": t["run_dir"]}) for t in runs]
    specs.append(load_controller(BOUND, BOUND))
    patients = load_preset("test").sample(opts.test_patients)[:n]
    log(f"headroom: {len(specs)} controllers with the bound '{BOUND}' on the first {n} test patients, paired, "
        f"{opts.eval_jobs} process(es)")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, evaluation_settings(opts.scored_days), seed=opts.eval_seed, trace_patient=-1,
                      jobs=resolve_jobs(opts.eval_jobs, n), warmup_days=opts.warmup)
    rows = headroom_of({s.label: s.kind for s in specs}, result)
    return {"n_patients": n, "bound": BOUND, "rows": rows, "wall_s": time.perf_counter() - t0}


def render_headroom(headroom: dict[str, Any], frame_text: str, test_patients: int) -> list[str]:
    """The headroom table as the evaluate command prints it, under a line naming the frame."""
    from experiments.evaluation.report import console_headroom

    if not headroom or not headroom.get("rows"):
        return []
    return [f"headroom on test ({frame_text}; {headroom['wall_s']:.0f} s)",
            console_headroom(headroom["rows"], test_patients)]
