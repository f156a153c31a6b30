"""The sweep report's common paired evaluation: the sweep's trained models beside the baseline fronts.

Every policy runs on the same patients and the same noise
(``experiments.evaluation.fronts.evaluate_fronts``, one call of
``agents.evaluation.evaluate``): the sweep's models, the baseline fronts
(threshold over ``--duties``, cycling over periods and duties, dual
threshold; with off, continuous and the calibrated threshold) and the other
``--baselines``. The frame is the report's (default ``long_term``: 90 days
of unscored warm-up, 28 scored); the settings are ``experiments.evaluate``'s
defaults (on/off, one step of 30 s, naive start).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from experiments.sweeps.options import MODEL_FILES, ReportOptions
from experiments.sweeps.runs import ENERGY, METRICS, PAIN, SIDE, SweepRun, side_effects_per_day

if TYPE_CHECKING:
    from experiments.evaluation.fronts import BaselineFronts


def model_label(name: str, model: str = "best") -> str:
    """The evaluation label of a training's ``model`` (``best`` or ``final``)."""
    return "run_" + re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ("" if model == "best" else f"_{model}")


def _row(summary_row: dict, horizon_days: float) -> dict[str, Any]:
    out = {m: summary_row[m] for m in METRICS if m != SIDE}
    for m in (PAIN, ENERGY):
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = summary_row[f"{m}_ci_low"], summary_row[f"{m}_ci_high"]
    out[SIDE] = side_effects_per_day(summary_row["mild_events_per_day"], summary_row["seizure_events"], horizon_days)
    out["uses_latent"] = bool(summary_row["uses_latent"])
    return out


def evaluate_sweep(opts: ReportOptions, runs: Sequence[SweepRun],
                   log: Callable[[str], None]) -> tuple[dict[str, Any], BaselineFronts]:
    """One paired evaluation: the finished training runs' models, the baseline fronts, the other baselines.

    Each training contributes its ``opts.models``: ``best`` (by its own
    validation reward, under its own reward weights) and ``final`` (the
    policy it ended with); both are policies the sweep produced, and either
    may lie on the pain-energy front. Returns the report's ``evaluation``
    (JSON-ready) and the fronts (with the per-patient values the budget
    table compares paired).
    """
    from agents.controllers import ControllerSpec
    from agents.evaluation import summarise
    from experiments.common.controller_entries import load_controller
    from experiments.evaluation.fronts import FAMILIES, REFERENCES, evaluate_fronts, front_specs

    trained = [r for r in runs if r.command == "train" and r.state == "finished" and r.has_model]
    models = [(r, m) for r, m in ((r, m) for r in trained for m in opts.models) if (r.path / MODEL_FILES[m]).is_file()]
    extra = [ControllerSpec(model_label(r.name, m), "run", {"path": str(r.path), "which": m}) for r, m in models]
    extra += [load_controller(b, b) for b in opts.baselines if b not in REFERENCES]
    grid = opts.grid()
    days, warmup = opts.scored_days, opts.warmup
    n_front = sum(len(v) for v in front_specs(grid).values())
    log(f"evaluating {len(models)} model(s) of {len(trained)} trained run(s), {n_front} baseline settings of the fronts "
        f"and {len(opts.baselines)} baselines on {opts.patients} '{opts.cohort}' patients ({warmup:g} days of warm-up, "
        f"{days:g} scored; paired)")
    fronts = evaluate_fronts(opts.cohort, opts.patients, opts.frame, seed=opts.seed, jobs=opts.jobs, grid=grid,
                             extra_specs=extra, warmup_days=warmup, horizon_days=days)
    rows = {r["controller"]: _row(r, days) for r in summarise(fronts.result)}
    periods = [p for p in grid.cycling_periods_s for _ in grid.cycling_duties]
    cycle_duties = [d for _ in grid.cycling_periods_s for d in grid.cycling_duties]
    params = {"threshold": [{"target_duty": d} for d in grid.threshold_duties],
              "cycling": [{"period_s": p, "duty": d} for p, d in zip(periods, cycle_duties, strict=True)],
              "dual_threshold": [{"target_duty": d} for d in grid.dual_duties]}
    families = {f: [{"label": label, "family": f, **p, **rows[label]}
                    for label, p in zip(fronts.family_labels[f], params[f], strict=True)] for f in FAMILIES}
    evaluation = {
        "cohort": opts.cohort, "n_patients": opts.patients, "frame": opts.frame, "frame_text": fronts.frame_text,
        "warmup_days": warmup, "days": days, "seed": opts.seed, "initial_state": "naive", "dt_s": 30.0,
        "wall_s": fronts.wall_s, "models": list(opts.models),
        "runs": {m: {r.name: rows[model_label(r.name, m)] for r, mm in models if mm == m} for m in opts.models},
        **families,
        "baselines": [{"label": b, **rows[b]} for b in opts.baselines],
        "envelopes": {name: front.envelope() for name, front in fronts.fronts.items()},
    }
    return evaluation, fronts
