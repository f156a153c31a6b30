"""A sweep's report: its table, its Pareto fronts and the comparison with the threshold's front.

``sweep_front`` reads a sweep folder (``experiments.sweeps.runs``), runs
the common paired evaluation if asked (``experiments.sweeps.paired``: the
sweep's models beside the baseline fronts, long-term frame by default),
builds the table (``experiments.sweeps.table``), the policies' points, the
pain-energy front and the goal comparison (``experiments.sweeps.front``),
the budget table of a budget sweep (``experiments.sweeps.budgets``), and
writes nothing: a notebook calls it. ``build_report`` adds the files
``python -m experiments.sweep_report`` writes (``sweep_table.csv``,
``baselines.csv``, ``budgets.csv``, the two Pareto PNGs,
``sweep_report.json``) and ``render`` the console summary it prints.
Plain Python, no Hydra::

    from experiments.sweeps import sweep_front

    front = sweep_front("multirun/pareto", evaluate=False)   # each run's own metrics, in seconds
    front.rows, front.front_energy, front.goal
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from experiments.common.run_folder import write_json_atomic
from experiments.evaluation.front_math import non_dominated
from experiments.evaluation.fronts import FAMILIES, POINT_FRONTS, BaselineFronts
from experiments.sweeps.budgets import budget_rows, render_budgets
from experiments.sweeps.front import GoalPoint, compare_fronts, distinct_points
from experiments.sweeps.options import ReportOptions, check_options
from experiments.sweeps.paired import evaluate_sweep
from experiments.sweeps.runs import ENERGY, PAIN, SIDE, SweepRun, as_float
from experiments.sweeps.table import table_rows, write_csv

REPORT_FORMAT = "painloop.sweep_report/v1"
GOAL_RULE = ("at each threshold point's energy, the sweep front's linearly interpolated mean pain is at most "
             "the threshold's + tolerance_nrs; points outside the front's energy range are not compared")


@dataclass
class SweepFront:
    """A sweep's table and fronts, as the report shows them (nothing written)."""

    options: ReportOptions
    runs: list[SweepRun]
    rows: list[dict[str, Any]]  # sweep_table.csv: one row per run
    swept_keys: list[str]  # override keys whose value differs between runs
    evaluation: dict[str, Any] | None  # the common paired evaluation (None without one)
    points: list[dict[str, Any]]  # every policy with a point: label, run, mean pain, energy, side effects
    front_energy: list[dict[str, Any]]  # the points no other beats on both pain and energy, by energy
    goal: list[GoalPoint]  # each threshold point against the front at its energy
    budgets: list[dict[str, Any]]  # budgets.csv: per budgeted run and model, budget kept? pain vs the fronts
    fronts: BaselineFronts | None = None  # the baseline fronts of the common evaluation, per patient

    @property
    def threshold(self) -> list[dict[str, Any]]:
        return self.evaluation["threshold"] if self.evaluation else []

    @property
    def families(self) -> dict[str, list[dict[str, Any]]]:
        """Each baseline front's settings (threshold, cycling, dual threshold) with their metrics."""
        return {f: self.evaluation[f] for f in FAMILIES} if self.evaluation else {}

    @property
    def baselines(self) -> list[dict[str, Any]]:
        return self.evaluation["baselines"] if self.evaluation else []


def sweep_front(path: str | Path, log: Callable[[str], None] | None = None, **options: Any) -> SweepFront:
    """The table and fronts of the sweep at ``path``; ``options`` are ``ReportOptions`` fields.

    Defaults as the command line: a common paired evaluation on 100
    ``test`` patients in the long-term frame (``frame="week"``: 7 days;
    ``evaluate=False``: each run's own metrics, no fronts, in seconds). Raises ``PainloopError`` on
    bad input (``PL-SWEEP-PATH``: no folder or no run in it, ...).
    """
    names = {f.name for f in fields(ReportOptions)} - {"path"}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"unknown options {unknown}; allowed: {sorted(names)}")
    return front_of(ReportOptions(path=Path(path), **options), log or (lambda message: None))


def front_of(opts: ReportOptions, log: Callable[[str], None]) -> SweepFront:
    """Read, check and (if ``opts.evaluate``) evaluate the sweep; returns its table and fronts."""
    runs = check_options(opts)
    evaluation, fronts = evaluate_sweep(opts, runs, log) if opts.evaluate else (None, None)
    rows, keys = table_rows(runs, evaluation["runs"] if evaluation else None)
    prefixes = [("", "")] + [(f"{m}_", f" ({m})") for m in (evaluation["models"][1:] if evaluation else [])]
    points = [{"label": str(_short(row, keys)) + suffix, "run": row["run"], PAIN: as_float(row.get(p + PAIN)),
               ENERGY: as_float(row.get(p + ENERGY)), SIDE: as_float(row.get(p + SIDE))}
              for p, suffix in prefixes for row in rows if math.isfinite(as_float(row.get(p + PAIN)))]
    front = [p for p, on in zip(points, non_dominated([p[ENERGY] for p in points], [p[PAIN] for p in points]),
                                strict=True) if on]
    threshold = evaluation["threshold"] if evaluation else []
    goal = compare_fronts([p[ENERGY] for p in points], [p[PAIN] for p in points],
                          [(t["label"], t[ENERGY], t[PAIN]) for t in threshold], opts.tolerance_nrs)
    budgets = budget_rows(runs, fronts, opts.models, opts.energy_tolerance)
    return SweepFront(opts, runs, rows, keys, evaluation, points, sorted(front, key=lambda p: p[ENERGY]), goal,
                      budgets, fronts)


def build_report(opts: ReportOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Read, evaluate, write the table, the plots and the JSON; returns the report."""
    from experiments.sweeps.plots import plot_front

    sf = front_of(opts, log)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    table = write_csv(out / "sweep_table.csv", sf.rows)
    evaluation = sf.evaluation
    if evaluation:
        write_csv(out / "baselines.csv", [*(p for f in sf.families.values() for p in f), *sf.baselines])
    if sf.budgets:
        write_csv(out / "budgets.csv", sf.budgets)
    where = (f"{evaluation['n_patients']} '{evaluation['cohort']}' patients, paired; models: "
             f"{', '.join(evaluation['models'])}\n{evaluation['frame_text']}"
             if evaluation else "each run's own validation or evaluation (no common evaluation, no baseline fronts)")
    plots = []
    for name, x in (("pareto_energy.png", ENERGY), ("pareto_side_effects.png", SIDE)):
        plots.append(str(plot_front(out / name, sf.points, sf.families, sf.baselines, x, PAIN,
                                    f"{opts.path}: {len(sf.points)} policies; {where}")))
    compared = [g for g in sf.goal if g.status != "outside"]
    runs = sf.runs
    report = {
        "format": REPORT_FORMAT,
        "sweep": str(opts.path),
        "swept_keys": sf.swept_keys,
        "counts": {s: sum(r.state == s for r in runs) for s in sorted({r.state for r in runs})},
        "runs": sf.rows,
        "failed": [{"run": r.name, "error": r.error} for r in runs if r.state == "failed"],
        "evaluation": evaluation,
        "front_energy": sf.front_energy,
        "front_energy_distinct_points": distinct_points([p[ENERGY] for p in sf.front_energy],
                                                        [p[PAIN] for p in sf.front_energy]),
        "goal": {
            "rule": GOAL_RULE,
            "tolerance_nrs": opts.tolerance_nrs,
            "points": [asdict(g) for g in sf.goal],
            "compared": len(compared),
            "at_or_below": sum(g.status == "at or below" for g in compared),
            "holds": bool(compared) and all(g.status == "at or below" for g in compared),
        },
        "budgets": {"energy_tolerance": opts.energy_tolerance, "rows": sf.budgets},
        "files": {"table": str(table), "plots": plots},
    }
    write_json_atomic(out / "sweep_report.json", report)
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
        lines.append(f"baseline fronts ({ev['n_patients']} {ev['cohort']} patients, {ev['frame_text']}, "
                     f"{ev['wall_s']:.0f} s; '*': on the family's front):")
        for family in FAMILIES:
            for t in ev[family]:
                mark = "*" if t["label"] in ev["envelopes"][family] else " "
                lines.append(f"  {mark} {t['label']}: pain {t[PAIN]:.3f}, energy {t[ENERGY]:.2f} J/day, "
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
    lines += render_budgets(report["budgets"]["rows"], [*FAMILIES, *POINT_FRONTS],
                            ev["frame_text"] if ev else "no common evaluation")
    lines.append(f"files: {report['files']['table']}, {', '.join(report['files']['plots'])}")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    v = as_float(value)
    return "" if math.isnan(v) else format(v, spec)
