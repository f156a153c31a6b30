"""A stable-baselines3 model zip read and assembled without unpickling anything from it.

The ``data`` entry is read as JSON; every entry SB3 would unpickle
(``":serialized:"``: policy class and kwargs, spaces, schedules, buffers) is
supplied from the run's ``train_config.json`` instead (``supplied_entries``;
an entry painloop cannot supply is ``PL-RUN-UNSAFE``, never unpickled); every
``.pth`` goes through torch's weights-only loader (``read_model_zip``); the
model is then put together as ``BaseAlgorithm.load`` does it
(``assemble_model``). ``agents.run_files.load_model`` checks the bytes
against the run folder's manifest first and calls these.
"""

from __future__ import annotations

import inspect
import io
import re
import zipfile
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from agents.json_data import strict_json
from agents.run_statistics import Statistics
from simenv.errors import PainloopError

#: algo_class in train_config.json -> (module, class)
ALGORITHMS: dict[str, tuple[str, str]] = {
    "PPO": ("stable_baselines3", "PPO"),
    "A2C": ("stable_baselines3", "A2C"),
    "DQN": ("stable_baselines3", "DQN"),
    "SAC": ("stable_baselines3", "SAC"),
    "TD3": ("stable_baselines3", "TD3"),
    "RecurrentPPO": ("sb3_contrib", "RecurrentPPO"),
}
#: The most a model zip may unpack to, and the largest ``data`` entry.
MAX_UNPACKED_BYTES = 1 << 30
MAX_DATA_BYTES = 16 << 20
_PTH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.pth$")
#: Attributes ``BaseAlgorithm.save`` never writes; a ``data`` entry naming one is dropped.
NEVER_LOADED = ("policy", "device", "env", "replay_buffer", "rollout_buffer", "_vec_normalize_env",
                "_episode_storage", "_logger", "_custom_logger")
#: Entries ``_setup_model`` rebuilds (or a resume resets): supplied as None.
_REBUILT = ("_last_obs", "_last_episode_starts", "_last_original_obs", "lr_schedule", "exploration_schedule",
            "rollout_buffer_class", "replay_buffer_class")
#: Schedules ``_setup_model`` builds from a hyper-parameter: supplied as that hyper-parameter (or its default).
_FROM_HYPERPARAMS = ("clip_range", "clip_range_vf", "train_freq")
#: Default policy per algorithm when train_config.json names none.
_DEFAULT_POLICY = {"RecurrentPPO": "MlpLstmPolicy"}
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu")


def algorithm_class(algo_class: str) -> type:
    """The stable-baselines3 / sb3-contrib class named by ``algo_class`` (one of ``ALGORITHMS``)."""
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
