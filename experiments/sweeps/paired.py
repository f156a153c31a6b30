"""The sweep report's common paired evaluation: the sweep's trained models, the threshold's duty sweep, baselines.

Every policy runs on the same patients and the same noise
(``agents.evaluation.evaluate``), so the sweep's points, the threshold's
own front and the baselines are compared paired. The settings are
``experiments.evaluate``'s defaults (on/off, one step of 30 s, naive start).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from experiments.sweeps.options import MODEL_FILES, ReportOptions
from experiments.sweeps.runs import ENERGY, METRICS, PAIN, SIDE, SweepRun, side_effects_per_day


def _label(name: str, model: str = "best") -> str:
    return "run_" + re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ("" if model == "best" else f"_{model}")


def threshold_label(duty: float) -> str:
    return f"threshold_duty{duty:g}"


def _controller_spec(name: str, label: str, **overrides: Any):
    """``conf/controller/<name>.yaml`` through the evaluate command's reader, parameters overridden."""
    from agents.controllers import ControllerSpec
    from experiments.common.controller_entries import load_controller

    spec = load_controller(name, label)
    return ControllerSpec(spec.label, spec.kind, {**spec.params, **overrides})


def _row(summary_row: dict, horizon_days: float) -> dict[str, Any]:
    out = {m: summary_row[m] for m in METRICS if m != SIDE}
    for m in (PAIN, ENERGY):
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = summary_row[f"{m}_ci_low"], summary_row[f"{m}_ci_high"]
    out[SIDE] = side_effects_per_day(summary_row["mild_events_per_day"], summary_row["seizure_events"], horizon_days)
    out["uses_latent"] = bool(summary_row["uses_latent"])
    return out


def evaluate_sweep(opts: ReportOptions, runs: Sequence[SweepRun], log: Callable[[str], None]) -> dict[str, Any]:
    """One paired evaluation: the finished training runs' models, the threshold's duty sweep, the baselines.

    Each training contributes its ``opts.models``: ``best`` (by its own
    validation reward, under its own reward weights) and ``final`` (the
    policy it ended with); both are policies the sweep produced, and either
    may lie on the pain-energy front.
    """
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate, summarise
    from simenv.batch import EnvSettings
    from simenv.cohort import load_preset

    trained = [r for r in runs if r.command == "train" and r.state == "finished" and r.has_model]
    models = [(r, m) for r in trained for m in opts.models if (r.path / MODEL_FILES[m]).is_file()]
    specs = [ControllerSpec(_label(r.name, m), "run", {"path": str(r.path), "which": m}) for r, m in models]
    specs += [_controller_spec("threshold", threshold_label(d), target_duty=float(d)) for d in opts.duties]
    specs += [_controller_spec(b, b) for b in opts.baselines]
    patients = load_preset(opts.cohort).sample(opts.patients)
    # As experiments.evaluate's defaults: on/off, one step of 30 s, naive start.
    settings = EnvSettings(action_mode="on_off", dt_s=30.0, horizon_days=float(opts.days), initial_state="naive")
    log(f"evaluating {len(models)} model(s) of {len(trained)} trained run(s), {len(opts.duties)} threshold duties and "
        f"{len(opts.baselines)} baselines on {len(patients)} '{opts.cohort}' patients x {opts.days:g} days (paired)")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, settings, seed=opts.seed)
    rows = {r["controller"]: _row(r, opts.days) for r in summarise(result)}
    return {
        "cohort": opts.cohort, "n_patients": len(patients), "days": opts.days, "seed": opts.seed,
        "initial_state": "naive", "dt_s": 30.0, "wall_s": time.perf_counter() - t0,
        "models": list(opts.models),
        "runs": {m: {r.name: rows[_label(r.name, m)] for r, mm in models if mm == m} for m in opts.models},
        "threshold": [{"label": threshold_label(d), "target_duty": d, **rows[threshold_label(d)]} for d in opts.duties],
        "baselines": [{"label": b, **rows[b]} for b in opts.baselines],
    }
