"""The sweep table: one row per run, its swept parameters, its metrics and whether it lies on a front.

A run's point is its metrics in the report's common evaluation
(``experiments.sweeps.paired``); an evaluation run's are its own; without
a common evaluation a training's are its best model's validation.
``write_csv`` writes the rows as ``sweep_table.csv`` and ``baselines.csv``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.atomic_io import open_atomic
from experiments.evaluation.front_math import non_dominated
from experiments.sweeps.runs import ENERGY, METRICS, PAIN, SIDE, SweepRun, as_float, swept_keys


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
        xs = [as_float(row.get(p + x)) for p in prefixes for row in rows]
        ys = [as_float(row.get(p + y)) for p in prefixes for row in rows]
        mask = non_dominated(xs, ys).reshape(len(prefixes), len(rows))
        for i, p in enumerate(prefixes):
            for row, on in zip(rows, mask[i], strict=True):
                row[p + flag] = bool(on)
    return rows, keys


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``rows`` as CSV, columns in order of first appearance; floats to 6 significant digits, NaN and None empty."""
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
