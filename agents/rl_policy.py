"""A trained stable-baselines3 model as an object of the policy protocol.

``load_run_policy(run_dir)`` reads a training run folder (``train_config.json``,
``best_model.zip`` or ``model.zip`` and the matching ``VecNormalize``
statistics) and returns an ``RLPolicy``: it takes the evaluation's
(default, ``full``) observation, keeps the columns its own observation has
(``simenv.spaces.observation_names``; a ``biomarkers`` policy reads only the band
powers), normalises them exactly as during training, holds each action for the training decision interval,
keeps recurrent state per slot, and returns actions in its own action mode.
Every comparison, plot and export then treats it like any baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from agents.model_zip import ALGORITHMS
from agents.policy import BasePolicy, PatientContext
from simenv import layout as L
from simenv.core import PHYSICS_VERSION
from simenv.detector_view import detector_observation
from simenv.errors import PainloopError
from simenv.settings import EnvSettings, with_added_settings
from simenv.spaces import observation_names

OBSERVATION_SETTINGS = ("dt_s", "feature_history", "include_self_report")
#: The training settings that decide which columns the policy's observation has.
_OBSERVATION_SHAPE = ("feature_history", "include_self_report", "observation")


class RLPolicy(BasePolicy):
    """A batched wrapper around an SB3 model and its observation statistics."""

    def __init__(
        self,
        name: str,
        model: Any,
        obs_mean: np.ndarray | None,
        obs_var: np.ndarray | None,
        clip_obs: float,
        epsilon: float,
        action_mode: str,
        steps_per_decision: int,
        env_settings: dict,
        recurrent: bool = False,
    ) -> None:
        super().__init__(name)
        self.model = model
        self.obs_mean = obs_mean
        self.obs_scale = None if obs_var is None else 1.0 / np.sqrt(obs_var + epsilon)
        self.clip_obs = clip_obs
        self.action_mode = action_mode  # instance attribute: each run has its own
        self.n_levels = int(env_settings.get("n_levels", 6))
        self.steps_per_decision = max(int(steps_per_decision), 1)
        self.env_settings = env_settings = with_added_settings(env_settings)
        self.recurrent = recurrent
        own = EnvSettings(**{k: env_settings[k] for k in _OBSERVATION_SHAPE if k in env_settings})
        #: The entries of the observation the model was trained on, in order (an ONNX graph's input).
        self.observation_names: list[str] = observation_names(own)
        full = observation_names(EnvSettings(feature_history=own.feature_history,
                                             include_self_report=own.include_self_report))
        self._n_full = len(full)
        #: A ``detector`` policy reads the band powers averaged over its decision interval
        #: (``simenv.detector_view``): it keeps the last ``steps_per_decision`` steps' band powers itself.
        self.reads_window = own.observation == "detector"
        # A biomarkers policy's columns in the full observation evaluation and export build.
        self._columns = (None if own.observation == "full" or self.reads_window
                         else np.array([full.index(n) for n in self.observation_names]))
        self._window: np.ndarray | None = None

    def check_settings(self, settings: Any) -> None:
        """Refuse an evaluation whose observations differ from the training ones."""
        for key in OBSERVATION_SETTINGS:
            trained = self.env_settings.get(key)
            used = getattr(settings, key)
            if trained is not None and trained != used:
                raise PainloopError(
                    "PL-RUN-SETTINGS",
                    f"policy '{self.name}' was trained with {key}={trained!r} but the evaluation uses "
                    f"{key}={used!r}; allowed: the training value (set {key}={trained!r}).",
                )
        needed = [f"{f}_norm" for f in L.FEATURE_NAMES] if self.reads_window else self.observation_names
        missing = [n for n in needed if n not in observation_names(settings)]
        if self.reads_window and settings.steps_per_decision != 1:
            raise PainloopError(
                "PL-RUN-SETTINGS",
                f"policy '{self.name}' averages the band powers of every step of its decisions; the evaluation "
                f"decides every {settings.steps_per_decision} steps (allowed: every step, the policy holds its "
                "action itself).")
        if missing:
            raise PainloopError(
                "PL-RUN-SETTINGS",
                f"policy '{self.name}' reads {missing} but the evaluation's observation "
                f"(observation={settings.observation!r}) lacks them; allowed: observation='full' (the default), "
                "which holds every entry.",
            )

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        self._t = 0
        self._state = None
        self._episode_start = np.ones(self.n, dtype=bool)
        self._last: np.ndarray | None = None
        if self.reads_window:
            self._window = np.zeros((self.n, self.steps_per_decision, L.N_FEATURES))
            self._norm_mean = np.array([p.normalisation.mean_db for p in patients])
            self._norm_scale = np.array([1.0 / p.normalisation.sd_db for p in patients])

    def own_observation(self, observations: np.ndarray) -> np.ndarray:
        """The policy's own columns (``observation_names``) of a batch of observations, shape (n, n_own).

        ``observations`` is either already the policy's own observation or the
        full one of the same feature history and self-report settings (what
        evaluation, distillation and export build); the columns are picked by name.
        """
        if self.reads_window:
            if self._window is None:
                raise PainloopError("PL-RUN-SETTINGS", f"policy '{self.name}' reads the band powers of its steps "
                                    "(observation 'detector'): reset it and act step by step.")
            return detector_observation(self._window)
        obs = np.asarray(observations, dtype=np.float32)
        width = obs.shape[-1] if obs.ndim else 0
        if self._columns is None or width == len(self.observation_names):
            return obs
        if width != self._n_full:
            raise PainloopError(
                "PL-RUN-SETTINGS",
                f"policy '{self.name}' got observations of {width} entries; allowed: its own "
                f"{len(self.observation_names)} ({self.env_settings['observation']}) or the full observation's "
                f"{self._n_full}.",
            )
        return obs[..., self._columns]

    def normalise(self, observations: np.ndarray) -> np.ndarray:
        """Observations as the model saw them in training: own columns, then VecNormalize's transform."""
        obs = self.own_observation(observations)
        if self.obs_mean is None:
            return obs
        return np.clip((obs - self.obs_mean) * self.obs_scale, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        last = self._last
        if self.reads_window:
            # The simulator's feature history, step by step: newest first, normalised as it normalises.
            window = self._window
            assert window is not None  # set by reset
            window[:, 1:] = window[:, :-1]
            window[:, 0] = (np.asarray(info["features_raw"], dtype=np.float64) - self._norm_mean) * self._norm_scale
        if last is None or self._t % self.steps_per_decision == 0:
            obs = self.normalise(observations)
            if self.recurrent:
                action, self._state = self.model.predict(
                    obs, state=self._state, episode_start=self._episode_start, deterministic=True
                )
                self._episode_start = np.zeros(self.n, dtype=bool)
            else:
                action, _ = self.model.predict(obs, deterministic=True)
            last = self._last = action
        self._t += 1
        return last


def read_train_config(run: Path) -> dict:
    path = run / "train_config.json"
    if not run.is_dir():
        raise PainloopError("PL-RUN-FOLDER", f"run folder '{run}' does not exist; allowed: a training run folder.")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PainloopError(
            "PL-RUN-FOLDER", f"'{run}' is not a training run folder: train_config.json is missing."
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or not UTF-8 text
        raise PainloopError("PL-RUN-FOLDER", f"'{path}' cannot be read: {exc}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("env_settings", {}), dict):
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"'{path}' holds {type(data).__name__} {str(data)[:80]!r}; allowed: the mapping experiments.train "
            "writes (with env_settings a mapping).",
        )
    return data


#: Torch threads for policy inference; one is fastest here and avoids oversubscription (STACK.md).
TORCH_THREADS_ENV = "PAINLOOP_TORCH_THREADS"


def set_torch_threads() -> int:
    """Set torch's intra-op threads from ``PAINLOOP_TORCH_THREADS`` (default 1); returns the number."""
    import torch

    value = os.environ.get(TORCH_THREADS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise PainloopError("PL-CONFIG-VALUE", f"{TORCH_THREADS_ENV}={value!r}; allowed: a whole number >= 1.")
    torch.set_num_threads(int(value))
    return int(value)


def load_run_policy(
    run_dir: str | Path, which: str = "best", label: str | None = None, allow_physics_mismatch: bool = False
) -> RLPolicy:
    """Load a run folder as a policy: ``which`` is ``best`` (by validation) or ``final``."""
    run = Path(run_dir)
    config = read_train_config(run)
    physics = config.get("physics_version")
    if physics != PHYSICS_VERSION and not allow_physics_mismatch:
        raise PainloopError(
            "PL-RUN-PHYSICS",
            f"run '{run}' was trained under physics version {physics}, this simulator is version "
            f"{PHYSICS_VERSION}; refused (retrain, or pass allow_physics_mismatch=True knowingly).",
        )
    if which not in ("best", "final"):
        raise PainloopError("PL-RUN-FOLDER", f"which='{which}'; allowed: 'best' or 'final'.")
    from agents import run_files, run_manifest, run_statistics

    names = list(run_files.STATS_FOR_MODEL.items())[::-1]  # best first
    if which == "final":
        names.reverse()
    model_path, stats_path = next(((run / m, run / s) for m, s in names if (run / m).is_file()), (None, None))
    if model_path is None:
        raise PainloopError("PL-RUN-FOLDER", f"run '{run}' holds no model (best_model.zip or model.zip).")
    algo = str(config.get("algo_class", ""))
    if algo not in ALGORITHMS:
        raise PainloopError(
            "PL-RUN-FOLDER", f"run '{run}': algo_class '{algo}' is unknown; allowed: {sorted(ALGORITHMS)}."
        )
    files = run_manifest.require_manifest(run)  # a folder written before the manifest: PL-RUN-LEGACY
    set_torch_threads()
    # Nothing is unpickled: the zip's entries are rebuilt from train_config.json, weights load weights-only.
    model = run_files.load_model(run, model_path, config, files=files)
    mean = var = None
    clip_obs, epsilon = 10.0, 1e-8
    if stats_path is not None and (stats_path.is_file() or stats_path.name in files):
        stats = run_statistics.load_statistics(run, stats_path, files)
        if stats.norm_obs:
            mean = np.asarray(stats.obs_mean, dtype=np.float32)
            var = np.asarray(stats.obs_var, dtype=np.float32)
        clip_obs, epsilon = float(stats.clip_obs), float(stats.epsilon)
    settings = dict(config.get("env_settings") or {})
    dt = float(settings.get("dt_s", 30.0))
    interval = settings.get("decision_interval_s") or dt
    return RLPolicy(
        name=label or run.name,
        model=model,
        obs_mean=mean,
        obs_var=var,
        clip_obs=clip_obs,
        epsilon=epsilon,
        action_mode=str(settings.get("action_mode", "on_off")),
        steps_per_decision=int(round(float(interval) / dt)),
        env_settings=settings,
        recurrent=algo == "RecurrentPPO",
    )
