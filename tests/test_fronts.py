"""Baseline fronts: the envelope's interpolation on synthetic fronts (hand-checked), paired readings, the grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.evaluation.front_math import (
    ABOVE_RANGE,
    BELOW_RANGE,
    ENERGY,
    INSIDE,
    PAIN,
    Front,
    compare_with_front,
    envelope_indices,
    paired_interval,
)
from experiments.evaluation.fronts import QUICK_GRID, FrontGrid, front_specs

T_975_1DF = 12.706204736174698  # Student's t, 97.5% quantile, 1 degree of freedom


def synthetic_front() -> Front:
    """Two patients; settings a, b, c on the envelope; d and e dominated (d by b, e by c).

    Means (energy J/day, pain NRS): a (1, 6), b (3, 5), c (5, 4.5), d (4, 5.5), e (6, 4.6).
    """
    def setting(energy: float, pains: list[float], high: float = 0.1) -> dict[str, np.ndarray]:
        return {ENERGY: np.array([energy, energy]), PAIN: np.array(pains), "high_pain_fraction": np.array([high, high])}

    return Front("toy", {
        "a": setting(1.0, [5.0, 7.0], 0.3),
        "b": setting(3.0, [4.0, 6.0], 0.2),
        "d": setting(4.0, [5.0, 6.0]),
        "c": setting(5.0, [4.0, 5.0], 0.1),
        "e": setting(6.0, [4.2, 5.0]),
    })


def test_the_envelope_keeps_the_non_dominated_settings_by_energy():
    assert synthetic_front().envelope() == ["a", "b", "c"]
    # exact duplicates count once; a setting with equal energy and more pain is dominated
    assert envelope_indices([2.0, 1.0, 2.0, 1.0], [3.0, 4.0, 3.0, 5.0]) == [1, 0]
    assert envelope_indices([1.0, float("nan")], [4.0, 1.0]) == [0]


@pytest.mark.parametrize(
    ("energy", "status", "weights", "pains", "mean_pain"),
    [
        (2.0, INSIDE, {"a": 0.5, "b": 0.5}, [4.5, 6.5], 5.5),  # half way between a and b
        (4.0, INSIDE, {"b": 0.5, "c": 0.5}, [4.0, 5.5], 4.75),  # half way between b and c (d is off the envelope)
        (3.0, INSIDE, {"b": 1.0}, [4.0, 6.0], 5.0),  # on a setting
        (1.0, INSIDE, {"a": 1.0}, [5.0, 7.0], 6.0),  # the first setting
        (5.0, INSIDE, {"c": 1.0}, [4.0, 5.0], 4.5),  # the last setting
        (7.0, ABOVE_RANGE, {"c": 1.0}, [4.0, 5.0], 4.5),  # flat beyond the most energetic setting
    ],
)
def test_reading_the_front_at_an_energy(energy, status, weights, pains, mean_pain):
    r = synthetic_front().at(energy)
    assert r.status == status and r.energy_j_per_day == energy
    assert r.weights == pytest.approx(weights)
    assert r.per_patient[PAIN] == pytest.approx(pains)
    assert r.mean(PAIN) == pytest.approx(mean_pain)
    assert r.mean(ENERGY) == pytest.approx(min(energy, 5.0))  # the weighted energy is the energy read at


def test_a_quarter_of_the_way_weights_every_metric_alike():
    r = synthetic_front().at(1.5)  # a quarter of the way from a (1) to b (3)
    assert r.weights == pytest.approx({"a": 0.75, "b": 0.25})
    assert r.per_patient[PAIN] == pytest.approx([0.75 * 5 + 0.25 * 4, 0.75 * 7 + 0.25 * 6])
    assert r.mean("high_pain_fraction") == pytest.approx(0.75 * 0.3 + 0.25 * 0.2)


@pytest.mark.parametrize("energy", [0.5, 0.0, -1.0, float("nan")])
def test_below_the_front_there_is_no_value(energy):
    r = synthetic_front().at(energy)
    assert r.status == BELOW_RANGE and r.weights == {}
    assert all(math.isnan(v) for v in r.per_patient[PAIN]) and math.isnan(r.mean())


def test_the_envelope_is_not_the_convex_hull():
    """A chord over a non-convex stretch is not a front: (0, 7), (1, 6.9), (2, 5) read at 1 gives 6.9, not 6."""
    one = {ENERGY: np.array([0.0]), PAIN: np.array([7.0])}
    front = Front("f", {"p": one, "q": {ENERGY: np.array([1.0]), PAIN: np.array([6.9])},
                        "r": {ENERGY: np.array([2.0]), PAIN: np.array([5.0])}})
    assert front.at(1.0).mean() == pytest.approx(6.9)
    assert front.at(1.5).mean() == pytest.approx(5.95)


def test_a_one_point_front_is_flat_to_the_right_and_absent_to_the_left():
    front = Front("continuous", {"continuous": {ENERGY: np.array([8.0, 9.0]), PAIN: np.array([5.0, 6.0])}})
    assert front.at(8.5).status == INSIDE and front.at(8.5).mean() == pytest.approx(5.5)
    assert front.at(20.0).status == ABOVE_RANGE and front.at(20.0).mean() == pytest.approx(5.5)
    assert front.at(8.4).status == BELOW_RANGE


def test_paired_interval_by_hand():
    mean, lo, hi = paired_interval([-0.5, 0.1])
    half = T_975_1DF * math.sqrt(0.18) / math.sqrt(2)  # SD of (-0.5, 0.1) with ddof 1 is sqrt(0.18)
    assert mean == pytest.approx(-0.2) and lo == pytest.approx(-0.2 - half) and hi == pytest.approx(-0.2 + half)
    assert all(math.isnan(v) for v in paired_interval([1.0])[1:])


def test_a_policy_against_the_front_is_paired_and_read_5_percent_above_its_energy():
    policy = {ENERGY: np.array([1.9, 2.1]), PAIN: np.array([4.0, 6.6])}  # mean energy 2.0
    exact = compare_with_front(synthetic_front(), "learned", policy, energy_tolerance=0.0)
    assert exact.read_at_j_per_day == pytest.approx(2.0) and exact.front_value == pytest.approx(5.5)
    assert exact.diff == pytest.approx(-0.2)  # per patient: (4.0 - 4.5, 6.6 - 6.5)
    half = T_975_1DF * math.sqrt(0.18) / math.sqrt(2)
    assert (exact.diff_ci_low, exact.diff_ci_high) == pytest.approx((-0.2 - half, -0.2 + half))
    assert exact.verdict == "at or below"

    tol = compare_with_front(synthetic_front(), "learned", policy)  # default: +5%, read at 2.1
    assert tol.read_at_j_per_day == pytest.approx(2.1)
    assert tol.weights == pytest.approx({"a": 0.45, "b": 0.55})
    assert tol.front_value == pytest.approx(6.0 - 0.55) and tol.diff == pytest.approx(5.3 - 5.45)

    worse = compare_with_front(synthetic_front(), "worse", {ENERGY: np.array([5.0, 5.0]), PAIN: np.array([5.0, 5.0])})
    assert worse.status == ABOVE_RANGE and worse.diff == pytest.approx(0.5) and worse.verdict == "above"
    cheap = compare_with_front(synthetic_front(), "cheap", {ENERGY: np.array([0.1, 0.1]), PAIN: np.array([7.0, 7.0])})
    assert cheap.status == BELOW_RANGE and cheap.verdict == "not compared" and math.isnan(cheap.diff)


def test_the_default_grid_has_the_families_of_the_issue():
    grid = FrontGrid()
    specs = front_specs(grid)
    assert len(grid.cycling_periods_s) >= 4 and len(grid.cycling_duties) >= 4
    assert [s.label for s in specs["references"]] == ["off", "continuous", "threshold"]
    assert sum(len(v) for v in specs.values()) == grid.size
    by_label = {s.label: s for group in specs.values() for s in group}
    assert by_label["cycling_10min_duty0.35"].params == {"on_s": 210.0, "off_s": 390.0}
    assert by_label["threshold_duty0.05"].params["target_duty"] == 0.05
    assert by_label["dual_threshold_duty0.8"].kind == "dual_threshold"
    assert by_label["threshold"].params == by_label["threshold_duty0.5"].params  # the calibrated one is on the grid


def test_a_bad_grid_is_refused():
    from simenv.errors import PainloopError

    with pytest.raises(PainloopError, match="PL-CONTROLLER-PARAM.*threshold_duties"):
        FrontGrid(threshold_duties=(0.0, 0.5))
    with pytest.raises(PainloopError, match="cycling_periods_s"):
        FrontGrid(cycling_periods_s=(-60.0,))


def test_evaluated_fronts_are_paired_with_a_policy_run_beside_them():
    """A tiny long-term-shaped evaluation: 2 patients, 0.1 day of warm-up, 0.1 scored day, the quick grid."""
    from agents.controllers import ControllerSpec
    from experiments.evaluation.fronts import evaluate_fronts, render_fronts

    fronts = evaluate_fronts("test", 2, warmup_days=0.1, horizon_days=0.1, jobs=1, grid=QUICK_GRID,
                             extra_specs=[ControllerSpec("again_continuous", "continuous")])
    assert list(fronts.fronts) == ["threshold", "cycling", "dual_threshold", "off", "continuous"]
    assert "0.1 days of warm-up" in fronts.frame_text and fronts.wall_s > 0
    assert len(fronts.rows()) == QUICK_GRID.size
    by_family = {c.family: c for c in fronts.compare("again_continuous", energy_tolerance=0.0)}
    same = by_family["continuous"]  # the same controller on the same noise: difference exactly 0
    assert same.status == INSIDE and same.diff == 0.0 and same.diff_ci_low == same.diff_ci_high == 0.0
    assert by_family["off"].status == ABOVE_RANGE
    readings = fronts.front_at(0.0)
    assert readings["off"].status == INSIDE and readings["continuous"].status == BELOW_RANGE
    assert "cycling_10min_duty0.35" in render_fronts(fronts)
