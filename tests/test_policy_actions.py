"""A policy that returns NaN, inf, out-of-range or misshapen actions stops the evaluation with a clear error.

Never a silent clip: the error names the controller, the slot, the value
and what the action mode allows (``agents.action_check``). Property-based:
any invalid value planted in any slot at any decision is caught.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.action_check import checked_action
from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from agents.policy import BasePolicy
from simenv.batch import EnvSettings
from simenv.cohort import resolve_patients
from simenv.errors import PainloopError

PATIENTS = resolve_patients("default", n_patients=3)
SETTINGS = EnvSettings(action_mode="on_off", dt_s=30.0, horizon_days=0.05, calibration_days=0.5)


class Planted(BasePolicy):
    """Valid actions, except ``value`` in ``slot`` at decision ``at``."""

    def __init__(self, mode: str, value, slot: int, at: int, n_levels: int | None = None) -> None:
        super().__init__("planted")
        self.action_mode = mode
        self.n_levels = n_levels
        self.value, self.slot, self.at, self.t = value, slot, at, 0

    def act(self, observations, info):
        a = np.zeros(self.n) if self.action_mode != "continuous" else -np.ones(self.n)
        if self.t == self.at:
            a = a.astype(float)
            a[self.slot] = self.value
        self.t += 1
        return a


def run(policy: BasePolicy) -> None:
    evaluate([ControllerSpec("off", "off"), ControllerSpec("bad", "policy", factory=lambda: policy)], PATIENTS,
             SETTINGS, seed=0, trace_patient=-1)


INVALID = {
    "on_off": [math.nan, math.inf, -1.0, 2.0, 0.5],
    "levels": [math.nan, -1.0, 6.0, 2.5],
    "continuous": [math.nan, -math.inf, 1.5, -1.01],
    "amplitude_ma": [math.nan, math.inf, -0.1],
}


@pytest.mark.parametrize(("mode", "value"), [(m, v) for m, vs in INVALID.items() for v in vs])
def test_an_invalid_action_stops_the_evaluation_naming_controller_slot_and_value(mode, value):
    with pytest.raises(PainloopError) as err:
        run(Planted(mode, value, slot=2, at=3, n_levels=6 if mode == "levels" else None))
    msg = str(err.value)
    assert err.value.code == "PL-ACTION-INVALID"
    assert "controller 'bad'" in msg and "slot 2" in msg and "not clipped" in msg and "allowed:" in msg


def test_an_amplitude_above_the_safe_ceiling_is_refused_not_clipped():
    with pytest.raises(PainloopError) as err:
        run(Planted("amplitude_ma", 1e3, slot=1, at=0))
    assert err.value.code == "PL-SAFETY-AMPLITUDE" and "controller 'bad'" in str(err.value)
    assert "slot 1" in str(err.value) and "not clipped" in str(err.value)


@pytest.mark.parametrize("action", [np.zeros(2), np.zeros((3, 2)), np.array(["on"] * 3), None])
def test_misshapen_actions_are_refused(action):
    with pytest.raises(PainloopError) as err:
        checked_action("bad", action, "on_off", None, 3)
    assert err.value.code == "PL-ACTION-INVALID" and "3 numbers" in str(err.value)


def test_valid_actions_pass_unchanged():
    assert checked_action("ok", np.array([0, 1, 1]), "on_off", None, 3).tolist() == [0, 1, 1]
    assert checked_action("ok", np.array([[0.25], [-1.0], [1.0]]), "continuous", None, 3).tolist() == [0.25, -1.0, 1.0]
    assert checked_action("ok", np.array([True, False, True]), "on_off", None, 3).tolist() == [1, 0, 1]
    assert checked_action("ok", np.array([0.0, 5.0, 3.0]), "levels", 6, 3).tolist() == [0.0, 5.0, 3.0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["on_off", "levels", "continuous", "amplitude_ma"]),
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=4, max_size=4),
)
def test_every_action_is_either_valid_or_refused(mode, values):
    """No value slips through: what passes is inside the action space, everything else raises."""
    a = np.array(values)
    try:
        out = checked_action("p", a, mode, 6, 4)
    except PainloopError as exc:
        assert exc.code == "PL-ACTION-INVALID"
        return
    assert np.all(np.isfinite(out))
    if mode == "on_off":
        assert set(out.tolist()) <= {0.0, 1.0}
    elif mode == "levels":
        assert np.all((out >= 0) & (out <= 5) & (out == np.round(out)))
    elif mode == "continuous":
        assert np.all(np.abs(out) <= 1.0 + 1e-6)
    else:
        assert np.all(out >= 0)
