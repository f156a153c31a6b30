"""Read every run of a sweep folder: its state, its swept parameters and its own metrics.

A run is any folder below the sweep that holds a ``status.json`` or Hydra's
``.hydra/overrides.yaml`` (a job that was launched but has not written its
status yet is ``missing``). States come from ``experiments.common.run_folder.read_status``
(``running`` with an old heartbeat is ``stale``). Parameters are the job's
Hydra overrides; those whose value differs between runs are the swept ones.

Metrics a run computed itself:

- a training run (``experiments.train``): the validation row of its best
  model (``metrics.csv``, column ``best``), the validation patients'
  means, prefixed ``val_``;
- an evaluation run (``experiments.evaluate``): the first controller's row
  of ``metrics.csv`` (its objective), unprefixed.

Plain Python, no Hydra: a report can read a sweep from anywhere.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from experiments.common.run_folder import STATUS_FILE, read_status

OVERRIDES = Path(".hydra") / "overrides.yaml"
#: Metrics every report row carries (from validation for training runs, from the engine for evaluations).
METRICS = ("reward_per_day", "mean_pain_nrs", "high_pain_fraction", "duty_cycle", "stim_energy_j_per_day",
           "side_effect_events_per_day", "switches_per_hour")
#: The front's axes: mean pain against stimulation energy, or against side-effect events.
ENERGY, PAIN, SIDE = "stim_energy_j_per_day", "mean_pain_nrs", "side_effect_events_per_day"


@dataclass
class SweepRun:
    """One run of a sweep, as found on disk."""

    path: Path
    name: str  # path relative to the sweep folder
    command: str | None  # "train", "evaluate" or None (not started)
    state: str  # running | finished | failed | interrupted | stale | missing
    overrides: dict[str, str]
    objective: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # last line of the error message (failed runs)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def has_model(self) -> bool:
        return (self.path / "best_model.zip").is_file() or (self.path / "model.zip").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """Folders below (or at) ``root`` holding a status file or Hydra's overrides, sorted naturally."""
    root = Path(root)
    found = {p.parent for p in root.rglob(STATUS_FILE)}
    found |= {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    # Checkpoint or sub-folders never hold a status; a folder nested in a run is not a run of its own.
    runs = sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in _tokens(p.relative_to(root))])
    return [p for p in runs if not any(q != p and q in p.parents for q in runs)]


def _tokens(rel: Path) -> list[str]:
    import re

    return re.findall(r"\d+|\D+", str(rel))


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The job's overrides as ``{key: value}`` (from ``.hydra/overrides.yaml``; empty if absent)."""
    path = Path(run_dir) / OVERRIDES
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, str] = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def as_float(value: Any) -> float:
    """``float(value)``, NaN for what is no number (a missing cell, ``None``, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def training_metrics(run_dir: Path) -> dict[str, float]:
    """Validation metrics of the best model so far (``val_*``); empty before the first validation."""
    rows = _csv_rows(Path(run_dir) / "metrics.csv")
    if not rows:
        return {}
    best = [r for r in rows if str(r.get("best", "")).strip().lower() in ("1", "1.0", "true")]
    row = best[-1] if best else max(rows, key=lambda r: as_float(r.get("reward_per_day")))
    out = {f"val_{m}": as_float(row.get(m)) for m in METRICS}
    out["val_timesteps"] = as_float(row.get("timesteps"))
    return out


def evaluation_metrics(run_dir: Path) -> dict[str, float]:
    """The first controller's row of an evaluation run's ``metrics.csv`` (side effects summed per day)."""
    rows = _csv_rows(Path(run_dir) / "metrics.csv")
    if not rows:
        return {}
    row = rows[0]
    out = {m: as_float(row.get(m)) for m in METRICS if m in row}
    days = _horizon_days(run_dir)
    out["side_effect_events_per_day"] = side_effects_per_day(
        as_float(row.get("mild_events_per_day")), as_float(row.get("seizure_events")), days
    )
    out["controller"] = row.get("controller")  # type: ignore[assignment]
    return out


def side_effects_per_day(mild_per_day: float, seizures_over_horizon: float, horizon_days: float) -> float:
    """Mild plus seizure events per day (the engine reports seizures over the whole horizon)."""
    if not horizon_days or not math.isfinite(horizon_days):
        return math.nan
    return mild_per_day + seizures_over_horizon / horizon_days


def _horizon_days(run_dir: Path) -> float:
    import json

    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
        return float((info.get("config") or {}).get("horizon_days"))
    except (OSError, ValueError, TypeError):
        return math.nan


def last_error_line(status: dict) -> str | None:
    """The last non-empty line of a failed run's error (code first when there is one)."""
    error = status.get("error") or {}
    message = str(error.get("message") or "").strip()
    if not message and not error.get("code"):
        return None
    lines = [ln for ln in message.splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    return f"{error['code']}: {last}" if error.get("code") else last


def read_run(run_dir: Path, root: Path) -> SweepRun:
    """One run folder as a ``SweepRun``."""
    status = read_status(run_dir)
    command = status.get("command")
    if command is None and (Path(run_dir) / "train_config.json").is_file():
        command = "train"
    run = SweepRun(
        path=Path(run_dir),
        name=str(Path(run_dir).relative_to(root)) if Path(run_dir) != Path(root) else ".",
        command=command,
        state=status.get("state", "missing"),
        overrides=read_overrides(run_dir),
        status=status,
    )
    result = status.get("result") or {}
    run.objective = as_float(result.get("objective"))
    if run.state == "failed":
        run.error = last_error_line(status)
    if command == "train":
        run.metrics = training_metrics(run_dir)
    elif command == "evaluate" and run.state == "finished":
        run.metrics = evaluation_metrics(run_dir)
    return run


def read_sweep(root: Path) -> list[SweepRun]:
    """Every run below ``root``."""
    return [read_run(p, Path(root)) for p in find_run_dirs(Path(root))]


def swept_keys(runs: list[SweepRun]) -> list[str]:
    """Override keys whose value differs between runs (all of one run's keys if there is one run)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.overrides if k not in keys]
    if len(runs) <= 1:
        return keys
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]
