"""The evaluation and sweep-report workflows from plain Python, without Hydra.

One subprocess (a fresh interpreter, so ``sys.modules`` tells what was
imported) runs a 2-controller paired evaluation on a tiny cohort in memory
and again into a run folder, builds the report table, refuses bad input with
its code, and takes the front of a synthetic sweep folder
(``test_sweeps.synthetic_sweep``); at the end Hydra must not have been
imported. The run folder's tables are the in-memory evaluation's, bit for
bit, and its config is the one the command line records. ``evaluate_config``
gives exactly what Hydra composes for the same choices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    from experiments.evaluation import evaluate_config, evaluate_controllers, report_text, write_evaluation
    from experiments.sweeps import sweep_front
    from simenv.errors import PainloopError

    tmp = Path(sys.argv[1])
    sys.path.insert(0, sys.argv[2])  # the tests folder: the synthetic sweep of test_sweeps
    from test_sweeps import synthetic_sweep

    out = {}
    keys = dict(cohort="test", n_patients=2, frame="week", horizon_days=0.05, seed=0, reference="continuous")
    ev = evaluate_controllers(["continuous", "thr=threshold"], **keys)
    out["labels"] = ev.labels
    out["summary"] = [[r["controller"], r["mean_pain_nrs"], r["duty_cycle"]] for r in ev.summary]
    out["paired"] = [[r["controller"], r["mean_pain_nrs_diff"]] for r in ev.paired]
    out["objective"] = ev.objective
    out["table"] = report_text(ev)
    write_evaluation(ev, tmp / "memory")

    run = evaluate_controllers(["continuous", "thr=threshold"], run_dir=tmp / "run", **keys)
    out["run_objective"] = run.objective
    out["config"] = json.loads((tmp / "run" / "run.json").read_text())["config"]
    out["status"] = json.loads((tmp / "run" / "status.json").read_text())["state"]

    try:
        evaluate_controllers(["continuous"], reference="nope", n_patients=2)
    except PainloopError as exc:
        out["bad_reference"] = exc.code
    try:
        evaluate_config(horizon_day=3)
    except PainloopError as exc:
        out["bad_key"] = exc.code
    out["default_cohort"] = [evaluate_config().cohort.name, evaluate_config().cohort.n_patients]

    front = sweep_front(synthetic_sweep(tmp / "sweep"), evaluate=False)
    out["front"] = [[p["run"], p["mean_pain_nrs"], p["stim_energy_j_per_day"]] for p in front.front_energy]
    out["rows"] = [[r["run"], r["reward.energy"], r["pareto_energy"]] for r in front.rows]

    out["hydra"] = sorted(m for m in sys.modules if m == "hydra" or m.startswith("hydra."))
    print(json.dumps(out))
    """
)


def test_evaluation_report_and_sweep_front_from_plain_python_without_hydra(tmp_path):
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(ROOT / "tests")], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *printed, last = proc.stdout.strip().splitlines()
    out = json.loads(last)
    assert out["hydra"] == []

    # The paired evaluation: entries as on the command line, the reference first in the paired rows.
    assert out["labels"] == ["continuous", "thr"]
    assert [r[0] for r in out["summary"]] == ["continuous", "thr"] and out["summary"][0][2] == 1.0
    assert out["paired"][0] == ["continuous", 0.0] and out["paired"][1][1] != 0.0
    assert out["objective"] == out["run_objective"]
    table = out["table"].splitlines()
    assert table[0] == "frame custom: 0.05 scored days from a naive start, no warm-up"  # every table names its frame
    assert table[1].startswith("controller") and table[3].startswith("continuous") and table[4].startswith("thr")
    assert any(line.startswith("vs continuous") for line in table)

    # With a run folder: the command's files and console tables, the same numbers bit for bit.
    assert out["status"] == "finished"
    assert out["table"] in "\n".join(printed)
    for name in ("metrics.csv", "per_patient.csv", "monthly.csv", "paired.csv", "metrics.json", "paired.json",
                 "detectors.json"):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
    assert out["config"] == {
        "controllers": ["continuous", "thr=threshold"], "reference": "continuous",
        "cohort": {"name": "test", "n_patients": 2}, "frame": "week", "warmup_days": None, "horizon_days": 0.05,
        "seed": 0, "dt_s": 30.0,
        "initial_state": "naive",
        "reward": {"pain": 1.0, "high_pain": 1.0, "energy": 0.2, "side_effects": 1.0, "switching": 0.02},
        "trace_patient": 0, "jobs": 1, "headroom": {"bound": None, "patients": None}, "redo": False,
    }

    # Bad input is refused with the command's codes; the defaults are conf/evaluate.yaml's.
    assert out["bad_reference"] == "PL-REFERENCE-UNKNOWN" and out["bad_key"] == "PL-CONFIG-KEY"
    assert out["default_cohort"] == ["test", 100]

    # The sweep front of a synthetic sweep folder, from each run's validation.
    assert out["front"] == [["3", 5.5, 3.0], ["1", 4.5, 6.0], ["0", 4.0, 9.0]]
    assert out["rows"] == [["0", "0.1", True], ["1", "0.5", True], ["2", "1", False], ["3", "2", True]]


@pytest.mark.parametrize("overrides, keys", [
    ([], {}),
    (["cohort=validation", "horizon_days=2", "cohort.n_patients=5", "seed=3"],
     {"cohort": "validation", "horizon_days": 2, "n_patients": 5, "seed": 3}),
])
def test_evaluate_config_equals_what_hydra_composes(overrides, keys):
    import dataclasses

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.config.schema import register
    from experiments.evaluation import evaluate_config

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        expected = OmegaConf.to_container(compose(config_name="evaluate", overrides=overrides), resolve=True)
    got = dataclasses.asdict(evaluate_config(**keys))
    assert json.dumps(got) == json.dumps(expected)  # same keys, order, values and types
