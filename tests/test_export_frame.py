"""The export's fidelity report in a frame: warm-up unscored, shadow agreement on scored decisions only, checks."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
from test_export_cli import ALLOWED_AFTER_REFUSAL, ROOT, cli, env, run_in_process

from agents.config_policy import ConfigPolicy
from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from agents.evaluation_frames import FRAMES, describe_frame
from agents.export import calibrated_detectors, decision_agreement
from agents.rollout import rollout
from experiments.exporting.configs import build_configs
from experiments.exporting.fidelity import fidelity_report
from experiments.exporting.plan import ExportRequest, make_plan

#: A fraction of a day each: the frame's arithmetic, not its clinical meaning, is tested here.
WARMUP_DAYS = 0.25
SCORED_DAYS = 0.25
DECISIONS_PER_DAY = 2880  # dt_s 30 s, one decision per step


@pytest.fixture(scope="module")
def mismatched():
    """A ``threshold`` plan with the configs of ``threshold_duty20``: exported decisions that differ from the
    source's, so agreement is not trivially 1."""
    request = ExportRequest(source="threshold", target="summit_rcs", n_patients=2, frame="week",
                            fidelity_days=SCORED_DAYS, trace_days=0.1)
    plan = make_plan(request)
    other = make_plan(dataclasses.replace(request, source="threshold_duty20"))
    configs, _ = build_configs(other)
    return plan, configs


def test_default_frame_is_long_term_with_its_warm_up_and_scored_days():
    plan = make_plan(ExportRequest(source="threshold", target="summit_rcs", n_patients=1))
    assert plan.frame == "long_term"
    assert (plan.warmup_days, plan.settings.horizon_days) == (90.0, 28.0)
    assert plan.frame_text.startswith("frame long_term: 90 days of warm-up")
    week = make_plan(ExportRequest(source="threshold", target="summit_rcs", n_patients=1, frame="week"))
    assert (week.warmup_days, week.settings.horizon_days) == (0.0, FRAMES["week"].horizon_days)
    custom = make_plan(ExportRequest(source="threshold", target="summit_rcs", n_patients=1, fidelity_days=2))
    assert (custom.warmup_days, custom.settings.horizon_days) == (90.0, 2.0)


def test_shadow_agreement_counts_only_the_scored_decisions(mismatched):
    """With a warm-up, the shadow agreement is that of the scored tail of one long run of the source, shadowed."""
    plan, configs = mismatched
    warm = dataclasses.replace(plan, frame="long_term", warmup_days=WARMUP_DAYS)
    report = fidelity_report(warm, configs)
    scored = round(SCORED_DAYS * DECISIONS_PER_DAY)
    warm_decisions = round(WARMUP_DAYS * DECISIONS_PER_DAY)

    spec = plan.spec
    dets = calibrated_detectors(spec, plan.patients, 30.0, plan.seed)
    by_uid = {int(p.uid): c for p, c in zip(plan.patients, configs, strict=True)}
    long_settings = dataclasses.replace(plan.settings, horizon_days=WARMUP_DAYS + SCORED_DAYS)
    long = rollout(spec.build(30.0, plan.seed), plan.patients, long_settings, plan.seed,
                   lambda i: {"detector": dets[i]}, shadow=ConfigPolicy("exported", by_uid, 30.0))
    assert long.shadow_ma is not None
    for i, row in enumerate(report["per_patient"]):
        assert row["shadow_n_decisions"] == scored
        assert row["closed_loop_n_decisions"] == scored
        tail = decision_agreement(long.amplitudes_ma[i, warm_decisions:], long.shadow_ma[i, warm_decisions:])
        whole = decision_agreement(long.amplitudes_ma[i, 1:], long.shadow_ma[i, 1:])
        assert row["shadow_balanced_accuracy"] == tail["balanced_accuracy"]
        assert row["shadow_cohen_kappa"] == tail["cohen_kappa"]
        assert row["shadow_raw_agreement"] == tail["raw_agreement"]
        assert whole["n_decisions"] > tail["n_decisions"]  # the warm-up's decisions were there to count
    assert report["agreement_pooled"]["shadow"]["n_decisions"] == scored * len(plan.patients)
    held = report["held_out"]
    assert held["frame"] == "long_term" and held["warmup_days"] == WARMUP_DAYS and held["days"] == SCORED_DAYS
    assert held["frame_text"] == describe_frame(WARMUP_DAYS, SCORED_DAYS, "naive")


def test_rollout_records_only_the_window_after_its_warm_up(mismatched):
    plan, configs = mismatched
    by_uid = {int(p.uid): c for p, c in zip(plan.patients, configs, strict=True)}
    source = ControllerSpec("source", "cycling", {"on_s": 600.0, "off_s": 1200.0})
    long_settings = dataclasses.replace(plan.settings, horizon_days=WARMUP_DAYS + SCORED_DAYS)
    long = rollout(source.build(30.0, 0), plan.patients, long_settings, 3, shadow=ConfigPolicy("x", by_uid, 30.0))
    warm = rollout(source.build(30.0, 0), plan.patients, plan.settings, 3, shadow=ConfigPolicy("x", by_uid, 30.0),
                   warmup_days=WARMUP_DAYS)
    start = round(WARMUP_DAYS * DECISIONS_PER_DAY)
    assert warm.warmup_decisions == start and warm.amplitudes_ma.shape[1] == round(SCORED_DAYS * DECISIONS_PER_DAY)
    np.testing.assert_array_equal(warm.amplitudes_ma, long.amplitudes_ma[:, start:])
    assert warm.shadow_ma is not None and long.shadow_ma is not None
    np.testing.assert_array_equal(warm.shadow_ma, long.shadow_ma[:, start:])
    np.testing.assert_array_equal(warm.features_db, long.features_db[:, start:])


def test_week_frame_reproduces_the_previous_fidelity_calls(mismatched):
    """``frame=week`` (no warm-up) gives exactly what the report computed before frames: ``evaluate`` and
    ``rollout`` called without a warm-up, the shadow's first decision left out."""
    plan, configs = mismatched
    report = fidelity_report(plan, configs)
    assert report["held_out"]["frame"] == "week" and report["held_out"]["warmup_days"] == 0.0
    by_uid = {int(p.uid): c for p, c in zip(plan.patients, configs, strict=True)}
    source = ControllerSpec("source", plan.spec.kind, plan.spec.params)
    specs = [ControllerSpec("off", "off"), source,
             ControllerSpec("exported", "policy", factory=lambda: ConfigPolicy("exported", by_uid, 30.0))]
    res = evaluate(specs, plan.patients, plan.settings, reward=plan.reward, seed=plan.seed, record_actions=True)
    dets = res.detectors["source"]
    shadow = rollout(source.build(30.0, plan.seed), plan.patients, plan.settings, plan.seed,
                     lambda i: {"detector": dets[i]}, shadow=ConfigPolicy("exported", by_uid, 30.0))
    assert shadow.shadow_ma is not None
    for i, row in enumerate(report["per_patient"]):
        closed = decision_agreement(res.actions["source"][i], res.actions["exported"][i])
        open_ = decision_agreement(shadow.amplitudes_ma[i, 1:], shadow.shadow_ma[i, 1:])
        assert {k: row[f"closed_loop_{k}"] for k in closed} == closed
        assert {k: row[f"shadow_{k}"] for k in open_} == open_
        for label in ("off", "source", "exported"):
            for m in ("reward_per_day", "mean_pain_nrs", "high_pain_fraction", "duty_cycle", "battery_life_years"):
                assert row[f"{label}_{m}"] == float(res.per_patient[label][m][i])


BAD = {
    # name: (overrides, error code, fragments of the message)
    "warmup_negative": (["warmup_days=-1"], "PL-EVAL-WARMUP", ["warmup_days=-1", ">= 0"]),
    "warmup_nan": (["warmup_days=nan"], "PL-EVAL-WARMUP", ["warmup_days=nan", "finite"]),
    "warmup_too_long": (["warmup_days=4000"], "PL-EVAL-WARMUP", ["warmup_days=4000", "3650"]),
    "unknown_frame": (["frame=month"], "PL-CONFIG-VALUE", ["frame='month'", "long_term", "week"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_frame_keys_exit_2_naming_the_key_before_anything_is_written(name, tmp_path):
    overrides, code, fragments = BAD[name]
    run_dir = tmp_path / "run"
    rc, _ = run_in_process(run_dir, *overrides, "cohort.n_patients=2")
    assert rc == 2
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["error"]["code"] == code
    for fragment in fragments:
        assert fragment in status["error"]["message"], status["error"]["message"]
    assert {p.name for p in run_dir.iterdir()} <= ALLOWED_AFTER_REFUSAL


def test_command_line_refuses_a_negative_warm_up_with_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(cli("warmup_days=-1", "cohort.n_patients=2", run_dir=run_dir), cwd=ROOT,
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "PL-EVAL-WARMUP" in proc.stderr and "warmup_days=-1" in proc.stderr
    assert {p.name for p in run_dir.iterdir()} <= ALLOWED_AFTER_REFUSAL


def test_the_command_prints_and_records_its_frame(tmp_path):
    run_dir = tmp_path / "run"
    rc, out = run_in_process(run_dir, "source=threshold", "cohort.n_patients=2", f"warmup_days={WARMUP_DAYS}",
                             f"fidelity_days={SCORED_DAYS}", "trace_days=0.1")
    assert rc == 0, out
    text = describe_frame(WARMUP_DAYS, SCORED_DAYS, "naive")
    assert f"fidelity report, {text}" in out
    held = json.loads((run_dir / "fidelity.json").read_text())["held_out"]
    assert (held["frame"], held["frame_text"], held["warmup_days"], held["days"]) == (
        "long_term", text, WARMUP_DAYS, SCORED_DAYS)
