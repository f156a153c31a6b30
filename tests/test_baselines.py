"""The open-loop baselines' compiled decisions give the actions of their array formulas."""

from __future__ import annotations

import numpy as np

from agents.baselines import Cycling, RandomOnOff
from agents.policy import PatientContext
from simenv import load_preset


def contexts(n: int) -> list[PatientContext]:
    return [PatientContext(p.uid, p.cohort, p.index, p.params, None) for p in load_preset("test").sample(n)]


def test_cycling_is_on_for_the_first_on_steps_of_each_period():
    pol = Cycling("cycling", on_s=90.0, off_s=60.0)
    pol.reset(contexts(3))
    pol.t[:] = [0, 2, 4]  # slots at different points of their schedule
    t = pol.t.copy()
    for _ in range(12):
        expected = (t % 5 < 3).astype(np.int64)
        action = pol.act(np.zeros((3, 1)), {})
        t += 1
        assert action.dtype == np.int64 and np.array_equal(action, expected)
    assert np.array_equal(pol.t, t)


def test_random_on_off_follows_its_two_state_chain():
    pol = RandomOnOff("random", duty=0.3, mean_on_s=120.0, seed=4)
    pol.reset(contexts(5))
    twin = RandomOnOff("random", duty=0.3, mean_on_s=120.0, seed=4)
    twin.reset(contexts(5))
    on = twin.on.copy()
    for _ in range(600):  # past a chunk of pre-drawn uniforms
        u = twin._uniforms()
        on = np.where(on, u >= twin.p_off, u < twin.p_on)
        action = pol.act(np.zeros((5, 1)), {})
        assert action.dtype == np.int64 and np.array_equal(action, on.astype(np.int64))
