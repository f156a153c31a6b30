"""``python -m experiments.export``: files, fidelity report, config entries, refusals, distillation and ONNX."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import device_oracle  # noqa: E402  (tests/ is on sys.path)
import numpy as np
import pytest

from agents.run_files import save_run_files
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.core import PHYSICS_VERSION
from simenv.reward import RewardWeights

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
#: What a refused export may leave behind: Hydra's record and log, and status.json (failed).
ALLOWED_AFTER_REFUSAL = {".hydra", "export.log", "status.json"}


def env() -> dict[str, str]:
    return os.environ | {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def cli(*args: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.export", *args, f"hydra.run.dir={run_dir}"]


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import experiments.export  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return hydra_compose(config_name="export", overrides=list(overrides))


def run_in_process(run_dir: Path, *overrides: str, conf_dir: Path | None = None) -> tuple[int, str]:
    """``experiments.export.run`` on a composed config; returns (exit code, stderr-like message)."""
    from experiments.export import CONTROLLER_DIR, run

    out = io.StringIO()
    try:
        with redirect_stdout(out):
            run(compose(*overrides), run_dir, conf_dir=conf_dir or CONTROLLER_DIR)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def make_run(folder: Path, action_mode: str = "on_off") -> None:
    """A tiny PPO run folder (config, model, VecNormalize statistics), as experiments.train writes it."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from agents.sb3_vec_env import PainStimSB3VecEnv

    torch.set_num_threads(1)
    settings = EnvSettings(horizon_days=0.05, action_mode=action_mode, decision_interval_s=60.0)
    venv = VecNormalize(VecMonitor(PainStimSB3VecEnv(patients=load_preset("train").sample(2), settings=settings)))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"agent": "ppo", "algo_class": "PPO", "env_settings": dataclasses.asdict(settings),
              "reward": dataclasses.asdict(RewardWeights()), "physics_version": PHYSICS_VERSION}
    (folder / "train_config.json").write_text(json.dumps(config))
    save_run_files(folder, model, venv)


@pytest.fixture(scope="module")
def threshold_export(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export") / "thr"
    proc = subprocess.run(
        cli("source=dual_threshold", "cohort=test", "cohort.n_patients=3", "frame=week", "fidelity_days=1",
            "trace_days=0.5", run_dir=run_dir),
        cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300,
    )
    return proc, run_dir


def test_threshold_export_writes_configs_traces_and_a_fidelity_report(threshold_export):
    proc, run_dir = threshold_export
    assert proc.returncode == 0, proc.stderr
    patients = load_preset("test").sample(3)
    stems = sorted(f"{p.cohort}_{p.index:03d}_{p.uid}" for p in patients)
    assert sorted(p.stem for p in (run_dir / "configs").glob("*.json")) == stems
    assert sorted(p.stem for p in (run_dir / "traces").glob("*.csv")) == stems
    report = json.loads((run_dir / "fidelity.json").read_text())
    assert report["exact_decisions"] is True
    assert report["agreement_per_patient_mean"]["closed_loop_balanced_accuracy"]["mean"] == 1.0
    assert report["reward_gain_retention"] == pytest.approx(1.0, abs=1e-6)
    assert {"reward_per_day_diff", "reward_per_day_diff_ci_low"} <= set(report["paired_vs_source"][0])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    for stem in stems:
        config = json.loads((run_dir / "configs" / f"{stem}.json").read_text())
        assert config["provenance"]["metrics_at_export"]["closed_loop_balanced_accuracy"] == 1.0
        rows = device_oracle.read_trace(run_dir / "traces" / f"{stem}.csv")
        assert len(rows) == 1439
        assert device_oracle.check_trace(config, rows, 30.0) == []
    assert "balanced accuracy 1.000" in proc.stdout


def test_export_folder_is_a_config_entry_of_evaluate(threshold_export, tmp_path):
    _, export_dir = threshold_export
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"controllers=[dual_threshold,exp=config:{export_dir}]",
         "cohort=test", "cohort.n_patients=3", "frame=week", "horizon_days=0.5", "reference=dual_threshold",
         f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r.split(",")[0]: r for r in (out / "per_patient.csv").read_text().splitlines()[1:]}
    assert rows  # both controllers reported; paired differences are zero for decisions
    paired = json.loads((out / "paired.json").read_text())
    exp = next(r for r in paired["controllers"] if r["controller"] == "exp")
    assert exp["switches_per_hour_diff"] == 0.0 and abs(exp["duty_cycle_diff"]) < 1e-5


def test_export_request_defaults_are_conf_export_yaml():
    """``ExportRequest``'s defaults (the plain-Python path) equal ``conf/export.yaml`` (the command's)."""
    from experiments.export import export_request
    from experiments.exporting.plan import ExportRequest

    composed = export_request(compose())
    default = ExportRequest(source=composed.source, target=composed.target)
    uids = [[p.uid for p in load_preset(r.cohort).sample(r.n_patients)] for r in (default, composed)]
    assert uids[0] == uids[1]
    assert RewardWeights.from_mapping(default.reward) == RewardWeights.from_mapping(composed.reward)
    skip = {"n_patients", "reward"}
    for f in dataclasses.fields(ExportRequest):
        if f.name not in skip:
            assert getattr(default, f.name) == getattr(composed, f.name), f.name


def test_export_from_python_without_hydra_writes_what_the_command_writes(threshold_export, tmp_path):
    """``export_controller`` (no Hydra imported) writes the command's configs, traces and fidelity report."""
    _, cli_dir = threshold_export
    out = tmp_path / "py"
    script = (
        "import sys\n"
        "from experiments.exporting.run import export_controller\n"
        f"r = export_controller('dual_threshold', 'summit_rcs', {str(out)!r}, cohort='test', n_patients=3, "
        "frame='week', fidelity_days=1, trace_days=0.5)\n"
        "assert r == 1.0, r\n"
        "loaded = sorted(m for m in sys.modules if m == 'hydra' or m.startswith('hydra.'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env=env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    for name in ("fidelity.json", "fidelity_per_patient.csv", "fidelity_metrics.csv", "fidelity_paired.csv"):
        assert (out / name).read_bytes() == (cli_dir / name).read_bytes(), name
    for path in sorted((cli_dir / "traces").glob("*.csv")):
        assert (out / "traces" / path.name).read_bytes() == path.read_bytes()
    for path in sorted((cli_dir / "configs").glob("*.json")):
        ours, theirs = json.loads((out / "configs" / path.name).read_text()), json.loads(path.read_text())
        for c in (ours, theirs):
            del c["provenance"]["exported"]  # the time of export
        assert ours == theirs


BAD = {
    # name: (overrides, exit code, error code)
    "unknown_target": (["target=fpga"], 2, "PL-EXPORT-TARGET"),
    "latent_source": (["source=oracle"], 2, "PL-EXPORT-SOURCE"),
    "onnx_needs_a_run": (["source=threshold", "target=onnx"], 2, "PL-EXPORT-SOURCE"),
    "config_source": (["source=config:somewhere"], 2, "PL-EXPORT-SOURCE"),
    "missing_run": (["source=run:does/not/exist"], 2, "PL-RUN-FOLDER"),
    "same_seeds": (["source=dual_threshold", "target=percept", "distill.seed=0"], 2, "PL-CONFIG-VALUE"),
    # seed 3 = distill.seed + dagger_rounds + 1: the closed-loop selection's noise
    "selection_seed": (["source=dual_threshold", "target=percept", "distill.seed=1", "seed=3"], 2,
                       "PL-CONFIG-VALUE"),
    "select_top_k": (["source=dual_threshold", "target=percept", "distill.select_top_k=51"], 2, "PL-CONFIG-VALUE"),
    "distill_warmup": (["source=dual_threshold", "target=percept", "distill.warmup_days=-1"], 2, "PL-EVAL-WARMUP"),
    "footprint_limit": (["source=dual_threshold", "target=percept", "distill.footprint_limit_db=0"], 2,
                        "PL-CONFIG-VALUE"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_and_leaves_no_result(name, tmp_path):
    overrides, rc, code = BAD[name]
    run_dir = tmp_path / "run"
    got, _ = run_in_process(run_dir, *overrides, "cohort.n_patients=2")
    assert got == rc
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["error"]["code"] == code
    assert {p.name for p in run_dir.iterdir()} <= ALLOWED_AFTER_REFUSAL


def test_unsafe_export_is_refused_with_every_violation_and_no_file(tmp_path):
    conf = tmp_path / "controllers"
    conf.mkdir()
    (conf / "slow_threshold.yaml").write_text("kind: threshold\nonset_updates: 300\ntermination_updates: 400\n")
    run_dir = tmp_path / "run"
    rc, _ = run_in_process(run_dir, "source=slow_threshold", "cohort.n_patients=2", conf_dir=conf)
    assert rc == 2
    status = json.loads((run_dir / "status.json").read_text())
    assert status["error"]["code"] == "PL-CONFIG-INVALID"
    message = status["error"]["message"]
    for field in ("$.detectors.LD0.onset_updates", "$.detectors.LD0.termination_updates"):
        assert message.count(field) == 2, message  # both patients, both fields
    assert {p.name for p in run_dir.iterdir()} <= ALLOWED_AFTER_REFUSAL


def test_command_line_refuses_an_unknown_key(tmp_path):
    proc = subprocess.run(cli("targt=onnx", run_dir=tmp_path / "r"), cwd=ROOT, capture_output=True, text=True,
                          env=env(), timeout=120)
    assert proc.returncode == 2
    assert "PL-CONFIG-KEY" in proc.stderr and "target" in proc.stderr


# -- distillation ------------------------------------------------------------------------------
def test_distilling_a_detector_recovers_its_decisions():
    """A threshold baseline *is* a detector: distillation must find one that agrees with it on held-out days."""
    from agents.config_format import build_config
    from agents.config_policy import ConfigPolicy
    from agents.controller_config import check_config
    from agents.controllers import ControllerSpec
    from agents.distill import distill
    from agents.distill_fit import DistillSettings
    from agents.export import (
        calibrated_detectors,
        decision_agreement,
        provenance,
        stimulation_fields,
    )
    from agents.rollout import rollout

    patients = load_preset("test").sample(2)
    spec = ControllerSpec("threshold", "threshold", {"termination_updates": 0})
    dets = calibrated_detectors(spec, patients, 30.0, 0)

    def make_config(i, det, states, fit, ld1=None):
        p = patients[i]
        return build_config("summit_rcs", det, states, ld1=ld1,
                            provenance=provenance(p, "t", "threshold", 30.0, fit=fit), **stimulation_fields(p))

    configs, fits = distill(lambda: spec.build(30.0, 0), patients, "summit_rcs", 30.0,
                            DistillSettings(days=1.0, seed=7, dagger_rounds=1, timing_search=False,
                                            footprint_limit_db=None), make_config,
                            contexts_extra=lambda i: {"detector": dets[i]})
    for c in configs:
        check_config(c)
        # Closed-loop selection: the exported candidate is the one with the best closed-loop agreement.
        sel = c["provenance"]["fit"]["closed_loop_selection"]
        # select_top_k=6 detectors, up to 4 with LD1 (12 bands allowed: more than LD0's 4), the constant table
        assert 7 <= sel["candidates"] <= 11
        assert sel["balanced_accuracy"][sel["chosen_open_loop_rank"]] == max(sel["balanced_accuracy"])
        assert sel["balanced_accuracy"][-1] <= 0.5 + 1e-9  # a constant table cannot tell the classes apart
    assert all(f["status"] == "ok" and f["balanced_accuracy_fit"] > 0.8 for f in fits), [(f["balanced_accuracy_fit"], f["inputs_excluded"], f["inputs_selected"]) for f in fits]
    by_uid = {p.uid: c for p, c in zip(patients, configs, strict=True)}
    held = rollout(spec.build(30.0, 0), patients, EnvSettings(horizon_days=1.0), 11,
                   lambda i: {"detector": dets[i]}, shadow=ConfigPolicy("x", by_uid))
    for i in range(len(patients)):
        a = decision_agreement(held.amplitudes_ma[i, 1:], held.shadow_ma[i, 1:])
        assert a["balanced_accuracy"] > 0.85, a


def test_run_export_distils_and_reports(tmp_path):
    pytest.importorskip("torch")
    make_run(tmp_path / "run")
    run_dir = tmp_path / "exp"
    rc, out = run_in_process(run_dir, f"source=run:{tmp_path / 'run'}", "target=percept", "cohort.n_patients=2",
                             "distill.days=0.5", "distill.dagger_rounds=1", "frame=week", "fidelity_days=0.5",
                             "trace_days=0.2")
    assert rc == 0, out
    report = json.loads((run_dir / "fidelity.json").read_text())
    for key in ("closed_loop_balanced_accuracy", "closed_loop_cohen_kappa", "shadow_balanced_accuracy"):
        assert key in report["agreement_per_patient_mean"]
    assert set(report["reward_per_day_mean"]) == {"off", "source", "exported"}
    assert len(report["fits"]) == 2 and all(f["method"] == "distillation" for f in report["fits"])
    for path in (run_dir / "configs").glob("*.json"):
        config = json.loads(path.read_text())
        assert config["target"] == "percept" and len(config["detectors"]["LD0"]["inputs"]) == 1
        rows = device_oracle.read_trace(run_dir / "traces" / f"{path.stem}.csv")
        assert device_oracle.check_trace(config, rows, 30.0) == []


# -- ONNX -------------------------------------------------------------------------------------
@pytest.mark.parametrize("action_mode", ["on_off", "continuous"])
def test_onnx_actions_equal_sb3_on_10000_observations(tmp_path, action_mode):
    pytest.importorskip("onnxruntime")
    from agents.onnx_export import check_onnx, export_onnx, record_observations
    from agents.rl_policy import load_run_policy

    make_run(tmp_path / "run", action_mode)
    policy = load_run_policy(tmp_path / "run")
    path = export_onnx(policy, tmp_path / "policy.onnx")
    obs = record_observations(policy, load_preset("test").sample(4), EnvSettings(horizon_days=1.0), 0, 10_000)
    assert obs.shape[0] == 10_000 and np.unique(obs[:, 0]).size > 1000
    result = check_onnx(policy, path, obs)
    assert result["all_equal"], result
    # Normalisation is inside the graph: feeding normalised observations gives other actions somewhere.
    if action_mode == "continuous":
        from agents.onnx_export import onnx_actions

        assert not np.array_equal(onnx_actions(path, obs), onnx_actions(path, policy.normalise(obs)))


def test_onnx_command_and_mismatch_refusal(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    make_run(tmp_path / "run")
    rc, out = run_in_process(tmp_path / "ok", f"source=run:{tmp_path / 'run'}", "target=onnx", "cohort.n_patients=2",
                             "onnx_observations=2000")
    assert rc == 0, out
    check = json.loads((tmp_path / "ok" / "onnx_check.json").read_text())
    assert check["all_equal"] and check["n_observations"] == 2000
    import agents.onnx_export as ox

    real = ox.onnx_actions
    monkeypatch.setattr(ox, "onnx_actions", lambda path, obs: 1 - real(path, obs))
    rc, _ = run_in_process(tmp_path / "bad", f"source=run:{tmp_path / 'run'}", "target=onnx", "cohort.n_patients=2",
                           "onnx_observations=500")
    assert rc == 1
    status = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"]["code"] == "PL-EXPORT-ONNX"
