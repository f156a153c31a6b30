"""Determinism and seeding as DESIGN.md specifies (SeedSequence([seed, patient_uid, episode]))."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import ENV_ID, default_patients, run_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simenv.calibration
import simenv.cohort
from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import load_preset, stable_uid
from simenv.core import BatchedCore
from simenv.info_layout import STEP_INFO
from simenv.noise import NoiseStreams
from simenv.settings import EnvSettings

HORIZON_DAYS = 0.05  # 144 steps of 30 s
SEED = 11


def action_sequence(mode: str, patient_index: int, steps: int) -> list:
    """A fixed, patient-specific action sequence (so slots do different things)."""
    rng = np.random.default_rng([patient_index, 99])
    if mode == "on_off":
        return list(rng.integers(0, 2, size=steps))
    if mode == "levels":
        return list(rng.integers(0, 6, size=steps))
    return list(rng.uniform(-1, 1, size=(steps, 1)).astype(np.float32))


def single_trajectory(mode: str, patient_index: int, seed: int = SEED, steps: int = 144):
    env = gym.make(ENV_ID, patient_index=patient_index, action_mode=mode, horizon_days=HORIZON_DAYS)
    obs0, _ = env.reset(seed=seed)
    obs, rewards, pains = [obs0], [], []
    for a in action_sequence(mode, patient_index, steps):
        o, r, _, _, info = env.step(a)
        obs.append(o)
        rewards.append(r)
        pains.append(info["pain_nrs"])
    return np.array(obs), np.array(rewards), np.array(pains)


def batched_actions(mode: str, n: int, steps: int) -> np.ndarray:
    seqs = [action_sequence(mode, p, steps) for p in range(n)]
    return np.stack([np.asarray(s) for s in seqs], axis=1)  # (steps, n[, 1])


@pytest.mark.parametrize("mode", ["on_off", "continuous"])
def test_same_seed_same_trajectory(mode):
    a = single_trajectory(mode, 0)
    b = single_trajectory(mode, 0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = single_trajectory(mode, 0, seed=SEED + 1)
    assert not np.array_equal(a[2], c[2])


def vector_trajectory(mode: str, n: int, steps: int = 144):
    venv = gym.make_vec(
        ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", action_mode=mode,
        horizon_days=HORIZON_DAYS,
    )
    obs0, _ = venv.reset(seed=SEED)
    actions = batched_actions(mode, n, steps)
    obs, rewards, pains = [obs0], [], []
    for t in range(steps):
        o, r, _, truncated, info = venv.step(actions[t])
        obs.append(o)
        rewards.append(r)
        pains.append(info["pain_nrs"])
    assert truncated.all()
    obs, rewards, pains = np.array(obs), np.array(rewards), np.array(pains)
    return obs, rewards, pains


@pytest.mark.parametrize("mode", ["on_off", "levels", "continuous"])
@pytest.mark.parametrize("n", [3, 5])
def test_make_vec_slot_equals_single_env_bit_for_bit(mode, n):
    obs, rewards, pains = vector_trajectory(mode, n)
    for p in {0, n - 1}:
        s_obs, s_rewards, s_pains = single_trajectory(mode, p)
        np.testing.assert_array_equal(obs[:, p], s_obs)
        np.testing.assert_array_equal(pains[:, p], s_pains)
        # The reward agrees to rounding here; bit for bit is the next test.
        np.testing.assert_allclose(rewards[:, p], s_rewards, rtol=1e-15, atol=0)


@pytest.mark.parametrize("n", [3, 5])
def test_make_vec_slot_reward_equals_single_env_bit_for_bit(n):
    _, rewards, _ = vector_trajectory("on_off", n)
    mismatched = []
    for p in range(n):
        s_rewards = single_trajectory("on_off", p)[1]
        mismatched.append(int(np.sum(rewards[:, p] != s_rewards)))
    assert mismatched == [0] * n


@pytest.mark.parametrize("n", [3, 5])
def test_painstimbatch_slot_equals_single_env_in_any_slot_order(n):
    steps = 144
    # Patients in reverse order: slot j holds patient n-1-j.
    patients = default_patients(n)[::-1]
    batch = PainStimBatch(patients, EnvSettings(horizon_days=HORIZON_DAYS))
    obs0, _ = batch.reset(seed=SEED)
    actions = batched_actions("on_off", n, steps)[:, ::-1]
    obs, pains = [obs0], []
    for t in range(steps):
        o, _, _, _, info = batch.step(actions[t])
        obs.append(o)
        pains.append(info["pain_nrs"])
    s_obs, _, s_pains = single_trajectory("on_off", n - 1, steps=steps)
    np.testing.assert_array_equal(np.array(obs)[:, 0], s_obs)
    np.testing.assert_array_equal(np.array(pains)[:, 0], s_pains)


def test_sb3_adapter_seed_maps_onto_the_same_scheme():
    from agents.sb3_vec_env import PainStimSB3VecEnv

    venv = PainStimSB3VecEnv(default_patients(3), EnvSettings(horizon_days=HORIZON_DAYS))
    assert venv.seed(SEED) == [SEED] * 3
    obs = [venv.reset()]
    actions = batched_actions("on_off", 3, 20)
    for t in range(20):
        obs.append(venv.step(actions[t])[0])
    s_obs = single_trajectory("on_off", 2, steps=20)[0]
    np.testing.assert_array_equal(np.array(obs)[:, 2], s_obs)


def test_calibration_normalisation_does_not_depend_on_batch():
    patients = default_patients(3)
    saved = dict(simenv.calibration._STORE)
    try:
        simenv.calibration._STORE.clear()
        together = simenv.calibration.normalisation_for(patients, 60.0, days=0.5)
        simenv.calibration._STORE.clear()
        alone = simenv.calibration.normalisation_for([patients[2]], 60.0, days=0.5)[0]
    finally:
        simenv.calibration._STORE.clear()
        simenv.calibration._STORE.update(saved)
    np.testing.assert_array_equal(together[2].mean_db, alone.mean_db)
    np.testing.assert_array_equal(together[2].sd_db, alone.sd_db)


# ----------------------------------------------------------------- common random numbers
def test_two_controllers_see_identical_exogenous_noise_in_the_core():
    patient = default_patients(1)[0]
    n, steps = 2, 2880  # one day
    core = BatchedCore(n, dt_s=30.0)
    core.reset_slots(range(n), [patient, patient], [SEED, SEED], [0, 0])
    on_off = np.array([0.0, 3.0])  # slot 0 always off, slot 1 always on
    drive = np.empty((steps, n))
    reported = np.empty((steps, n), dtype=bool)
    pain = np.empty((steps, n))
    for t in range(steps):
        pos = core.noise.position
        np.testing.assert_array_equal(core.noise.normals[0, pos[0]], core.noise.normals[1, pos[1]])
        np.testing.assert_array_equal(core.noise.uniforms[0, pos[0]], core.noise.uniforms[1, pos[1]])
        out = core.step(on_off)
        drive[t] = out[:, L.O_DRIVE_NRS]
        pain[t] = out[:, L.O_PAIN_NRS]
        reported[t] = ~np.isnan(out[:, L.O_REPORT_NRS])
    np.testing.assert_array_equal(drive[:, 0], drive[:, 1])
    # Prompts and answers are exogenous: reports come at the same steps, only their value differs.
    np.testing.assert_array_equal(reported[:, 0], reported[:, 1])
    assert reported[:, 0].sum() >= 1
    assert np.mean(pain[:, 1]) < np.mean(pain[:, 0]) - 0.5


def test_two_controllers_see_identical_pain_drive_through_the_env():
    def trace(action):
        env = gym.make(ENV_ID, patient_index=1, horizon_days=HORIZON_DAYS)
        env.reset(seed=SEED)
        drives, reports = [], []
        for _ in range(144):
            _, _, _, _, info = env.step(action)
            drives.append(info["pain_drive_nrs"])
            reports.append(info["self_report"] is not None)
        return np.array(drives), np.array(reports)

    off_drive, off_reports = trace(0)
    on_drive, on_reports = trace(1)
    np.testing.assert_array_equal(off_drive, on_drive)
    np.testing.assert_array_equal(off_reports, on_reports)


def test_noise_streams_are_invariant_to_chunk_length():
    uid = load_preset("default").patient(0).uid
    steps = 50
    draws = {}
    for chunk in (1, 7, 16, 1024):
        ns = NoiseStreams(2, chunk_steps=chunk)
        init = [ns.start(slot, SEED, uid + slot, 3) for slot in range(2)]
        normals, uniforms = [], []
        for _ in range(steps):
            normals.append(ns.normals[np.arange(2), ns.position].copy())
            uniforms.append(ns.uniforms[np.arange(2), ns.position].copy())
            ns.advance()
        draws[chunk] = (init, np.array(normals), np.array(uniforms))
    ref_init, ref_n, ref_u = draws[1024]
    assert ref_n.shape == (steps, 2, L.N_NORMALS) and ref_u.shape == (steps, 2, L.N_UNIFORMS)
    assert not np.array_equal(ref_n[:, 0], ref_n[:, 1])  # slots differ by uid
    for chunk, (init, n_, u_) in draws.items():
        for (z0, u0), (z1, u1) in zip(init, ref_init, strict=True):
            np.testing.assert_array_equal(z0, z1)
            np.testing.assert_array_equal(u0, u1)
        np.testing.assert_array_equal(n_, ref_n, err_msg=f"chunk {chunk}")
        np.testing.assert_array_equal(u_, ref_u, err_msg=f"chunk {chunk}")


def test_core_trajectory_is_invariant_to_noise_chunk_length():
    patients = default_patients(2)
    reference = run_core(patients, 3.0, days=0.05, seed=SEED)["outputs"]
    core = BatchedCore(2, dt_s=30.0)
    core.noise = NoiseStreams(2, chunk_steps=5)
    core.reset_slots(range(2), patients, [SEED, SEED], [0, 0])
    outputs = np.array([core.step(np.full(2, 3.0)).copy() for _ in range(reference.shape[0])])
    np.testing.assert_array_equal(outputs, reference)


# ----------------------------------------------------------------- episodes
def test_reset_without_seed_advances_episode_and_reseed_reproduces_episode_0():
    env = gym.make(ENV_ID, patient_index=0, horizon_days=0.01)

    def episode(seed=None):
        _, info0 = env.reset(seed=seed)
        pains = []
        while True:
            _, _, _, truncated, info = env.step(1)
            pains.append(info["pain_nrs"])
            if truncated:
                return info0["episode"], np.array(pains)

    k0, first = episode(SEED)
    k1, second = episode()
    k2, third = episode()
    k3, again = episode(SEED)
    assert (k0, k1, k2, k3) == (0, 1, 2, 0)
    assert not np.array_equal(first, second)
    assert not np.array_equal(second, third)
    np.testing.assert_array_equal(first, again)


# ----------------------------------------------------------------- patients
def test_first_n_patients_of_a_larger_draw_equal_the_n_patient_cohort():
    simenv.cohort._cached_patient.cache_clear()
    small = load_preset("default").sample(5)
    simenv.cohort._cached_patient.cache_clear()
    big = load_preset("default").sample(12)
    simenv.cohort._cached_patient.cache_clear()
    reverse = [load_preset("default").patient(i) for i in reversed(range(12))][::-1]
    assert [p.uid for p in small] == [p.uid for p in big[:5]] == [p.uid for p in reverse[:5]]
    assert [p.params for p in small] == [p.params for p in big[:5]] == [p.params for p in reverse[:5]]
    assert small[0] is not big[0]  # really drawn twice, compared by value
    assert len({p.uid for p in big}) == 12
    assert len({p.params.relief.carryover_tau_min for p in big}) == 12  # heterogeneous


def test_patient_uid_is_a_stable_hash_of_preset_name_seed_and_index():
    p = load_preset("default").patient(0)
    assert p.uid == stable_uid("default", 1, 0) == 7955444586532956571
    code = "import simenv.cohort as c; print(c.load_preset('default').patient(3).uid)"
    uids = set()
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        uids.add(int(out.stdout.strip()))
    assert uids == {load_preset("default").patient(3).uid}


def test_train_validation_test_presets_share_no_uid():
    uids = {name: {p.uid for p in load_preset(name).sample(500)} for name in ("train", "validation", "test")}
    assert all(len(u) == 500 for u in uids.values())
    assert not uids["train"] & uids["validation"]
    assert not uids["train"] & uids["test"]
    assert not uids["validation"] & uids["test"]
    seeds = {load_preset(name).seed for name in ("train", "validation", "test")}
    assert len(seeds) == 3


def test_followers_keep_their_stream_when_the_leader_restarts():
    """Slots sharing a stream read the leader's buffer row; a leader's restart must not change theirs."""
    alone = NoiseStreams(1, chunk_steps=7)
    alone.start(0, SEED, 11, 0)
    shared = NoiseStreams(3, chunk_steps=7)
    shared.start_many([0, 1, 2], [SEED] * 3, [11] * 3, [0] * 3)
    for t in range(30):
        expected = alone.normals[0, alone.position[0]]
        for slot in (1, 2):
            np.testing.assert_array_equal(shared.normals[slot, shared.position[slot]], expected)
        alone.advance()
        shared.advance()
        if t == 10:
            shared.start(0, SEED, 99, 1)  # the leader starts another patient's episode
    assert shared.leader[0] == 0 and shared.leader[1] == shared.leader[2] != 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk=st.integers(1, 12),
    steps_per_decision=st.integers(1, 9),
    debug_checks=st.booleans(),
)
def test_decisions_give_the_same_trajectory_whatever_the_noise_chunks(chunk, steps_per_decision, debug_checks):
    """A decision runs its steps in one compiled call per noise chunk: cut anywhere, same results.

    The reference takes one 30 s step per decision with default chunks and
    holds each action for ``steps_per_decision`` steps; the batch under test
    takes the same actions as decisions of ``steps_per_decision`` steps over
    chunks of ``chunk`` steps, so refills fall inside decisions. The horizon
    (31 steps) is no multiple of most decision lengths, so the last decision
    is cut short too.
    """
    patients = default_patients(2)
    horizon_days = 31 * 30.0 / 86_400
    reference = PainStimBatch(patients, EnvSettings(horizon_days=horizon_days))
    tested = PainStimBatch(
        patients,
        EnvSettings(
            horizon_days=horizon_days, decision_interval_s=30.0 * steps_per_decision, debug_checks=debug_checks
        ),
    )
    tested.core.noise = NoiseStreams(2, chunk_steps=chunk)
    reference.reset(seed=SEED)
    tested.reset(seed=SEED)
    rng = np.random.default_rng(chunk * 100 + steps_per_decision)
    truncated = np.zeros(2, dtype=bool)
    energy = np.zeros(2)
    while not truncated.all():
        action = rng.integers(0, 2, size=2)
        obs, _, _, truncated = tested.step_arrays(action)
        for _ in range(steps_per_decision):
            ref_obs, _, _, ref_truncated = reference.step_arrays(action)
            energy += reference.last_info[:, STEP_INFO.index("stim_energy_j")]
            if ref_truncated.all():
                break
        np.testing.assert_array_equal(tested.core.state, reference.core.state)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(truncated, ref_truncated)
        np.testing.assert_allclose(tested.last_info[:, STEP_INFO.index("stim_energy_j")], energy, rtol=1e-12)
        energy[:] = 0.0
