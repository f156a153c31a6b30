"""Bad input raises one PainloopError with a code, naming the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import re

import gymnasium as gym
import numpy as np
import pytest
from conftest import ENV_ID, custom_patient, default_patients

from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import (
    available_presets,
    load_patient_yaml,
    load_preset,
    preset_from_mapping,
    resolve_patients,
)
from simenv.core import BatchedCore
from simenv.errors import NonFiniteStateError, PainloopError, UnsafeStimulationError
from simenv.params import (
    BiomarkerParams,
    PainParams,
    PatientParams,
    ReportParams,
    StimulationParams,
)
from simenv.reward import RewardWeights


def raises(code: str, *fragments: str):
    """Context manager: a PainloopError with ``code`` whose message contains every fragment."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(PainloopError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            if not suppressed:
                return False
            err = self.info.value
            assert err.code == code, f"expected {code}, got {err.code}: {err}"
            text = str(err)
            assert text.startswith(f"{code}: ")
            for fragment in fragments:
                assert fragment in text, f"{fragment!r} not in {text!r}"
            return suppressed

    return _Check()


# ----------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("group", "name", "value", "allowed"),
    [
        ("relief", "onset_tau_min", -1.0, "[0.1, 240]"),
        ("relief", "carryover_tau_min", -30.0, "[0.5, 2880]"),
        ("pain", "fast_tau_h", -2.6, "[0.05, 48]"),
        ("tolerance", "build_tau_days", -1.0, "[0.1, 365]"),
        ("biomarker", "noise_tau_s", 0.0, "[1, 3600]"),
    ],
)
def test_negative_time_constants_are_refused(group, name, value, allowed):
    with raises("PL-PARAM-RANGE", f"{group}.{name}={value:g}", allowed):
        PatientParams().replace(**{group: {name: value}})


@pytest.mark.parametrize("auc", [0.5, 1.0, 1.2, 0.3])
def test_auc_outside_open_interval_is_refused(auc):
    with raises("PL-PARAM-RANGE", f"biomarker.auc={auc:g}", "(0.5, 1)"):
        BiomarkerParams(auc=auc)


def test_auc_just_inside_the_interval_is_accepted():
    assert BiomarkerParams(auc=0.5001).auc == 0.5001
    assert BiomarkerParams(auc=0.999).auc == 0.999


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameter_is_refused(value):
    with raises("PL-PARAM-RANGE", "pain.baseline_nrs=", "[0, 10]"):
        PainParams(baseline_nrs=value)


def test_non_number_parameter_is_refused():
    with raises("PL-PARAM-TYPE", "pain.baseline_nrs='7'", "a number in [0, 10]"):
        PainParams(baseline_nrs="7")


def test_cross_field_checks():
    with raises("PL-PARAM-RANGE", "stimulation.on_amplitude_ma=4", "stimulation.amplitude_max_ma=3"):
        StimulationParams(on_amplitude_ma=4.0, amplitude_max_ma=3.0)
    with raises("PL-PARAM-RANGE", "reports.wake_hour=8", "two different clock hours"):
        ReportParams(wake_hour=8.0, sleep_hour=8.0)


# ----------------------------------------------------------------- safety
def test_amplitude_above_charge_density_limit_is_refused():
    # 20 mA * 100 us = 2 uC per phase over 0.06 cm^2 = 33.3 uC/cm^2 > 30; allowed <= 18 mA.
    with raises(
        "PL-SAFETY-CHARGE-DENSITY",
        "stimulation.amplitude_max_ma=20",
        "pulse_width_us=100",
        "33.3 uC/cm^2",
        "limit is 30 uC/cm^2",
        "amplitude <= 18 mA",
    ) as info:
        StimulationParams(amplitude_max_ma=20.0, pulse_width_us=100.0, contact_area_cm2=0.06)
    assert isinstance(info.value, UnsafeStimulationError)


@pytest.mark.parametrize("density_limit", [30.0, 100.0])
def test_setting_above_shannon_limit_alone_is_refused(density_limit):
    # DOMAIN.md: 10 mA, 450 us on 0.2 cm^2 -> Q = 4.5 uC, D = 22.5 uC/cm^2 (under the
    # density limit), k = log10(22.5) + log10(4.5) = 2.005 >= 1.85. The amplitude
    # ceiling is raised to 10 mA (default 5).
    q = 10.0 * 450e-3
    d = q / 0.2
    assert d == pytest.approx(22.5) and d < density_limit
    k = np.log10(d) + np.log10(q)
    assert k == pytest.approx(2.0, abs=0.01)
    with raises("PL-SAFETY-SHANNON", "stimulation.amplitude_max_ma=10", "k = 2.005", "density 22.5", "k >= 1.85") as info:
        StimulationParams(
            amplitude_max_ma=10.0,
            pulse_width_us=450.0,
            contact_area_cm2=0.2,
            charge_density_limit_uc_per_cm2=density_limit,
        )
    assert isinstance(info.value, UnsafeStimulationError)
    allowed = float(re.search(r"amplitude < ([0-9.]+) mA", str(info.value)).group(1))
    # Shannon: Q^2 / A < 10^1.85 -> Q < sqrt(0.2 * 10^1.85) = 3.76 uC -> I < 8.36 mA at 450 us.
    assert allowed == pytest.approx(np.sqrt(0.2 * 10**1.85) / 0.45, rel=1e-3)
    StimulationParams(amplitude_max_ma=8.3, pulse_width_us=450.0, contact_area_cm2=0.2)


@pytest.mark.parametrize(("amplitude", "pulse_width"), [(18.0, 100.0), (4.0, 450.0)])
def test_amplitude_exactly_at_the_charge_density_limit_is_accepted(amplitude, pulse_width):
    StimulationParams(amplitude_max_ma=amplitude, pulse_width_us=pulse_width, on_amplitude_ma=3.0)


def test_amplitude_above_ceiling_sent_to_core_is_refused_not_clipped():
    patients = default_patients(2)
    core = BatchedCore(2)
    core.reset_slots([0, 1], patients, [0, 0], [0, 0])
    with raises("PL-SAFETY-AMPLITUDE", "amplitude 5.5 mA", "slot 1", "stimulation.amplitude_max_ma=5", "refused"):
        core.step(np.array([3.0, 5.5]))
    assert core.state[:, L.S_STEPS].tolist() == [0.0, 0.0]  # nothing was simulated
    for bad in (np.array([np.nan, 1.0]), np.array([1.0, -0.5])):
        with raises("PL-ACTION-INVALID", "allowed: finite values >= 0 mA"):
            core.step(bad)
    with raises("PL-ACTION-INVALID", "shape (3,)", "allowed: (2,)"):
        core.step(np.zeros(3))


# ----------------------------------------------------------------- cohorts and patient files
def test_unknown_cohort_preset_lists_the_presets():
    names = available_presets()
    assert {"default", "train", "validation", "test"} <= set(names)
    with raises("PL-COHORT-UNKNOWN", "'nope'", *names):
        load_preset("nope")
    with raises("PL-COHORT-UNKNOWN", "'nope'", "default"):
        gym.make(ENV_ID, cohort="nope")


def test_bad_cohort_size_and_indices():
    with raises("PL-COHORT-SIZE", "cohort.n_patients=0", ">= 1"):
        load_preset("default").sample(0)
    with raises("PL-COHORT-SIZE", "patients=[]"):
        resolve_patients(patients=[])
    with raises("PL-COHORT-SIZE", "[-1]", ">= 0"):
        resolve_patients("default", patient_indices=[0, -1])


def test_bad_cohort_preset_spec():
    base = {"name": "custom", "seed": 5}
    with raises("PL-COHORT-SPEC", "'pain.nope'", "group.field"):
        preset_from_mapping({**base, "distributions": {"pain.nope": {"constant": 1}}}, "preset 'custom'")
    with raises("PL-COHORT-SPEC", "unknown key(s) ['sead']"):
        preset_from_mapping({**base, "sead": 1}, "preset 'custom'")
    preset = preset_from_mapping({**base, "distributions": {"pain.baseline_nrs": {"gauss": [7, 1]}}}, "preset 'custom'")
    with raises("PL-COHORT-SPEC", "'pain.baseline_nrs'", "exactly one of"):
        preset.patient(0)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "code", "fragments"),
    [
        ("relief: {carryover_tau_min: 30\n", "PL-PATIENT-YAML", ["not valid YAML"]),
        ("- 1\n- 2\n", "PL-PATIENT-YAML", ["expected a mapping"]),
        ("relief: 3\n", "PL-PATIENT-YAML", ["group 'relief' must be a mapping"]),
        ("reliefs: {carryover_tau_min: 30}\n", "PL-PARAM-UNKNOWN", ["'reliefs'", "relief", "pain"]),
        ("relief: {carryover_tau: 30}\n", "PL-PARAM-UNKNOWN", ["relief.carryover_tau", "carryover_tau_min"]),
        ("relief: {carryover_tau_min: -5}\n", "PL-PARAM-RANGE", ["relief.carryover_tau_min=-5", "[0.5, 2880]"]),
        ("biomarker: {auc: 1.2}\n", "PL-PARAM-RANGE", ["biomarker.auc=1.2", "(0.5, 1)"]),
    ],
)
def test_malformed_patient_yaml(tmp_path, text, code, fragments):
    path = write(tmp_path, "patient.yaml", text)
    with raises(code, *fragments, "patient.yaml") if code != "PL-PARAM-RANGE" else raises(code, *fragments):
        load_patient_yaml(path)


def test_missing_patient_file(tmp_path):
    with raises("PL-PATIENT-YAML", "cannot be read", "missing.yaml"):
        load_patient_yaml(tmp_path / "missing.yaml")


def test_custom_patient_loads_from_yaml_with_a_content_based_uid(tmp_path):
    text = "relief: {carryover_tau_min: 90, max_relief_fraction: 0.6}\npain: {baseline_nrs: 8.0}\n"
    a = load_patient_yaml(write(tmp_path, "a.yaml", text))
    b = load_patient_yaml(write(tmp_path, "b.yaml", text))
    c = load_patient_yaml(write(tmp_path, "c.yaml", text.replace("90", "91")))
    assert a.params.relief.carryover_tau_min == 90.0
    assert a.params.relief.max_relief_fraction == 0.6
    assert a.params.pain.baseline_nrs == 8.0
    assert a.params.tolerance == PatientParams().tolerance  # unset groups keep defaults
    assert a.uid == b.uid != c.uid
    assert a.uid == load_patient_yaml(tmp_path / "a.yaml").uid
    assert load_patient_yaml(write(tmp_path, "empty.yaml", "")).params == PatientParams()
    # The file drives an environment.
    env = gym.make(ENV_ID, patient=str(tmp_path / "a.yaml"), horizon_days=0.01)
    _, info = env.reset(seed=0)
    assert info["patient_uid"] == a.uid


# ----------------------------------------------------------------- environment arguments
@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"foo": 1}, ["['foo']", "action_mode", "horizon_days"]),
        ({"action_mode": "bang"}, ["action_mode='bang'", "on_off", "levels", "continuous"]),
        ({"decision_interval_s": 45}, ["decision_interval_s=45", "whole multiple of dt_s=30"]),
        ({"decision_interval_s": 0}, ["decision_interval_s=0", "positive"]),
        ({"decision_interval_s": -30}, ["decision_interval_s=-30", "positive"]),
        ({"dt_s": 1}, ["dt_s=1", "5 to 600"]),
        ({"horizon_days": 0}, ["horizon_days=0"]),
        ({"initial_state": "warm"}, ["initial_state='warm'", "naive", "randomized"]),
        ({"n_levels": 1}, ["n_levels=1", "2 to 256"]),
    ],
)
def test_bad_env_arguments(kwargs, fragments):
    with raises("PL-ENV-ARG", *fragments):
        gym.make(ENV_ID, **kwargs)


def test_bad_vector_env_arguments():
    with raises("PL-ENV-ARG", "num_envs=3"):
        gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", patient_indices=[0, 1])
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", horizon_days=0.01)
    with raises("PL-ENV-ARG", "seed must be one whole number"):
        venv.reset(seed=[1, 2])
    batch = PainStimBatch(default_patients(1), EnvSettings(horizon_days=0.01))
    with raises("PL-ENV-ARG", "seed=-1", ">= 0"):
        batch.reset(seed=-1)
    with raises("PL-ENV-ARG", "n_slots=0"):
        BatchedCore(0)


def test_step_before_reset():
    env = gym.make(ENV_ID, horizon_days=0.01)
    with raises("PL-ENV-ORDER", "call reset()"):
        env.unwrapped.step(0)


@pytest.mark.parametrize(
    ("mode", "action", "fragments"),
    [
        ("on_off", np.array([2]), ["0..1"]),
        ("on_off", np.array([-1]), ["0..1"]),
        ("on_off", np.array([0.5]), ["whole numbers"]),
        ("on_off", np.array([np.nan]), ["whole numbers"]),
        ("on_off", np.array([1, 0]), ["shape (1, 2)", "allowed: 1 whole numbers"]),
        ("levels", np.array([6]), ["0..5"]),
        ("continuous", np.array([np.nan], dtype=np.float32), ["finite values in [-1, 1]"]),
        ("continuous", np.array([1.5], dtype=np.float32), ["finite values in [-1, 1]"]),
        ("continuous", np.array([0.1, 0.2], dtype=np.float32), ["shape (1, 2)", "allowed: 1 finite values"]),
    ],
)
def test_invalid_actions(mode, action, fragments):
    env = gym.make(ENV_ID, action_mode=mode, horizon_days=0.01)
    env.reset(seed=0)
    with raises("PL-ACTION-INVALID", f"{mode} actions", *fragments):
        env.unwrapped.step(action)


def test_invalid_batched_action_shape():
    batch = PainStimBatch(default_patients(2), EnvSettings(horizon_days=0.01))
    batch.reset(seed=0)
    with raises("PL-ACTION-INVALID", "allowed: 2 whole numbers"):
        batch.step(np.array([1, 0, 1]))


# ----------------------------------------------------------------- reward weights
def test_bad_reward_weights():
    with raises("PL-REWARD-WEIGHT", "['painn']", "pain", "high_pain", "switching"):
        gym.make(ENV_ID, reward={"painn": 1.0})
    with raises("PL-REWARD-WEIGHT", "reward.pain=-1", ">= 0"):
        gym.make(ENV_ID, reward_pain=-1)
    with raises("PL-REWARD-WEIGHT", "reward.energy=nan"):
        RewardWeights(energy=float("nan"))


# ----------------------------------------------------------------- non-finite state
def test_nan_in_state_is_caught_at_the_episode_boundary_naming_slot_and_variable():
    batch = PainStimBatch(default_patients(3), EnvSettings(horizon_days=90 / 86_400))  # 3 steps
    batch.reset(seed=0)
    batch.step(np.zeros(3, dtype=np.int64))
    batch.core.state[1, L.S_TOLERANCE] = np.nan
    batch.step(np.zeros(3, dtype=np.int64))  # mid-episode: not checked (fast path)
    with raises("PL-STATE-NONFINITE", "end of episode", "slot 1", "step 3", "TOLERANCE") as info:
        batch.step(np.zeros(3, dtype=np.int64))
    assert isinstance(info.value, NonFiniteStateError)


def test_nan_in_state_is_caught_at_reset_and_by_debug_checks():
    patients = default_patients(2)
    core = BatchedCore(2, debug_checks=True)
    core.reset_slots([0, 1], patients, [0, 0], [0, 0])
    core.ar_db[0, 3] = np.inf
    with raises("PL-STATE-NONFINITE", "at step", "slot 0", "biomarker noise ACC_beta"):
        core.step(np.zeros(2))
    core = BatchedCore(2)
    core.reset_slots([0, 1], patients, [0, 0], [0, 0])
    core.state[0, L.S_RELIEF] = np.nan
    core.check_finite([1], when="reset")  # slot 1 is fine
    with raises("PL-STATE-NONFINITE", "slot 0", "RELIEF"):
        core.check_finite([0, 1], when="reset")


def test_unknown_parameter_group_in_replace():
    with raises("PL-PARAM-UNKNOWN", "'reliefs'"):
        PatientParams().replace(reliefs={"floor_nrs": 1.0})
    p = custom_patient()
    assert dataclasses.replace(p, uid=1).uid == 1
