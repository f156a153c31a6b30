"""A training run's normalisation statistics as JSON, never a pickle.

``VecNormalize``'s running means, variances and counts, clip values,
epsilon and gamma, plus the model's recent-episode buffers (so a resume is
exact), written by ``statistics_bytes``, read back by ``read_statistics``
(anything but the file ``experiments.train`` writes is ``PL-RUN-FOLDER``)
and rebuilt into a ``VecNormalize`` by ``vecnormalize_from``. Where these
files live in a run folder is ``agents.run_files``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from agents import run_manifest
from agents.json_data import strict_json
from simenv.errors import PainloopError

STATS_FORMAT = "painloop.vecnormalize/v1"
_EP_KEYS = ("r", "l", "t")
_EP_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "bool")


@dataclasses.dataclass(frozen=True)
class Statistics:
    """What a ``VecNormalize`` keeps (and the model's recent-episode buffers, for an exact resume)."""

    norm_obs: bool
    norm_reward: bool
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_count: float
    ret_mean: np.ndarray
    ret_var: np.ndarray
    ret_count: float
    ep_info: list[dict[str, Any]] | None = None
    ep_success: list[Any] | None = None


def _floats(a: Any) -> Any:
    arr = np.asarray(a, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()


def _buffer_json(buffer: Any) -> dict[str, Any] | None:
    if buffer is None:
        return None
    items = list(buffer)
    out: dict[str, Any] = {"n": len(items)}
    for key in _EP_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            arr = np.asarray([i[key] for i in items])
            out[key] = {"dtype": str(arr.dtype), "values": arr.tolist()}
    return out


def _success_json(buffer: Any) -> dict[str, Any] | None:
    if buffer is None:
        return None
    arr = np.asarray(list(buffer))
    return {"dtype": str(arr.dtype) if len(arr) else "bool", "values": arr.tolist()}


def statistics_bytes(vecnormalize: Any, model: Any = None) -> bytes:
    """``vecnormalize``'s statistics (and ``model``'s episode buffers) as JSON bytes."""
    v = vecnormalize
    data = {
        "format": STATS_FORMAT,
        "norm_obs": bool(v.norm_obs),
        "norm_reward": bool(v.norm_reward),
        "clip_obs": float(v.clip_obs),
        "clip_reward": float(v.clip_reward),
        "gamma": float(v.gamma),
        "epsilon": float(v.epsilon),
        "obs_rms": {"mean": _floats(v.obs_rms.mean), "var": _floats(v.obs_rms.var), "count": float(v.obs_rms.count)},
        "ret_rms": {"mean": _floats(v.ret_rms.mean), "var": _floats(v.ret_rms.var), "count": float(v.ret_rms.count)},
        "ep_info_buffer": _buffer_json(getattr(model, "ep_info_buffer", None)),
        "ep_success_buffer": _success_json(getattr(model, "ep_success_buffer", None)),
    }
    return (json.dumps(data, allow_nan=False) + "\n").encode()


def _number(d: Mapping[str, Any], key: str, where: str) -> float:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': {key}={value!r}; allowed: a finite number.")
    return float(value)


def _array(d: Any, key: str, where: str) -> np.ndarray:
    value = d.get(key) if isinstance(d, dict) else None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.asarray(np.nan)
    if value is None or arr.ndim > 1 or not np.all(np.isfinite(arr)):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': {key} is {str(value)[:60]!r}; allowed: finite "
                                             "numbers (one per observation entry).")
    return arr


def _buffer_items(d: Any, where: str) -> list[dict[str, Any]] | None:
    if d is None:
        return None
    n = d.get("n") if isinstance(d, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': ep_info_buffer is malformed.")
    columns: dict[str, np.ndarray] = {}
    for key in _EP_KEYS:
        if key in d:
            col = d[key]
            dtype = col.get("dtype") if isinstance(col, dict) else None
            values = col.get("values") if isinstance(col, dict) else None
            if dtype not in _EP_DTYPES or not isinstance(values, list) or len(values) != n:
                raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': ep_info_buffer.{key} is malformed.")
            try:
                columns[key] = np.asarray(values, dtype=np.dtype(dtype))
            except (TypeError, ValueError):
                raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': ep_info_buffer.{key} is malformed.") from None
    return [{k: columns[k][i] for k in columns} for i in range(n)]


def _success_items(d: Any, where: str) -> list[Any] | None:
    if d is None:
        return None
    dtype = d.get("dtype") if isinstance(d, dict) else None
    values = d.get("values") if isinstance(d, dict) else None
    if dtype not in _EP_DTYPES or not isinstance(values, list):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': ep_success_buffer is malformed.")
    try:
        return list(np.asarray(values, dtype=np.dtype(dtype)))
    except (TypeError, ValueError):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': ep_success_buffer is malformed.") from None


def read_statistics(data: bytes, where: str) -> Statistics:
    """Statistics from the JSON bytes ``statistics_bytes`` writes; anything else is ``PL-RUN-FOLDER``."""
    d = strict_json(data, where)
    if not isinstance(d, dict) or d.get("format") != STATS_FORMAT:
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}' are not {STATS_FORMAT} JSON; allowed: the file "
                                             "experiments.train writes.")
    obs, ret = d.get("obs_rms"), d.get("ret_rms")
    if not isinstance(obs, dict) or not isinstance(ret, dict):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': obs_rms and ret_rms must be mappings.")
    flags = {k: d.get(k) for k in ("norm_obs", "norm_reward")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': {flags}; allowed: true or false.")
    stats = Statistics(
        norm_obs=bool(flags["norm_obs"]), norm_reward=bool(flags["norm_reward"]),
        clip_obs=_number(d, "clip_obs", where), clip_reward=_number(d, "clip_reward", where),
        gamma=_number(d, "gamma", where), epsilon=_number(d, "epsilon", where),
        obs_mean=_array(obs, "mean", where), obs_var=_array(obs, "var", where),
        obs_count=_number(obs, "count", where),
        ret_mean=_array(ret, "mean", where), ret_var=_array(ret, "var", where), ret_count=_number(ret, "count", where),
        ep_info=_buffer_items(d.get("ep_info_buffer"), where),
        ep_success=_success_items(d.get("ep_success_buffer"), where),
    )
    if stats.obs_mean.shape != stats.obs_var.shape or np.any(stats.obs_var < 0) or np.any(stats.ret_var < 0):
        raise PainloopError("PL-RUN-FOLDER", f"statistics '{where}': mean and var differ in length or a var is "
                                             "negative; allowed: the file experiments.train writes.")
    return stats


def load_statistics(run_dir: str | Path, path: str | Path, files: Mapping[str, str] | None = None) -> Statistics:
    """A statistics file of a run folder, checked against its manifest."""
    return read_statistics(run_manifest.read_verified(run_dir, path, files), str(path))


def vecnormalize_from(stats: Statistics, venv: Any, where: str = "statistics", training: bool = True) -> Any:
    """A ``VecNormalize`` over ``venv`` holding ``stats`` (what unpickling and ``set_venv`` gave before)."""
    from stable_baselines3.common.vec_env import VecNormalize

    shape = tuple(venv.observation_space.shape)
    if stats.obs_mean.shape != shape:
        raise PainloopError(
            "PL-RUN-SETTINGS",
            f"statistics '{where}' hold {stats.obs_mean.shape} observation entries, the env has {shape}; allowed: "
            "the training settings.",
        )
    v = VecNormalize(venv, training=training, norm_obs=stats.norm_obs, norm_reward=stats.norm_reward,
                     clip_obs=stats.clip_obs, clip_reward=stats.clip_reward, gamma=stats.gamma, epsilon=stats.epsilon)
    obs_rms = cast(Any, v.obs_rms)  # a Box observation: one RunningMeanStd
    obs_rms.mean, obs_rms.var, obs_rms.count = stats.obs_mean.copy(), stats.obs_var.copy(), stats.obs_count
    v.ret_rms.mean, v.ret_rms.var, v.ret_rms.count = stats.ret_mean.copy(), stats.ret_var.copy(), stats.ret_count
    return v
