"""Drawing the next noise chunks on a worker thread changes no value, and never hangs or hides an error."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simenv.noise
from simenv import layout as L
from simenv.cohort import load_preset
from simenv.core import BatchedCore
from simenv.errors import PainloopError
from simenv.noise import NOISE_THREAD_ENV, PREFETCH_MIN_SLOTS, NoiseStreams, prefetch_wanted

N_SLOTS = 5
UIDS = [101, 202, 303]

# One operation: ("advance", steps) or ("start", slots, key index per slot).
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 9)),
        st.tuples(
            st.just("start"),
            st.lists(st.integers(0, N_SLOTS - 1), min_size=1, max_size=N_SLOTS, unique=True),
            st.integers(0, 10_000),
        ),
    ),
    min_size=1,
    max_size=40,
)


def _replay(ops, prefetch: bool, chunk: int) -> list[np.ndarray]:
    """Each slot's draws at every step, and every initial draw, under ``ops``."""
    ns = NoiseStreams(N_SLOTS, chunk_steps=chunk, prefetch=prefetch)
    seen = list(ns.start_many(range(N_SLOTS), [7] * N_SLOTS, [UIDS[s % 3] for s in range(N_SLOTS)], [0] * N_SLOTS))
    for op in ops:
        if op[0] == "advance":
            for _ in range(op[1]):
                seen.append(ns.normals[np.arange(N_SLOTS), ns.position].copy())
                seen.append(ns.uniforms[np.arange(N_SLOTS), ns.position].copy())
                ns.advance()
        else:
            slots, salt = op[1], op[2]
            # Keys repeat across slots (shared streams: leaders and followers) and across restarts.
            keys = [(7, UIDS[(salt + k) % 3], (salt >> 3) % 2) for k in range(len(slots))]
            z, u = ns.start_many(slots, *zip(*keys, strict=True))
            seen += [z, u]
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, chunk=st.integers(1, 6))
def test_the_worker_thread_draws_exactly_what_drawing_in_place_gives(ops, chunk):
    """Refills, restarts of some slots mid-chunk, followers whose leader restarts: same values."""
    in_place = _replay(ops, prefetch=False, chunk=chunk)
    threaded = _replay(ops, prefetch=True, chunk=chunk)
    assert len(in_place) == len(threaded)
    for a, b in zip(in_place, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_core_trajectory_is_the_same_with_and_without_the_thread():
    n = PREFETCH_MIN_SLOTS + 6
    patients = load_preset("test").sample(n)
    runs = []
    for prefetch in (False, True):
        core = BatchedCore(n)
        core.noise = NoiseStreams(n, chunk_steps=7, prefetch=prefetch)
        core.reset_slots(range(n), patients, [3] * n, [0] * n)
        outputs = []
        for step in range(40):
            if step == 17:  # some slots start a new episode mid-chunk
                core.reset_slots([2, 5, 11], [patients[2], patients[5], patients[11]], [3, 3, 3], [1, 1, 1])
            outputs.append(core.step(np.where(np.arange(n) % 3 == step % 3, core.amplitude_max_ma, 0.0)).copy())
        runs.append((np.array(outputs), core.state.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_the_environment_variable_chooses_and_a_bad_value_names_the_allowed_ones(monkeypatch):
    monkeypatch.setattr(simenv.noise, "usable_cores", lambda: 2)
    monkeypatch.delenv(NOISE_THREAD_ENV, raising=False)
    assert prefetch_wanted(PREFETCH_MIN_SLOTS) and not prefetch_wanted(PREFETCH_MIN_SLOTS - 1)
    monkeypatch.setattr(simenv.noise, "usable_cores", lambda: 1)
    assert not prefetch_wanted(10_000)  # one core: nothing to overlap with
    monkeypatch.setenv(NOISE_THREAD_ENV, "1")
    assert prefetch_wanted(1)
    monkeypatch.setenv(NOISE_THREAD_ENV, "0")
    monkeypatch.setattr(simenv.noise, "usable_cores", lambda: 8)
    assert not prefetch_wanted(10_000)
    monkeypatch.setenv(NOISE_THREAD_ENV, "yes")
    with pytest.raises(PainloopError, match="PAINLOOP_NOISE_THREAD='yes'; allowed: auto .* 1 .* 0") as err:
        NoiseStreams(4)
    assert err.value.code == "PL-ENV-ARG"


def test_an_error_on_the_worker_thread_reaches_the_caller(monkeypatch):
    ns = NoiseStreams(2, chunk_steps=3, prefetch=True)
    ns.start_many([0, 1], [1, 1], [5, 6], [0, 0])
    ns.wait_for_draws()

    def broken(*_):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(ns, "_draw", broken)
    ns.advance(3)  # the refill switches rows and queues the next draws, which fail
    with pytest.raises(RuntimeError, match="drawing failed"):
        ns.advance(3)


def _child_draws(queue) -> None:
    ns = NoiseStreams(3, chunk_steps=2, prefetch=True)
    ns.start_many([0, 1, 2], [4, 4, 4], [1, 2, 3], [0, 0, 0])
    values = []
    for _ in range(9):
        values.append(ns.normals[np.arange(3), ns.position, 0].copy())
        ns.advance()
    queue.put(np.array(values))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_draws_its_own_noise_without_hanging():
    parent = NoiseStreams(3, chunk_steps=2, prefetch=True)
    parent.start_many([0, 1, 2], [4, 4, 4], [1, 2, 3], [0, 0, 0])  # a draw is queued on the thread
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_draws, args=(queue,), daemon=True)
    child.start()
    try:
        values = queue.get(timeout=30)  # a child waiting on a thread it does not have never answers
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    expected = []
    for _ in range(9):
        expected.append(parent.normals[np.arange(3), parent.position, 0].copy())
        parent.advance()
    np.testing.assert_array_equal(values, np.array(expected))
    assert values.shape == (9, 3) and L.N_NORMALS > 0
