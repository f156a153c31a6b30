"""Device configs: schema, validation and safety refusals, the reference engine, round trip, golden traces."""

from __future__ import annotations

import copy
import json

import device_oracle  # noqa: E402  (tests/ is on sys.path)
import numpy as np
import pytest

from agents.config_encoding import device_encoding
from agents.config_files import load_config, load_config_dir
from agents.config_format import build_config
from agents.config_policy import ConfigPolicy
from agents.controller_config import ConfigError, check_config, schema, validate_config
from agents.controllers import ControllerSpec
from agents.detector import DetectorConfig, to_fixed_point
from agents.evaluation import evaluate
from agents.export import (
    calibrated_detectors,
    config_from_detector,
    decision_agreement,
    golden_traces,
    provenance,
    stimulation_fields,
    write_trace_csv,
)
from simenv import layout as L
from simenv.batch import EnvSettings
from simenv.calibration import normalisation_for
from simenv.cohort import load_preset
from simenv.errors import PainloopError

PATIENTS = load_preset("test").sample(4)
DT = 30.0


@pytest.fixture(scope="module")
def baseline_configs(tmp_path_factory):
    """Configs exported from the calibrated threshold and dual-threshold baselines (seed 0), in folders."""
    out = {}
    for kind in ("threshold", "dual_threshold"):
        spec = ControllerSpec(kind, kind)
        dets = calibrated_detectors(spec, PATIENTS, DT, 0)
        folder = tmp_path_factory.mktemp(kind)
        configs = []
        for p, d in zip(PATIENTS, dets, strict=True):
            c = check_config(config_from_detector(d, p, provenance(p, kind, kind, DT)))
            (folder / f"{p.uid}.json").write_text(json.dumps(c))
            configs.append(c)
        out[kind] = (folder, configs)
    return out


def unit_detector(patient, names: list[str], dual: bool, threshold: float = 0.5, **kw) -> DetectorConfig:
    """Unit weights on the patient's calibration normalisation; thresholds -threshold (and +threshold if dual)."""
    norm = normalisation_for([patient], DT)[0]
    idx = [L.FEATURE_NAMES.index(x) for x in names]
    return DetectorConfig(
        inputs=tuple(names), weight=tuple([1.0] * len(names)),
        norm_subtract=tuple(to_fixed_point(norm.mean_db[i], 8) for i in idx),
        norm_multiply=tuple(to_fixed_point(1 / norm.sd_db[i], 8) for i in idx),
        threshold_low=-threshold, threshold_high=threshold if dual else -threshold, dual_threshold=dual, **kw,
    )


def hand_config(patient_index: int = 0) -> dict:
    """A config exercising every engine feature: two detectors, dual threshold, counts, holdoff, blanking,
    HOLD and a non-zero state 0."""
    p = PATIENTS[patient_index]

    def det(names, dual, **kw):
        return unit_detector(p, names, dual, **kw)

    ld0 = det(["OFC_theta", "OFC_beta"], True, onset_updates=1, termination_updates=2, holdoff_updates=3,
              blank_fft_intervals=45)
    ld1 = det(["ACC_alpha"], False, termination_updates=1, blank_fft_intervals=30)
    states = [1.0, "HOLD", 3.0, 2.0, "HOLD", 4.0, None, None, None]
    return build_config("summit_rcs", ld0, states, ld1=ld1, provenance=provenance(p, "hand", "hand", DT),
                        **stimulation_fields(p))


# -- format and schema ---------------------------------------------------------------------------
def test_schema_is_draft_2020_12_and_shipped_in_the_package():
    from jsonschema import Draft202012Validator

    s = schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(s)


def test_exported_configs_carry_format_units_and_device_integers(baseline_configs):
    c = baseline_configs["threshold"][1][0]
    assert c["format"] == "painloop.controller/v1" and c["target"] == "summit_rcs"
    assert len(c["states"]) == 9 and c["states"][:2] == [0.0, PATIENTS[0].params.stimulation.on_amplitude_ma]
    F = c["detectors"]["LD0"]["fractional_fixed_point"]
    enc = c["device_encoding"]
    assert enc["LD0"]["threshold_low"] == round(c["detectors"]["LD0"]["threshold_low"] * 2**F)
    assert enc["LD0"]["weight"] == [round(w * 2**F) for w in c["detectors"]["LD0"]["weight"]]
    assert enc["ramp_up"] == round(c["ramp_up_ma_per_s"] * 65536) and c["ramp_up_ma_per_s"] * 65536 == enc["ramp_up"]
    assert enc["states_tenths_ma"][:3] == [0, 30, None]
    dual = baseline_configs["dual_threshold"][1][0]
    assert dual["states"][1] == "HOLD" and dual["device_encoding"]["states_tenths_ma"][1] == 255
    det = c["detectors"]["LD0"]
    assert c["sensing"]["fft_interval_ms"] * det["update_rate_fft_intervals"] == 1000 * DT
    assert c["provenance"]["patient"]["uid"] == PATIENTS[0].uid and c["provenance"]["physics_version"] >= 1


def test_schema_errors_name_the_json_path(tmp_path, baseline_configs):
    good = baseline_configs["threshold"][1][0]
    bad = copy.deepcopy(good)
    del bad["states"]
    bad["detectors"]["LD0"]["weight"][1] = "heavy"
    bad["format"] = "painloop.controller/v0"
    with pytest.raises(ConfigError) as err:
        check_config(bad)
    assert err.value.code == "PL-CONFIG-SCHEMA"
    fields = {v.field for v in err.value.violations}
    assert {"$", "$.detectors.LD0.weight[1]", "$.format"} <= fields, fields
    assert "'states' is a required property" in str(err.value)
    # A corrupted file fails with the same code.
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(good)[:-40])
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.code == "PL-CONFIG-SCHEMA" and "broken.json" in str(err.value)


# -- validation and safety -------------------------------------------------------------------------
def mutated(base: dict, **changes) -> dict:
    """A copy with fields changed (dotted paths) and the device encoding recomputed (only the rule breaks)."""
    c = copy.deepcopy(base)
    for path, value in changes.items():
        node = c
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    c["device_encoding"] = device_encoding(c)
    return c


SAFETY_CASES = {
    # name: (changes, field the violation names, code of the violation, fragment of its message)
    "amplitude_above_limits": ({"states.1": 6.0}, "$.states[1]", "PL-CONFIG-INVALID", "outside amplitude_limits_ma"),
    "amplitude_above_device": ({"amplitude_limits_ma": [0.0, 26.0]}, "$.amplitude_limits_ma[1]", "PL-CONFIG-INVALID",
                               "HOLD code"),
    "charge_density": ({"pulse_width_us": 450.0, "states.1": 5.0}, "$.states[1]", "PL-SAFETY-CHARGE-DENSITY", "uC/cm^2/phase"),
    "shannon": ({"safety.contact_area_cm2": 0.2, "pulse_width_us": 450.0, "amplitude_limits_ma": [0.0, 10.0],
                 "states.1": 10.0}, "$.states[1]", "PL-SAFETY-SHANNON", "Shannon k"),
    "ramp": ({"ramp_up_ma_per_s": 5.0}, "$.ramp_up_ma_per_s", "PL-CONFIG-INVALID", "mA/s"),
    "timing_range": ({"detectors.LD0.onset_updates": 300}, "$.detectors.LD0.onset_updates", "PL-CONFIG-INVALID",
                     "0 to 255"),
    "blanking_range": ({"detectors.LD0.blank_fft_intervals": 1000}, "$.detectors.LD0.blank_fft_intervals",
                       "PL-CONFIG-INVALID", "0 to 255"),
    "fixed_point_overflow": ({"detectors.LD0.fractional_fixed_point": 16, "detectors.LD0.threshold_low": 40000.0,
                              "detectors.LD0.threshold_high": 40000.0}, "$.detectors.LD0.threshold_low",
                             "PL-CONFIG-INVALID", "32-bit"),
    "update_timing_vs_dt": ({"detectors.LD0.update_rate_fft_intervals": 30},
                            "$.detectors.LD0.update_rate_fft_intervals", "PL-CONFIG-INVALID", "dt_s = 30"),
    "reachable_null_state": ({"states.1": None}, "$.states[1]", "PL-CONFIG-INVALID", "can reach state 1"),
    "density_limit_raised": ({"safety.charge_density_limit_uc_per_cm2": 60.0},
                             "$.safety.charge_density_limit_uc_per_cm2", "PL-CONFIG-INVALID", "at most 30"),
}


@pytest.mark.parametrize("name", sorted(SAFETY_CASES))
def test_each_limit_is_refused_naming_the_field(baseline_configs, name):
    changes, field, code, fragment = SAFETY_CASES[name]
    base = baseline_configs["threshold"][1][0]
    assert validate_config(base) == []
    bad = mutated(base, **changes)
    violations = validate_config(bad)
    hits = [v for v in violations if v.field == field and v.code == code]
    assert hits, [str(v) for v in violations]
    assert fragment in hits[0].message
    with pytest.raises(ConfigError) as err:
        check_config(bad)
    assert err.value.code == "PL-CONFIG-INVALID"
    assert field in str(err.value)


def test_every_violation_is_listed_together(baseline_configs):
    base = baseline_configs["threshold"][1][0]
    bad = mutated(base, **{"states.1": 6.0, "ramp_up_ma_per_s": 5.0, "detectors.LD0.onset_updates": 300})
    bad["device_encoding"]["ramp_down"] += 1  # an encoding that no longer matches its human value
    with pytest.raises(ConfigError) as err:
        check_config(bad)
    fields = {v.field for v in err.value.violations}
    assert {"$.states[1]", "$.ramp_up_ma_per_s", "$.detectors.LD0.onset_updates",
            "$.device_encoding.ramp_down"} <= fields
    assert "4 violation(s)" in str(err.value) or len(err.value.violations) >= 4


def test_off_grid_values_are_refused(baseline_configs):
    base = baseline_configs["threshold"][1][0]
    bad = mutated(base, **{"detectors.LD0.threshold_low": 0.1, "detectors.LD0.threshold_high": 0.1})
    assert any("fixed-point grid" in v.message for v in validate_config(bad))


def test_percept_rules():
    p = PATIENTS[0]
    det = DetectorConfig(inputs=("OFC_beta",), weight=(1.0,), norm_subtract=(0.0,), norm_multiply=(1.0,),
                         threshold_low=5.0, threshold_high=6.0, dual_threshold=True, fft_interval_ms=200,
                         update_rate_fft_intervals=150, onset_updates=1, termination_updates=2, blank_fft_intervals=0)
    good = build_config("percept", det, [0.0, "HOLD", 3.0] + [None] * 6, provenance=provenance(p, "x", "x", DT),
                        **stimulation_fields(p))
    assert validate_config(good) == []
    bad = mutated(good, **{"detectors.LD0.onset_updates": 2, "states.1": 1.0, "detectors.LD0.weight": [0.5]})
    fields = {v.field for v in validate_config(bad)}
    assert {"$.detectors.LD0.onset_updates", "$.states[1]", "$.detectors.LD0.weight"} <= fields
    gamma = mutated(good, **{"detectors.LD0.inputs": ["OFC_low_gamma"], "sensing.power_bands.0.name": "OFC_low_gamma",
                             "sensing.power_bands.0.low_hz": 30.0, "sensing.power_bands.0.high_hz": 70.0})
    assert any("8-30 Hz" in v.message for v in validate_config(gamma))


# -- the reference engine ------------------------------------------------------------------------
def test_round_trip_reproduces_the_baselines_decisions_exactly(baseline_configs):
    """Acceptance: exported threshold configs, run by the reference engine, decide exactly as the baseline."""
    specs = []
    for kind in ("threshold", "dual_threshold"):
        specs += [ControllerSpec(kind, kind), ControllerSpec(f"cfg_{kind}", "config",
                                                             {"path": str(baseline_configs[kind][0])})]
    res = evaluate(specs, PATIENTS, EnvSettings(horizon_days=2.0), seed=0, record_actions=True)
    for kind in ("threshold", "dual_threshold"):
        a, b = res.actions[kind], res.actions[f"cfg_{kind}"]
        assert a.shape == (len(PATIENTS), 5760)
        assert 0.05 < np.mean(a > 0) < 0.95  # the detectors switch: the test can fail
        np.testing.assert_array_equal(a, b)
        # Same decisions; physics differ only by the ramp's 1/65536 mA/s grid.
        np.testing.assert_allclose(res.per_patient[kind]["mean_pain_nrs"],
                                   res.per_patient[f"cfg_{kind}"]["mean_pain_nrs"], atol=1e-4)


def test_engine_executes_state_table_hold_ramps_and_ld1():
    c = check_config(hand_config())
    p = PATIENTS[0]
    traces = golden_traces([c], [p], DT, 0.5, seed=3)
    rows = traces[0]
    states = np.array([r["state"] for r in rows])
    amps = np.array([r["amplitude_ma"] for r in rows])
    delivered = np.array([r["delivered_amplitude_ma"] for r in rows])
    assert len(rows) == 0.5 * 2880 - 1
    assert len(set(states.tolist())) >= 4  # both detectors move
    # Holdoff: the first 3 updates of LD0 are ignored.
    assert all(r["LD0_state"] == 0 for r in rows[:3])
    # HOLD keeps the amplitude the previous state set; state 0 is 1 mA.
    for k in range(1, len(rows)):
        if states[k] in (1, 4):
            assert amps[k] == amps[k - 1]
        else:
            assert amps[k] == {0: 1.0, 2: 3.0, 3: 2.0, 5: 4.0}[states[k]]
    # Ramps: the delivered amplitude moves at most ramp x dt per step.
    step = c["ramp_up_ma_per_s"] * DT
    assert np.max(np.abs(np.diff(delivered))) <= step + 1e-9


def test_golden_traces_pass_the_independent_device_oracle(tmp_path, baseline_configs):
    configs = [baseline_configs["threshold"][1][0], baseline_configs["dual_threshold"][1][1], check_config(hand_config())]
    patients = [PATIENTS[0], PATIENTS[1], PATIENTS[0]]
    traces = golden_traces(configs, patients, DT, 1.0, seed=5)
    for k, (c, rows) in enumerate(zip(configs, traces, strict=True)):
        path = write_trace_csv(tmp_path / f"t{k}.csv", c, rows)
        back = device_oracle.read_trace(path)
        assert len(back) == 2879
        assert device_oracle.check_trace(c, back, DT) == []
    # The oracle is not a rubber stamp: a corrupted state or amplitude is caught.
    back = device_oracle.read_trace(tmp_path / "t2.csv")
    back[100]["LD0_state"] = str((int(back[100]["LD0_state"]) + 1) % 3)
    assert device_oracle.check_trace(configs[2], back, DT)
    back = device_oracle.read_trace(tmp_path / "t0.csv")
    i = next(k for k, r in enumerate(back) if r["state"] == "1")
    back[i]["amplitude_ma"] = "2.9"
    assert device_oracle.check_trace(configs[0], back, DT)


def test_trace_columns_are_documented(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    c = hand_config()
    rows = golden_traces([c], [PATIENTS[0]], DT, 0.05, seed=0)[0]
    header = write_trace_csv(tmp_path / "t.csv", c, rows).read_text().splitlines()[0].split(",")
    for col in header:
        generic = col if not col.endswith("_db") else "<band>_db"
        assert f"`{generic}`" in doc, col


def test_config_entries_are_matched_by_uid_and_refused_when_missing(baseline_configs):
    folder = baseline_configs["threshold"][0]
    configs = load_config_dir(folder)
    assert set(configs) == {p.uid for p in PATIENTS}
    # Slot order differs from the export's: configs follow the uid.
    reordered = PATIENTS[::-1]
    res = evaluate([ControllerSpec("threshold", "threshold"), ControllerSpec("cfg", "config", {"path": str(folder)})],
                   reordered, EnvSettings(horizon_days=0.5), seed=0, record_actions=True)
    np.testing.assert_array_equal(res.actions["threshold"], res.actions["cfg"])
    other = load_preset("validation").sample(1)
    with pytest.raises(PainloopError) as err:
        evaluate([ControllerSpec("cfg", "config", {"path": str(folder)})], other, EnvSettings(horizon_days=0.1), seed=0)
    assert err.value.code == "PL-CONFIG-MISSING" and str(other[0].uid) in str(err.value)


def test_configs_must_fit_the_patient_and_the_evaluation(baseline_configs, tmp_path):
    c = copy.deepcopy(baseline_configs["threshold"][1][0])
    c["pulse_width_us"] = 90.0
    policy = ConfigPolicy("cfg", {PATIENTS[0].uid: c})
    with pytest.raises(PainloopError) as err:
        policy.configs_for(PATIENTS[:1])
    assert err.value.code == "PL-CONFIG-MISMATCH" and "pulse_width_us=90" in str(err.value)
    with pytest.raises(PainloopError) as err:
        ConfigPolicy("cfg", {}).check_settings(EnvSettings(decision_interval_s=60.0))
    assert err.value.code == "PL-CONFIG-MISMATCH"
    with pytest.raises(PainloopError) as err:
        load_config_dir(tmp_path / "nowhere")
    assert err.value.code == "PL-CONFIG-MISSING"


def test_decision_agreement_statistics():
    y = np.array([0, 0, 0, 0, 3, 3, 3, 3.0])
    same = decision_agreement(y, y)
    assert same["balanced_accuracy"] == 1.0 and same["cohen_kappa"] == 1.0
    flipped = decision_agreement(y, 3.0 - y)
    assert flipped["balanced_accuracy"] == 0.0 and flipped["cohen_kappa"] == -1.0
    always_on = decision_agreement(y, np.full(8, 3.0))
    assert always_on["balanced_accuracy"] == 0.5 and always_on["cohen_kappa"] == 0.0
