"""The files of a training run folder, its checkpoints and its metrics table.

Names (``agents.rl_policy`` loads the first four; docs/training.md lists all):

- ``train_config.json``: agent, algo_class, env_settings, reward, cohorts,
  seed, total_timesteps, physics and painloop versions, and the resolved
  config (what ``resume`` continues with);
- ``model.zip`` + ``vecnormalize.json``: the final model and its observation
  and reward statistics (``agents.run_statistics``: JSON, never a pickle);
- ``best_model.zip`` + ``best_vecnormalize.json``: the model with the best mean
  validation reward so far;
- ``checkpoints/ckpt_<steps>_steps.zip`` + ``..._vecnormalize.json`` (+
  ``..._replay_buffer.pkl`` for off-policy agents, kept for the latest
  checkpoint only): taken at rollout boundaries, so a resume neither loses
  nor repeats a step;
- ``metrics.csv``: one row per validation; ``tb/``: TensorBoard events;
  ``validation_trace.png``: the latest validation day.

Every model and statistics file is written to a temporary name and renamed,
and a checkpoint's model zip is written last: a checkpoint whose zip exists
is complete. ``run.json``'s manifest holds the SHA-256 of every one of
these files (``agents.run_manifest``), recorded before the zip's rename.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agents import run_files
from agents.atomic_io import write_bytes_atomic
from simenv.errors import PainloopError

TRAIN_CONFIG = run_files.TRAIN_CONFIG
MODEL = "model.zip"
VECNORMALIZE = run_files.VECNORMALIZE
BEST_MODEL = "best_model.zip"
BEST_VECNORMALIZE = run_files.BEST_VECNORMALIZE
CHECKPOINTS = run_files.CHECKPOINTS
METRICS = "metrics.csv"
TENSORBOARD = "tb"
TRACE_PNG = "validation_trace.png"
_CKPT = re.compile(r"^ckpt_(\d+)_steps\.zip$")
CORRUPT_SUFFIX = ".corrupt"
T = TypeVar("T")


class CheckpointWarning(UserWarning):
    """A checkpoint could not be used and an older one was taken instead."""


def save_model(model: Any, vecnormalize: Any, model_path: Path, stats_path: Path, fault: str | None = None) -> None:
    """A model and its ``VecNormalize`` statistics (JSON), recorded in the manifest (``agents.run_files``).

    The model zip is written last; ``fault`` names the test hook's fault
    point just before its rename (``agents.atomic_io.fault_point``).
    """
    run_files.save_model_files(model, vecnormalize, model_path, stats_path, fault=fault)


def checkpoint_paths(run_dir: Path, steps: int) -> dict[str, Path]:
    base = Path(run_dir) / CHECKPOINTS / f"ckpt_{steps}_steps"
    return {
        "model": base.with_name(base.name + ".zip"),
        "vecnormalize": base.with_name(base.name + "_vecnormalize.json"),
        "replay_buffer": base.with_name(base.name + "_replay_buffer.pkl"),
    }


def save_checkpoint(model: Any, vecnormalize: Any, run_dir: Path, steps: int, off_policy: bool) -> Path:
    """Checkpoint at ``steps`` (a rollout boundary); returns the model zip's path.

    Off-policy agents keep their replay buffer with the newest checkpoint only.
    """
    paths = checkpoint_paths(run_dir, steps)
    if off_policy:
        run_files.save_replay_buffer(model, paths["replay_buffer"])
    save_model(model, vecnormalize, paths["model"], paths["vecnormalize"], fault="checkpoint-write")
    if off_policy:
        old = [p for p in (Path(run_dir) / CHECKPOINTS).glob("ckpt_*_steps_replay_buffer.pkl") if p != paths["replay_buffer"]]
        for p in old:
            p.unlink(missing_ok=True)
        run_files.forget(old)
    return paths["model"]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of every checkpoint whose model zip exists, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    return sorted(int(m.group(1)) for p in folder.glob("ckpt_*_steps.zip") if (m := _CKPT.match(p.name)))


def _missing(paths: dict[str, Path], off_policy: bool) -> list[str]:
    needed = ["model", "vecnormalize"] + (["replay_buffer"] if off_policy else [])
    return [paths[k].name for k in needed if not paths[k].is_file()]


def latest_checkpoint(run_dir: Path, off_policy: bool) -> tuple[int, dict[str, Path]] | None:
    """(steps, paths) of the newest complete checkpoint, or None.

    Complete: the zip and its statistics exist (and the replay buffer for an
    off-policy agent). A newest checkpoint that is incomplete is an error, not
    skipped silently (``load_latest_checkpoint`` falls back with a warning).
    """
    steps = checkpoint_steps(run_dir)
    if not steps:
        return None
    paths = checkpoint_paths(run_dir, steps[-1])
    missing = _missing(paths, off_policy)
    if missing:
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"the newest checkpoint in '{Path(run_dir) / CHECKPOINTS}' is incomplete: {missing} missing; "
            "allowed: a checkpoint with its model zip, statistics and (off-policy) replay buffer "
            "(delete the incomplete one to resume from the previous checkpoint).",
        )
    return steps[-1], paths


def load_latest_checkpoint(
    run_dir: Path, off_policy: bool, load: Callable[[int, dict[str, Path]], T]
) -> tuple[int, dict[str, Path], T] | None:
    """Load the newest checkpoint that loads: ``(steps, paths, load(steps, paths))``, or None if there is none.

    A checkpoint that is incomplete or fails to load (a truncated zip or
    pickle: ``load`` raises) is skipped for the previous one. When an older
    one loads, each skipped checkpoint's files are renamed aside with a
    ``.corrupt`` suffix (kept for inspection, no longer in the way) and a
    warning names it and its error. If none loads, ``PL-RUN-FOLDER`` lists
    them all and the folder is left untouched. Off-policy agents keep their
    replay buffer with the newest checkpoint only, so for them an older
    checkpoint is incomplete and the fall-back ends there.
    """
    problems: list[str] = []
    skipped: list[dict[str, Path]] = []
    for steps in reversed(checkpoint_steps(run_dir)):
        paths = checkpoint_paths(run_dir, steps)
        missing = _missing(paths, off_policy)
        try:
            if missing:
                raise PainloopError("PL-RUN-FOLDER", f"incomplete: {missing} missing")
            loaded = load(steps, paths)
        except Exception as exc:  # noqa: BLE001 - any failure to load means this checkpoint is unusable
            if getattr(exc, "code", None) in run_files.REFUSED_CODES:
                raise  # a changed file or one that would need unpickling: refused, never skipped
            problems.append(f"checkpoint {paths['model'].name} cannot be used ({type(exc).__name__}: {exc})")
            skipped.append(paths)
            continue
        for problem, bad in zip(problems, skipped, strict=True):
            for p in bad.values():
                if p.is_file():
                    os.replace(p, p.with_name(p.name + CORRUPT_SUFFIX))
            message = (f"{problem}; renamed aside with suffix {CORRUPT_SUFFIX}; resuming from the previous "
                       f"checkpoint {paths['model'].name}")
            warnings.warn(message, CheckpointWarning, stacklevel=2)
            print(f"WARNING: {message}", file=sys.stderr, flush=True)
        return steps, paths, loaded
    if problems:
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"no checkpoint in '{Path(run_dir) / CHECKPOINTS}' loads: {problems}; allowed: a run folder with at "
            "least one complete checkpoint (delete the broken ones to start the run again).",
        )
    return None


class MetricsTable:
    """``metrics.csv``: one row per validation, appended and flushed at once."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns

    def _complete_text(self) -> str:
        """The file's text up to its last complete line.

        A process killed while appending (or a full disk) can leave half a
        row at the end; it is dropped, with a warning, so the table always
        reads and the next append starts on a fresh line.
        """
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            message = f"'{self.path}' ends with an incomplete row ({len(data) - cut} bytes); it is dropped"
            warnings.warn(message, MetricsWarning, stacklevel=3)
            data = data[:cut]
            with self.path.open("r+b") as fh:
                fh.truncate(cut)
        return data.decode("utf-8", errors="replace")

    def rows(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        text = self._complete_text()
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            try:
                out.append({k: float(v) for k, v in row.items() if k is not None and v not in ("", None)})
            except (TypeError, ValueError):
                warnings.warn(f"'{self.path}': a malformed row is skipped: {row}", MetricsWarning, stacklevel=2)
        return out

    def keep_until(self, timesteps: int) -> list[dict[str, float]]:
        """Drop rows after ``timesteps`` (a resume from an earlier checkpoint); returns the rows kept."""
        kept = [r for r in self.rows() if r.get("timesteps", math.inf) <= timesteps]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in kept:
            writer.writerow({k: _fmt(v) if k != "timesteps" else int(v) for k, v in r.items()})
        write_bytes_atomic(self.path, buf.getvalue().encode())
        return kept

    def append(self, row: dict[str, float]) -> None:
        """Append one row in a single write; a half row left by an earlier kill is dropped first."""
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:
            self._complete_text()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({k: _fmt(v) for k, v in row.items()})
        with self.path.open("a", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


class MetricsWarning(UserWarning):
    """``metrics.csv`` held an incomplete or malformed row (dropped)."""


def _fmt(v: Any) -> Any:
    return repr(float(v)) if isinstance(v, float) else v
