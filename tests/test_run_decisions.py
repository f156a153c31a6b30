"""PainStimBatch.run_decisions: many decisions in one compiled call, the same bits as a loop of step_arrays."""

from __future__ import annotations

import numpy as np
import pytest

from simenv.batch import PainStimBatch
from simenv.cohort import load_preset
from simenv.errors import PainloopError
from simenv.settings import EnvSettings


def _batch(horizon_days: float = 1.0) -> PainStimBatch:
    batch = PainStimBatch(load_preset("test").sample(3) * 2, EnvSettings(horizon_days=horizon_days))
    batch.reset(seed=7)
    return batch


def _table(n_decisions: int, n_slots: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n_decisions, n_slots)) * 2.0


@pytest.mark.parametrize("n_decisions", [1, 37, 1500])  # 1500 decisions are more than a noise chunk holds (1024 steps): the loop runs
def test_run_decisions_equals_a_loop_of_step_arrays_bit_for_bit(n_decisions):
    a, b = _batch(), _batch()
    table = _table(n_decisions, a.n)
    rewards = a.run_decisions(table)
    loop = np.stack([b.step_arrays(None, row, observe=False)[1].copy() for row in table], axis=1)
    np.testing.assert_array_equal(rewards, loop)
    np.testing.assert_array_equal(a.core.state, b.core.state)
    np.testing.assert_array_equal(a.last_info, b.last_info)
    np.testing.assert_array_equal(a.last_terms, b.last_terms)
    follow = _table(5, a.n, seed=1)  # and the streams continue alike
    for row in follow:
        np.testing.assert_array_equal(a.step_arrays(None, row)[0], b.step_arrays(None, row)[0])


def test_run_decisions_near_the_horizon_takes_the_loop_and_truncates_alike():
    a, b = _batch(horizon_days=0.01), _batch(horizon_days=0.01)  # 28.8 decisions of 30 s: the run ends inside
    table = _table(29, a.n)
    np.testing.assert_array_equal(a.run_decisions(table),
                                  np.stack([b.step_arrays(None, r, observe=False)[1].copy() for r in table], axis=1))
    np.testing.assert_array_equal(a.core.state, b.core.state)


def test_an_unsafe_amplitude_is_refused_after_the_decisions_before_it():
    a, b = _batch(), _batch()
    table = _table(10, a.n)
    table[4, 2] = 1e6
    with pytest.raises(PainloopError, match="slot 2"):
        a.run_decisions(table)
    for row in table[:4]:
        b.step_arrays(None, row, observe=False)
    np.testing.assert_array_equal(a.core.state, b.core.state)  # the first four ran, nothing of the fifth
    with pytest.raises(PainloopError, match="PL-ACTION-INVALID"):
        a.run_decisions(np.zeros((3, a.n + 1)))
