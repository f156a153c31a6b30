"""``python -m experiments.sweep_report PATH``: one table and two Pareto plots for a whole sweep.

Reads every run below PATH (a Hydra multirun folder of ``experiments.train``
or ``experiments.evaluate``): finished, failed, interrupted, still running
or stale, from each run's ``status.json`` (``experiments.sweeps.runs``).
Failed runs are listed with the last line of their error.

Then, unless ``--no-evaluate``, one paired evaluation with the project's
engine (``agents.evaluation.evaluate``: same patients, same noise) on
``--cohort`` (default the held-out ``test`` preset, 100 patients x 7 days,
started ``naive`` as ``experiments.evaluate``) of

- every finished training run's best model (by its validation reward) and
  its final model (``--models``): both are policies the sweep produced,
- the threshold controller (``conf/controller/threshold.yaml``) with its
  ``target_duty`` swept over ``--duties``: the threshold's own front,
- the other baselines (``--baselines``).

Evaluation runs of the sweep keep their own metrics (the first
controller's row). Written to ``--out`` (default ``PATH/sweep_report``):

- ``sweep_table.csv``: one row per run: name, command, state, swept
  parameters, objective, validation metrics of the best model (``val_*``,
  training runs), the evaluated metrics (best model; ``final_*`` for the
  final model), ``pareto_energy`` /
  ``pareto_side_effects`` (on the non-dominated front), error;
- ``baselines.csv``: the threshold points and baselines, same metrics;
- ``pareto_energy.png`` (mean pain vs stimulation energy per day) and
  ``pareto_side_effects.png`` (mean pain vs side-effect events per day);
- ``sweep_report.json``: all of it, with the goal comparison: at each
  threshold point's energy, the sweep front's interpolated mean pain
  against the threshold's (``--tolerance-nrs``).

Bad input (no such folder, no run in it, an unknown baseline, a duty
outside (0, 1)) exits 2 before anything is written.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from agents.atomic_io import open_atomic
from experiments.common.run_folder import report_error, write_json_atomic  # noqa: E402
from experiments.sweeps.front import compare_fronts, distinct_points, non_dominated  # noqa: E402
from experiments.sweeps.runs import METRICS, SweepRun, read_sweep, side_effects_per_day, swept_keys  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

EXIT_BAD_INPUT = 2
DEFAULT_DUTIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEFAULT_BASELINES = ("off", "continuous", "cycling", "cycling_5min", "dual_threshold")
REPORT_FORMAT = "painloop.sweep_report/v1"
#: Which model of a training the common evaluation runs: the best by its own validation reward, or the last.
MODEL_FILES = {"best": "best_model.zip", "final": "model.zip"}
ENERGY, PAIN, SIDE = "stim_energy_j_per_day", "mean_pain_nrs", "side_effect_events_per_day"


@dataclass
class ReportOptions:
    path: Path
    out: Path
    evaluate: bool = True
    cohort: str = "test"
    patients: int = 100
    days: float = 7.0
    seed: int = 0
    duties: tuple[float, ...] = DEFAULT_DUTIES
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    tolerance_nrs: float = 0.05
    models: tuple[str, ...] = ("best", "final")


# -- checks ---------------------------------------------------------------------------------------
def check_options(opts: ReportOptions) -> list[SweepRun]:
    """Everything that can be refused before work starts; returns the sweep's runs."""
    from experiments.evaluate import available_controllers

    if not opts.path.is_dir():
        raise PainloopError("PL-SWEEP-PATH", f"'{opts.path}' is not a folder; allowed: a sweep folder "
                            "(Hydra's multirun output, e.g. multirun/train/<date>/<time>) or a run folder.")
    runs = read_sweep(opts.path)
    if not runs:
        raise PainloopError("PL-SWEEP-PATH", f"'{opts.path}' holds no run (no status.json or .hydra/overrides.yaml "
                            "below it); allowed: the output folder of a --multirun of experiments.train or evaluate.")
    if opts.out.exists() and not opts.out.is_dir():
        raise PainloopError("PL-OUTPUT-PATH", f"--out '{opts.out}' exists and is not a folder; allowed: a folder.")
    if opts.evaluate:
        names = available_controllers()
        unknown = [b for b in opts.baselines if b not in names]
        if unknown:
            raise PainloopError("PL-CONTROLLER-UNKNOWN",
                                f"--baselines {unknown} do not exist; available controllers: {names}.")
        odd = [m for m in opts.models if m not in MODEL_FILES]
        if odd or not opts.models:
            raise PainloopError("PL-CONFIG-VALUE", f"--models {list(opts.models)}; allowed: one or both of "
                                f"{list(MODEL_FILES)}.")
        bad = [d for d in opts.duties if not 0.0 < d < 1.0]
        if bad:
            raise PainloopError("PL-CONTROLLER-PARAM", f"--duties {bad}; allowed: target duties in (0, 1).")
        if opts.patients < 1:
            raise PainloopError("PL-COHORT-SIZE", f"--patients {opts.patients}; allowed: at least 1.")
        if not opts.days > 0:
            raise PainloopError("PL-ENV-ARG", f"--days {opts.days}; allowed: a number of days > 0.")
        from simenv.cohort import load_preset

        load_preset(opts.cohort)
    return runs


# -- the paired evaluation ------------------------------------------------------------------------
def _label(name: str, model: str = "best") -> str:
    return "run_" + re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ("" if model == "best" else f"_{model}")


def threshold_label(duty: float) -> str:
    return f"threshold_duty{duty:g}"


def _controller_spec(name: str, label: str, **overrides: Any):
    """``conf/controller/<name>.yaml`` through the evaluate command's reader, parameters overridden."""
    from agents.controllers import ControllerSpec
    from experiments.evaluate import load_controller

    spec = load_controller(name, label)
    return ControllerSpec(spec.label, spec.kind, {**spec.params, **overrides})


def _row(summary_row: dict, horizon_days: float) -> dict[str, Any]:
    out = {m: summary_row[m] for m in METRICS if m != SIDE}
    for m in (PAIN, ENERGY):
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = summary_row[f"{m}_ci_low"], summary_row[f"{m}_ci_high"]
    out[SIDE] = side_effects_per_day(summary_row["mild_events_per_day"], summary_row["seizure_events"], horizon_days)
    out["uses_latent"] = bool(summary_row["uses_latent"])
    return out


def evaluate_sweep(opts: ReportOptions, runs: Sequence[SweepRun], log) -> dict[str, Any]:
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


# -- the table --------------------------------------------------------------------------------------
def table_rows(runs: Sequence[SweepRun], evaluated: dict[str, dict] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run and the swept keys.

    A run's point is its metrics in the common evaluation; an evaluation
    run's are its own. Without a common evaluation (``evaluated`` None) a
    training's point is its best model's validation (other patients and
    settings: comparable between the sweep's trainings only).
    """
    keys = swept_keys(list(runs))
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": r.name, "command": r.command, "state": r.state}
        row |= {k: r.overrides.get(k) for k in keys}
        row["objective"] = r.objective
        row |= {k: v for k, v in r.metrics.items() if k.startswith("val_")}
        own, source = {}, ""
        if r.command == "evaluate" and r.metrics:
            own, source = {m: r.metrics.get(m, math.nan) for m in METRICS}, "own evaluation"
        elif evaluated is None and r.command == "train" and r.metrics:
            own, source = {m: r.metrics.get(f"val_{m}", math.nan) for m in METRICS}, "validation"
        first = next(iter(evaluated)) if evaluated else None
        if evaluated and r.name in evaluated[first]:
            own, source = evaluated[first][r.name], f"report evaluation, {first} model"
        row |= {m: own.get(m, math.nan) for m in METRICS}
        row["point_from"] = source
        for model in list(evaluated or {})[1:]:  # the other models of a training, e.g. final_mean_pain_nrs
            other = (evaluated or {})[model].get(r.name, {})
            row |= {f"{model}_{m}": other.get(m, math.nan) for m in METRICS}
        row["error"] = r.error or ""
        rows.append(row)
    prefixes = ["", *(f"{m}_" for m in list(evaluated or {})[1:])]
    for flag, y, x in (("pareto_energy", PAIN, ENERGY), ("pareto_side_effects", PAIN, SIDE)):
        # One front over every evaluated policy of the sweep (each training's best and final model).
        xs = [_num(row.get(p + x)) for p in prefixes for row in rows]
        ys = [_num(row.get(p + y)) for p in prefixes for row in rows]
        mask = non_dominated(xs, ys).reshape(len(prefixes), len(rows))
        for i, p in enumerate(prefixes):
            for row, on in zip(rows, mask[i], strict=True):
                row[p + flag] = bool(on)
    return rows, keys


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open_atomic(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    return path


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


# -- the report --------------------------------------------------------------------------------------
def build_report(opts: ReportOptions, log=print) -> dict[str, Any]:
    """Read, evaluate, write the table, the plots and the JSON; returns the report."""
    from experiments.sweeps.plots import plot_front

    runs = check_options(opts)
    evaluation = evaluate_sweep(opts, runs, log) if opts.evaluate else None
    rows, keys = table_rows(runs, evaluation["runs"] if evaluation else None)
    opts.out.mkdir(parents=True, exist_ok=True)
    table = write_csv(opts.out / "sweep_table.csv", rows)
    threshold = evaluation["threshold"] if evaluation else []
    baselines = evaluation["baselines"] if evaluation else []
    if evaluation:
        write_csv(opts.out / "baselines.csv", [*threshold, *baselines])
    prefixes = [("", "")] + [(f"{m}_", f" ({m})") for m in (evaluation["models"][1:] if evaluation else [])]
    points = [{"label": str(_short(row, keys)) + suffix, "run": row["run"], PAIN: _num(row.get(p + PAIN)),
               ENERGY: _num(row.get(p + ENERGY)), SIDE: _num(row.get(p + SIDE))}
              for p, suffix in prefixes for row in rows if math.isfinite(_num(row.get(p + PAIN)))]
    where = (f"{evaluation['n_patients']} '{evaluation['cohort']}' patients x {evaluation['days']:g} days, paired; "
             f"models: {', '.join(evaluation['models'])}"
             if evaluation else "each run's own validation or evaluation (no common evaluation, no threshold front)")
    plots = []
    for name, x in (("pareto_energy.png", ENERGY), ("pareto_side_effects.png", SIDE)):
        plots.append(str(plot_front(opts.out / name, points, threshold, baselines, x, PAIN,
                                    f"{opts.path}: {len(points)} policies; {where}")))
    front = [p for p, on in zip(points, non_dominated([p[ENERGY] for p in points], [p[PAIN] for p in points]),
                                strict=True) if on]
    goal = compare_fronts([p[ENERGY] for p in points], [p[PAIN] for p in points],
                          [(t["label"], t[ENERGY], t[PAIN]) for t in threshold], opts.tolerance_nrs)
    compared = [g for g in goal if g.status != "outside"]
    report = {
        "format": REPORT_FORMAT,
        "sweep": str(opts.path),
        "swept_keys": keys,
        "counts": {s: sum(r.state == s for r in runs) for s in sorted({r.state for r in runs})},
        "runs": rows,
        "failed": [{"run": r.name, "error": r.error} for r in runs if r.state == "failed"],
        "evaluation": evaluation,
        "front_energy": sorted(front, key=lambda p: p[ENERGY]),
        "front_energy_distinct_points": distinct_points([p[ENERGY] for p in front], [p[PAIN] for p in front]),
        "goal": {
            "rule": "at each threshold point's energy, the sweep front's linearly interpolated mean pain is at most "
                    "the threshold's + tolerance_nrs; points outside the front's energy range are not compared",
            "tolerance_nrs": opts.tolerance_nrs,
            "points": [asdict(g) for g in goal],
            "compared": len(compared),
            "at_or_below": sum(g.status == "at or below" for g in compared),
            "holds": bool(compared) and all(g.status == "at or below" for g in compared),
        },
        "files": {"table": str(table), "plots": plots},
    }
    write_json_atomic(opts.out / "sweep_report.json", report)
    return report


def _short(row: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys if row.get(k) is not None) or row["run"]


def render(report: dict[str, Any]) -> str:
    """The console summary: the table's main columns, failures, the front and the goal."""
    keys = report["swept_keys"]
    models = (report["evaluation"] or {}).get("models") or ["best"]
    head = ["run", "state", *keys, "objective"]
    for m in models:
        tag = "" if m == models[0] else f"{m} "
        head += [f"{tag}pain", f"{tag}energy", f"{tag}side eff.", f"{tag}duty", f"{tag}front"]
    lines = [" | ".join(head)]
    for r in report["runs"]:
        cells = [r["run"], r["state"], *(str(r.get(k)) for k in keys), _fmt(r["objective"], ",.1f")]
        for m in models:
            p = "" if m == models[0] else f"{m}_"
            cells += [_fmt(r.get(p + PAIN), ".3f"), _fmt(r.get(p + ENERGY), ".2f"), _fmt(r.get(p + SIDE), ".3f"),
                      _fmt(r.get(p + "duty_cycle"), ".2f"), "*" if r.get(p + "pareto_energy") else ""]
        lines.append(" | ".join(cells))
    lines.append(f"runs: {report['counts']}")
    for f in report["failed"]:
        lines.append(f"FAILED {f['run']}: {f['error']}")
    ev = report["evaluation"]
    if ev:
        lines.append(f"threshold front ({ev['n_patients']} {ev['cohort']} patients x {ev['days']:g} d, "
                     f"{ev['wall_s']:.0f} s):")
        for t in ev["threshold"]:
            lines.append(f"  target_duty {t['target_duty']:g}: pain {t[PAIN]:.3f}, energy {t[ENERGY]:.2f} J/day, "
                         f"duty {t['duty_cycle']:.2f}")
        for b in ev["baselines"]:
            lines.append(f"  {b['label']}: pain {b[PAIN]:.3f}, energy {b[ENERGY]:.2f} J/day")
    for p in report["front_energy"]:
        lines.append(f"  front: {p['label']}: pain {p[PAIN]:.3f}, energy {p[ENERGY]:.2f} J/day")
    lines.append(f"sweep front (pain vs energy): {len(report['front_energy'])} non-dominated policies, "
                 f"{report['front_energy_distinct_points']} distinct points")
    g = report["goal"]
    for p in g["points"]:
        learned = "outside the front's energy range" if p["status"] == "outside" else (
            f"front {p['learned_pain_nrs']:.3f} -> {p['status']} (margin {p['margin_nrs']:+.3f})")
        lines.append(f"  {p['label']}: energy {p['energy_j_per_day']:.2f}, threshold pain "
                     f"{p['threshold_pain_nrs']:.3f}, {learned}")
    if g["points"]:
        lines.append(f"goal (tolerance {g['tolerance_nrs']} NRS): {g['at_or_below']} of {g['compared']} compared "
                     f"threshold points at or below -> {'holds' if g['holds'] else 'missed'}")
    lines.append(f"files: {report['files']['table']}, {', '.join(report['files']['plots'])}")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    v = _num(value)
    return "" if math.isnan(v) else format(v, spec)


def parse_args(argv: Sequence[str] | None) -> ReportOptions:
    p = argparse.ArgumentParser(prog="python -m experiments.sweep_report", description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path, help="the sweep folder (Hydra multirun output)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default PATH/sweep_report)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="no common evaluation: each run's own metrics, no threshold front")
    p.add_argument("--cohort", default="test", help="preset of the common evaluation (default test)")
    p.add_argument("--patients", type=int, default=100, help="patients of the common evaluation (default 100)")
    p.add_argument("--days", type=float, default=7.0, help="simulated days per patient (default 7)")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the common evaluation")
    p.add_argument("--duties", type=float, nargs="+", default=list(DEFAULT_DUTIES),
                   help="threshold target duties that trace its front")
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES),
                   help="other controllers of conf/controller/ to overlay")
    p.add_argument("--models", nargs="+", default=["best", "final"],
                   help="which model of each training the common evaluation runs (best, final; default both)")
    p.add_argument("--tolerance-nrs", type=float, default=0.05,
                   help="goal tolerance: front pain may exceed the threshold's by this much (NRS)")
    a = p.parse_args(argv)
    return ReportOptions(path=a.path, out=a.out or a.path / "sweep_report", evaluate=not a.no_evaluate,
                         cohort=a.cohort, patients=a.patients, days=a.days, seed=a.seed,
                         duties=tuple(a.duties), baselines=tuple(a.baselines), tolerance_nrs=a.tolerance_nrs,
                         models=tuple(a.models))


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        report = build_report(opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    except PainloopError as exc:
        report_error(exc)
        return EXIT_BAD_INPUT
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
