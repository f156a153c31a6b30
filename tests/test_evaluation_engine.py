"""The paired evaluation engine and the baseline controllers, on a few patients."""

from __future__ import annotations

import numpy as np
import pytest

from agents.clinic import ClinicSettings, DetectorSettings, fit_detector, record_calibration_period
from agents.controllers import ControllerSpec
from agents.evaluation import METRICS, evaluate, paired_differences, summarise
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.errors import PainloopError

PATIENTS = load_preset("test").sample(4)
SHORT = EnvSettings(horizon_days=0.5)


@pytest.fixture(scope="module")
def baseline_result():
    specs = [
        ControllerSpec("off", "off"),
        ControllerSpec("continuous", "continuous"),
        ControllerSpec("cycling", "cycling"),
        ControllerSpec("threshold", "threshold"),
        ControllerSpec("dual_threshold", "dual_threshold"),
        ControllerSpec("latent_threshold", "latent_threshold"),
        ControllerSpec("random", "random", {"match": "threshold"}),
    ]
    return evaluate(specs, PATIENTS, SHORT, seed=3)


def test_open_loop_duty_and_energy(baseline_result):
    m = baseline_result.per_patient
    assert np.all(m["continuous"]["duty_cycle"] == 1.0)
    assert np.all(m["off"]["duty_cycle"] == 0.0)
    assert np.all(m["off"]["stim_energy_j_per_day"] == 0.0)
    # Continuous energy is I^2 R f PW over a day, minus the first step's 10 s ramp.
    for p, e in zip(PATIENTS, m["continuous"]["stim_energy_j_per_day"], strict=True):
        st = p.params.stimulation
        full = (st.on_amplitude_ma * 1e-3) ** 2 * st.impedance_ohm * st.frequency_hz * st.pulse_width_us * 1e-6 * 86400
        assert e == pytest.approx(full, rel=2e-3)


def test_cycling_duty_counts_the_ramp_down_as_on(baseline_result):
    # 1 min on / 1 min off at dt 30 s; the 3 mA ramp-down at 0.3 mA/s takes 10 s and counts as on:
    # duty = (60 + 10) / 120 = 0.5833.
    duty = baseline_result.per_patient["cycling"]["duty_cycle"]
    assert np.all(np.abs(duty - 70.0 / 120.0) < 0.01)


def test_latent_threshold_beats_off_on_every_patient_and_is_marked_latent(baseline_result):
    m = baseline_result.per_patient
    assert np.all(m["latent_threshold"]["mean_pain_nrs"] < m["off"]["mean_pain_nrs"])
    assert baseline_result.uses_latent["latent_threshold"] is True
    assert baseline_result.uses_latent["threshold"] is False


def test_random_matches_the_threshold_duty(baseline_result):
    m = baseline_result.per_patient
    assert np.mean(np.abs(m["random"]["duty_cycle"] - m["threshold"]["duty_cycle"])) < 0.15


def test_every_metric_is_reported_and_finite(baseline_result):
    rows = summarise(baseline_result)
    assert [r["controller"] for r in rows] == baseline_result.labels
    for row in rows:
        for metric in METRICS:
            assert np.isfinite(row[metric])
            assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"]


def test_same_seed_gives_identical_results():
    specs = [ControllerSpec("continuous", "continuous"), ControllerSpec("threshold", "threshold")]
    a = evaluate(specs, PATIENTS[:2], EnvSettings(horizon_days=0.2), seed=1)
    b = evaluate(specs, PATIENTS[:2], EnvSettings(horizon_days=0.2), seed=1)
    for label in a.labels:
        for metric in METRICS:
            np.testing.assert_array_equal(a.per_patient[label][metric], b.per_patient[label][metric])


def test_same_controller_under_two_labels_gives_zero_paired_differences():
    specs = [
        ControllerSpec("continuous", "continuous"),
        ControllerSpec("thr_a", "threshold"),
        ControllerSpec("thr_b", "threshold"),
    ]
    res = evaluate(specs, PATIENTS[:3], EnvSettings(horizon_days=0.2), seed=2)
    for metric in METRICS:
        np.testing.assert_array_equal(res.per_patient["thr_a"][metric], res.per_patient["thr_b"][metric])
    row = next(r for r in paired_differences(res, "thr_a") if r["controller"] == "thr_b")
    assert all(row[f"{m}_diff"] == 0.0 for m in METRICS)


def test_bad_entries_are_refused():
    with pytest.raises(PainloopError) as err:
        ControllerSpec("x", "nonsense")
    assert err.value.code == "PL-CONTROLLER-UNKNOWN"
    assert "continuous" in str(err.value)
    with pytest.raises(PainloopError) as err:
        ControllerSpec("c", "cycling", {"on_minutes": 1})
    assert err.value.code == "PL-CONTROLLER-PARAM"
    with pytest.raises(PainloopError) as err:
        ControllerSpec("c", "cycling", {"on_s": 5}).build(dt_s=30.0, seed=0)
    assert err.value.code == "PL-CONTROLLER-PARAM"
    with pytest.raises(PainloopError) as err:
        evaluate([ControllerSpec("a", "off"), ControllerSpec("a", "continuous")], PATIENTS[:1], SHORT)
    assert err.value.code == "PL-CONTROLLER-LABEL"
    with pytest.raises(PainloopError) as err:
        evaluate([ControllerSpec("r", "random", {"match": "threshold"})], PATIENTS[:1], SHORT)
    assert err.value.code == "PL-CONTROLLER-MATCH"
    res = evaluate([ControllerSpec("off", "off")], PATIENTS[:2], EnvSettings(horizon_days=0.05))
    with pytest.raises(PainloopError) as err:
        paired_differences(res, "continuous")
    assert err.value.code == "PL-REFERENCE-UNKNOWN"


def test_clinic_detector_uses_at_most_four_inputs_and_hits_its_calibration_duty():
    records = record_calibration_period(PATIENTS, 30.0, seed=0, settings=ClinicSettings(days=7))
    for rec in records:
        assert rec.report_nrs.size > 5
        assert set(np.unique(rec.report_nrs)) <= set(range(11))
        det = fit_detector(rec, DetectorSettings(target_duty=0.3), 30.0)
        assert det.fit["status"] == "ok"
        assert 1 <= len(det.inputs) <= 4
        assert abs(det.fit["calibration_duty_raw"] - 0.3) < 0.02
        scale = 2**det.fractional_fixed_point
        for value in (*det.weight, *det.norm_subtract, *det.norm_multiply, det.threshold_low):
            assert value * scale == round(value * scale)  # on the fixed-point grid
    with pytest.raises(PainloopError) as err:
        ClinicSettings(schedule="sometimes")
    assert err.value.code == "PL-CALIBRATION"


def test_overrides_keep_patient_identity_and_noise():
    from simenv.cohort import with_overrides

    changed = with_overrides(PATIENTS[:2], {"biomarker.auc": 0.6, "relief.carryover_tau_min": 300.0})
    assert [p.uid for p in changed] == [p.uid for p in PATIENTS[:2]]
    assert all(p.params.biomarker.auc == 0.6 and p.params.relief.carryover_tau_min == 300.0 for p in changed)
    with pytest.raises(PainloopError) as err:
        with_overrides(PATIENTS[:1], {"biomarker.aucc": 0.6})
    assert err.value.code == "PL-PARAM-UNKNOWN"


def test_biomarker_value_command_runs_on_a_tiny_grid(tmp_path, capsys):
    from experiments import biomarker_value

    out = tmp_path / "bv"
    argv = ["--n-patients", "3", "--days", "0.2", "--auc", "0.7", "--carryover-min", "60", "--out", str(out)]
    assert biomarker_value.main(argv) == 0
    rows = (out / "biomarker_value.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("auc,carryover_min")
    assert biomarker_value.main(["--days", "0", "--out", str(out)]) == 2


def test_step_without_observation_changes_nothing_but_the_observation():
    from simenv.batch import PainStimBatch

    a, b = PainStimBatch(PATIENTS, SHORT), PainStimBatch(PATIENTS, SHORT)
    a.reset(seed=5)
    b.reset(seed=5)
    amps = np.array([0.0, 2.0, 0.0, 3.0])
    for k in range(5):
        obs_a, rew_a, _, trunc_a = a.step_arrays(None, amps * (k % 2))
        obs_b, rew_b, _, trunc_b = b.step_arrays(None, amps * (k % 2), observe=False)
        assert np.isnan(obs_b).all() and obs_b.shape == obs_a.shape
        assert np.array_equal(rew_a, rew_b) and np.array_equal(trunc_a, trunc_b)
        assert np.array_equal(a.last_info, b.last_info, equal_nan=True)
    assert np.array_equal(a.step_arrays(None, amps)[0], b.step_arrays(None, amps)[0])


def test_policies_that_read_observations_get_them():
    """Baselines read only info (the engine skips observations for them); any other policy gets them."""
    from agents.baselines import Continuous

    seen = []

    class Watcher(Continuous):
        reads_observations = True

        def act(self, observations, info):
            seen.append(np.array(observations))
            return super().act(observations, info)

    class WatcherSpec(ControllerSpec):
        def build(self, dt_s, seed):
            return Watcher(self.label)

    evaluate([WatcherSpec("w", "continuous"), ControllerSpec("off", "off")], PATIENTS, EnvSettings(horizon_days=0.05))
    assert len(seen) > 2 and all(np.isfinite(o).all() for o in seen)
