"""The opt-in ``biomarkers`` observation, and the default ``full`` one unchanged.

``EnvSettings.observation`` chooses what a policy sees: ``full`` (the default,
DESIGN.md) or ``biomarkers`` (band powers and their lags, [last report]),
which is what an implant's detector can read. Checked here: names and shapes
per mode, a bad value refused, the full observation bit for bit equal to a
reference saved before the setting existed, the biomarkers entries equal to
the corresponding full entries under random actions, the ``gymnasium.make``
keyword, the policy's column choice, and a small training that evaluates and
exports (ONNX and Summit RC+S).
"""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import observation_reference  # noqa: E402  (tests/ is on sys.path)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import load_preset
from simenv.errors import PainloopError
from simenv.settings import OBSERVATIONS, EnvSettings
from simenv.spaces import observation_names

ENV_ID = "painloop/PainStim-v0"
BAND_NAMES = [f"{f}_norm" for f in L.FEATURE_NAMES]
DEVICE_INVISIBLE = ["amplitude_fraction", "log1p_hours_since_switch", "duty_30min", "duty_24h", "duty_7d",
                    "time_of_day_sin", "time_of_day_cos"]


# -- names, shapes, bad values -----------------------------------------------------------------
@pytest.mark.parametrize("history", [0, 2])
@pytest.mark.parametrize("report", [False, True])
def test_names_and_shape_per_mode(history, report):
    lags = [f"{f}_norm_lag{k}" for k in range(1, history + 1) for f in L.FEATURE_NAMES]
    reports = ["last_report_tenths", "report_age_days_capped"] if report else []
    expected = {
        "full": BAND_NAMES + lags + DEVICE_INVISIBLE + reports,
        "biomarkers": BAND_NAMES + lags + reports,
    }
    assert set(expected) | {"detector"} == set(OBSERVATIONS)  # detector: tests/test_detector_observation.py
    patients = load_preset("default").sample(2)
    for mode, names in expected.items():
        s = EnvSettings(observation=mode, feature_history=history, include_self_report=report, horizon_days=0.01)
        assert observation_names(s) == names
        batch = PainStimBatch(patients, s)
        assert batch.observation_space.shape == (len(names),)
        obs, _ = batch.reset(seed=0)
        assert obs.shape == (2, len(names)) and batch.observation_space.contains(obs[0])
        obs, *_ = batch.step_arrays(np.array([1, 0]))
        assert obs.shape == (2, len(names)) and batch.observation_space.contains(obs[1])
    assert EnvSettings().observation == "full"


@pytest.mark.parametrize("value", ["device", "", "Full", None])
def test_a_bad_observation_is_refused_with_the_allowed_values(value):
    with pytest.raises(PainloopError) as info:
        EnvSettings(observation=value)
    assert info.value.code == "PL-ENV-ARG"
    assert f"observation={value!r}" in str(info.value) and "'full'" in str(info.value) and "'biomarkers'" in str(info.value)
    with pytest.raises(PainloopError, match="observation="):
        gym.make(ENV_ID, observation=value)


# -- the default observation did not change --------------------------------------------------------
def test_full_observation_is_bit_identical_to_the_saved_reference():
    saved = np.load(observation_reference.REFERENCE)
    now = observation_reference.reference_observations()
    assert set(saved.files) == set(now) == set(observation_reference.CASES)
    for name, obs in now.items():
        assert obs.dtype == saved[name].dtype == np.float32 and obs.shape == saved[name].shape, name
        assert np.array_equal(obs.view(np.uint32), saved[name].view(np.uint32)), name


def test_the_reference_comparison_can_fail():
    """A one-ulp change of one entry is caught (the bitwise comparison is not vacuous)."""
    saved = np.load(observation_reference.REFERENCE)["default"].copy()
    changed = saved.copy()
    changed[10, 1, 3] = np.nextafter(changed[10, 1, 3], np.float32(np.inf))
    assert not np.array_equal(changed.view(np.uint32), saved.view(np.uint32))


# -- biomarkers entries are the full observation's entries ---------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_patients=st.integers(1, 3),
    history=st.integers(0, 3),
    report=st.booleans(),
    mode=st.sampled_from(["on_off", "levels"]),
    steps_per_decision=st.integers(1, 3),
    start_hour=st.sampled_from([0.0, 6.5, 22.0]),
)
def test_biomarkers_entries_equal_the_full_entries(seed, n_patients, history, report, mode, steps_per_decision,
                                                   start_hour):
    patients = load_preset("default").sample(3)[:n_patients]
    common = {"feature_history": history, "include_self_report": report, "action_mode": mode,
              "decision_interval_s": 30.0 * steps_per_decision, "horizon_days": 0.02, "start_hour": start_hour}
    full = PainStimBatch(patients, EnvSettings(**common))
    bio = PainStimBatch(patients, EnvSettings(**common, observation="biomarkers"))
    cols = [full.obs_names.index(n) for n in bio.obs_names]
    assert not set(DEVICE_INVISIBLE) & set(bio.obs_names)
    rng = np.random.default_rng(seed)
    n_actions = 2 if mode == "on_off" else full.settings.n_levels
    a, _ = full.reset(seed=seed)
    b, _ = bio.reset(seed=seed)
    for _ in range(2):  # two episodes: the reset observation and a fresh history
        assert np.array_equal(b, a[:, cols])
        while True:
            actions = rng.integers(n_actions, size=n_patients)
            a, ra, _, ta = full.step_arrays(actions)
            b, rb, _, tb = bio.step_arrays(actions)
            assert np.array_equal(b, a[:, cols]) and np.array_equal(ra, rb) and np.array_equal(ta, tb)
            if ta.all():
                break
        a, _ = full.reset()
        b, _ = bio.reset()


# -- the front ends take it -------------------------------------------------------------------
def test_gym_make_vector_and_sb3_adapter_take_the_keyword():
    pytest.importorskip("stable_baselines3")
    from agents.sb3_vec_env import PainStimSB3VecEnv

    env = gym.make(ENV_ID, cohort="test", patient_index=1, observation="biomarkers", horizon_days=0.01)
    assert env.observation_space.shape == (L.N_FEATURES,)
    obs, _ = env.reset(seed=4)
    obs, *_ = env.step(1)
    assert obs.shape == (L.N_FEATURES,)
    full = gym.make(ENV_ID, cohort="test", patient_index=1, horizon_days=0.01)
    full_obs, _ = full.reset(seed=4)
    full_obs, *_ = full.step(1)
    assert np.array_equal(obs, full_obs[: L.N_FEATURES])
    vec = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", cohort="test",
                       observation="biomarkers", feature_history=1)
    assert vec.single_observation_space.shape == (2 * L.N_FEATURES,)
    assert vec.reset(seed=0)[0].shape == (3, 2 * L.N_FEATURES)
    sb3 = PainStimSB3VecEnv(patients=load_preset("test").sample(2), settings=EnvSettings(observation="biomarkers"))
    assert sb3.observation_space.shape == (L.N_FEATURES,) and sb3.reset().shape == (2, L.N_FEATURES)


# -- the policy picks its own columns --------------------------------------------------------------
class _Recorder:
    """Stands in for an SB3 model: records what ``predict`` receives and returns zeros."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, obs, deterministic=True):
        self.seen.append(np.array(obs))
        return np.zeros(len(obs), dtype=np.int64), None


def _policy(env_settings: dict, n_obs: int):
    from agents.rl_policy import RLPolicy

    rng = np.random.default_rng(0)
    mean = rng.normal(size=n_obs).astype(np.float32)
    var = rng.uniform(0.5, 2.0, size=n_obs).astype(np.float32)
    return RLPolicy("p", _Recorder(), mean, var, 10.0, 1e-8, "on_off", 1, env_settings)


def test_rl_policy_selects_a_biomarkers_policys_columns_by_name():
    from agents.policy import PatientContext

    patients = load_preset("test").sample(2)
    bio = EnvSettings(observation="biomarkers", feature_history=1, include_self_report=True)
    names = observation_names(bio)
    policy = _policy({"observation": "biomarkers", "feature_history": 1, "include_self_report": True}, len(names))
    assert policy.observation_names == names
    full_settings = EnvSettings(feature_history=1, include_self_report=True)
    policy.check_settings(full_settings)  # evaluation builds the full observation: accepted
    batch = PainStimBatch(patients, full_settings)
    obs, info = batch.reset(seed=2)
    obs, *_ = batch.step_arrays(np.array([1, 1]))
    policy.reset([PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p]) for p in patients])
    policy.act(obs, batch.step_info())
    full_names = observation_names(full_settings)
    own = obs[:, [full_names.index(n) for n in names]]
    expected = np.clip((own - policy.obs_mean) * policy.obs_scale, -10, 10)
    np.testing.assert_array_equal(policy.model.seen[-1], expected)
    assert np.array_equal(policy.own_observation(own), own)  # already its own: unchanged
    with pytest.raises(PainloopError, match="PL-RUN-SETTINGS"):
        policy.own_observation(obs[:, :-1])
    # A full policy cannot run on a biomarkers observation, which lacks what it reads.
    full_policy = _policy({}, len(observation_names(EnvSettings())))
    assert full_policy.env_settings["observation"] == "full"  # a run written before the setting existed
    with pytest.raises(PainloopError) as err:
        full_policy.check_settings(EnvSettings(observation="biomarkers"))
    assert err.value.code == "PL-RUN-SETTINGS" and "amplitude_fraction" in str(err.value)


def test_configs_recorded_before_the_setting_compare_equal_to_full():
    from experiments.sweeps.rerun import comparable

    old = {"seed": 0, "env": {"dt_s": 30.0, "feature_history": 0}}
    assert comparable(old) == comparable({"seed": 0, "env": {"dt_s": 30.0, "feature_history": 0,
                                                             "observation": "full"}})
    assert comparable(old) != comparable({"seed": 0, "env": {"dt_s": 30.0, "feature_history": 0,
                                                             "observation": "biomarkers"}})


# -- a small biomarkers training evaluates and exports ---------------------------------------------
@pytest.fixture(scope="module")
def biomarkers_run(tmp_path_factory):
    pytest.importorskip("stable_baselines3")
    import test_train as tt

    run_dir = tmp_path_factory.mktemp("obs") / "run"
    tt.train_in_process(run_dir, "experiment=smoke", "env.observation=biomarkers", *tt.SMALL, *tt.PPO_SMALL,
                        "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=1024")
    return run_dir


def test_biomarkers_training_records_its_observation(biomarkers_run):
    from agents.rl_policy import load_run_policy

    cfg = json.loads((biomarkers_run / "train_config.json").read_text())
    assert cfg["env_settings"]["observation"] == "biomarkers" and cfg["config"]["env"]["observation"] == "biomarkers"
    assert json.loads((biomarkers_run / "status.json").read_text())["state"] == "finished"
    policy = load_run_policy(biomarkers_run)
    assert policy.observation_names == BAND_NAMES
    assert policy.model.observation_space.shape == (L.N_FEATURES,)


def test_finetuning_keeps_the_observation_and_refuses_a_change(biomarkers_run, tmp_path, capsys):
    import test_train as tt

    from experiments.train import precheck

    args, _, _ = precheck([f"finetune_from={biomarkers_run}", "cohort.n_patients=1"])
    assert "env.observation=biomarkers" in args
    tt.assert_refused([f"finetune_from={biomarkers_run}", "env.observation=full"], "PL-RUN-SETTINGS",
                      ["env.observation='full' (trained with 'biomarkers')"], capsys, tmp_path)


def test_a_run_recorded_without_the_setting_is_found_finished(biomarkers_run, tmp_path):
    """A run folder from before ``env.observation`` existed (no key) is the same training as ``full`` today."""
    import test_train as tt

    old = tmp_path / "old"
    shutil.copytree(biomarkers_run, old)
    for name in ("train_config.json", "run.json"):
        data = json.loads((old / name).read_text())
        del data["config"]["env"]["observation"]
        data.get("env_settings", {}).pop("observation", None)
        (old / name).write_text(json.dumps(data))
    _, out = tt.train_in_process(old, "experiment=smoke", *tt.SMALL, *tt.PPO_SMALL, "total_timesteps=1024",
                                 "eval_freq=512", "checkpoint_freq=1024")
    assert "already finished; nothing to do" in out
    from experiments.train import read_run_config

    assert "observation" not in read_run_config(old)["env_settings"]  # untouched


def test_biomarkers_run_evaluates_and_exports(biomarkers_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    import test_evaluate as tv
    import test_export_cli as te

    from experiments.evaluate import precheck

    tv.run_in_process(tmp_path / "eval", *precheck([f"controllers=[off,ppo=run:{biomarkers_run}]", "cohort=test",
                                                    "cohort.n_patients=2", "horizon_days=0.1", "reference=off"]))
    rows = {r["controller"]: r for r in tv.read_csv(tmp_path / "eval" / "metrics.csv")}
    assert set(rows) == {"off", "ppo"}

    rc, out = te.run_in_process(tmp_path / "onnx", f"source=run:{biomarkers_run}", "target=onnx",
                                "cohort.n_patients=2", "onnx_observations=10000")
    assert rc == 0, out
    check = json.loads((tmp_path / "onnx" / "onnx_check.json").read_text())
    assert check["all_equal"] and check["n_observations"] == 10_000
    graph = onnx.load(str(tmp_path / "onnx" / "policy.onnx"))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["observation_names"]) == BAND_NAMES
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == L.N_FEATURES

    rc, out = te.run_in_process(tmp_path / "rcs", f"source=run:{biomarkers_run}", "target=summit_rcs",
                                "cohort.n_patients=2", "distill.days=0.5", "distill.dagger_rounds=1",
                                "frame=week", "fidelity_days=0.5", "trace_days=0.2")
    assert rc == 0, out
    report = json.loads((tmp_path / "rcs" / "fidelity.json").read_text())
    assert len(report["fits"]) == 2 and all(f["method"] == "distillation" for f in report["fits"])
    assert len(list((tmp_path / "rcs" / "configs").glob("*.json"))) == 2
