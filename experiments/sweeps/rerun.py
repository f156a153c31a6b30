"""Re-running a sweep into the same folders: finished runs are skipped unless ``redo=true``.

Hydra gives each job of a sweep the same folder when the sweep is run again
with the same ``hydra.sweep.dir`` (``conf/experiment/pareto.yaml`` fixes
it). A job whose folder holds a *finished* run of the same config returns
that run's objective without working again; failed, interrupted and stale
runs are redone (training resumes from its last checkpoint). ``redo=true``
starts a finished run over: its previous outputs are removed first (Hydra's
``.hydra/`` record and log stay).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

from experiments.common.run_folder import RUN_FILE, STATUS_FILE, read_status
from experiments.config.train_schema import KEYS_ADDED_LATER
from experiments.training import folder as tf
from simenv.settings import with_added_settings

#: Keys that say how to run, not what: they may differ between a run and its re-run
#: (``jobs`` splits an evaluation over processes with identical results).
VOLATILE = ("redo", "progress_bar", "jobs")
#: What ``experiments.train`` writes into its folder (``experiments.training.folder``), removed by a redo.
TRAINING_OUTPUTS = (tf.TRAIN_CONFIG, RUN_FILE, STATUS_FILE, tf.MODEL, tf.VECNORMALIZE, tf.BEST_MODEL,
                    tf.BEST_VECNORMALIZE, tf.METRICS, tf.TRACE_PNG, tf.CHECKPOINTS, tf.TENSORBOARD)


def comparable(config: dict, volatile: tuple[str, ...] = VOLATILE) -> dict:
    """``config`` without the keys that may change between a run and its re-run.

    A training config recorded before an env setting existed (``env.observation``) is
    given the value it ran with (``simenv.settings.SETTINGS_ADDED_LATER``), and one
    recorded before a top-level key existed (``budget``, ``slow_costs``) that key's
    default (``experiments.config.train_schema.KEYS_ADDED_LATER``), so it still
    compares equal to the same training asked for today.
    """
    out = {k: v for k, v in config.items() if k not in volatile}
    if "env" in out:  # a training config: keys it lacks ran at their later default (``budget``, ``slow_costs``)
        out = {**KEYS_ADDED_LATER, **out}
    if isinstance(out.get("env"), dict):
        out["env"] = with_added_settings(out["env"])
    return out


def finished_objective(run_dir: Path, config: dict[str, Any]) -> float | None:
    """The objective of a finished run of the same ``config`` in ``run_dir`` (from run.json), else None."""
    status = read_status(run_dir)
    if status.get("state") != "finished":
        return None
    try:
        recorded = json.loads((Path(run_dir) / RUN_FILE).read_text()).get("config")
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(recorded, dict) or comparable(recorded) != comparable(config):
        return None
    value = (status.get("result") or {}).get("objective")
    return math.nan if value is None else float(value)


def clear_training(run_dir: Path) -> None:
    """Remove a training's outputs from ``run_dir`` so that it starts over (``redo=true``)."""
    for name in TRAINING_OUTPUTS:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
