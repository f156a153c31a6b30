"""Property tests: random valid parameters and random actions never break the invariants.

Invariants, at every decision: observations, rewards and info are finite
(the documented exceptions: ``self_report`` is NaN when no report was made
and ``battery_life_years`` is NaN right after reset), observations lie in the
observation space, pain stays in [0, 10], tolerance, relief and efficacy
stay in their ranges, cumulative stimulation energy never decreases and the
battery energy left never increases.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import custom_patient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simenv.batch import EnvSettings, PainStimBatch
from simenv.errors import PainloopError
from simenv.params import GROUPS, PatientParams
from simenv.safety import max_safe_amplitude_ma

# Fields drawn over their whole metadata range (the stimulation amplitudes are
# drawn separately because they constrain each other and the safety limits).
DRAWN_FIELDS = [
    ("pain", "baseline_nrs"),
    ("pain", "circadian_amplitude_nrs"),
    ("pain", "fast_tau_h"),
    ("pain", "fast_sd_nrs"),
    ("pain", "slow_sd_nrs"),
    ("pain", "flare_rate_per_week"),
    ("pain", "flare_size_nrs"),
    ("pain", "flare_median_duration_h"),
    ("relief", "max_relief_fraction"),
    ("relief", "floor_nrs"),
    ("relief", "half_effect_charge_uc"),
    ("relief", "hill_coefficient"),
    ("relief", "onset_tau_min"),
    ("relief", "carryover_tau_min"),
    ("tolerance", "build_tau_days"),
    ("tolerance", "recovery_tau_days"),
    ("tolerance", "efficacy_floor"),
    ("biomarker", "auc"),
    ("biomarker", "noise_sd_db"),
    ("biomarker", "noise_tau_s"),
    ("biomarker", "stim_suppression_fraction"),
    ("biomarker", "artifact_db"),
    ("reports", "reports_per_day"),
    ("reports", "adherence"),
    ("reports", "report_sd_nrs"),
    ("stimulation", "ramp_ma_per_s"),
    ("stimulation", "impedance_ohm"),
    ("stimulation", "frequency_hz"),
    ("side_effects", "mild_max_rate_per_day"),
    ("side_effects", "seizure_prob_abrupt"),
    ("side_effects", "burden_tau_days"),
    ("battery", "overhead_uw"),
    ("battery", "efficiency"),
    ("battery", "capacity_j"),
]


def field_range(group: str, name: str) -> dict:
    meta = GROUPS[group].__dataclass_fields__[name].metadata
    return {
        "min_value": float(meta["low"]),
        "max_value": float(meta["high"]),
        "exclude_min": meta["low_open"],
        "exclude_max": meta["high_open"],
        "allow_nan": False,
        "allow_infinity": False,
    }


@st.composite
def patient_params(draw) -> PatientParams:
    chosen = draw(st.lists(st.sampled_from(DRAWN_FIELDS), min_size=1, max_size=8, unique=True))
    changes: dict[str, dict[str, float]] = {}
    for group, name in chosen:
        bounds = field_range(group, name)
        if (group, name) == ("battery", "overhead_uw"):
            # 0 uW is covered (as a known failure) by
            # test_battery_life_is_finite_with_zero_overhead_and_no_stimulation.
            bounds["exclude_min"] = True
        changes.setdefault(group, {})[name] = draw(st.floats(**bounds))
    # Amplitude ceiling in (0, safe maximum] at the default pulse width and contact;
    # 0 mA is covered (as a known failure) by test_zero_amplitude_ceiling_gives_finite_observations.
    safe_max = min(25.5, max_safe_amplitude_ma(100.0, 0.06, 30.0, 1.85))
    amax = draw(st.floats(min_value=0.1, max_value=safe_max))
    on = draw(st.floats(min_value=0.0, max_value=amax))
    changes.setdefault("stimulation", {}).update(amplitude_max_ma=amax, on_amplitude_ma=on)
    return PatientParams().replace(**changes)


def actions_for(mode: str, n_levels: int):
    if mode == "on_off":
        return st.integers(0, 1)
    if mode == "levels":
        return st.integers(0, n_levels - 1)
    return st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, width=32)


@st.composite
def scenarios(draw, mode: str):
    params = draw(patient_params())
    dt_s = draw(st.sampled_from([30.0, 60.0, 300.0]))
    k = draw(st.integers(1, 3))
    n_levels = draw(st.integers(2, 8))
    initial_state = draw(st.sampled_from(["naive", "randomized"]))
    n_decisions = draw(st.integers(5, 40))
    actions = draw(st.lists(actions_for(mode, n_levels), min_size=n_decisions, max_size=n_decisions))
    seed = draw(st.integers(0, 2**31 - 1))
    env_settings = EnvSettings(
        action_mode=mode,
        dt_s=dt_s,
        decision_interval_s=k * dt_s,
        horizon_days=n_decisions * k * dt_s / 86_400.0,
        n_levels=n_levels,
        initial_state=initial_state,
        include_self_report=True,
        feature_history=1,
        calibration_days=0.5,
    )
    return params, env_settings, actions, seed


NAN_ALLOWED = {"self_report", "battery_life_years"}


def flat_info(info: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, value in info.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": np.asarray(v, dtype=np.float64) for k, v in value.items()})
        else:
            out[key] = np.asarray(value, dtype=np.float64)
    return out


def check_invariants(batch: PainStimBatch, scenario) -> None:
    params, _, actions, seed = scenario
    obs, info = batch.reset(seed=seed)
    assert obs.shape == (1, batch.obs_dim) and np.all(np.isfinite(obs))
    for key, value in flat_info(info).items():
        assert key == "battery_life_years" or np.all(np.isfinite(value)), key
    stim_total = info["stim_energy_total_j"][0]
    left = info["battery_energy_left_j"][0]
    assert stim_total == 0.0 and left == params.battery.capacity_j
    truncated = np.array([False])
    for a in actions:
        assert not truncated[0]
        obs, reward, terminated, truncated, info = batch.step(np.asarray([a]))
        assert np.all(np.isfinite(obs)), dict(zip(batch.obs_names, obs[0], strict=True))
        assert batch.observation_space.contains(obs[0])
        assert np.isfinite(reward[0]) and not terminated[0]
        flat = flat_info(info)
        for key, value in flat.items():
            if key not in NAN_ALLOWED:
                assert np.all(np.isfinite(value)), (key, value)
        assert np.isfinite(flat["battery_life_years"][0]) and flat["battery_life_years"][0] > 0
        report = info["self_report"][0]
        assert math.isnan(report) or (report == round(report) and 0 <= report <= 10)
        assert 0.0 <= info["pain_nrs"][0] <= 10.0
        assert 0.0 <= info["tolerance"][0] <= 1.0 - params.tolerance.efficacy_floor + 1e-12
        assert params.tolerance.efficacy_floor - 1e-12 <= info["efficacy"][0] <= 1.0
        assert 0.0 <= info["relief_fraction"][0] <= params.relief.max_relief_fraction + 1e-12
        assert 0.0 <= info["amplitude_ma"][0] <= params.stimulation.amplitude_max_ma + 1e-9
        assert info["stim_energy_total_j"][0] >= stim_total
        assert info["battery_energy_left_j"][0] <= left
        assert info["battery_energy_left_j"][0] < left or params.battery.overhead_uw == 0
        stim_total = info["stim_energy_total_j"][0]
        left = info["battery_energy_left_j"][0]
    assert truncated[0]


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def _property(mode: str):
    @PROPERTY_SETTINGS
    @given(scenario=scenarios(mode))
    def run(scenario):
        params, env_settings, _, seed = scenario
        patient = dataclasses.replace(custom_patient(params), uid=seed)
        batch = PainStimBatch([patient], env_settings)
        check_invariants(batch, scenario)

    return run


test_invariants_on_off = _property("on_off")
test_invariants_levels = _property("levels")
test_invariants_continuous = _property("continuous")


@pytest.mark.parametrize(
    ("group", "field"),
    [("stimulation", "amplitude_max_ma"), ("battery", "overhead_uw")],
)
def test_zero_ceiling_and_zero_overhead_are_refused(group, field):
    """A zero amplitude ceiling (0/0 amplitude fraction) and a zero device draw
    (infinite battery life) are outside the model: refused at construction."""
    changes = {field: 0.0}
    if field == "amplitude_max_ma":
        changes["on_amplitude_ma"] = 0.0
    with pytest.raises(PainloopError) as err:
        PatientParams().replace(**{group: changes})
    assert err.value.code == "PL-PARAM-RANGE"
    assert f"{group}.{field}=0" in str(err.value)
