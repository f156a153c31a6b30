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
