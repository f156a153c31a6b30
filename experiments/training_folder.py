"""The files of a training run folder, its checkpoints and its metrics table.

Names (``agents.rl_policy`` loads the first four; docs/training.md lists all):

- ``train_config.json``: agent, algo_class, env_settings, reward, cohorts,
  seed, total_timesteps, physics and painloop versions, and the resolved
  config (what ``resume`` continues with);
- ``model.zip`` + ``vecnormalize.pkl``: the final model and its observation
  and reward statistics (``VecNormalize.save``);
- ``best_model.zip`` + ``best_vecnormalize.pkl``: the model with the best mean
  validation reward so far;
- ``checkpoints/ckpt_<steps>_steps.zip`` + ``..._vecnormalize.pkl`` (+
  ``..._replay_buffer.pkl`` for off-policy agents, kept for the latest
  checkpoint only): taken at rollout boundaries, so a resume neither loses
  nor repeats a step;
- ``metrics.csv``: one row per validation; ``tb/``: TensorBoard events;
  ``validation_trace.png``: the latest validation day.

Every model and statistics file is written to a temporary name and renamed,
and a checkpoint's model zip is written last: a checkpoint whose zip exists
is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

from simenv.errors import PainloopError

TRAIN_CONFIG = "train_config.json"
MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
BEST_MODEL = "best_model.zip"
BEST_VECNORMALIZE = "best_vecnormalize.pkl"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.csv"
TENSORBOARD = "tb"
TRACE_PNG = "validation_trace.png"
_CKPT = re.compile(r"^ckpt_(\d+)_steps\.zip$")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def model_bytes(model: Any) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def save_model(model: Any, vecnormalize: Any, model_path: Path, stats_path: Path) -> None:
    """A model and its ``VecNormalize`` statistics (the same pickle ``VecNormalize.save`` writes)."""
    write_bytes_atomic(stats_path, pickle.dumps(vecnormalize))
    write_bytes_atomic(model_path, model_bytes(model))


def checkpoint_paths(run_dir: Path, steps: int) -> dict[str, Path]:
    base = Path(run_dir) / CHECKPOINTS / f"ckpt_{steps}_steps"
    return {
        "model": base.with_name(base.name + ".zip"),
        "vecnormalize": base.with_name(base.name + "_vecnormalize.pkl"),
        "replay_buffer": base.with_name(base.name + "_replay_buffer.pkl"),
    }


def save_checkpoint(model: Any, vecnormalize: Any, run_dir: Path, steps: int, off_policy: bool) -> Path:
    """Checkpoint at ``steps`` (a rollout boundary); returns the model zip's path.

    Off-policy agents keep their replay buffer with the newest checkpoint only.
    """
    paths = checkpoint_paths(run_dir, steps)
    if off_policy:
        write_bytes_atomic(paths["replay_buffer"], pickle.dumps(model.replay_buffer))
    save_model(model, vecnormalize, paths["model"], paths["vecnormalize"])
    if off_policy:
        for old in (Path(run_dir) / CHECKPOINTS).glob("ckpt_*_steps_replay_buffer.pkl"):
            if old != paths["replay_buffer"]:
                old.unlink(missing_ok=True)
    return paths["model"]


def latest_checkpoint(run_dir: Path, off_policy: bool) -> tuple[int, dict[str, Path]] | None:
    """(steps, paths) of the newest complete checkpoint, or None.

    Complete: the zip and its statistics exist (and the replay buffer for an
    off-policy agent). A newest checkpoint that is incomplete is an error, not
    skipped silently.
    """
    folder = Path(run_dir) / CHECKPOINTS
    steps = sorted(int(m.group(1)) for p in folder.glob("ckpt_*_steps.zip") if (m := _CKPT.match(p.name)))
    if not steps:
        return None
    paths = checkpoint_paths(run_dir, steps[-1])
    needed = ["model", "vecnormalize"] + (["replay_buffer"] if off_policy else [])
    missing = [paths[k].name for k in needed if not paths[k].is_file()]
    if missing:
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"the newest checkpoint in '{folder}' is incomplete: {missing} missing; "
            "allowed: a checkpoint with its model zip, statistics and (off-policy) replay buffer "
            "(delete the incomplete one to resume from the previous checkpoint).",
        )
    return steps[-1], paths


def load_pickle(path: Path, what: str) -> Any:
    """A pickle from a run folder; a truncated or foreign file is ``PL-RUN-FOLDER``."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception as exc:
        raise PainloopError("PL-RUN-FOLDER", f"{what} '{path}' cannot be loaded: {type(exc).__name__}: {exc}.") from None


class MetricsTable:
    """``metrics.csv``: one row per validation, appended and flushed at once."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns

    def rows(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]

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
        new = not self.path.is_file()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})
            fh.flush()


def _fmt(v: Any) -> Any:
    return repr(float(v)) if isinstance(v, float) else v
