"""The device-arithmetic detector: scores, thresholds and the timing rules of DESIGN.md."""

from __future__ import annotations

import numpy as np
import pytest

from agents.detector import DetectorConfig, DetectorEngine, to_fixed_point
from simenv import layout as L
from simenv.errors import PainloopError


def config(**kw) -> DetectorConfig:
    base = dict(
        inputs=("OFC_theta",),
        weight=(1.0,),
        norm_subtract=(0.0,),
        norm_multiply=(1.0,),
        threshold_low=0.0,
        threshold_high=0.0,
        onset_updates=0,
        termination_updates=0,
        blank_fft_intervals=0,
    )
    base.update(kw)
    return DetectorConfig(**base)


def run(engine: DetectorEngine, ys: list[float]) -> list[int]:
    """Feed scores through the OFC_theta feature and return the states."""
    j = L.FEATURE_NAMES.index("OFC_theta")
    states = []
    for y in ys:
        x = np.zeros((1, L.N_FEATURES))
        x[0, j] = y
        states.append(int(engine.update(x)[0]))
    return states


def test_score_is_weighted_normalised_sum_on_the_fixed_point_grid():
    c = config(inputs=("ACC_delta", "OFC_beta"), weight=(0.5, -0.25), norm_subtract=(10.0, 2.0), norm_multiply=(2.0, 4.0))
    x = np.zeros((1, L.N_FEATURES))
    x[0, L.FEATURE_NAMES.index("ACC_delta")] = 11.0
    x[0, L.FEATURE_NAMES.index("OFC_beta")] = 3.0
    y = DetectorEngine([c]).score(x)
    assert y[0] == pytest.approx(0.5 * 2.0 * 1.0 - 0.25 * 4.0 * 1.0)
    assert to_fixed_point(0.123456, 8) == round(0.123456 * 256) / 256


def test_single_threshold_with_zero_counts_follows_the_score_at_once():
    assert run(DetectorEngine([config()]), [-1, 1, 1, -1, 1]) == [0, 1, 1, 0, 1]


def test_onset_needs_onset_plus_one_consecutive_updates():
    eng = DetectorEngine([config(onset_updates=2)])
    # Two high updates are not enough; an interruption restarts the count; the third in a row switches.
    assert run(eng, [1, 1, -1, 1, 1, 1, 1]) == [0, 0, 0, 0, 0, 1, 1]


def test_termination_needs_termination_plus_one_updates():
    eng = DetectorEngine([config(termination_updates=1)])
    assert run(eng, [1, -1, 1, -1, -1, -1]) == [1, 1, 1, 1, 0, 0]


def test_blanking_ignores_updates_after_a_change_rounded_up_to_updates():
    # 45 FFT intervals of 500 ms = 22.5 s -> 1 update of 30 s blanked after each change.
    c = config(blank_fft_intervals=45)
    assert c.blank_updates == 1
    assert config(blank_fft_intervals=61).blank_updates == 2
    assert run(DetectorEngine([c]), [1, -1, -1, 1, 1]) == [1, 1, 0, 0, 1]


def test_holdoff_ignores_the_first_updates():
    assert run(DetectorEngine([config(holdoff_updates=2)]), [1, 1, 1]) == [0, 0, 1]


def test_dual_threshold_has_three_states():
    c = config(threshold_low=0.0, threshold_high=1.0, dual_threshold=True)
    assert run(DetectorEngine([c]), [-0.5, 0.5, 1.5, 0.5, -0.5]) == [0, 1, 2, 1, 0]


def test_masked_slots_are_not_updated():
    eng = DetectorEngine([config(), config()])
    x = np.full((2, L.N_FEATURES), 1.0)
    state = eng.update(x, mask=np.array([True, False]))
    assert state.tolist() == [1, 0]


def test_update_measured_equals_the_update_of_the_measured_slots():
    """update_measured is update_in_place masked by elapsed_s > 0; with nothing measured nothing changes."""
    configs = [config(onset_updates=1, termination_updates=2, blank_fft_intervals=60),
               config(threshold_low=-0.5, threshold_high=0.5, dual_threshold=True), config(holdoff_updates=2)] * 2
    fast, plain = DetectorEngine(configs), DetectorEngine(configs)
    rng = np.random.default_rng(1)
    elapsed_runs = [np.zeros(6), np.array([0.0, 30, 0, 30, 30, 0]), np.full(6, 60.0)]
    for k in range(40):
        x = rng.normal(size=(6, L.N_FEATURES))
        elapsed = elapsed_runs[min(k, 2)]
        measured = elapsed > 0
        assert fast.update_measured(x, elapsed) == bool(measured.any())
        if measured.any():
            plain.update_in_place(x, mask=measured)
        for name in ("state", "count", "pending", "blank_left", "holdoff_left", "last_score"):
            assert np.array_equal(getattr(fast, name), getattr(plain, name)), name


@pytest.mark.parametrize(
    "kw",
    [
        {"inputs": ("ACC_delta",) * 5, "weight": (1.0,) * 5, "norm_subtract": (0.0,) * 5, "norm_multiply": (1.0,) * 5},
        {"inputs": ("nope",)},
        {"weight": (1.0, 2.0)},
        {"threshold_low": 1.0, "threshold_high": 0.0, "dual_threshold": True},
        {"onset_updates": -1},
    ],
)
def test_malformed_configs_are_refused(kw):
    with pytest.raises(PainloopError) as err:
        config(**kw)
    assert err.value.code == "PL-DETECTOR-CONFIG"


def test_update_period_must_equal_the_simulator_step():
    c = config()  # 500 ms x 60 = 30 s
    with pytest.raises(PainloopError) as err:
        DetectorEngine([c], dt_s=60.0)
    assert err.value.code == "PL-DETECTOR-CONFIG"
