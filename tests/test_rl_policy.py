"""A training run folder loads as a policy and is evaluated like any controller."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from agents.rl_policy import load_run_policy
from agents.run_files import save_run_files
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.core import PHYSICS_VERSION
from simenv.errors import PainloopError
from simenv.reward import RewardWeights

PATIENTS = load_preset("test").sample(3)


def make_run(folder, action_mode="on_off", decision_interval_s=60.0, physics=PHYSICS_VERSION):
    """A minimal run folder as experiments.train writes it: config, model, VecNormalize stats."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from agents.sb3_vec_env import PainStimSB3VecEnv

    torch.set_num_threads(1)
    settings = EnvSettings(horizon_days=0.05, action_mode=action_mode, decision_interval_s=decision_interval_s)
    venv = VecNormalize(VecMonitor(PainStimSB3VecEnv(patients=load_preset("train").sample(2), settings=settings)))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "agent": "ppo",
        "algo_class": "PPO",
        "env_settings": dataclasses.asdict(settings),
        "reward": dataclasses.asdict(RewardWeights()),
        "physics_version": physics,
    }
    (folder / "train_config.json").write_text(json.dumps(config))
    save_run_files(folder, model, venv)
    return model, venv


def test_run_folder_policy_matches_the_model_and_holds_actions(tmp_path):
    model, venv = make_run(tmp_path / "run")
    policy = load_run_policy(tmp_path / "run")
    assert policy.steps_per_decision == 2 and policy.action_mode == "on_off"
    obs = np.random.default_rng(0).normal(size=(5, venv.observation_space.shape[0])).astype(np.float32)
    expected, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    policy.reset([None] * 5)
    np.testing.assert_array_equal(policy.act(obs, {}), expected)
    # The second call of a 60 s decision at dt 30 s repeats the action whatever the observation.
    np.testing.assert_array_equal(policy.act(-obs, {}), expected)


def test_run_entry_is_evaluated_beside_baselines(tmp_path):
    make_run(tmp_path / "run", action_mode="continuous", decision_interval_s=30.0)
    specs = [
        ControllerSpec("continuous", "continuous"),
        ControllerSpec("learned", "run", {"path": str(tmp_path / "run")}),
    ]
    res = evaluate(specs, PATIENTS, EnvSettings(horizon_days=0.1), seed=0)
    duty = res.per_patient["learned"]["duty_cycle"]
    assert np.all((duty >= 0) & (duty <= 1))
    assert res.uses_latent["learned"] is False


def test_bad_run_folders_are_refused(tmp_path):
    with pytest.raises(PainloopError) as err:
        load_run_policy(tmp_path / "missing")
    assert err.value.code == "PL-RUN-FOLDER"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PainloopError) as err:
        load_run_policy(tmp_path / "empty")
    assert err.value.code == "PL-RUN-FOLDER"
    make_run(tmp_path / "old", physics=PHYSICS_VERSION - 1)
    with pytest.raises(PainloopError) as err:
        load_run_policy(tmp_path / "old")
    assert err.value.code == "PL-RUN-PHYSICS"
    (tmp_path / "old" / "model.zip").write_bytes(b"truncated")
    with pytest.raises(PainloopError) as err:
        load_run_policy(tmp_path / "old", allow_physics_mismatch=True)
    assert err.value.code == "PL-RUN-MANIFEST" and "model.zip" in str(err.value)  # changed after training
    from agents.run_manifest import record_files

    record_files(tmp_path / "old", ["model.zip"])  # the manifest agrees, the file is still no model
    with pytest.raises(PainloopError) as err:
        load_run_policy(tmp_path / "old", allow_physics_mismatch=True)
    assert err.value.code == "PL-RUN-FOLDER" and "model.zip" in str(err.value)


def test_observation_settings_must_match_training(tmp_path):
    make_run(tmp_path / "run")
    policy = load_run_policy(tmp_path / "run")
    with pytest.raises(PainloopError) as err:
        policy.check_settings(EnvSettings(include_self_report=True))
    assert err.value.code == "PL-RUN-SETTINGS"


def test_evaluate_command_accepts_run_entries(tmp_path):
    import subprocess
    import sys

    make_run(tmp_path / "run")
    out = tmp_path / "eval"
    cmd = [
        sys.executable, "-m", "experiments.evaluate",
        f"controllers=[continuous,learned=run:{tmp_path / 'run'}]",
        "cohort=test", "cohort.n_patients=2", "frame=week", "horizon_days=0.1", f"hydra.run.dir={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "learned" in (out / "metrics.csv").read_text()


def test_policy_loading_uses_one_torch_thread_by_default_and_obeys_the_variable(tmp_path, monkeypatch):
    import torch

    from agents.rl_policy import TORCH_THREADS_ENV

    run = tmp_path / "run"
    make_run(run)
    torch.set_num_threads(2)
    monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    load_run_policy(run)
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(TORCH_THREADS_ENV, "2")
    load_run_policy(run)
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(TORCH_THREADS_ENV, "zero")
    with pytest.raises(PainloopError) as err:
        load_run_policy(run)
    assert err.value.code == "PL-CONFIG-VALUE" and TORCH_THREADS_ENV in str(err.value)
    torch.set_num_threads(1)
