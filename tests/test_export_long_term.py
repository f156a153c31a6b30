"""Distilling long-term sources: slower detector updates, the stimulation's footprint, the long-run state."""

from __future__ import annotations

import copy

import device_oracle  # noqa: E402  (tests/ is on sys.path)
import numpy as np
import pytest
from conftest import with_params
from test_export import unit_detector

from agents.config_encoding import device_encoding
from agents.config_format import build_config
from agents.config_policy import ConfigEngine
from agents.controller_config import check_config, validate_config
from agents.detector import DetectorConfig, DetectorEngine
from agents.distill_fit import DistillSettings, fit_candidates, timing_variants, update_steps
from agents.export import golden_traces, provenance, stimulation_fields, write_trace_csv
from agents.rollout import rollout
from agents.stim_footprint import measure_footprint
from simenv import layout as L
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.errors import PainloopError

DT = 30.0
PATIENTS = load_preset("test").sample(3)


def slow_config(steps: int = 10, patient_index: int = 0, blank_updates: int = 1) -> dict:
    """LD0 (dual) and LD1 updating every ``steps`` simulator steps (FFT interval 2 s), with HOLD and blanking."""
    p = PATIENTS[patient_index]
    rate = int(steps * DT * 1000 / 2000)

    def det(names, dual, **kw):
        return unit_detector(p, names, dual, 0.25, fft_interval_ms=2000, update_rate_fft_intervals=rate, **kw)

    ld0 = det(["OFC_theta", "OFC_beta"], True, termination_updates=1, blank_fft_intervals=blank_updates * rate)
    ld1 = det(["ACC_alpha"], False, termination_updates=0, blank_fft_intervals=0)
    states = [0.0, "HOLD", 3.0, 1.0, "HOLD", 3.0, None, None, None]
    return build_config("summit_rcs", ld0, states, ld1=ld1, provenance=provenance(p, "hand", "hand", DT),
                        **stimulation_fields(p))


# -- detector updates once every k steps, on the band power averaged over them ---------------------------
def test_engine_updates_once_per_period_on_the_mean_of_its_steps():
    c = check_config(slow_config(steps=4))
    eng = ConfigEngine([c], DT)
    ref = ConfigEngine([c], DT)
    rng = np.random.default_rng(0)
    x = rng.normal(8.0, 3.0, size=(40, 1, L.N_FEATURES))
    updates = []
    for t in range(40):
        eng.step(x[t], np.array([True]))
        if eng.updated[0]:
            updates.append(t)
            np.testing.assert_array_equal(eng.read_db[0], x[t - 3 : t + 1, 0].sum(axis=0) / 4)
            ref.update(x[t - 3 : t + 1].sum(axis=0) / 4)  # one update of the engine on the same mean
            assert eng.state[0] == ref.state[0] and eng.amplitude_ma[0] == ref.amplitude_ma[0]
    assert updates == list(range(3, 40, 4))
    # Unmeasured steps (no band power yet) do not count toward a period.
    eng.reset()
    eng.step(x[0], np.array([False]))
    for t in range(1, 5):
        eng.step(x[t], np.array([True]))
        assert eng.updated[0] == (t == 4)


def test_one_step_per_update_is_the_single_update_bit_for_bit():
    c = check_config(slow_config(steps=1))
    a, b = ConfigEngine([c, c], DT), ConfigEngine([c, c], DT)
    x = np.random.default_rng(1).normal(8.0, 3.0, size=(200, 2, L.N_FEATURES))
    for t in range(200):
        measured = np.array([True, t % 3 != 0])
        out = a.step(x[t], measured).copy()
        b.update(x[t], mask=measured)
        np.testing.assert_array_equal(out, b.amplitude_ma)
        np.testing.assert_array_equal(a.ld0.last_score, b.ld0.last_score)


def test_slow_golden_traces_pass_the_device_oracle(tmp_path):
    c = check_config(slow_config(steps=5, blank_updates=2))
    rows = golden_traces([c], [PATIENTS[0]], DT, 0.5, seed=4)[0]
    assert len(rows) == 287  # updates at steps 5, 10, ..., 1435 of 1440
    assert [r["time_s"] for r in rows[:3]] == [150.0, 300.0, 450.0]
    assert len({r["state"] for r in rows}) >= 3
    back = device_oracle.read_trace(write_trace_csv(tmp_path / "t.csv", c, rows))
    assert device_oracle.check_trace(c, back, DT) == []
    # Not a rubber stamp: a row one step late, or another state, is caught.
    late = copy.deepcopy(back)
    late[5]["time_s"] = str(float(late[5]["time_s"]) + DT)
    assert device_oracle.check_trace(c, late, DT)
    wrong = copy.deepcopy(back)
    wrong[20]["LD1_state"] = str(1 - int(wrong[20]["LD1_state"]))
    assert device_oracle.check_trace(c, wrong, DT)


def test_update_period_must_be_whole_steps_and_equal_for_both_detectors():
    c = slow_config(steps=10)
    assert validate_config(c, DT) == []
    half = copy.deepcopy(c)
    half["detectors"]["LD0"]["update_rate_fft_intervals"] = 157  # 314 s: not a whole number of 30-s steps
    half["device_encoding"] = device_encoding(half)
    fields = {v.field for v in validate_config(half, DT)}
    assert "$.detectors.LD0.update_rate_fft_intervals" in fields
    mixed = copy.deepcopy(c)
    mixed["detectors"]["LD1"]["update_rate_fft_intervals"] = 30  # LD1 every 60 s, LD0 every 300 s
    mixed["device_encoding"] = device_encoding(mixed)
    found = validate_config(mixed, DT)
    assert [v.field for v in found] == ["$.detectors.LD1.update_rate_fft_intervals"]
    assert "same update period" in found[0].message
    # The threshold baselines' engine keeps one update per step: a slower config is refused there.
    det = DetectorConfig(inputs=("OFC_theta",), weight=(1.0,), norm_subtract=(0.0,), norm_multiply=(1.0,),
                         threshold_low=0.0, threshold_high=0.0, fft_interval_ms=2000, update_rate_fft_intervals=30)
    with pytest.raises(PainloopError, match="one step per detector update"):
        DetectorEngine([det], dt_s=DT)
    assert DetectorEngine([det], dt_s=DT, multi_step=True).n == 1


def test_update_steps_follow_the_source_where_the_device_can():
    assert update_steps("summit_rcs", DT, 10) == 10  # 2 s x 150 = 300 s
    assert update_steps("summit_rcs", DT, 1) == 1
    assert update_steps("summit_rcs", DT, 20) == 1  # 600 s would need 300 FFT intervals of 2 s (> 255)
    assert update_steps("percept", DT, 10) == 1  # Percept averages at most 30 s


# -- the stimulation's footprint ---------------------------------------------------------------------------
def test_the_clinic_on_off_test_finds_the_bands_stimulation_moves():
    amps = np.array([p.params.stimulation.amplitude_max_ma * 0.6 for p in PATIENTS])
    fp = measure_footprint(PATIENTS, amps, DT, seed=3)
    moved = fp.bands_moved(0.25)
    model_moved = {"ACC_high_gamma", "ACC_beta", "ACC_low_gamma", "OFC_beta", "OFC_low_gamma"}  # simenv.biomarkers
    for i in range(len(PATIENTS)):
        names = {L.FEATURE_NAMES[j] for j in moved[i]}
        assert "ACC_high_gamma" in names and fp.shift_db[i, L.FEATURE_NAMES.index("ACC_high_gamma")] > 0
        assert names <= model_moved, names
        assert all(fp.shift_db[i, L.FEATURE_NAMES.index(n)] < 0 for n in names - {"ACC_high_gamma"})
    # A patient whose stimulation leaves no footprint: nothing is moved.
    clean = with_params(PATIENTS[0], biomarker={"artifact_db": 0.0, "stim_suppression_fraction": 0.0})
    fp0 = measure_footprint([clean], amps[:1], DT, seed=3)
    assert fp0.bands_moved(0.25) == [[]]
    assert np.max(np.abs(fp0.shift_db)) < 0.25


def test_excluded_bands_are_never_detector_inputs():
    rng = np.random.default_rng(2)
    T = 600
    x = rng.normal(0.0, 1.0, size=(T, L.N_FEATURES))
    art = L.FEATURE_NAMES.index("ACC_high_gamma")
    theta = L.FEATURE_NAMES.index("OFC_theta")
    y = np.where(x[:, art] + 0.5 * x[:, theta] > 0, 3.0, 0.0)  # the source reads the artifact band most
    mean, sd = np.zeros(L.N_FEATURES), np.ones(L.N_FEATURES)
    settings = DistillSettings()
    free = fit_candidates(x, y, mean, sd, "summit_rcs", DT, settings)[0]
    assert "ACC_high_gamma" in free[0].inputs
    det, _, info = fit_candidates(x, y, mean, sd, "summit_rcs", DT, settings, excluded_inputs=[art])[0]
    assert "ACC_high_gamma" not in det.inputs and "OFC_theta" in det.inputs
    assert info["inputs_excluded"] == ["ACC_high_gamma"] and info["footprint_fallback"] is False
    # Percept may read only alpha or beta; with both left out it falls back to them, and says so.
    alpha_beta = [j for j, n in enumerate(L.FEATURE_NAMES) if n.endswith(("_alpha", "_beta"))]
    det, _, info = fit_candidates(x, y, mean, sd, "percept", DT, settings, excluded_inputs=alpha_beta)[0]
    assert info["footprint_fallback"] is True and det.inputs[0] in {L.FEATURE_NAMES[j] for j in alpha_beta}


def test_timing_variants_stay_in_the_devices_range():
    c = slow_config(steps=1)
    det = DetectorConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in c["detectors"]["LD0"].items()})
    variants = timing_variants(det, DT)
    assert variants and det not in variants and len(set(variants)) == len(variants)
    assert all(v.blank_fft_intervals <= 255 for v in variants)
    assert {v.blank_updates for v in variants} >= {0, 1, 2, 4, 9}
    assert all(v.inputs == det.inputs and v.threshold_low == det.threshold_low for v in variants)
    slow = timing_variants(DetectorConfig(**(det.to_dict() | {"inputs": det.inputs, "weight": det.weight,
                                                             "norm_subtract": det.norm_subtract,
                                                             "norm_multiply": det.norm_multiply,
                                                             "update_rate_fft_intervals": 150})), DT)
    assert {v.blank_updates for v in slow} == {0, 1}  # 2 updates of 150 FFT intervals exceed 255


# -- the long-run state -------------------------------------------------------------------------------------
def test_rollout_starts_at_a_given_tolerance_and_records_it_after_the_warm_up():
    from agents.controllers import ControllerSpec

    env = EnvSettings(dt_s=DT, horizon_days=0.1)
    policy = ControllerSpec("continuous", "continuous").build(DT, 0)
    start = np.array([0.1, 0.2, 0.3])
    ro = rollout(policy, PATIENTS, env, 5, start_tolerance=start, record_features=False)
    np.testing.assert_array_equal(ro.window_tolerance, start)
    warm = rollout(ControllerSpec("continuous", "continuous").build(DT, 0), PATIENTS, env, 5, warmup_days=5.0,
                   record_features=False)
    assert np.all(warm.window_tolerance > 0.0)  # five days of continuous stimulation built tolerance


class _Alternating:
    """A source that decides every 10 steps and reverses its previous decision each time."""

    action_mode = "on_off"
    steps_per_decision = 10

    def reset(self, contexts) -> None:
        self.n, self.t, self.on = len(contexts), 0, False

    def act(self, observations, info):
        if self.t % self.steps_per_decision == 0:
            self.on = not self.on
        self.t += 1
        return np.full(self.n, int(self.on))


def test_decision_readout_reads_an_alternating_source_from_its_previous_decision():
    from experiments.studies.decision_readout import decision_readout, render

    result = decision_readout(_Alternating(), PATIENTS[:2], DT, days=1.0, warmup_days=0.5, seed=3)
    assert result.decision_interval_steps == 10
    np.testing.assert_allclose(result.duty, 0.5, atol=0.01)
    np.testing.assert_array_equal(result.reversal_share, 1.0)
    np.testing.assert_array_equal(result.balanced_accuracy["previous"], 1.0)
    assert set(result.balanced_accuracy) == {"sample", "mean_2", "mean_5", "mean_10", "sample_clean", "previous"}
    # The artifact band tells the stimulation state of the step read, which an alternating source reverses.
    assert np.all(result.balanced_accuracy["sample"] > 0.75)
    assert "previous" in render(result)


def test_the_distillation_warm_up_follows_the_reports_frame_unless_set():
    from experiments.exporting.plan import DistillOptions, ExportRequest, make_plan

    long = make_plan(ExportRequest(source="dual_threshold", target="percept", n_patients=1))
    assert long.distill.warmup_days == long.warmup_days == 90.0
    week = make_plan(ExportRequest(source="dual_threshold", target="percept", n_patients=1, frame="week"))
    assert week.distill.warmup_days == 0.0
    own = make_plan(ExportRequest(source="dual_threshold", target="percept", n_patients=1,
                                  distill=DistillOptions(warmup_days=7, footprint_limit_db=None)))
    assert own.distill.warmup_days == 7.0 and own.distill.footprint_limit_db is None
    for bad in ({"warmup_days": -1.0}, {"footprint_limit_db": 0.0}):
        with pytest.raises(PainloopError) as err:
            make_plan(ExportRequest(source="dual_threshold", target="percept", n_patients=1,
                                    distill=DistillOptions(**bad)))
        assert err.value.code in ("PL-EVAL-WARMUP", "PL-CONFIG-VALUE")
        assert next(iter(bad)) in str(err.value) or "warmup" in str(err.value)


# -- LD1 and the 9-entry state table -------------------------------------------------------------------
def _two_detector_fit(y_of_scores, levels_ma, n_rows=900):
    """fit_candidates on synthetic band powers whose source decides from 7 bands (more than LD0's 4)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, size=(n_rows, L.N_FEATURES))
    bands = [L.FEATURE_NAMES.index(n) for n in ("ACC_delta", "ACC_theta", "ACC_alpha", "OFC_delta", "OFC_theta",
                                                 "OFC_alpha", "OFC_high_gamma")]
    score = x[:, bands] @ np.array([1.0, 0.9, -0.8, 0.7, 1.0, -0.9, 0.8])
    y = y_of_scores(score)
    excluded = [j for j in range(L.N_FEATURES) if j not in bands]
    mean, sd = np.zeros(L.N_FEATURES), np.ones(L.N_FEATURES)
    return fit_candidates(x, y, mean, sd, "summit_rcs", DT, DistillSettings(), top_k=6,
                          excluded_inputs=excluded), levels_ma


@pytest.mark.parametrize("levels_ma", [(0.0, 3.0), (0.0, 1.5, 3.0)])
def test_ld1_carries_the_inputs_beyond_ld0s_four(levels_ma):
    cuts = np.array([0.0]) if len(levels_ma) == 2 else np.array([-1.0, 1.0])
    ranked, levels = _two_detector_fit(lambda s: np.asarray(levels_ma)[np.searchsorted(cuts, s)], levels_ma)
    one = [r for r in ranked if not isinstance(r[0], tuple)]
    two = [r for r in ranked if isinstance(r[0], tuple)]
    assert one and two and all(r[2]["ld1"] for r in two)
    ld0, ld1 = two[0][0]
    assert len(ld0.inputs) == 4 and len(ld1.inputs) == 3 and not set(ld0.inputs) & set(ld1.inputs)
    assert ld0.dual_threshold and ld1.dual_threshold
    states = two[0][1]
    assert len(states) == 9 and all(s == "HOLD" or s in levels for s in states)
    # Seven inputs read the source better than four.
    assert two[0][2]["balanced_accuracy_fit"] > max(r[2]["balanced_accuracy_fit"] for r in one)
    # The pair builds a valid device config, and the engine runs it.
    p = PATIENTS[0]
    cfg = check_config(build_config("summit_rcs", ld0, states, ld1=ld1, provenance=provenance(p, "t", "t", DT),
                                    **stimulation_fields(p)))
    engine = ConfigEngine([cfg], DT)
    engine.step(np.zeros((1, L.N_FEATURES)), np.array([True]))
    assert engine.updated[0]


def test_no_ld1_when_four_inputs_are_all_there_is():
    rng = np.random.default_rng(6)
    x = rng.normal(0.0, 1.0, size=(600, L.N_FEATURES))
    y = np.where(x[:, 0] + x[:, 1] > 0, 3.0, 0.0)
    ranked = fit_candidates(x, y, np.zeros(L.N_FEATURES), np.ones(L.N_FEATURES), "summit_rcs", DT, DistillSettings(),
                            top_k=6, excluded_inputs=list(range(4, L.N_FEATURES)))
    assert not any(isinstance(r[0], tuple) for r in ranked)
    percept = fit_candidates(x, y, np.zeros(L.N_FEATURES), np.ones(L.N_FEATURES), "percept", DT, DistillSettings(),
                             top_k=6)
    assert not any(isinstance(r[0], tuple) for r in percept)


def test_ld1_candidates_stay_within_four_bands_per_site():
    """RC+S senses 2 bands on each of 2 channels per site: LD0 and LD1 together hold at most 4 of a site."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, size=(900, L.N_FEATURES))
    y = np.where(x @ np.linspace(1.0, 0.5, L.N_FEATURES) > 0, 3.0, 0.0)  # every band matters
    ranked = fit_candidates(x, y, np.zeros(L.N_FEATURES), np.ones(L.N_FEATURES), "summit_rcs", DT,
                            DistillSettings(), top_k=6)
    two = [r for r in ranked if isinstance(r[0], tuple)]
    assert two
    p = PATIENTS[0]
    for (ld0, ld1), states, _ in two:
        names = list(ld0.inputs) + list(ld1.inputs)
        assert all(sum(n.startswith(site) for n in names) <= 4 for site in ("ACC", "OFC"))
        check_config(build_config("summit_rcs", ld0, states, ld1=ld1, provenance=provenance(p, "t", "t", DT),
                                  **stimulation_fields(p)))
