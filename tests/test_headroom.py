"""Share of headroom closed (agents.headroom): the ratio, its bootstrap interval, the baseline choice, the table."""

from __future__ import annotations

import numpy as np
import pytest

from agents.evaluation_result import EvaluationResult
from agents.headroom import best_baseline, headroom_rows


def _result(rewards: dict[str, list[float]], pains: dict[str, list[float]], latent=("bound",)) -> EvaluationResult:
    n = len(next(iter(rewards.values())))
    per_patient = {k: {"reward_per_day": np.array(rewards[k], float), "mean_pain_nrs": np.array(pains[k], float)}
                   for k in rewards}
    return EvaluationResult(labels=list(rewards), patients=list(range(n)), per_patient=per_patient,
                            uses_latent={k: k in latent for k in rewards}, horizon_days=1.0, seed=0)


def test_shares_place_the_baseline_at_0_and_the_bound_at_1():
    rng = np.random.default_rng(1)
    base = -19_000 + rng.normal(0, 300, 30)
    res = _result(
        {"cycling": list(base), "off": list(base - 4000), "learned": list(base + 100 + rng.normal(0, 5, 30)),
         "bound": list(base + 400 + rng.normal(0, 5, 30))},
        {"cycling": [6.0] * 30, "off": [7.4] * 30, "learned": [5.95] * 30, "bound": [5.9] * 30},
    )
    rows = {r["controller"]: r for r in headroom_rows(res, "bound", ["cycling", "off"])}
    assert rows["cycling"]["baseline"] == "cycling" and rows["cycling"]["bound"] == "bound"
    assert rows["cycling"]["reward_share"] == pytest.approx(0.0, abs=1e-12)
    assert rows["bound"]["reward_share"] == pytest.approx(1.0)
    assert rows["learned"]["reward_share"] == pytest.approx(0.25, abs=0.02)
    assert rows["learned"]["reward_share_ci_low"] < 0.25 < rows["learned"]["reward_share_ci_high"]
    assert rows["learned"]["pain_share"] == pytest.approx(0.5)
    assert rows["off"]["reward_share"] < -5  # far worse than the baseline
    assert rows["learned"]["headroom_ci_low"] > 0  # the bound is clearly above the baseline
    assert headroom_rows(res, "bound", ["cycling", "off"]) == list(rows.values())  # fixed bootstrap seed


def test_the_best_baseline_is_the_highest_mean_reward_and_ties_keep_the_first():
    res = _result({"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [0.0, 1.0]}, {k: [6.0, 6.0] for k in "abc"}, latent=())
    assert best_baseline(res, ["c", "a", "b"]) == "a"
    with pytest.raises(ValueError):
        best_baseline(res, [])


def test_shares_are_nan_without_headroom():
    res = _result({"base": [1.0, 2.0, 3.0], "bound": [1.0, 2.0, 3.0], "x": [2.0, 3.0, 4.0]},
                  {k: [6.0, 6.0, 6.0] for k in ("base", "bound", "x")})
    rows = headroom_rows(res, "bound", ["base"])
    assert all(np.isnan(r["reward_share"]) and np.isnan(r["reward_share_ci_low"]) for r in rows)


def test_an_evaluation_with_a_planner_prints_and_writes_the_shares(tmp_path):
    from experiments.evaluation import evaluate_controllers, report_text
    from experiments.evaluation.results import write_evaluation

    ev = evaluate_controllers(["off", "cycling_5min", "planner_clairvoyant"], cohort="test", n_patients=2,
                              horizon_days=0.1, frame="week", reference="off")
    assert [r["controller"] for r in ev.headroom] == ["off", "cycling_5min", "planner_clairvoyant"]
    assert {r["baseline"] for r in ev.headroom} == {"cycling_5min"}
    assert "share of headroom closed" in report_text(ev)
    write_evaluation(ev, tmp_path)
    assert (tmp_path / "headroom.csv").read_text().startswith("controller,kind,uses_latent,baseline,bound")
    plain = evaluate_controllers(["off", "cycling_5min"], cohort="test", n_patients=2, horizon_days=0.1,
                                 frame="week", reference="off")
    assert plain.headroom == [] and "headroom" not in report_text(plain)


def _energy_result(points: dict[str, tuple[float, float]], n: int = 4, latent=("bound",)) -> EvaluationResult:
    """Every patient at the same (energy J/day, pain NRS) per label; reward = -pain."""
    per_patient = {k: {"stim_energy_j_per_day": np.full(n, e), "mean_pain_nrs": np.full(n, p),
                       "reward_per_day": np.full(n, -p)} for k, (e, p) in points.items()}
    return EvaluationResult(labels=list(points), patients=list(range(n)), per_patient=per_patient,
                            uses_latent={k: k in latent for k in points}, horizon_days=1.0, seed=0)


def test_pain_at_matched_energy_reads_the_baselines_front_at_each_controllers_energy():
    from experiments.evaluation.headroom import headroom_of, matched_front_pain

    res = _energy_result({"off": (0.0, 7.0), "cycling": (4.0, 6.0), "continuous": (8.0, 5.5),
                          "wasteful": (6.0, 6.2), "learned": (4.0, 5.9), "bound": (2.0, 6.0)})
    kinds = {"off": "off", "cycling": "cycling", "continuous": "continuous", "wasteful": "cycling",
             "learned": "run", "bound": "planner"}
    front = matched_front_pain(res, ["off", "cycling", "continuous", "wasteful"])
    assert front["learned"] == pytest.approx([6.0] * 4)  # on the front's cycling point
    assert front["bound"] == pytest.approx([6.5] * 4)  # halfway between off and cycling
    assert front["wasteful"] == pytest.approx([5.75] * 4)  # between cycling and continuous: 'wasteful' is off the front
    rows = {r["controller"]: r for r in headroom_of(kinds, res)}
    assert rows["bound"]["headroom_matched_pain_nrs"] == pytest.approx(0.5)  # 6.5 - 6.0
    assert rows["learned"]["matched_pain_share"] == pytest.approx(0.1 / 0.5)
    for label in ("off", "cycling", "continuous"):  # on the front: 0
        assert rows[label]["matched_pain_share"] == pytest.approx(0.0, abs=1e-12)
    assert rows["wasteful"]["matched_pain_share"] == pytest.approx((5.75 - 6.2) / 0.5)
    assert rows["bound"]["matched_pain_share"] == pytest.approx(1.0)
    assert {r["baseline"] for r in rows.values()} == {"continuous"}  # best mean reward of the hand-designed ones
    assert all(r["n_patients"] == 4 for r in rows.values())


def test_a_headroom_bound_on_the_first_patients_pairs_them_and_leaves_the_main_tables_alone():
    from experiments.evaluation import evaluate_controllers, report_text

    keys = dict(cohort="test", n_patients=3, horizon_days=0.05, frame="week", reference="off")
    entries = ["off", "cycling_5min", "threshold", "random"]
    ev = evaluate_controllers(entries, headroom={"bound": "planner_clairvoyant", "patients": 2}, **keys)
    assert ev.labels == entries and len(ev.result.patients) == 3  # no bound in the main tables
    assert [r["controller"] for r in ev.headroom] == [*entries, "planner_clairvoyant"]
    assert {r["n_patients"] for r in ev.headroom} == {2}
    assert "on the first 2 of 3 patients" in report_text(ev)
    small = evaluate_controllers([*entries, "planner_clairvoyant"], **(keys | {"n_patients": 2}))
    for label in entries:  # the same patients and noise as the main run's first two, bit for bit
        for metric, values in ev.result.per_patient[label].items():
            np.testing.assert_array_equal(small.result.per_patient[label][metric], values[:2], err_msg=f"{label} {metric}")
    headroom_by_label = {r["controller"]: r for r in ev.headroom}
    for r in small.headroom:  # so the same shares as one paired evaluation of the first 2 patients with the bound
        assert headroom_by_label[r["controller"]] == r
    full = evaluate_controllers(entries, headroom={"bound": "planner_clairvoyant"}, **keys)
    assert full.labels == [*entries, "planner_clairvoyant"]  # every patient: one evaluation, the bound in it
    assert {r["n_patients"] for r in full.headroom} == {3}


@pytest.mark.parametrize(("headroom", "code", "names"), [
    ({"patients": 2}, "PL-CONFIG-VALUE", "headroom.patients=2 without headroom.bound"),
    ({"bound": "cycling_5min"}, "PL-CONFIG-VALUE", "kind 'cycling'"),
    ({"bound": "planner_clairvoyant", "patients": 1}, "PL-CONFIG-VALUE", "from 2 to cohort.n_patients=3"),
    ({"bound": "planner_clairvoyant", "patients": 4}, "PL-CONFIG-VALUE", "from 2 to cohort.n_patients=3"),
    ({"bound": "off"}, "PL-CONFIG-VALUE", "allowed: a planner entry"),
    ({"bound": "planner_clairvoyant"}, "PL-CONTROLLER-LABEL", "also a controller label"),
])
def test_a_bad_headroom_config_is_refused_before_any_simulation(headroom, code, names):
    from experiments.evaluation.config import evaluate_config
    from experiments.evaluation.plan import make_plan
    from simenv.errors import PainloopError

    cfg = evaluate_config(controllers=["off", "planner_clairvoyant"], reference="off", n_patients=3,
                          headroom=headroom)
    with pytest.raises(PainloopError) as err:
        make_plan(cfg)
    assert err.value.code == code and names in str(err.value)
