"""The headroom planner: its look-ahead is the patient's real future (clairvoyant), it beats the baselines it
contains on a tiny case, bad parameters are refused with their code; the oracle alias still works and warns."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from agents.planner import Planner
from agents.planner_candidates import candidate_table
from agents.policy import PatientContext
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import load_preset
from simenv.errors import PainloopError
from simenv.reward import RewardWeights

PATIENTS = load_preset("test").sample(2)


def _drive(planner: Planner, batch: PainStimBatch, decisions: int, seed: int) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Run ``planner`` on ``batch`` for ``decisions``; per re-plan: (its plan, the real block rewards, the real state after).

    ``planner.actions_seen`` keeps every action, shape (n_patients, decisions)."""
    obs, info = batch.reset(seed=seed)
    planner.reset([PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p]) for p in batch.slot_patients])
    planner.configure_reward(batch.reward_weights)
    planner.configure_core(batch.core, slice(None))
    block = planner.settings.replan_decisions
    seen, rewards = [], np.zeros((batch.n, block))
    planner.actions_seen = np.zeros((batch.n, decisions), dtype=np.int64)  # type: ignore[attr-defined]
    for d in range(decisions):
        action = planner.act(obs, info)
        planner.actions_seen[:, d] = action  # type: ignore[attr-defined]
        if d % block == 0:
            plan = planner.last_plan
        obs, reward, _, _ = batch.step_arrays(None, batch.amplitudes_for(action, "on_off"))
        info = batch.step_info()
        rewards[:, d % block] = reward
        if d % block == block - 1:
            seen.append((plan, rewards.copy(), batch.core.state.copy()))
    return seen


@pytest.mark.parametrize("initial_state", ["naive", "randomized"])
def test_clairvoyant_lookahead_of_the_chosen_candidate_is_the_real_future_bit_for_bit(initial_state):
    # A heavy energy weight makes the choice move between off, patterns and continuous.
    reward = RewardWeights(energy=3.0)
    batch = PainStimBatch(PATIENTS, EnvSettings(horizon_days=1.0, initial_state=initial_state), reward)
    planner = Planner("p", lookahead_min=30, replan_min=5, clairvoyant=True)
    planner.check_settings(batch.settings)
    seen = _drive(planner, batch, decisions=10 * 24, seed=7)
    chosen = set()
    for plan, real_rewards, real_state in seen:
        adopted = plan.adopted  # the patients whose commitment ended: they now follow the look-ahead's best
        np.testing.assert_array_equal(plan.block_rewards[adopted], real_rewards[adopted])
        np.testing.assert_array_equal(plan.state_after_block[adopted], real_state[adopted])  # NaN equals NaN
        chosen.update(planner.candidate_names[c] for c in plan.candidate[adopted])
    assert len(chosen) >= 2, chosen


def test_sampled_lookahead_plans_on_other_noise_than_the_real_future():
    batch = PainStimBatch(PATIENTS, EnvSettings(horizon_days=1.0))
    planner = Planner("p", lookahead_min=30, replan_min=5, clairvoyant=False)
    seen = _drive(planner, batch, decisions=10 * 6, seed=7)
    assert any(not np.array_equal(plan.state_after_block, state) for plan, _, state in seen)


def test_planner_reward_is_at_least_cycling_and_off_on_a_tiny_case():
    specs = [
        ControllerSpec("off", "off"),
        ControllerSpec("cycling_5min", "cycling", {"on_s": 300, "off_s": 300}),
        ControllerSpec("planner", "planner", {"clairvoyant": True, "lookahead_min": 30}),
    ]
    result = evaluate(specs, PATIENTS, EnvSettings(horizon_days=0.5), seed=2, warmup_days=0.25)
    m = result.per_patient
    assert result.uses_latent["planner"] and not result.uses_latent["cycling_5min"]
    for other in ("off", "cycling_5min"):
        assert np.all(m["planner"]["reward_per_day"] >= m[other]["reward_per_day"]), other


def test_candidates_are_off_continuous_and_each_pattern_committed_for_its_period():
    planner = Planner("p", patterns_min=[[5, 5], [2.5, 2.5], [5, 10]], lookahead_min=30, replan_min=5)
    table, commit, names = candidate_table(planner.settings)
    assert names == ["off", "continuous", "5/5", "2.5/2.5", "5/10"]
    assert commit.tolist() == [10, 10, 20, 10, 30]  # decisions of 30 s: a period, at least one re-plan interval
    assert table.shape == (5, 60) and table[0].sum() == 0 and table[1].sum() == 60
    assert table[2, :10].all() and not table[2, 10:20].any() and table[2, 20:30].all()
    assert table[4, :10].all() and not table[4, 10:30].any()


def test_a_chosen_pattern_runs_its_whole_period_off_block_included():
    batch = PainStimBatch(PATIENTS, EnvSettings(horizon_days=1.0), RewardWeights(energy=3.0))
    planner = Planner("p", patterns_min=[[5, 10]], lookahead_min=30, replan_min=5, clairvoyant=True)
    seen = _drive(planner, batch, decisions=10 * 24, seed=7)
    period = [1] * 10 + [0] * 20
    followed = 0
    for plan, _, _ in seen:
        for i in np.flatnonzero(plan.adopted & (plan.candidate == 2)):  # 2: the pattern 5/10
            actions = planner.actions_seen[i, plan.decision : plan.decision + 30]  # type: ignore[attr-defined]
            if len(actions) == 30:
                assert actions.tolist() == period
                followed += 1
    assert followed >= 1


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lookahead_min": -5}, "lookahead_min"),
        ({"lookahead_min": 2, "replan_min": 5}, "lookahead_min"),
        ({"replan_min": 0.7}, "replan_min"),
        ({"replan_min": "5"}, "replan_min"),
        ({"patterns_min": [[5]]}, "patterns_min"),
        ({"patterns_min": [[5, 0]]}, "patterns_min"),
        ({"patterns_min": 5}, "patterns_min"),
        ({"clairvoyant": "yes"}, "clairvoyant"),
        ({"price_tolerance": 1}, "price_tolerance"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(params, field):
    with pytest.raises(PainloopError) as info:
        ControllerSpec("p", "planner", params).build(30.0, 0)
    assert info.value.code == "PL-CONTROLLER-PARAM" and field in str(info.value)


def test_bad_planner_file_exits_2_before_any_work(tmp_path, capsys):
    from test_evaluate import SMALL, compose

    from experiments.evaluation.run import run

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "badplan.yaml").write_text("kind: planner\nlookahead_min: 1441\n")
    with pytest.raises(SystemExit) as info:
        run(compose("controllers=[badplan]", "reference=badplan", *SMALL), tmp_path / "run", show_progress=False,
            conf_dir=conf)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: PL-CONTROLLER-PARAM: ") and "lookahead_min" in err
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"status.json"}


def test_planner_outside_an_evaluation_says_it_needs_the_core():
    planner = Planner("p")
    batch = PainStimBatch(PATIENTS, EnvSettings(horizon_days=0.1))
    obs, info = batch.reset(seed=0)
    planner.reset([PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p]) for p in PATIENTS])
    with pytest.raises(PainloopError) as err:
        planner.act(obs, info)
    assert err.value.code == "PL-CONTROLLER-PARAM" and "configure_core" in str(err.value)


def test_oracle_is_a_deprecated_alias_of_latent_threshold():
    with pytest.warns(FutureWarning, match="use kind 'latent_threshold'"):
        old = ControllerSpec("oracle", "oracle")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = ControllerSpec("latent", "latent_threshold")
    assert old.uses_latent and new.uses_latent and old.needs_calibration and new.needs_calibration
    result = evaluate([old, new], PATIENTS, EnvSettings(horizon_days=0.25), seed=1)
    for metric in ("mean_pain_nrs", "duty_cycle", "reward_per_day"):
        np.testing.assert_array_equal(result.per_patient["oracle"][metric], result.per_patient["latent"][metric])
    assert result.uses_latent == {"oracle": True, "latent": True}
    with pytest.raises(PainloopError) as info:
        ControllerSpec("latent", "latent_threshold", {"target_duty": 1.5}).build(30.0, 0)
    assert "latent_threshold target_duty=1.5" in str(info.value)
