"""Training that sees the slow cost of tolerance (``agents.slow_costs``, ``slow_costs.*`` keys).

The closed forms against the formula and against the kernel over months; the
price is zero when off and equals ``price_scale * c_T * T_eq'(d_ref)`` times
the on-time on a constructed case; the equilibrium start sets ``T_eq`` and the
duty features; the equilibrium validation scores the day at the measured
duty's ``T_eq``; the defaults leave training as it was; bad keys are refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.sb3_vec_env import PainStimSB3VecEnv
from agents.slow_costs import (
    SlowCosts,
    SlowCostSettings,
    check_action_mode,
    equilibrium_tolerance,
    equilibrium_tolerance_slope,
    tolerance_cost,
)
from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import load_preset
from simenv.core import tolerance_equilibrium
from simenv.errors import PainloopError
from simenv.info_layout import STEP_INFO
from simenv.reward import RewardWeights
from tests.conftest import custom_patient, with_params

SETTINGS = EnvSettings(dt_s=30.0, horizon_days=0.05, decision_interval_s=60.0, initial_state="randomized")
COL = {name: i for i, name in enumerate(STEP_INFO)}


def _pool(n: int = 3):
    return load_preset("train").sample(n)


def _env(pool, slow: SlowCosts | None, n_envs: int = 4) -> PainStimSB3VecEnv:
    env = PainStimSB3VecEnv(patient_pool=pool, n_envs=n_envs, settings=SETTINGS, reward=RewardWeights(),
                            slow_costs=slow)
    env.seed(7)
    return env


def _play(env: PainStimSB3VecEnv, actions: np.ndarray, n: int) -> tuple[list, list]:
    obs = [env.reset()]
    rewards = []
    for _ in range(n):
        env.step_async(actions)
        o, r, _, _ = env.step_wait()
        obs.append(o)
        rewards.append(r)
    return obs, rewards


# -- closed forms ---------------------------------------------------------------------------------------------
def test_equilibrium_tolerance_is_the_closed_form_of_the_two_time_constants():
    params = custom_patient().params
    t_c = tolerance_equilibrium(params)
    tau_b, tau_r = params.tolerance.build_tau_days, params.tolerance.recovery_tau_days
    for d in (0.0, 0.2, 0.5, 0.9, 1.0):
        expected = t_c * (d / tau_b) / (d / tau_b + (1 - d) / tau_r)
        assert equilibrium_tolerance(params, d) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        h = 1e-6
        lo, hi = max(d - h, 0.0), min(d + h, 1.0)
        slope = (equilibrium_tolerance(params, hi) - equilibrium_tolerance(params, lo)) / (hi - lo)
        assert equilibrium_tolerance_slope(params, d) == pytest.approx(slope, rel=1e-5)
    assert equilibrium_tolerance(params, 1.0) == pytest.approx(t_c)
    # docs: duty 0.5 -> about 0.19 T_max, duty 0.2 -> about 0.055 T_max at the default time constants
    assert equilibrium_tolerance(params, 0.5) / t_c == pytest.approx(0.19, abs=0.005)
    assert equilibrium_tolerance(params, 0.2) / t_c == pytest.approx(0.055, abs=0.003)


def test_equilibrium_tolerance_matches_the_kernel_over_months():
    """Cycling at several duties for 300 days: the kernel's tolerance ends within 5% of T_eq(measured duty)."""
    base = custom_patient()
    patients = [base, with_params(base, tolerance={"build_tau_days": 20.0})]
    patterns = [(1, 1), (1, 3), (3, 1)]  # (on, off) decisions of 10 min
    slots = [(p, pat) for p in patients for pat in patterns]
    batch = PainStimBatch([p for p, _ in slots], EnvSettings(dt_s=300.0, horizon_days=300.0, decision_interval_s=600.0))
    batch.reset(seed=1)
    k = 0
    while True:
        actions = np.array([int(k % (on + off) < on) for _, (on, off) in slots])
        _, _, _, truncated = batch.step_arrays(actions, observe=False)
        k += 1
        if truncated.all():
            break
    state = batch.core.state
    duty = state[:, L.S_ON_TIME_S] / state[:, L.S_TIME_S]
    for i, (p, _) in enumerate(slots):
        assert state[i, L.S_TOLERANCE] == pytest.approx(equilibrium_tolerance(p.params, duty[i]), rel=0.05)


def test_tolerance_cost_on_a_constructed_decision():
    info = np.zeros((3, len(STEP_INFO)))
    info[:, COL["relief_nrs"]] = [1.2, 1.2, 0.0]
    info[:, COL["efficacy"]] = [0.6, 0.6, 0.5]
    info[:, COL["pain_nrs"]] = [5.0, 6.8, 7.1]
    w = RewardWeights(pain=1.5, high_pain=2.0)
    c = tolerance_cost(info, w, band_nrs=0.5)
    g = 1.2 / 0.6
    assert c == pytest.approx([1.5 * g, (1.5 + 2.0 / 1.0) * g, 0.0])


# -- the training env ---------------------------------------------------------------------------------------------
def test_defaults_are_off_and_the_hook_alone_changes_nothing():
    settings = SlowCostSettings()
    assert not settings.shapes_training and not settings.equilibrium_validation
    pool = _pool()
    actions = np.array([1, 0, 1, 1])
    obs0, rew0 = _play(_env(pool, None), actions, 60)
    inert = SlowCosts(pool, settings, RewardWeights(), 72)
    obs1, rew1 = _play(_env(pool, inert), actions, 60)
    assert all(np.array_equal(a, b) for a, b in zip(obs0, obs1, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(rew0, rew1, strict=True))
    assert np.all(inert.last_price == 0.0)


def test_price_is_the_closed_form_times_the_on_time():
    pool = _pool()
    actions = np.array([1, 0, 1, 1])
    _, plain = _play(_env(pool, None), actions, 3)
    settings = SlowCostSettings(price_tolerance=True, price_scale=2.0, initial_duty=0.3)
    slow = SlowCosts(pool, settings, RewardWeights(), 72)
    env = _env(pool, slow)
    env.reset()
    for k in range(3):
        on_before = env.batch.core.state[:, L.S_ON_TIME_S].copy()
        env.step_async(actions)
        _, reward, _, _ = env.step_wait()
        on_fraction = (env.batch.core.state[:, L.S_ON_TIME_S] - on_before) / 60.0
        # The running values after this decision: the shared mean over slots (first decision: the mean itself).
        duty, cost = slow.duty.shared, slow.cost.shared
        params = [p.params for p in env.batch.slot_patients]
        expected_price = [2.0 * max(cost, 0.0) * equilibrium_tolerance_slope(p, duty) for p in params]
        assert slow.last_price == pytest.approx(expected_price, rel=1e-12)
        assert reward == pytest.approx(plain[k] - np.float32(expected_price) * on_fraction, rel=1e-5, abs=1e-5)
    assert on_fraction[1] == 0.0 and on_fraction[0] == pytest.approx(1.0)


def test_price_at_the_days_own_duty_takes_the_slope_at_the_24h_duty_feature():
    pool = _pool()
    slow = SlowCosts(pool, SlowCostSettings(price_tolerance=True, price_duty="day"), RewardWeights(), 72)
    env = _env(pool, slow)
    _play(env, np.array([1, 1, 0, 1]), 4)
    duty_24h = env.batch.core.state[:, L.S_DUTY_24H]
    expected = [max(slow.cost.shared, 0.0) * equilibrium_tolerance_slope(p.params, d)
                for p, d in zip(env.batch.slot_patients, duty_24h, strict=True)]
    assert slow.last_price == pytest.approx(expected, rel=1e-12)


def test_price_off_leaves_the_reward_while_the_equilibrium_start_is_on():
    pool = _pool()
    slow = SlowCosts(pool, SlowCostSettings(equilibrium_start=True), RewardWeights(), 72)
    env = _env(pool, slow)
    _play(env, np.ones(4, dtype=int), 5)
    assert np.all(slow.last_price == 0.0)


def test_equilibrium_start_sets_the_tolerance_and_duty_features_of_the_reference_duty():
    pool = _pool()
    slow = SlowCosts(pool, SlowCostSettings(equilibrium_start=True, initial_duty=0.4), RewardWeights(), 72)
    env = _env(pool, slow)
    obs = env.reset()
    state = env.batch.core.state
    for slot, patient in enumerate(env.batch.slot_patients):
        assert state[slot, L.S_TOLERANCE] == equilibrium_tolerance(patient.params, 0.4)
        assert state[slot, [L.S_DUTY_30MIN, L.S_DUTY_24H, L.S_DUTY_7D]] == pytest.approx([0.4] * 3)
    names = env.batch.obs_names
    duty_cols = [i for i, name in enumerate(names) if name.startswith("duty")]
    assert len(duty_cols) == 3 and np.allclose(obs[:, duty_cols], 0.4)
    # Continuous stimulation to the end of the episodes: the next days start at T_eq of the measured duty.
    n = int(SETTINGS.horizon_steps / SETTINGS.steps_per_decision)
    for _ in range(n):
        env.step_async(np.ones(4, dtype=int))
        env.step_wait()
    d_ref = slow.reference_duty(np.arange(4))
    assert np.all(d_ref > 0.9)
    for slot, patient in enumerate(env.batch.slot_patients):
        assert state[slot, L.S_TIME_S] == 0.0  # a new episode
        assert state[slot, L.S_TOLERANCE] == pytest.approx(equilibrium_tolerance(patient.params, d_ref[slot]))


def test_equilibrium_validation_scores_the_day_at_the_damped_fixed_point_of_the_duty():
    from experiments.training.equilibrium_validation import EquilibriumValidator
    from experiments.training.validation import Validator

    class Alternating:
        """Stimulates all day when it starts with a low duty feature, never when it starts high."""

        def __init__(self, col):
            self.col, self.on = col, None

        def predict(self, obs, deterministic=True):
            if self.on is None:
                self.on = (obs[:, self.col] < 0.5).astype(np.int64)
            return self.on, None

    patients = load_preset("validation").sample(2)
    inner = Validator(patients, SETTINGS, RewardWeights(), seed=0)
    validator = EquilibriumValidator(inner, initial_duty=0.2)
    starts = []
    inner.batch.reset_hook = lambda batch, slots, start=inner.batch.reset_hook: (
        start(batch, slots), starts.append(batch.core.state[:, [L.S_TOLERANCE, L.S_DUTY_7D]].copy()))
    policy = Alternating(inner.batch.obs_names.index("duty_7d"))
    days = []

    def run_day(original=inner.run):
        policy.on = None
        result = original(policy, lambda o: o)
        days.append(validator.measured_duties().copy())
        return result
    inner.run = lambda model, normalize: run_day()
    result = validator.run(policy, lambda o: o)
    d1, d2, d3 = days
    assert np.all(d1 > 0.99) and np.all(d2 == 0.0)  # starts at 0.2 -> on all day; starts at ~1 -> off all day
    assert len(starts) == 3
    assert starts[0][:, 0] == pytest.approx([equilibrium_tolerance(p.params, 0.2) for p in patients])
    mid = 0.5 * (d1 + d2)
    assert starts[2][:, 1] == pytest.approx(mid)
    assert starts[2][:, 0] == pytest.approx([equilibrium_tolerance(p.params, d) for p, d in zip(patients, mid, strict=True)])
    assert result.metrics["duty_cycle"] == pytest.approx(float(np.mean(d3)))


def test_default_training_config_builds_no_slow_costs():
    from experiments.training.build import slow_costs_for
    from experiments.training.defaults import default_config
    from experiments.training.plan import make_plan
    from experiments.training.runner import config_dict

    config = default_config("ppo")
    config.cohort.n_patients = 2
    config.validation.n_patients = 1
    plan = make_plan(config_dict(config))
    assert plan.config["slow_costs"] == dataclasses.asdict(SlowCostSettings())
    assert slow_costs_for(plan) is None
    plan.config.pop("slow_costs")  # a run recorded before the keys existed: off
    assert slow_costs_for(plan) is None
    plan.config["slow_costs"] = {"price_tolerance": True}
    assert isinstance(slow_costs_for(plan), SlowCosts)


def test_a_run_recorded_before_the_keys_compares_equal_to_the_same_training_today():
    from experiments.sweeps.rerun import comparable
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict

    today = config_dict(default_config("ppo"))
    recorded = {k: v for k, v in today.items() if k != "slow_costs"}
    assert comparable(recorded) == comparable(today)
    shaped = today | {"slow_costs": today["slow_costs"] | {"price_tolerance": True}}
    assert comparable(recorded) != comparable(shaped)


@pytest.mark.parametrize(
    ("mapping", "code", "text"),
    [
        ({"price_tolerence": True}, "PL-CONFIG-KEY", "slow_costs.['price_tolerence']"),
        ({"price_tolerance": "yes"}, "PL-CONFIG-VALUE", "slow_costs.price_tolerance='yes'; allowed: true or false"),
        ({"duty_memory": 0.0}, "PL-CONFIG-VALUE", "slow_costs.duty_memory=0.0; allowed: a number from 0.001 to 1"),
        ({"price_scale": -1}, "PL-CONFIG-VALUE", "slow_costs.price_scale=-1"),
        ({"price_duty": "week"}, "PL-CONFIG-VALUE", "slow_costs.price_duty='week'; allowed: ['policy', 'day']"),
    ],
)
def test_bad_slow_cost_keys_are_refused(mapping, code, text):
    with pytest.raises(PainloopError) as err:
        SlowCostSettings.from_mapping(mapping)
    assert err.value.code == code and text in str(err.value)


def test_slow_costs_need_on_off_actions():
    check_action_mode(SlowCostSettings(), "levels")  # off: any mode
    with pytest.raises(PainloopError, match="env.action_mode=on_off"):
        check_action_mode(SlowCostSettings(equilibrium_start=True), "levels")


def test_uniform_start_features_keep_the_equilibrium_tolerance_and_hide_the_reference_duty():
    pool = _pool()
    settings = SlowCostSettings(equilibrium_start=True, initial_duty=0.4, start_features="uniform")
    env = _env(pool, SlowCosts(pool, settings, RewardWeights(), 72))
    env.reset()
    state = env.batch.core.state
    features = state[:, [L.S_DUTY_30MIN, L.S_DUTY_24H, L.S_DUTY_7D]]
    assert np.all(features == features[:, :1]) and len(set(features[:, 0])) == 4  # one draw per slot
    assert np.all((features >= 0.0) & (features < 1.0))
    for slot, patient in enumerate(env.batch.slot_patients):
        assert state[slot, L.S_TOLERANCE] == equilibrium_tolerance(patient.params, 0.4)
    again = _env(pool, SlowCosts(pool, settings, RewardWeights(), 72))
    again.reset()
    assert np.array_equal(again.batch.core.state[:, L.S_DUTY_7D], features[:, 2])  # same seed, same draws
