"""Plumbing of ``python -m experiments.benchmark`` (keys and exit codes, not speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import benchmark
from experiments.benchmarks import cli, evaluation, run, simulator, training

ROOT = Path(__file__).resolve().parents[1]
FIGURE_KEYS = {"unit", "median", "min", "max", "n_repeats", "repeats"}


def test_simulator_section_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = benchmark.main(["--section", "simulator", "--quick", "--repeats", "2", "--out", str(out), "--silent"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema"] == run.SCHEMA
    assert report["section"] == "simulator"
    for key in ("settings", "machine", "versions", "git", "results", "floors", "targets"):
        assert key in report, key
    assert {"cpu_count", "platform", "python"} <= set(report["machine"])
    assert {"numpy", "numba", "gymnasium"} <= set(report["versions"])
    assert all(report["versions"][k] for k in ("numpy", "numba", "gymnasium"))
    assert "revision" in report["git"]
    assert report["settings"]["openblas_num_threads"]

    res = report["results"]
    for name in ("cartpole", "single_env"):
        assert FIGURE_KEYS <= set(res[name]), name
        assert res[name]["n_repeats"] == 2
        assert res[name]["min"] <= res[name]["median"] <= res[name]["max"]
        assert res[name]["median"] > 0
    assert res["single_env"]["ratio_to_cartpole"] > 0
    assert res["single_env"]["make_s"] >= 0
    assert set(res["batched"]) == {str(n) for n in simulator.QUICK_SIZES}
    for fig in res["batched"].values():
        assert FIGURE_KEYS <= set(fig)
        assert fig["unit"] == "patient-steps/s"
        assert fig["median"] > 0 and fig["ratio_to_cartpole"] > 0
        assert fig["setup_s"] >= 0 and fig["calibration_s"] >= 0
    nb = res["numba"]
    assert nb["errors"] == {}
    assert nb["compile_first_step_s"] > 0 and nb["cache_load_first_step_s"] > 0

    assert FIGURE_KEYS <= set(res["numpy_noise"]) and res["numpy_noise"]["n_patients"] == max(simulator.QUICK_SIZES)
    assert {t["key"] for t in report["targets"]} >= {"batched_4096_vs_numpy_noise"}

    floors = {f["key"]: f for f in report["floors"]}
    assert set(floors) == {"single_env_steps_per_s", "batched_1024_patient_steps_per_s"}
    assert floors["single_env_steps_per_s"]["threshold"] == 20_000
    assert floors["single_env_steps_per_s"]["met"] in (True, False)
    # --quick does not run N = 1024: reported as not measured, never as met.
    assert floors["batched_1024_patient_steps_per_s"]["met"] is None

    printed = capsys.readouterr().out
    assert "CartPole-v1" in printed and "floors (issue 2)" in printed


@pytest.mark.slow
def test_training_section_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "train.json"
    code = benchmark.main(["--section", "training", "--quick", "--repeats", "2", "--out", str(out), "--silent"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["section"] == "training"
    assert {"torch", "stable_baselines3"} <= set(report["versions"])
    res = report["results"]
    assert set(res["rollout"]) == {str(n) for n in training.QUICK_SIZES}
    for fig in res["rollout"].values():
        for name in ("painloop", "cartpole"):
            assert FIGURE_KEYS <= set(fig[name]) and fig[name]["n_repeats"] == 2 and fig[name]["median"] > 0
        assert fig["ratio_to_cartpole"] > 0
    e2e = res["end_to_end"]
    assert FIGURE_KEYS <= set(e2e["painloop"]) and FIGURE_KEYS <= set(e2e["cartpole"])
    assert e2e["ratio_to_cartpole"] > 0 and e2e["ratio_to_cartpole_ppo_defaults_8"] > 0
    assert FIGURE_KEYS <= set(res["cartpole_ppo_defaults_8"])
    assert res["torch_threads"] == 1
    targets = {t["key"]: t for t in report["targets"]}
    assert set(targets) == {"rollout_64_ratio", "end_to_end_ratio", "end_to_end_vs_defaults"}
    assert targets["rollout_64_ratio"]["met"] is None  # n_envs 64 is not run by --quick
    assert targets["end_to_end_ratio"]["met"] in (True, False)
    assert "rollout collection" in capsys.readouterr().out


def test_peers_section_skips_with_reason_when_simglucose_cannot_install(tmp_path, capsys, monkeypatch):
    import venv

    def no_venv(*args, **kwargs):
        raise OSError("no network here")

    monkeypatch.setattr(venv, "create", no_venv)
    out = tmp_path / "peers.json"
    code = benchmark.main(["--section", "peers", "--quick", "--repeats", "2", "--out", str(out), "--silent"])
    assert code == 0
    res = json.loads(out.read_text())["results"]
    assert "no network here" in res["simglucose"]["skipped"]
    assert FIGURE_KEYS <= set(res["painloop_single_env"]) and res["painloop_single_env"]["median"] > 0
    assert "simglucose could not be installed or run" in capsys.readouterr().out


def test_all_is_the_default_section():
    args = cli.build_parser().parse_args([])
    assert args.section == "all"
    assert cli.ALL_SECTIONS == ("simulator", "evaluation", "training", "peers")


def test_bad_sizes_exit_2(tmp_path, capsys):
    out = tmp_path / "never.json"
    assert benchmark.main(["--section", "training", "--training-sizes", "0", "--out", str(out)]) == 2
    assert "--training-sizes" in capsys.readouterr().err and not out.exists()


def test_evaluation_section_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = benchmark.main(["--section", "evaluation", "--quick", "--repeats", "1", "--out", str(out), "--silent"])
    assert code == 0
    report = json.loads(out.read_text())
    fig = report["results"]["evaluation"]
    assert report["section"] == "evaluation"
    assert fig["controllers"] == list(evaluation.BASELINES) and len(fig["controllers"]) == 7
    assert fig["median"] > 0 and fig["n_patients"] == 4
    assert [f["key"] for f in report["floors"]] == ["evaluation_wall_s"]
    long_term = report["results"]["evaluation_long_term"]  # beside the 7-day figure: 8 controllers, warm-up first
    assert long_term["controllers"] == list(evaluation.LONG_TERM_CONTROLLERS) and len(long_term["controllers"]) == 8
    assert long_term["n_repeats"] == 1 and long_term["median"] > 0 and long_term["warmup_days"] > 0
    assert long_term["jobs"] == 2 and long_term["load_average_after"] is not None
    targets = {t["key"]: t for t in report["targets"]}
    assert targets["evaluation_long_term_wall_s"]["threshold"] == 90.0
    assert targets["evaluation_long_term_wall_s"]["source"] == "issue 15"
    printed = capsys.readouterr().out
    assert "controller-patient-days/s" in printed and "frame custom: 0.5 days of warm-up" in printed


def test_unknown_section_exits_2(capsys):
    assert benchmark.main(["--section", "everything"]) == 2
    assert "allowed" in capsys.readouterr().err


def test_learning_section_quick_writes_json(tmp_path, capsys):
    """Plumbing of the learning section: one tiny PPO training, the tuning sweep, the paired test table."""
    out = tmp_path / "learning.json"
    runs = tmp_path / "runs"
    code = benchmark.main(
        ["--section", "learning", "--quick", "--agents", "ppo", "--runs-dir", str(runs), "--out", str(out), "--silent"]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["section"] == "learning"
    assert {"torch", "stable_baselines3"} <= set(report["versions"])
    res = report["results"]
    assert report["settings"]["agents"] == ["ppo"] and report["settings"]["seeds"] == [0]

    (train,) = res["trainings"]
    assert train["label"] == "ppo_s0" and train["state"] == "finished" and not train["over_time_limit"]
    assert train["timesteps"] == train["budget_steps"] == 4096
    assert train["wall_s"] > 0 and train["train_fps"] > 0
    assert (runs / "runs" / "ppo_s0" / "best_model.zip").is_file()

    assert train["best_at_timesteps"] is not None and train["best_at_wall_s"] is not None  # the time to the goal
    assert report["settings"]["frame"] == "long_term" and report["settings"]["warmup_days"] > 0

    tuning = res["threshold_tuning"]
    assert tuning["cohort"] == "validation" and "warm-up" in tuning["frame_text"]
    assert [r["target_duty"] for r in tuning["sweep"]] == [0.3, 0.7]
    assert tuning["best_target_duty"] in (0.3, 0.7)
    assert tuning["best_reward_per_day"] == max(r["reward_per_day"] for r in tuning["sweep"])

    ev = res["evaluation"]
    labels = [r["controller"] for r in ev["controllers"]]
    assert labels == ["off", "continuous", "threshold", "threshold_tuned", "ppo_s0"]
    assert ev["cohort"] == "test" and ev["n_patients"] == 4 and ev["frame"] == "long_term"
    assert ev["frame_text"].startswith("frame custom: 0.25 days of warm-up")  # --quick shortens the long-term frame
    assert {r["family"] for r in ev["fronts"]} == {"threshold", "cycling", "dual_threshold", "references"}
    for row in ev["controllers"]:
        for m in ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day", "duty_cycle"):
            assert row[f"{m}_ci_low"] <= row[m] <= row[f"{m}_ci_high"], (row["controller"], m)
    (diff,) = [d for d in ev["paired_differences"]["threshold"] if d["controller"] == "ppo_s0"]
    assert diff["reward_per_day_diff_ci_low"] <= diff["reward_per_day_diff"] <= diff["reward_per_day_diff_ci_high"]
    (goal,) = ev["goal"]
    expected = (diff["reward_per_day_diff_ci_low"] > 0 and diff["mean_pain_nrs_diff"] <= 0.2
                and diff["stim_energy_j_per_day_diff"] <= 0)
    assert goal["met"] is expected
    (lt,) = ev["long_term_goals"]
    cont = next(r for r in ev["paired_differences"]["continuous"] if r["controller"] == "ppo_s0")
    assert lt["beats_continuous"]["pain_vs_continuous"]["diff"] == pytest.approx(cont["mean_pain_nrs_diff"])
    assert lt["beats_continuous"]["met"] is (cont["mean_pain_nrs_diff_ci_high"] < 0
                                             and lt["beats_continuous"]["energy_share_of_continuous"] <= 0.6)
    families = [c["family"] for c in lt["front"]["comparisons"]]
    assert families == ["threshold", "cycling", "dual_threshold", "off", "continuous"]
    compared = [c for c in lt["front"]["comparisons"] if c["verdict"] != "not compared"]
    assert lt["front"]["met"] is (bool(compared) and all(c["diff"] <= 0 for c in compared))
    thr = next(r for r in ev["paired_differences"]["threshold"] if r["controller"] == "ppo_s0")
    assert lt["high_pain_vs_threshold"]["diff"] == pytest.approx(thr["high_pain_fraction_diff"])
    assert lt["met"] is (lt["beats_continuous"]["met"] and lt["front"]["met"] and lt["high_pain_vs_threshold"]["met"])
    assert [t["key"] for t in report["targets"]] == ["goal_ppo_s0", "long_term_goal_ppo_s0"]
    headroom = res["headroom"]  # the bound beside the baselines and the run, on the first test patients (2 with --quick)
    assert headroom["n_patients"] == 2 and headroom["bound"] == "planner_clairvoyant"
    rows = {r["controller"]: r for r in headroom["rows"]}
    assert {"ppo_s0", "threshold_tuned", "cycling_5min", "planner_clairvoyant"} <= set(rows)
    assert rows["planner_clairvoyant"]["reward_share"] == pytest.approx(1.0)
    assert {r["n_patients"] for r in rows.values()} == {2}
    from experiments.benchmarks.learning_table import render_learning

    assert "share of headroom closed on the first 2 of 4 patients" in render_learning(res)

    printed = capsys.readouterr().out
    assert "threshold_tuned" in printed and "learned - calibrated threshold" in printed
    assert "long-term issue's goals" in printed and "time to the goal" in printed and "baseline fronts" in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--agents", "ppo", "nosuchagent"], "--agents"),
        (["--budget-steps", "lots"], "--budget-steps"),
        (["--agents", "ppo", "--budget-steps", "a2c=1000"], "--budget-steps"),
        (["--seeds", "0"], "--seeds"),
        (["--frame", "decade"], "--frame"),
        (["--experiment", "nosuchexperiment"], "--experiment"),
        (["--warmup-days", "-1"], "--warmup-days"),
    ],
)
def test_learning_section_bad_options_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "never.json"
    assert benchmark.main(["--section", "learning", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
