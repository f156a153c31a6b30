"""Sweeps: launchers (joblib, submitit local, Ray), fault isolation, re-runs, the sweep report, bad input.

Every sweep is a real ``--multirun`` command line with tiny budgets (4
training slots, 2 rollouts of 256 steps, 2 validation patients for 2.4 h;
evaluations of 2 patients for about an hour). Tests that need an optional
plugin are marked ``plugin``: they skip when it is missing, and that skip
fails under ``CI=true`` (tests/conftest.py).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = ["n_envs=4", "cohort.n_patients=4", "validation.n_patients=2", "validation.horizon_days=0.1",
              "progress_bar=false", "agent.hyperparams.n_steps=64", "agent.hyperparams.batch_size=64",
              "total_timesteps=512", "eval_freq=256", "checkpoint_freq=100000"]
TINY_EVAL = ["frame=week", "controllers=[continuous,threshold]", "cohort.n_patients=2", "horizon_days=0.05"]
TINY_REPORT = ["--patients", "2", "--warmup-days", "0.05", "--days", "0.05", "--duties", "0.3", "0.7",
               "--cycling-periods-s", "600", "--cycling-duties", "0.5", "--dual-duties", "0.5",
               "--baselines", "off", "continuous"]


def env() -> dict[str, str]:
    return os.environ | {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "RAY_DEDUP_LOGS": "0"}


def command(module: str, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env(), timeout=timeout_s)


def need(plugin: str) -> None:
    pytest.importorskip(f"hydra_plugins.{plugin}", reason=f"{plugin} is not installed (pip install 'painloop[sweep]')")


def states(sweep: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["state"] for p in sorted(sweep.glob("*/status.json"))}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


# -- joblib: 4 trainings, the report, a re-run that skips them ------------------------------------
@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    need("hydra_joblib_launcher")
    sweep = tmp_path_factory.mktemp("sweep") / "joblib"
    args = ["--multirun", "hydra/launcher=painloop_joblib", "hydra.launcher.n_jobs=2", "reward.energy=0.2,2",
            "seed=0,1", *TINY_TRAIN, f"hydra.sweep.dir={sweep}"]
    proc = command("train", *args)
    return proc, sweep, args


@pytest.mark.plugin
def test_four_job_joblib_sweep_and_its_report(joblib_sweep, tmp_path):
    proc, sweep, _ = joblib_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel" in proc.stdout + proc.stderr
    assert states(sweep) == {str(i): "finished" for i in range(4)}

    report = command("sweep_report", str(sweep), *TINY_REPORT)
    assert report.returncode == 0, report.stderr[-3000:]
    out = sweep / "sweep_report"
    rows = read_csv(out / "sweep_table.csv")
    assert sorted(r["run"] for r in rows) == ["0", "1", "2", "3"]
    assert {(r["reward.energy"], r["seed"]) for r in rows} == {("0.2", "0"), ("0.2", "1"), ("2", "0"), ("2", "1")}
    assert all(r["state"] == "finished" and r["point_from"] == "report evaluation, best model" for r in rows)
    assert all(0 < float(r["final_mean_pain_nrs"]) < 10 for r in rows)  # the final models too
    for r in rows:  # every run was evaluated and has its validation metrics
        assert 0 < float(r["mean_pain_nrs"]) < 10 and float(r["stim_energy_j_per_day"]) >= 0
        assert math.isfinite(float(r["val_reward_per_day"])) and float(r["objective"]) == pytest.approx(
            float(r["val_reward_per_day"]), rel=1e-6)
    assert any(r["pareto_energy"] == "True" for r in rows)
    for name in ("pareto_energy.png", "pareto_side_effects.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "sweep_report.json").read_text())
    assert data["swept_keys"] == ["reward.energy", "seed"] and data["counts"] == {"finished": 4}
    assert [t["target_duty"] for t in data["evaluation"]["threshold"]] == [0.3, 0.7]
    assert [b["label"] for b in data["evaluation"]["baselines"]] == ["off", "continuous"]
    assert data["goal"]["tolerance_nrs"] == 0.05 and len(data["goal"]["points"]) == 2
    assert "runs: {'finished': 4}" in report.stdout


@pytest.mark.plugin
def test_rerunning_a_sweep_skips_the_finished_runs(joblib_sweep):
    proc, sweep, args = joblib_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/model.zip")}
    again = command("train", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("is already finished; nothing to do") == 4
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/model.zip")} == before


def test_an_evaluation_rerun_is_skipped_unless_redo(tmp_path):
    run_dir = tmp_path / "eval"
    first = command("evaluate", *TINY_EVAL, f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    started = json.loads((run_dir / "status.json").read_text())["started_unix"]
    again = command("evaluate", *TINY_EVAL, f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and "already finished" in again.stdout
    assert json.loads((run_dir / "status.json").read_text())["started_unix"] == started
    redo = command("evaluate", *TINY_EVAL, "redo=true", f"hydra.run.dir={run_dir}")
    assert redo.returncode == 0 and "already finished" not in redo.stdout
    st = json.loads((run_dir / "status.json").read_text())
    assert st["state"] == "finished" and st["started_unix"] > started


# -- fault isolation --------------------------------------------------------------------------------
@pytest.mark.plugin
def test_a_failing_job_is_recorded_and_the_other_jobs_finish(tmp_path):
    need("hydra_joblib_launcher")
    sweep = tmp_path / "faulty"
    # validation.trace_patient=5 names a patient the 2-patient validation cohort does not have: that job fails.
    proc = command("train", "--multirun", "hydra/launcher=painloop_joblib", "hydra.launcher.n_jobs=2",
                   "validation.trace_patient=0,5,1", *TINY_TRAIN, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]  # the sweep itself completes
    assert states(sweep) == {"0": "finished", "1": "failed", "2": "finished"}
    report = command("sweep_report", str(sweep), "--no-evaluate")
    assert report.returncode == 0, report.stderr[-3000:]
    data = json.loads((sweep / "sweep_report" / "sweep_report.json").read_text())
    assert [f["run"] for f in data["failed"]] == ["1"]
    assert data["failed"][0]["error"].startswith("PL-CONFIG-VALUE: validation.trace_patient=5")
    assert "FAILED 1: PL-CONFIG-VALUE: validation.trace_patient=5" in report.stdout
    rows = {r["run"]: r for r in read_csv(sweep / "sweep_report" / "sweep_table.csv")}
    assert rows["1"]["state"] == "failed" and "trace_patient=5" in rows["1"]["error"]
    assert rows["0"]["error"] == "" and rows["0"]["point_from"] == "validation"  # no common evaluation asked for
    assert float(rows["0"]["mean_pain_nrs"]) == float(rows["0"]["val_mean_pain_nrs"]) and rows["1"]["mean_pain_nrs"] == ""


#: A synthetic training sweep: reward.energy -> its best model's validation (mean pain NRS, energy J/day).
SYNTHETIC_POINTS = {"0.1": (4.0, 9.0), "0.5": (4.5, 6.0), "1": (5.0, 7.0), "2": (5.5, 3.0)}


def synthetic_sweep(root: Path, points: dict[str, tuple[float, float]] = SYNTHETIC_POINTS) -> Path:
    """A finished training sweep written without training: per run, its override and one validation row.

    Run ``i`` sweeps ``reward.energy`` (its ``.hydra/overrides.yaml``) and
    holds a ``metrics.csv`` whose best row has the given mean pain and
    stimulation energy, and a ``finished`` status; the report reads its
    point from that validation (``--no-evaluate``).
    """
    from experiments.common.run_folder import RunFolder

    for i, (weight, (pain, energy)) in enumerate(points.items()):
        run = root / str(i)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- reward.energy={weight}\n- seed=0\n")
        reward = -1000.0 * pain - 10.0 * energy
        (run / "metrics.csv").write_text(
            "timesteps,reward_per_day,mean_pain_nrs,high_pain_fraction,duty_cycle,stim_energy_j_per_day,"
            "side_effect_events_per_day,switches_per_hour,best\n"
            f"256,{reward - 50},{pain + 0.5},0.1,0.5,{energy},0.0,1.0,1\n"
            f"512,{reward},{pain},0.1,0.5,{energy},0.0,1.0,1\n")
        folder = RunFolder(run, "train")
        folder.start()
        folder.finish(result={"objective": reward})
    return root


def test_sweep_front_is_the_reports_front_without_writing(tmp_path):
    from experiments.sweeps import ReportOptions, build_report, sweep_front

    sweep = synthetic_sweep(tmp_path / "sweep")
    front = sweep_front(sweep, evaluate=False)
    assert not (sweep / "sweep_report").exists()  # nothing written
    assert front.swept_keys == ["reward.energy"] and front.evaluation is None
    assert [(p["label"], p["mean_pain_nrs"], p["stim_energy_j_per_day"]) for p in front.front_energy] == [
        ("energy=2", 5.5, 3.0), ("energy=0.5", 4.5, 6.0), ("energy=0.1", 4.0, 9.0)]  # energy=1 is dominated
    report = build_report(ReportOptions(path=sweep, out=tmp_path / "report", evaluate=False), log=lambda m: None)
    assert report["runs"] == front.rows  # the same table, read again
    assert report["front_energy"] == front.front_energy and report["swept_keys"] == front.swept_keys
    assert [r["run"] for r in read_csv(tmp_path / "report" / "sweep_table.csv")] == ["0", "1", "2", "3"]


def budget_sweep(root: Path) -> Path:
    """The synthetic sweep with an energy budget per run: runs 0 and 1 in their overrides, run 2 in run.json."""
    sweep = synthetic_sweep(root)
    for i, budget in ((0, 2.0), (1, 4.0)):
        overrides = sweep / str(i) / ".hydra" / "overrides.yaml"
        overrides.write_text(overrides.read_text() + f"- budget.energy_j_per_day={budget}\n")
    (sweep / "2" / "run.json").write_text(json.dumps({"config": {"budget": {"energy_j_per_day": 6.0}}}))
    return sweep


def test_a_runs_budget_comes_from_its_config_or_its_overrides(tmp_path):
    from experiments.sweeps.budgets import run_budget
    from experiments.sweeps.runs import read_sweep

    runs = {r.name: r for r in read_sweep(budget_sweep(tmp_path / "sweep"))}
    assert {name: run_budget(r) for name, r in runs.items()} == {"0": 2.0, "1": 4.0, "2": 6.0, "3": None}


def test_the_report_evaluates_the_baseline_fronts_in_the_long_term_frame(tmp_path):
    """A budget sweep without models: the fronts are evaluated (long-term frame, shortened), each budget listed."""
    from experiments.sweeps import ReportOptions, build_report, render

    sweep = budget_sweep(tmp_path / "sweep")
    opts = ReportOptions(path=sweep, out=tmp_path / "report", patients=2, warmup_days=0.05, days=0.05,
                         duties=(0.3, 0.7), cycling_periods_s=(600.0, 1800.0), cycling_duties=(0.35, 0.7),
                         dual_duties=(0.5,), baselines=("off", "continuous", "cycling_5min"))
    assert opts.frame == "long_term"
    report = build_report(opts, log=lambda m: None)
    ev = report["evaluation"]
    assert ev["frame"] == "long_term" and ev["frame_text"].startswith("frame custom: 0.05 days of warm-up")
    assert [t["target_duty"] for t in ev["threshold"]] == [0.3, 0.7]
    assert [(c["period_s"], c["duty"]) for c in ev["cycling"]] == [(600.0, 0.35), (600.0, 0.7), (1800.0, 0.35),
                                                                   (1800.0, 0.7)]
    assert [d["label"] for d in ev["dual_threshold"]] == ["dual_threshold_duty0.5"]
    assert [b["label"] for b in ev["baselines"]] == ["off", "continuous", "cycling_5min"]
    assert set(ev["envelopes"]) == {"threshold", "cycling", "dual_threshold", "off", "continuous"}
    assert ev["envelopes"]["dual_threshold"] == ["dual_threshold_duty0.5"]
    rows = report["budgets"]["rows"]
    assert [(r["run"], r["model"], r["budget_j_per_day"]) for r in rows] == [
        ("0", "best", 2.0), ("0", "final", 2.0), ("1", "best", 4.0), ("1", "final", 4.0), ("2", "best", 6.0),
        ("2", "final", 6.0)]
    assert not any(r["evaluated"] for r in rows)  # the synthetic runs hold no model
    baselines = read_csv(tmp_path / "report" / "baselines.csv")
    assert len(baselines) == 2 + 4 + 1 + 3 and {r["family"] for r in baselines[:7]} == {
        "threshold", "cycling", "dual_threshold"}
    assert [r["run"] for r in read_csv(tmp_path / "report" / "budgets.csv")] == ["0", "0", "1", "1", "2", "2"]
    assert (tmp_path / "report" / "pareto_energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = render(report)
    assert "baseline fronts" in text and "frame custom" in text and "budget 4.00 J/day: not evaluated" in text


def test_the_budget_table_compares_each_policy_with_the_fronts_paired(tmp_path):
    """Synthetic per-patient values: one policy keeps its budget and beats the fronts, one misses both."""
    import numpy as np

    from agents.evaluation_result import EvaluationResult
    from experiments.evaluation.front_math import Front
    from experiments.evaluation.fronts import BaselineFronts
    from experiments.sweeps.budgets import budget_rows, render_budgets
    from experiments.sweeps.runs import read_sweep

    def metrics(energy: float, pains: list[float]) -> dict[str, np.ndarray]:
        return {"stim_energy_j_per_day": np.array([energy, energy]), "mean_pain_nrs": np.array(pains)}

    per_patient = {"a": metrics(1.0, [6.0, 7.0]), "b": metrics(5.0, [5.0, 6.0]),
                   "run_0": metrics(2.0, [5.5, 6.3]),  # budget 2: met; front at 2.1 J/day: 6.475 -> at or below
                   "run_1": metrics(4.6, [5.9, 6.3])}  # budget 4: 15% over; front at 4.83 J/day: 5.5425 -> above
    result = EvaluationResult(labels=list(per_patient), patients=[None, None], per_patient=per_patient,
                              uses_latent={}, horizon_days=28.0, seed=0)
    fronts = BaselineFronts(result, {"threshold": Front("threshold", {k: per_patient[k] for k in ("a", "b")})},
                            "frame long_term", "test")
    runs = [r for r in read_sweep(budget_sweep(tmp_path / "sweep")) if r.name in ("0", "1")]
    rows = budget_rows(runs, fronts, ["best"])
    met, missed = rows
    assert met["budget_met"] and met["at_or_below_every_front"] and met["miss"] == ""
    assert met["threshold_front_pain_nrs"] == pytest.approx(6.5 - 1.1 / 4) and met["threshold_verdict"] == "at or below"
    assert met["threshold_diff_nrs"] == pytest.approx(5.9 - (6.5 - 0.275))
    assert not missed["budget_met"] and missed["energy_over_budget"] == pytest.approx(0.15)
    assert missed["threshold_verdict"] == "above" and not missed["at_or_below_every_front"]
    assert missed["miss"].startswith("energy +15% over the budget; threshold front lower by 0.558 NRS")
    text = "\n".join(render_budgets(rows, ["threshold"], "frame long_term"))
    assert "budget 2.00 J/day, energy 2.00 (+0%) -> met" in text and "MISSED" in text


def test_the_reports_default_grids_are_the_fronts(tmp_path):
    from experiments.evaluation.fronts import FrontGrid
    from experiments.sweeps import ReportOptions

    assert ReportOptions(path=tmp_path).grid() == FrontGrid()


def test_the_report_reads_running_and_stale_runs(tmp_path):
    """States come from status.json: a dead job's old heartbeat is 'stale', a fresh one 'running'."""
    from experiments.common.run_folder import RunFolder
    from experiments.sweeps import ReportOptions, build_report

    now = time.time()
    RunFolder(tmp_path / "0", "evaluate", clock=lambda: now).start()
    RunFolder(tmp_path / "1", "evaluate", clock=lambda: now - 3600).start()
    report = build_report(ReportOptions(path=tmp_path, out=tmp_path / "report", evaluate=False), log=lambda m: None)
    assert {r["run"]: r["state"] for r in report["runs"]} == {"0": "running", "1": "stale"}


# -- cluster launchers, locally ---------------------------------------------------------------------
@pytest.mark.plugin
def test_two_job_sweep_through_the_submitit_local_launcher(tmp_path):
    need("hydra_submitit_launcher")
    sweep = tmp_path / "submitit"
    proc = command("evaluate", "--multirun", "hydra/launcher=painloop_submitit_local", "seed=0,1", *TINY_EVAL,
                   f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert states(sweep) == {"0": "finished", "1": "finished"}
    assert (sweep / ".submitit").is_dir()


@pytest.mark.plugin
@pytest.mark.slow
def test_two_job_sweep_through_ray_on_a_local_instance(tmp_path):
    need("hydra_ray_launcher")
    sweep = tmp_path / "ray"
    proc = command("evaluate", "--multirun", "hydra/launcher=painloop_ray", "+hydra.launcher.ray.init.num_cpus=2",
                   "seed=0,1", *TINY_EVAL, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert states(sweep) == {"0": "finished", "1": "finished"}
    assert "_run_job pid=" in proc.stdout + proc.stderr  # the jobs ran as Ray tasks


@pytest.mark.plugin
@pytest.mark.slow
def test_sigusr2_under_submitit_checkpoints_requeues_and_the_job_completes_its_budget(tmp_path):
    """Slurm's time-limit warning, with submitit's local executor standing in for Slurm."""
    need("hydra_submitit_launcher")
    sweep = tmp_path / "slurm"
    budget = 40960  # 160 rollouts of 256 steps: long enough to be signalled mid-way
    args = ["--multirun", "hydra/launcher=painloop_submitit_local", *TINY_TRAIN, f"total_timesteps={budget}",
            "checkpoint_freq=1024", "eval_freq=20480", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    run_dir = sweep / "0"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list((run_dir / "checkpoints").glob("ckpt_*_steps.zip")):
            time.sleep(0.05)
        st = json.loads((run_dir / "status.json").read_text())
        assert st["state"] == "running", st
        os.kill(int(st["pid"]), signal.SIGUSR2)  # the job's own process, as Slurm signals it
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    st = json.loads((run_dir / "status.json").read_text())
    assert st["state"] == "finished" and st["result"]["timesteps"] == budget
    resumes = json.loads((run_dir / "run.json").read_text())["resumes"]
    assert len(resumes) == 1 and resumes[0]["submitit"] and 0 < resumes[0]["timesteps"] < budget
    assert resumes[0]["from_checkpoint"] == f"checkpoints/ckpt_{resumes[0]['timesteps']}_steps.zip"
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.err"))
    # Training checkpointed and recorded the signal, then handed it to submitit's handler, which requeued.
    assert "interrupted by SIGUSR2" in logs and "Caught signal SIGUSR2" in logs


# -- the training's objectives for Optuna -------------------------------------------------------------
def test_pain_energy_objective_returns_the_best_models_validation_pain_and_energy(tmp_path):
    from experiments.sweeps.objective import task_value

    (tmp_path / "metrics.csv").write_text(
        "timesteps,reward_per_day,mean_pain_nrs,stim_energy_j_per_day,best\n"
        "0,-100,6.0,5.0,1\n256,-90,5.5,7.0,1\n512,-95,5.0,9.0,0\n")
    assert task_value("pain_energy", tmp_path, -90.0) == [5.5, 7.0]
    assert task_value("reward", tmp_path, -90.0) == -90.0
    assert all(math.isnan(v) for v in task_value("pain_energy", tmp_path, math.nan))


@pytest.mark.plugin
def test_multi_objective_optuna_sweep_with_sqlite_storage(tmp_path):
    need("hydra_optuna_sweeper")
    sweep = tmp_path / "optuna"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    proc = command("train", "--multirun", "hydra/sweeper=painloop_optuna_reward", "objective=pain_energy",
                   "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage={storage}",
                   *TINY_TRAIN, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Number of Pareto solutions" in proc.stdout + proc.stderr
    import optuna

    study = optuna.load_study(study_name="painloop_reward_weights", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and all(len(t.values) == 2 and 0 < t.values[0] < 10 for t in done)


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.plugin
@pytest.mark.parametrize(
    ("module", "override", "expected"),
    [
        ("train", "hydra/launcher=nope", ["Could not find 'hydra/launcher/nope'", "painloop_joblib", "submitit_slurm"]),
        ("train", "hydra/launcher=painloop_nope,painloop_joblib", ["'hydra/launcher/painloop_nope'", "painloop_ray"]),
        ("evaluate", "hydra/sweeper=nope", ["Could not find 'hydra/sweeper/nope'", "painloop_optuna_reward"]),
        ("train", "hydra/lancher=basic", ["'hydra/lancher'", "hydra/launcher", "hydra/sweeper"]),
        ("train", "reward=big", ["Could not find 'reward/big'", "['default']"]),
        ("evaluate", "cohort=nope", ["Could not find 'cohort/nope'", "validation"]),
        ("train", "experiment=paretto", ["'experiment/paretto'", "pareto", "did you mean 'pareto'"]),
    ],
)
def test_an_unknown_group_or_option_fails_before_any_job_starts(tmp_path, module, override, expected):
    need("hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    proc = command(module, "--multirun", "hydra/launcher=painloop_joblib", override, f"hydra.sweep.dir={sweep}",
                   timeout_s=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: PL-") and "Traceback" not in proc.stderr
    for phrase in expected:
        assert phrase in proc.stderr
    assert not sweep.exists()  # no job started


def test_the_report_refuses_a_missing_or_empty_sweep_folder(tmp_path):
    code = "PL-SWEEP-PATH"
    missing = command("sweep_report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.startswith(f"error: {code}: ")
    (tmp_path / "empty").mkdir()
    empty = command("sweep_report", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds no run" in empty.stderr
    assert empty.stderr.startswith(f"error: {code}: ") and not (tmp_path / "empty" / "sweep_report").exists()


def test_the_report_refuses_a_bad_baseline_before_writing(tmp_path):
    from experiments.common.run_folder import RunFolder

    RunFolder(tmp_path / "0", "evaluate").start()
    bad = command("sweep_report", str(tmp_path), "--baselines", "nope")
    assert bad.returncode == 2 and "PL-CONTROLLER-UNKNOWN" in bad.stderr
    bad = command("sweep_report", str(tmp_path), "--duties", "1.5")
    assert bad.returncode == 2 and "PL-CONTROLLER-PARAM" in bad.stderr
    bad = command("sweep_report", str(tmp_path), "--cycling-duties", "1")
    assert bad.returncode == 2 and "PL-CONTROLLER-PARAM" in bad.stderr and "cycling_duties" in bad.stderr
    bad = command("sweep_report", str(tmp_path), "--cycling-periods-s", "40")
    assert bad.returncode == 2 and "PL-CONTROLLER-PARAM" in bad.stderr and "on_s" in bad.stderr
    bad = command("sweep_report", str(tmp_path), "--frame", "decade")
    assert bad.returncode == 2 and "PL-CONFIG-VALUE" in bad.stderr and "long_term" in bad.stderr
    bad = command("sweep_report", str(tmp_path), "--warmup-days", "-1")
    assert bad.returncode == 2 and "PL-EVAL-WARMUP" in bad.stderr
    assert not (tmp_path / "sweep_report").exists()


# -- the CI rule for plugin tests -----------------------------------------------------------------------
def test_a_skipped_plugin_test_fails_when_ci_is_true(tmp_path):
    import inspect

    import conftest

    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n" + inspect.getsource(conftest._skip_reason) + "\n\n"
        + inspect.getsource(conftest.pytest_runtest_makereport))
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.plugin
        def test_needs_a_plugin():
            pytest.importorskip("no_such_plugin_anywhere")

        def test_plain_skip():
            pytest.skip("not a plugin test")
    """))
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nmarkers =\n    plugin: needs a plugin\n")

    def run(ci: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                              cwd=tmp_path, capture_output=True, text=True, env=os.environ | {"CI": ci}, timeout=120)

    on_ci = run("true")
    assert on_ci.returncode == 1 and "1 failed, 1 skipped" in on_ci.stdout
    assert "plugin test skipped under CI=true" in on_ci.stdout
    local = run("false")
    assert local.returncode == 0 and "2 skipped" in local.stdout
