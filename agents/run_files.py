"""A run folder's model and statistics files, written and read without executing anything from them.

docs/reliability.md, "Trust boundary", is the user's account. In short:

- **Statistics** (``agents.run_statistics``: ``VecNormalize``'s running means, variances and counts,
  clip values, epsilon, gamma, and the model's recent-episode buffers) are
  JSON (``vecnormalize.json``, ``best_vecnormalize.json``,
  ``checkpoints/ckpt_<n>_steps_vecnormalize.json``), read with NaN and
  Infinity refused, and rebuilt into a ``VecNormalize`` (``vecnormalize_from``).
- **Models** (stable-baselines3 / sb3-contrib zips) are read member by
  member (``load_model``): the ``data`` entry as JSON, every entry SB3 would
  unpickle (``":serialized:"``: policy class and kwargs, spaces, schedules,
  buffers) supplied from ``train_config.json`` instead (an entry painloop
  cannot supply is refused, never unpickled), and every ``.pth`` through
  torch's weights-only loader. The model is then assembled as
  ``BaseAlgorithm.load`` does it.
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

import inspect
import io
import re
import zipfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from agents import run_manifest
from agents.atomic_io import write_bytes_atomic
from agents.json_data import strict_json
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
#: The most a model zip may unpack to, and the largest ``data`` entry.
MAX_UNPACKED_BYTES = 1 << 30
MAX_DATA_BYTES = 16 << 20
_PTH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.pth$")
#: Attributes ``BaseAlgorithm.save`` never writes; a ``data`` entry naming one is dropped.
_NEVER_LOADED = ("policy", "device", "env", "replay_buffer", "rollout_buffer", "_vec_normalize_env",
                 "_episode_storage", "_logger", "_custom_logger")
#: Entries ``_setup_model`` rebuilds (or a resume resets): supplied as None.
_REBUILT = ("_last_obs", "_last_episode_starts", "_last_original_obs", "lr_schedule", "exploration_schedule",
            "rollout_buffer_class", "replay_buffer_class")
#: Schedules ``_setup_model`` builds from a hyper-parameter: supplied as that hyper-parameter (or its default).
_FROM_HYPERPARAMS = ("clip_range", "clip_range_vf", "train_freq")
#: Default policy per algorithm when train_config.json names none.
_DEFAULT_POLICY = {"RecurrentPPO": "MlpLstmPolicy"}
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu")
#: Codes a load raises for a file it must not use: never skipped for an older checkpoint.
REFUSED_CODES = ("PL-RUN-MANIFEST", "PL-RUN-UNSAFE", "PL-RUN-TRUST", "PL-RUN-LEGACY")


# -- models -------------------------------------------------------------------------------------------------
def algorithm_class(algo_class: str) -> type:
    from agents.rl_policy import ALGORITHMS

    if algo_class not in ALGORITHMS:
        raise PainloopError("PL-RUN-FOLDER", f"algo_class '{algo_class}' is unknown; allowed: {sorted(ALGORITHMS)}.")
    module, cls = ALGORITHMS[algo_class]
    return cast(type, getattr(__import__(module, fromlist=[cls]), cls))


def spaces_for(env_settings: Mapping[str, Any]) -> tuple[Any, Any]:
    """(observation space, action space) of the SB3 adapter under ``env_settings`` (no simulation runs)."""
    from simenv.settings import EnvSettings, with_added_settings
    from simenv.spaces import action_space_for, observation_space_for

    recorded = with_added_settings(dict(env_settings))
    keys = ("action_mode", "n_levels", "feature_history", "include_self_report", "observation")
    settings = EnvSettings(**{k: recorded[k] for k in keys if k in recorded})
    return observation_space_for(settings), action_space_for(settings)


def activation_class(name: Any) -> type | None:
    """The torch module an ``activation_fn`` name stands for (one of ``ACTIVATIONS``), or None."""
    from torch import nn

    classes = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
    return classes.get(name) if isinstance(name, str) else None


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none), for one-line error messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _policy_kwargs(train_config: Mapping[str, Any], where: str) -> dict[str, Any]:
    agent = ((train_config.get("config") or {}).get("agent") or {}) if isinstance(train_config, dict) else {}
    kwargs = agent.get("policy_kwargs") if isinstance(agent, dict) else None
    if not isinstance(kwargs, dict):
        raise PainloopError(
            "PL-RUN-UNSAFE",
            f"model '{where}': its policy_kwargs are a pickled entry and train_config.json holds no "
            "config.agent.policy_kwargs to rebuild them from; refused (never unpickled).",
        )
    out = dict(kwargs)
    act = out.pop("activation_fn", "tanh")
    module = activation_class(act)
    if module is None:
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}': activation_fn={act!r}; allowed: {list(ACTIVATIONS)}.")
    out["activation_fn"] = module
    return out


def _hyperparameter(cls: type, train_config: Mapping[str, Any], key: str) -> Any:
    found = train_config.get("hyperparams")
    hp: dict[str, Any] = found if isinstance(found, dict) else {}
    if key in hp:
        value = hp[key]
    else:
        param = inspect.signature(cls).parameters.get(key)
        value = None if param is None else param.default
    if key == "train_freq" and isinstance(value, list):
        value = tuple(value)
    if value is not None and not isinstance(value, (int, float, str, tuple)):
        raise PainloopError("PL-RUN-FOLDER", f"train_config.json: hyperparams.{key}={value!r}; allowed: a number.")
    return value


def supplied_entries(
    cls: type, algo_class: str, data: Mapping[str, Any], train_config: Mapping[str, Any], where: str,
    statistics: Statistics | None = None,
) -> dict[str, Any]:
    """The object of every ``data`` entry SB3 would unpickle, built from ``train_config.json``.

    An entry painloop cannot supply is ``PL-RUN-UNSAFE`` (never unpickled).
    """
    policy = train_config.get("policy") or _DEFAULT_POLICY.get(algo_class, "MlpPolicy")
    aliases: dict[str, Any] = getattr(cls, "policy_aliases", {})
    if policy not in aliases:
        raise PainloopError("PL-RUN-FOLDER", f"train_config.json: policy={policy!r}; allowed: {sorted(aliases)}.")
    obs_space, act_space = spaces_for(train_config.get("env_settings") or {})
    window = data.get("_stats_window_size", 100)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}': _stats_window_size={window!r}; allowed: a whole number >= 1.")
    supplied: dict[str, Any] = {"policy_class": aliases[policy], "observation_space": obs_space,
                                "action_space": act_space, "ep_info_buffer": None, "ep_success_buffer": None}
    if statistics is not None and statistics.ep_info is not None:
        supplied["ep_info_buffer"] = deque(statistics.ep_info, maxlen=window)
    if statistics is not None and statistics.ep_success is not None:
        supplied["ep_success_buffer"] = deque(statistics.ep_success, maxlen=window)
    supplied.update(dict.fromkeys(_REBUILT))
    out: dict[str, Any] = {}
    for key, item in data.items():
        serialized = isinstance(item, dict) and ":serialized:" in item
        if key in supplied:
            out[key] = supplied[key]
        elif key in _FROM_HYPERPARAMS and serialized:
            out[key] = _hyperparameter(cls, train_config, key)
        elif key == "policy_kwargs" and serialized:
            out[key] = _policy_kwargs(train_config, where)
        elif serialized:
            raise PainloopError(
                "PL-RUN-UNSAFE",
                f"model '{where}': entry '{key}' of its data is a pickled object painloop cannot rebuild from "
                "train_config.json; refused (never unpickled). Allowed: a model experiments.train saved.",
            )
    return out


def read_model_zip(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(data entries as JSON, state dicts, pytorch variables) of an SB3 zip; weights through torch's weights-only loader."""
    import torch

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}' cannot be loaded: not a zip file ({exc}).") from None
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}' unpacks to more than {MAX_UNPACKED_BYTES} bytes.")
    names = [i.filename for i in infos]
    if "data" not in names:
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}' cannot be loaded: it has no 'data' entry.")
    try:
        entries = strict_json(archive.read("data"), f"{where}:data", max_bytes=MAX_DATA_BYTES)
        if not isinstance(entries, dict):
            raise PainloopError("PL-RUN-FOLDER", f"model '{where}': its data entry is not a JSON mapping.")
        params: dict[str, Any] = {}
        variables: dict[str, Any] | None = None
        for name in names:
            if not name.endswith(".pth"):
                continue  # _stable_baselines3_version, system_info.txt: never read
            if not _PTH.match(name):
                raise PainloopError("PL-RUN-UNSAFE", f"model '{where}': member '{name}' is not an SB3 weights file.")
            try:
                obj = torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a refused or broken pickle: either way nothing ran
                code = "PL-RUN-UNSAFE" if "weights only" in str(exc).lower() else "PL-RUN-FOLDER"
                raise PainloopError(code, f"model '{where}': member '{name}' was refused by torch's weights-only "
                                          f"loader ({first_line(exc)}).") from None
            if name in ("pytorch_variables.pth", "tensors.pth"):
                variables = obj
            else:
                params[name[: -len(".pth")]] = obj
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:  # a truncated member (CRC, length)
        raise PainloopError("PL-RUN-FOLDER", f"model '{where}' cannot be loaded: {exc}.") from None
    return entries, params, variables


def assemble_model(
    cls: Any, data: dict[str, Any], params: dict[str, Any], variables: dict[str, Any] | None,
    env: Any = None, overrides: Mapping[str, Any] | None = None, device: str = "cpu",
) -> Any:
    """A model from checked parts, the way ``BaseAlgorithm.load`` assembles one (stable-baselines3 2.x)."""
    from stable_baselines3.common.save_util import recursive_setattr
    from stable_baselines3.common.utils import check_for_correct_spaces

    if isinstance(data.get("policy_kwargs"), dict):
        data["policy_kwargs"].pop("device", None)
    if env is not None:
        env = cls._wrap_env(env, data["verbose"])
        check_for_correct_spaces(env, data["observation_space"], data["action_space"])
        data["_last_obs"] = None
        data["n_envs"] = env.num_envs
    model = cls(policy=data["policy_class"], env=env, device=device, _init_setup_model=False)
    model.__dict__.update(data)
    model.__dict__.update(dict(overrides or {}))
    model._setup_model()
    model.set_parameters(params, exact_match=True, device=device)
    for name, value in (variables or {}).items():
        if value is not None:
            recursive_setattr(model, f"{name}.data", value.data)
    if model.use_sde:
        model.policy.reset_noise()
    return model


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
        data = {k: v for k, v in entries.items() if k not in _NEVER_LOADED}
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
