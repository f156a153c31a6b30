"""A run folder's model and statistics files, written and read without executing anything from them.

docs/reliability.md, "Trust boundary", is the user's account. In short:

- **Statistics** (``agents.run_statistics``: ``VecNormalize``'s running means, variances and counts,
  clip values, epsilon, gamma, and the model's recent-episode buffers) are
  JSON (``vecnormalize.json``, ``best_vecnormalize.json``,
  ``checkpoints/ckpt_<n>_steps_vecnormalize.json``), read with NaN and
  Infinity refused, and rebuilt into a ``VecNormalize`` (``vecnormalize_from``).
- **Models** (stable-baselines3 / sb3-contrib zips) are read member by
  member (``load_model``, through ``agents.model_zip``): the ``data`` entry
  as JSON, every entry SB3 would unpickle (``":serialized:"``: policy class
  and kwargs, spaces, schedules, buffers) supplied from ``train_config.json``
  instead (an entry painloop cannot supply is refused, never unpickled), and
  every ``.pth`` through torch's weights-only loader. The model is then
  assembled as ``BaseAlgorithm.load`` does it.
- **Replay buffers** (DQN, SAC) are pickles by nature: ``load_replay_buffer``
  reads one only when the caller passes ``trusted=True``
  (``trust_run_folder=true`` on the command line), else ``PL-RUN-TRUST``.
- **Folders written before this** (pickled statistics, no manifest) are
  refused with ``PL-RUN-LEGACY``; ``convert_legacy`` (``python -m
  experiments.convert_run <dir>``) rewrites their statistics once the user
  confirms the folder is theirs.

Every read goes through ``agents.run_manifest.read_verified``: the bytes are
checked against the manifest in ``run.json`` and then used as they are.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents import run_manifest
from agents.atomic_io import write_bytes_atomic
from agents.model_zip import (
    NEVER_LOADED,
    algorithm_class,
    assemble_model,
    first_line,
    read_model_zip,
    supplied_entries,
)
from agents.run_statistics import Statistics, statistics_bytes
from simenv.errors import PainloopError

VECNORMALIZE = "vecnormalize.json"
BEST_VECNORMALIZE = "best_vecnormalize.json"
TRAIN_CONFIG = "train_config.json"
CHECKPOINTS = "checkpoints"
#: The statistics file of each model file a run folder holds.
STATS_FOR_MODEL = {"model.zip": VECNORMALIZE, "best_model.zip": BEST_VECNORMALIZE}
#: Names of the pickled statistics folders written before the manifest hold (``convert_legacy``).
LEGACY_STATS = ("vecnormalize.pkl", "best_vecnormalize.pkl")
LEGACY_CHECKPOINT_STATS = "ckpt_*_steps_vecnormalize.pkl"
#: Codes a load raises for a file it must not use: never skipped for an older checkpoint.
REFUSED_CODES = ("PL-RUN-MANIFEST", "PL-RUN-UNSAFE", "PL-RUN-TRUST", "PL-RUN-LEGACY")


# -- models -------------------------------------------------------------------------------------------------
def load_model(
    run_dir: str | Path, model_path: str | Path, train_config: Mapping[str, Any], env: Any = None,
    overrides: Mapping[str, Any] | None = None, statistics: Statistics | None = None,
    files: Mapping[str, str] | None = None,
) -> Any:
    """A run folder's SB3 model, with nothing unpickled (see the module docstring)."""
    where = str(model_path)
    files = run_manifest.require_manifest(run_dir) if files is None else files
    run_manifest.read_verified(run_dir, TRAIN_CONFIG, files)  # the config the entries are rebuilt from
    raw = run_manifest.read_verified(run_dir, model_path, files)
    algo_class = str(train_config.get("algo_class", ""))
    cls = algorithm_class(algo_class)
    entries, params, variables = read_model_zip(raw, where)
    try:
        supplied = supplied_entries(cls, algo_class, entries, train_config, where, statistics)
        data = {k: v for k, v in entries.items() if k not in NEVER_LOADED}
        data.update(supplied)
        for key in ("observation_space", "action_space", "policy_class"):
            if key not in data:
                raise PainloopError("PL-RUN-FOLDER", f"model '{where}' cannot be loaded: its data has no '{key}'.")
        return assemble_model(cls, data, params, variables, env=env, overrides=overrides)
    except PainloopError:
        raise
    except Exception as exc:  # noqa: BLE001 - other spaces, other weights, a malformed entry
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}' cannot be loaded: {first_line(exc)}.") from None


# -- writing -------------------------------------------------------------------------------------------------
def run_dir_of(model_path: Path) -> Path:
    """The run folder a model file belongs to (its folder, or the parent of ``checkpoints/``)."""
    parent = Path(model_path).parent
    return parent.parent if parent.name == CHECKPOINTS else parent


def model_zip_bytes(model: Any) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def save_model_files(model: Any, vecnormalize: Any, model_path: Path, stats_path: Path,
                     fault: str | None = None) -> None:
    """Statistics, then the manifest entries of both files, then the model zip (the commit point).

    A kill at any point leaves either no model under ``model_path``'s name
    or one the manifest describes; ``fault`` is the test hook's fault point
    just before the zip's rename (``agents.atomic_io.fault_point``).
    """
    stats = statistics_bytes(vecnormalize, model)
    write_bytes_atomic(stats_path, stats)
    zipped = model_zip_bytes(model)
    run_manifest.record(run_dir_of(model_path), {stats_path: run_manifest.sha256_bytes(stats),
                                                 model_path: run_manifest.sha256_bytes(zipped)})
    write_bytes_atomic(model_path, zipped, fault=fault)


def save_run_files(run_dir: str | Path, model: Any, vecnormalize: Any, model_name: str = "model.zip") -> None:
    """A model and its statistics in a folder that holds ``train_config.json`` (all three in the manifest).

    What ``experiments.train`` leaves for a final model; tests and scripts
    use it to build a run folder by hand.
    """
    run = Path(run_dir)
    run_manifest.record_files(run, [TRAIN_CONFIG])
    save_model_files(model, vecnormalize, run / model_name, run / STATS_FOR_MODEL[model_name])


def save_replay_buffer(model: Any, path: Path) -> None:
    """The replay buffer (a pickle, written from memory) and its manifest entry."""
    import pickle

    data = pickle.dumps(model.replay_buffer)
    write_bytes_atomic(path, data)
    run_manifest.record(run_dir_of(path), {path: run_manifest.sha256_bytes(data)})


def forget(paths: list[Path]) -> None:
    """Drop deleted files from the manifest."""
    if paths:
        run_manifest.record(run_dir_of(paths[0]), {}, remove=paths)


def load_replay_buffer(run_dir: str | Path, path: str | Path, trusted: bool) -> Any:
    """A replay buffer: only for a folder the user trusts (``trust_run_folder=true``), else ``PL-RUN-TRUST``."""
    if not trusted:
        raise PainloopError(
            "PL-RUN-TRUST",
            f"resuming '{run_dir}' needs its replay buffer '{path}', which is a pickle: loading it would run any code "
            "it holds. Refused; if the folder is yours (you trained it, or you trust who did), resume with "
            "trust_run_folder=true.",
        )
    data = run_manifest.read_verified(run_dir, path)
    import pickle

    try:
        return pickle.loads(data)  # trust: the documented replay-buffer path (trust_run_folder=true)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign pickle
        raise PainloopError("PL-RUN-FOLDER", f"replay buffer '{path}' cannot be loaded: {type(exc).__name__}: "
                                             f"{exc}.") from None


# -- folders written before the manifest -------------------------------------------------------------------
def legacy_statistics(run_dir: str | Path) -> list[Path]:
    run = Path(run_dir)
    found = [run / n for n in LEGACY_STATS if (run / n).is_file()]
    return found + sorted((run / CHECKPOINTS).glob(LEGACY_CHECKPOINT_STATS))


def loaded_files(run_dir: str | Path) -> list[Path]:
    """Every file a load of this folder reads: config, models, their statistics, replay buffers."""
    run = Path(run_dir)
    names = [run / TRAIN_CONFIG] + [run / n for n in (*STATS_FOR_MODEL, *STATS_FOR_MODEL.values())]
    ckpt = run / CHECKPOINTS
    names += sorted(ckpt.glob("ckpt_*_steps.zip")) + sorted(ckpt.glob("ckpt_*_steps_vecnormalize.json"))
    names += sorted(ckpt.glob("ckpt_*_steps_replay_buffer.pkl"))
    return [p for p in names if p.is_file()]


def convert_legacy(run_dir: str | Path) -> list[Path]:
    """Rewrite a legacy folder's pickled statistics as JSON and record a manifest; returns the files written.

    Unpickles the statistics: call only after the user confirmed the folder
    is theirs (``experiments.convert_run`` asks). The model zips stay as
    they are (``load_model`` never unpickles their entries); the pickled
    statistics are deleted once their JSON and the manifest are written.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    run = Path(run_dir)
    if not (run / TRAIN_CONFIG).is_file():
        raise PainloopError("PL-RUN-FOLDER", f"'{run}' is not a training run folder: train_config.json is missing.")
    legacy = legacy_statistics(run)
    written: list[Path] = []
    import pickle

    for path in legacy:
        try:
            stats = pickle.loads(path.read_bytes())  # trust: conversion of the user's own folder (confirmed)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign pickle
            raise PainloopError("PL-RUN-FOLDER", f"statistics '{path}' cannot be loaded: {type(exc).__name__}.") from None
        if not isinstance(stats, VecNormalize):
            raise PainloopError("PL-RUN-FOLDER", f"'{path}' does not hold VecNormalize statistics.")
        target = path.with_suffix(".json")
        write_bytes_atomic(target, statistics_bytes(stats))
        written.append(target)
    run_manifest.record_files(run, loaded_files(run))
    for path in legacy:
        path.unlink()
    return written
