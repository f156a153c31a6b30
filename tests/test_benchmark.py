"""Plumbing of ``python -m experiments.benchmark`` (keys and exit codes, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import benchmark

ROOT = Path(__file__).resolve().parents[1]
FIGURE_KEYS = {"unit", "median", "min", "max", "n_repeats", "repeats"}


def test_simulator_section_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = benchmark.main(["--section", "simulator", "--quick", "--repeats", "2", "--out", str(out), "--silent"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema"] == benchmark.SCHEMA
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
    assert set(res["batched"]) == {str(n) for n in benchmark.QUICK_SIZES}
    for fig in res["batched"].values():
        assert FIGURE_KEYS <= set(fig)
        assert fig["unit"] == "patient-steps/s"
        assert fig["median"] > 0 and fig["ratio_to_cartpole"] > 0
        assert fig["setup_s"] >= 0 and fig["calibration_s"] >= 0
    nb = res["numba"]
    assert nb["errors"] == {}
    assert nb["compile_first_step_s"] > 0 and nb["cache_load_first_step_s"] > 0

    floors = {f["key"]: f for f in report["floors"]}
    assert set(floors) == {"single_env_steps_per_s", "batched_1024_patient_steps_per_s"}
    assert floors["single_env_steps_per_s"]["threshold"] == 20_000
    assert floors["single_env_steps_per_s"]["met"] in (True, False)
    # --quick does not run N = 1024: reported as not measured, never as met.
    assert floors["batched_1024_patient_steps_per_s"]["met"] is None

    printed = capsys.readouterr().out
    assert "CartPole-v1" in printed and "floors (issue 2)" in printed


@pytest.mark.parametrize("section", ["training", "learning", "peers"])
def test_unimplemented_section_exits_2(section):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--section", section],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "not implemented yet" in proc.stderr
    assert section in proc.stderr


def test_evaluation_section_quick_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = benchmark.main(["--section", "evaluation", "--quick", "--repeats", "1", "--out", str(out), "--silent"])
    assert code == 0
    report = json.loads(out.read_text())
    fig = report["results"]["evaluation"]
    assert report["section"] == "evaluation"
    assert fig["controllers"] == list(benchmark.BASELINES) and len(fig["controllers"]) == 7
    assert fig["median"] > 0 and fig["n_patients"] == 4
    assert [f["key"] for f in report["floors"]] == ["evaluation_wall_s"]
    assert "controller-patient-days/s" in capsys.readouterr().out


def test_unknown_section_exits_2(capsys):
    assert benchmark.main(["--section", "everything"]) == 2
    assert "allowed" in capsys.readouterr().err
