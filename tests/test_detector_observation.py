"""``env.observation=detector``: the clean band powers averaged over each decision, in the simulator and in a run."""

from __future__ import annotations

import numpy as np
import pytest
from test_observation import _Recorder

from agents.policy import PatientContext
from agents.rl_policy import RLPolicy
from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.biomarkers import ARTIFACT_MASK, SUPPRESSION_MASK
from simenv.cohort import load_preset
from simenv.detector_view import CLEAN_FEATURE_NAMES, CLEAN_FEATURES
from simenv.errors import PainloopError
from simenv.spaces import observation_names

PATIENTS = load_preset("test").sample(3)
STEPS = 10  # steps per decision (5 minutes)


def test_names_are_the_bands_stimulation_leaves_alone():
    assert CLEAN_FEATURE_NAMES == ["ACC_delta", "ACC_theta", "ACC_alpha", "OFC_delta", "OFC_theta", "OFC_alpha",
                                   "OFC_high_gamma"]
    assert not np.any(SUPPRESSION_MASK[CLEAN_FEATURES]) and not np.any(ARTIFACT_MASK[CLEAN_FEATURES])
    s = EnvSettings(observation="detector", decision_interval_s=300)
    assert observation_names(s) == [f"{f}_norm_mean" for f in CLEAN_FEATURE_NAMES]


@pytest.mark.parametrize("changes", [{"feature_history": 2}, {"include_self_report": True}])
def test_lags_and_self_reports_are_refused(changes):
    with pytest.raises(PainloopError, match="observation='detector'") as err:
        EnvSettings(observation="detector", **changes)
    assert err.value.code == "PL-ENV-ARG"


def test_the_observation_is_the_mean_of_the_decisions_steps():
    detector = PainStimBatch(PATIENTS, EnvSettings(observation="detector", decision_interval_s=300, horizon_days=0.1))
    per_step = PainStimBatch(PATIENTS, EnvSettings(horizon_days=0.1))
    obs, _ = detector.reset(seed=4)
    per_step.reset(seed=4)
    np.testing.assert_array_equal(obs, 0.0)  # no band power measured yet: the calibration mean
    rng = np.random.default_rng(0)
    for _ in range(4):
        actions = rng.integers(0, 2, size=len(PATIENTS))
        steps = []
        for _ in range(STEPS):
            step_obs, *_ = per_step.step_arrays(actions)
            steps.append(step_obs[:, CLEAN_FEATURES].astype(np.float64))
        obs, *_ = detector.step_arrays(actions)
        assert obs.shape == (len(PATIENTS), len(CLEAN_FEATURES)) and obs.dtype == np.float32
        np.testing.assert_allclose(obs, np.mean(steps, axis=0), atol=1e-6)
    np.testing.assert_array_equal(detector.observe(), obs)


def test_a_run_policy_reads_what_it_was_trained_on_bit_for_bit():
    settings = {"dt_s": 30.0, "decision_interval_s": 300.0, "observation": "detector", "action_mode": "on_off"}
    policy = RLPolicy("p", _Recorder(), None, None, 10.0, 1e-8, "on_off", STEPS, settings)
    assert policy.observation_names == observation_names(EnvSettings(observation="detector", decision_interval_s=300))
    training = PainStimBatch(PATIENTS, EnvSettings(observation="detector", decision_interval_s=300, horizon_days=0.1))
    trained_on = [training.reset(seed=2)[0]]
    for _ in range(5):
        trained_on.append(training.step_arrays(np.zeros(len(PATIENTS), dtype=np.int64))[0])  # _Recorder: off
    # An evaluation: the full observation every step; the policy keeps its own window and holds its action.
    evaluation = PainStimBatch(PATIENTS, EnvSettings(horizon_days=0.1))
    obs, info = evaluation.reset(seed=2)
    policy.reset([PatientContext(p.uid, p.cohort, p.index, p.params, evaluation._norm[p]) for p in PATIENTS])
    policy.check_settings(evaluation.settings)
    for _ in range(5 * STEPS + 1):
        amps = evaluation.amplitudes_for(policy.act(obs, info), "on_off", slice(None), 6)
        obs, *_ = evaluation.step_arrays(None, amps)
        info = evaluation.step_info()
    assert len(policy.model.seen) == 6
    for seen, trained in zip(policy.model.seen, trained_on, strict=True):
        np.testing.assert_array_equal(seen, trained)
    with pytest.raises(PainloopError, match="every step"):
        policy.check_settings(EnvSettings(decision_interval_s=300))
    fresh = RLPolicy("q", _Recorder(), None, None, 10.0, 1e-8, "on_off", STEPS, settings)
    with pytest.raises(PainloopError, match="reset it"):
        fresh.own_observation(np.zeros((1, L.N_FEATURES)))


# -- a small detector training exports to a device detector updating once per decision ------------
@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    pytest.importorskip("stable_baselines3")
    import test_train as tt

    run_dir = tmp_path_factory.mktemp("det") / "run"
    tt.train_in_process(run_dir, "experiment=smoke", "env.observation=detector", "env.decision_interval_s=300",
                        *tt.SMALL, *tt.PPO_SMALL, "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=1024")
    return run_dir


def test_a_detector_run_distils_to_five_minute_updates_and_refuses_onnx(detector_run, tmp_path):
    import json

    import test_export_cli as te

    rc, out = te.run_in_process(tmp_path / "rcs", f"source=run:{detector_run}", "target=summit_rcs",
                                "cohort.n_patients=2", "distill.days=0.5", "distill.dagger_rounds=1",
                                "frame=week", "fidelity_days=0.5", "trace_days=0.2")
    assert rc == 0, out
    for path in (tmp_path / "rcs" / "configs").glob("*.json"):
        config = json.loads(path.read_text())
        ld0 = config["detectors"]["LD0"]
        if ld0["weight"] != [0.0]:  # a source that never switched gets a constant table, updating every step
            assert config["sensing"]["fft_interval_ms"] * ld0["update_rate_fft_intervals"] == 300_000
    rc, out = te.run_in_process(tmp_path / "onnx", f"source=run:{detector_run}", "target=onnx", "cohort.n_patients=2")
    status = json.loads((tmp_path / "onnx" / "status.json").read_text())
    assert rc == 2 and status["error"]["code"] == "PL-EXPORT-SOURCE"
    assert "env.observation=detector" in status["error"]["message"]
