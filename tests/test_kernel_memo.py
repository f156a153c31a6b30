"""The kernel's per-slot memo of charge-dependent values never changes a result.

``step_kernel`` keeps each slot's last three distinct charges per phase with
their dose response and mild-event probability. A core whose memo is emptied
before every step computes everything afresh; both must agree bit for bit,
whatever the amplitudes (few repeated levels, so hits and evictions happen,
and slow ramps, so charges between levels appear).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simenv import layout as L
from simenv.cohort import load_preset
from simenv.core import BatchedCore

PATIENTS = load_preset("test").sample(3)


def _core(ramp_ma_per_s: float) -> BatchedCore:
    core = BatchedCore(len(PATIENTS), dt_s=30.0)
    core.reset_slots(range(len(PATIENTS)), PATIENTS, [7] * len(PATIENTS), [0] * len(PATIENTS))
    core.set_ramp_rates(slice(None), np.full(len(PATIENTS), ramp_ma_per_s), np.full(len(PATIENTS), ramp_ma_per_s))
    return core


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    levels=st.lists(st.integers(0, 5), min_size=20, max_size=120),
    ramp_ma_per_s=st.sampled_from([0.01, 0.05, 1.0]),
)
def test_memo_hits_return_what_a_computation_gives(levels, ramp_ma_per_s):
    memo, fresh = _core(ramp_ma_per_s), _core(ramp_ma_per_s)
    ceiling = memo.amplitude_max_ma
    for level in levels:
        target = ceiling * level / 5.0
        fresh.charge_memo[:] = np.nan  # every value computed afresh
        out_memo = memo.step(target).copy()
        out_fresh = fresh.step(target)
        np.testing.assert_array_equal(out_memo, out_fresh)
        np.testing.assert_array_equal(memo.state, fresh.state)
        np.testing.assert_array_equal(memo.features_db, fresh.features_db)
    assert np.isfinite(memo.state[:, L.S_ENERGY_STIM_J]).all()


def test_memo_is_emptied_when_a_slot_restarts():
    core = _core(1.0)
    for _ in range(5):
        core.step(core.amplitude_max_ma.copy())
    assert np.isfinite(core.charge_memo[:, 0]).all()
    core.reset_slots([1], [PATIENTS[1]], [3], [1])
    assert np.isnan(core.charge_memo[1]).all() and np.isfinite(core.charge_memo[0, 0])
