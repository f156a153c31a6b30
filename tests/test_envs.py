"""The Gymnasium environments and the SB3 adapter: checkers, horizon, autoreset, info, reward."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import ENV_ID, custom_patient, default_patients
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from simenv.batch import EnvSettings, PainStimBatch
from simenv.calibration import normalisation_for
from simenv.params import SECONDS_PER_YEAR, PatientParams
from simenv.reward import ENERGY_UNIT_W, TERMS

MODES = ("on_off", "levels", "continuous")


def make(**kwargs):
    kwargs.setdefault("horizon_days", 0.1)
    return gym.make(ENV_ID, **kwargs)


def run_episode(env, action, seed=0):
    """Step until the episode ends; return the list of (obs, reward, terminated, truncated, info)."""
    env.reset(seed=seed)
    steps = []
    while True:
        out = env.step(action)
        steps.append(out)
        if out[2] or out[3]:
            return steps


# ----------------------------------------------------------------- checkers
@pytest.mark.parametrize("mode", MODES)
def test_gymnasium_and_sb3_env_checkers_pass(mode):
    env = make(action_mode=mode)
    with warnings.catch_warnings():
        # The band-power features are unbounded by design (normalised dB).
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum).*")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)


def test_registration_has_no_max_episode_steps_and_no_time_limit_wrapper():
    assert gym.spec(ENV_ID).max_episode_steps is None
    env = make()
    wrapper = env
    while isinstance(wrapper, gym.Wrapper):
        assert not isinstance(wrapper, TimeLimit)
        wrapper = wrapper.env


@pytest.mark.parametrize(
    ("mode", "action", "expected_ma"),
    [
        ("on_off", 0, 0.0),
        ("on_off", 1, 3.0),  # on_amplitude_ma
        ("levels", 0, 0.0),
        ("levels", 2, 2.0),  # 6 levels over 0..5 mA: 0, 1, 2, 3, 4, 5
        ("levels", 5, 5.0),
        ("continuous", np.array([-1.0], dtype=np.float32), 0.0),
        ("continuous", np.array([0.0], dtype=np.float32), 2.5),
        ("continuous", np.array([1.0], dtype=np.float32), 5.0),  # amplitude_max_ma
    ],
)
def test_action_modes_map_onto_safe_amplitudes(mode, action, expected_ma):
    # Default parameters: on 3 mA, ceiling 5 mA, 0.1 mA resolution, ramp 0.3 mA/s
    # (9 mA per 30 s step, so one step reaches any target).
    patient = custom_patient()
    batch = PainStimBatch([patient], EnvSettings(action_mode=mode, horizon_days=0.01))
    batch.reset(seed=0)
    _, _, _, _, info = batch.step(np.asarray(action)[None, ...])
    assert info["amplitude_ma"][0] == pytest.approx(expected_ma, abs=1e-12)


# ----------------------------------------------------------------- horizon
def test_episode_truncates_after_horizon_days_at_dt():
    env = make(horizon_days=0.1, dt_s=30)  # 0.1 * 86400 / 30 = 288 steps
    steps = run_episode(env, 0)
    assert len(steps) == 288
    assert not any(s[2] for s in steps)  # never terminated
    assert [s[3] for s in steps] == [False] * 287 + [True]
    assert steps[-1][4]["elapsed_s"] == pytest.approx(8640.0)


def test_decision_interval_holds_actions_and_last_decision_is_shorter():
    # 288 steps of 30 s in decisions of 10 steps: 28 full decisions and one of 8.
    env = make(horizon_days=0.1, dt_s=30, decision_interval_s=300)
    steps = run_episode(env, 1)
    assert len(steps) == 29
    elapsed = np.array([s[4]["elapsed_s"] for s in steps])
    np.testing.assert_allclose(np.diff(elapsed, prepend=0.0), [300.0] * 28 + [240.0])
    assert [s[3] for s in steps] == [False] * 28 + [True]
    # One commanded change (0 -> 3 mA) in the whole episode.
    assert steps[-1][4]["switches_total"] == 1.0


def test_step_after_truncation_requires_reset():
    env = make(horizon_days=0.001)  # round(2.88) = 3 steps
    steps = run_episode(env.unwrapped, 0)
    assert len(steps) == 3
    with pytest.raises(Exception) as excinfo:
        env.unwrapped.step(0)
    assert getattr(excinfo.value, "code", None) == "PL-ENV-ORDER"


# ----------------------------------------------------------------- vector env
def test_make_vec_vector_entry_point_next_step_autoreset():
    horizon_steps = 72  # 0.025 days at 30 s
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", horizon_days=0.025
    )
    assert type(venv).__name__ == "PainStimVectorEnv"
    reset_obs, _ = venv.reset(seed=5)
    assert reset_obs.shape == (2, 19)
    ones = np.ones(2, dtype=np.int64)
    for t in range(horizon_steps):
        obs, reward, terminated, truncated, _ = venv.step(ones)
        assert not terminated.any()
        assert truncated.all() == (t == horizon_steps - 1)
        assert np.all(reward < 0)
    # NEXT_STEP: the following step only resets; its action is ignored.
    obs, reward, terminated, truncated, info = venv.step(ones)
    np.testing.assert_array_equal(obs, reset_obs)
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    assert not terminated.any() and not truncated.any()
    # The episode after the autoreset is episode 1 of the same seed, as in a single env.
    single = make(horizon_days=0.025, patient_index=1)
    single.reset(seed=5)
    run = [single.step(1) for _ in range(horizon_steps)]
    assert run[-1][3]
    single_obs, _ = single.reset()
    np.testing.assert_array_equal(obs[1], single_obs)
    for _ in range(5):
        obs, reward, _, _, info = venv.step(ones)
        s_obs, s_reward, _, _, s_info = single.step(1)
        np.testing.assert_array_equal(obs[1], s_obs)
        assert reward[1] == s_reward
        assert info["pain_nrs"][1] == s_info["pain_nrs"]
        assert info["episode"][1] == 1


def test_vector_env_autoreset_step_info_describes_the_reset():
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", horizon_days=90 / 86_400
    )
    venv.reset(seed=1)
    for _ in range(3):  # 3 steps of 30 s: truncated on the third
        venv.step(np.ones(2, dtype=np.int64))
    _, _, _, _, info = venv.step(np.ones(2, dtype=np.int64))
    np.testing.assert_array_equal(info["episode"], [1, 1])
    np.testing.assert_array_equal(info["elapsed_s"], [0.0, 0.0])
    np.testing.assert_array_equal(info["amplitude_ma"], [0.0, 0.0])


# ----------------------------------------------------------------- info and reward
def test_features_raw_are_12_band_powers_and_obs_is_their_normalisation():
    env = make(horizon_days=0.01)
    batch = env.unwrapped.batch
    obs, info = env.reset(seed=3)
    assert np.shape(info["features_raw"]) == (12,)
    norm = normalisation_for([env.unwrapped.patient], 30.0)[0]
    for _ in range(5):
        obs, _, _, _, info = env.step(1)
        raw = np.asarray(info["features_raw"])
        assert raw.shape == (12,) and np.all(np.isfinite(raw))
        expected = ((raw - norm.mean_db) * (1.0 / norm.sd_db)).astype(np.float32)
        np.testing.assert_allclose(obs[:12], expected, rtol=1e-6, atol=1e-6)
    assert batch.obs_names[:12] == [f"{s}_{b}_norm" for s in ("ACC", "OFC") for b in (
        "delta", "theta", "alpha", "beta", "low_gamma", "high_gamma")]


def test_reward_is_minus_weighted_sum_of_named_terms():
    weights = {"pain": 0.5, "high_pain": 2.0, "energy": 0.3, "side_effects": 1.5, "switching": 0.1}
    env = make(horizon_days=0.01, reward=weights)
    env.reset(seed=2)
    w = np.array([weights[t] for t in TERMS])
    for t in range(20):
        action = 1 if (t // 3) % 2 else 0  # switches every 3 steps
        _, reward, _, truncated, info = env.step(action)
        terms = info["reward_terms"]
        assert set(terms) == {"pain", "high_pain", "energy", "side_effects", "switching"}
        values = np.array([terms[k] for k in TERMS])
        assert reward == pytest.approx(-float(w @ values), rel=1e-12, abs=1e-12)
        # One 30 s step per decision: the terms are that step's quantities.
        assert terms["pain"] == info["pain_nrs"]
        assert terms["high_pain"] == float(info["pain_nrs"] >= 7.0)
        assert terms["energy"] == pytest.approx(info["stim_energy_j"] / 30.0 / ENERGY_UNIT_W)
        assert terms["switching"] == float(t > 0 and t % 3 == 0)
        if truncated:
            break


def test_reward_weights_accept_reward_term_kwargs():
    env = make(horizon_days=0.01, reward_pain=0.0, reward_high_pain=0.0, reward_energy=0.0,
               reward_side_effects=0.0, reward_switching=1.0)
    env.reset(seed=0)
    _, r0, _, _, _ = env.step(0)
    _, r1, _, _, _ = env.step(1)
    assert (r0, r1) == (0.0, -1.0)


def test_observation_names_never_mention_latent_pain():
    for report in (False, True):
        for history in (0, 2):
            env = make(horizon_days=0.01, include_self_report=report, feature_history=history)
            batch = env.unwrapped.batch
            obs, _ = env.reset(seed=0)
            assert obs.shape == (len(batch.obs_names),) == env.observation_space.shape
            assert len(batch.obs_names) == 12 * (history + 1) + 7 + 2 * report
            assert not [n for n in batch.obs_names if "pain" in n.lower()]


def test_observation_is_blind_to_the_latent_pain_level():
    # Two patients with the same uid (same noise and biomarker layout) whose
    # pain drive differs by exactly 1 NRS everywhere (baselines 5 and 6, no
    # flares, so nothing clips): the latent pain differs by 1 NRS, the
    # observations (normalised by each patient's own calibration) do not.
    base = PatientParams().replace(pain={"flare_rate_per_week": 0.0})
    low = custom_patient(base.replace(pain={"baseline_nrs": 5.0}), uid=777)
    high = custom_patient(base.replace(pain={"baseline_nrs": 6.0}), uid=777)
    batch = PainStimBatch([low, high], EnvSettings(horizon_days=0.05, calibration_days=0.5))
    obs, _ = batch.reset(seed=9)
    for _ in range(100):
        obs, _, _, _, info = batch.step(np.zeros(2, dtype=np.int64))
        np.testing.assert_allclose(info["pain_nrs"][1] - info["pain_nrs"][0], 1.0, atol=1e-9)
        np.testing.assert_allclose(obs[0], obs[1], atol=1e-4)


def test_battery_life_under_continuous_default_stimulation_is_about_4_4_years():
    # DOMAIN.md: 3 mA, 1 kohm, 110 Hz, 100 us -> 99 uW therapy, 99 / 0.5 + 20 = 218 uW
    # drawn; 30 kJ / 218 uW = 4.361 years.
    patient = custom_patient()
    batch = PainStimBatch([patient], EnvSettings(horizon_days=0.5, decision_interval_s=3600))
    _, info = batch.reset(seed=0)
    assert np.isnan(info["battery_life_years"][0])  # documented: no draw measured yet
    for _ in range(12):
        _, _, _, _, info = batch.step(np.ones(1, dtype=np.int64))
    expected = 30_000.0 / 218e-6 / SECONDS_PER_YEAR
    assert expected == pytest.approx(4.361, abs=1e-3)
    # The 10 s ramp at the start lowers the mean draw by ~1e-4 (relative).
    assert info["battery_life_years"][0] == pytest.approx(expected, rel=5e-4)


# ----------------------------------------------------------------- SB3 adapter
def test_sb3_adapter_fills_terminal_observation_and_timelimit_truncated():
    from agents.sb3_vec_env import PainStimSB3VecEnv

    patients = default_patients(2)
    venv = PainStimSB3VecEnv(patients, EnvSettings(horizon_days=0.01))  # round(28.8) = 29 steps
    venv.seed(4)
    obs = venv.reset()
    assert obs.shape == (2, 19)
    single = make(horizon_days=0.01, patient_index=1)
    single.reset(seed=4)
    for t in range(29):
        obs, reward, done, infos = venv.step(np.array([1, 1]))
        s_obs, s_reward, _, s_trunc, _ = single.step(1)
        assert reward.dtype == np.float32
        if t < 28:
            assert not done.any() and infos == [{}, {}]
            np.testing.assert_array_equal(obs[1], s_obs)
    assert done.all() and s_trunc
    for i in range(2):
        assert infos[i]["TimeLimit.truncated"] is True
        assert infos[i]["episode_patient_uid"] == patients[i].uid
    np.testing.assert_array_equal(infos[1]["terminal_observation"], s_obs)
    # The returned observation already belongs to the next episode.
    s_reset_obs, _ = single.reset()
    np.testing.assert_array_equal(obs[1], s_reset_obs)
    assert not np.array_equal(obs[1], infos[1]["terminal_observation"])


def test_sb3_ppo_runs_on_adapter_wrapped_in_vecmonitor():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.sb3_vec_env import PainStimSB3VecEnv

    settings = EnvSettings(horizon_days=0.01)  # 29 steps per episode
    venv = VecMonitor(PainStimSB3VecEnv(default_patients(2), settings))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    episodes = list(model.ep_info_buffer)
    assert len(episodes) >= 2 * (128 // 29)
    assert all(ep["l"] == 29 for ep in episodes)
    assert all(np.isfinite(ep["r"]) and ep["r"] < 0 for ep in episodes)
