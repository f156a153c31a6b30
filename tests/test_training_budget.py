"""Budget mode of training (``budget.*``): targets, the multiplier's moves, resume, bad input, default unchanged.

Trainings are tiny (4 slots x 64 steps per rollout, 4 training patients,
2 validation patients for 2.4 h): the multiplier is updated at every
rollout boundary (``budget.update_freq=256``), so a 2,048-step run logs 8
updates in seconds.
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
from pathlib import Path

import pytest
import test_train as ttr  # noqa: E402  (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
ROLLOUT = 256  # 4 slots x 64 steps

#: A tiny training from plain Python: sys.argv[1] run dir, sys.argv[2] JSON of budget keys (or "resume").
SCRIPT = textwrap.dedent("""
    import json, sys
    from experiments.training.defaults import default_config
    from experiments.training.runner import train

    if sys.argv[2] == "resume":
        train(run_dir=sys.argv[1], resume=True, show_progress=False)
        raise SystemExit(0)
    extra = json.loads(sys.argv[2])
    config = default_config("ppo")
    config.agent.hyperparams.n_steps = 64
    config.agent.hyperparams.batch_size = 128
    config.n_envs = 4
    config.cohort.n_patients = 4
    config.validation.n_patients = 2
    config.validation.horizon_days = 0.1
    config.total_timesteps = extra.pop("total_timesteps", 2048)
    config.eval_freq = extra.pop("eval_freq", 512)
    config.checkpoint_freq = extra.pop("checkpoint_freq", 1024)
    for key, value in extra.items():
        setattr(config.budget, key, value)
    train(config, sys.argv[1], show_progress=False)
""")


def _python(run_dir: Path, arg: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PAINLOOP_FAULT"} | {"OPENBLAS_NUM_THREADS": "1"}
    if fault:
        env["PAINLOOP_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), arg], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)


def _train(run_dir: Path, **budget) -> Path:
    proc = _python(run_dir, json.dumps(budget))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "budget.csv").open() as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _tiny_patients(n: int = 4):
    from simenv.cohort import load_preset

    return load_preset("train").sample(n)


def _continuous(n: int = 4) -> float:
    from experiments.training.budget import continuous_energy_j_per_day

    patients = _tiny_patients(n)
    return sum(continuous_energy_j_per_day(p) for p in patients) / n


def _assert_dual_ascent(rows: list[dict[str, float]], lr: float) -> None:
    """Each row's multiplier is the previous one moved by lr x the relative excess, projected to >= 0."""
    for prev, row in zip(rows, rows[1:], strict=False):
        b = row["target_j_per_day"]
        assert row["multiplier"] == max(0.0, prev["multiplier"] + lr * (row["energy_j_per_day"] - b) / b)


# -- targets from the parameters ---------------------------------------------------------------------
def test_continuous_energy_and_battery_life_conversion_match_the_simulator():
    import numpy as np

    from experiments.training.budget import (
        continuous_energy_j_per_day,
        energy_for_battery_life,
        off_battery_life_years,
    )
    from simenv import layout as L
    from simenv.batch import EnvSettings, PainStimBatch
    from simenv.params import SECONDS_PER_YEAR

    patients = _tiny_patients(2)
    batch = PainStimBatch(patients, EnvSettings(horizon_days=1.0, initial_state="naive"))
    batch.reset(seed=0)
    for _ in range(1440):
        batch.step_arrays(np.ones(2, dtype=np.int64), observe=False)
    state = batch.core.state
    stim_per_day = state[:, L.S_ENERGY_STIM_J] / (state[:, L.S_TIME_S] / 86400.0)
    for i, p in enumerate(patients):
        assert continuous_energy_j_per_day(p) == pytest.approx(stim_per_day[i], rel=1e-3)  # the ramp's 10 s
        # The energy that gives 10 years, drawn as the simulator draws it (stim / efficiency + overhead),
        # lasts 10 years by the evaluation's battery-life formula.
        b = p.params.battery
        draw_w = energy_for_battery_life(10.0, p) / 86400.0 / b.efficiency + b.overhead_uw * 1e-6
        assert b.capacity_j / draw_w / SECONDS_PER_YEAR == pytest.approx(10.0, rel=1e-12)
        assert energy_for_battery_life(off_battery_life_years(p), p) == pytest.approx(0.0, abs=1e-9)


def test_make_budget_targets_and_the_best_model_rule():
    from experiments.training.budget import better, make_budget
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict

    patients = _tiny_patients()
    config = config_dict(default_config("ppo"))
    assert make_budget(config, patients) is None  # both keys null: no budget
    config["budget"]["energy_j_per_day"] = 3.0
    b = make_budget(config, patients)
    assert (b.target_j_per_day, b.key, b.initial_multiplier, b.multiplier_lr, b.update_freq) == (
        3.0, "budget.energy_j_per_day", 0.2, 0.05, 8192)
    assert b.continuous_j_per_day == pytest.approx(_continuous())
    config["budget"] |= {"energy_j_per_day": None, "battery_life_years": 10.0}
    assert make_budget(config, patients).target_j_per_day == pytest.approx(3.2428, abs=1e-4)  # default battery
    # Within the budget beats over it; within: lower pain; over: lower energy; ties keep the incumbent.
    m = {"stim_energy_j_per_day": 2.0, "mean_pain_nrs": 6.0}
    assert better(m, None, b)
    assert better({"stim_energy_j_per_day": 3.2, "mean_pain_nrs": 6.5}, {"stim_energy_j_per_day": 3.3,
                  "mean_pain_nrs": 5.0}, b)
    assert not better({"stim_energy_j_per_day": 3.3, "mean_pain_nrs": 5.0}, m, b)
    assert better({"stim_energy_j_per_day": 1.0, "mean_pain_nrs": 5.9}, m, b)
    assert not better({"stim_energy_j_per_day": 1.0, "mean_pain_nrs": 6.0}, m, b)


def test_an_older_recorded_config_without_budget_compares_equal():
    from experiments.sweeps.rerun import comparable
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict

    config = config_dict(default_config("ppo"))
    old = {k: v for k, v in config.items() if k != "budget"}
    assert comparable(old) == comparable(config)
    changed = json.loads(json.dumps(config))
    changed["budget"]["energy_j_per_day"] = 3.0
    assert comparable(old) != comparable(changed)


# -- the multiplier during training ----------------------------------------------------------------------
def test_multiplier_rises_while_the_budget_is_exceeded(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(tmp_path / "low", energy_j_per_day=0.3, multiplier_lr=0.2, update_freq=ROLLOUT)
    rows = _rows(run)
    assert [int(r["timesteps"]) for r in rows] == list(range(0, 2049, ROLLOUT))
    assert rows[0]["multiplier"] == 0.2 and math.isnan(rows[0]["energy_j_per_day"])
    assert all(r["energy_j_per_day"] > 0.3 and r["decisions"] == ROLLOUT for r in rows[1:])
    values = [r["multiplier"] for r in rows]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values
    _assert_dual_ascent(rows, 0.2)
    # The same sequence in TensorBoard, the target beside it.
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("budget/multiplier")] == pytest.approx(values, rel=1e-6)
    assert [e.step for e in acc.Scalars("budget/energy_j_per_day")] == list(range(ROLLOUT, 2049, ROLLOUT))
    assert all(e.value == pytest.approx(0.3) for e in acc.Scalars("budget/target_j_per_day"))
    assert len(acc.Scalars("budget/validation_meets_budget")) == 5
    # The training env's energy weight was the multiplier; validation kept the evaluation reward.
    metrics = list(csv.DictReader((run / "metrics.csv").open()))
    energy_day = [float(m["stim_energy_j_per_day"]) for m in metrics]
    recorded = json.loads((run / "train_config.json").read_text())
    assert recorded["reward"]["energy"] == 0.2
    recorded = recorded["energy_budget"]
    assert recorded["target_j_per_day"] == 0.3 and recorded["key"] == "budget.energy_j_per_day"
    # Best model: no validation meets 0.3 J/day, so the lowest energy is the best (replayed rule).
    best = [i for i, m in enumerate(metrics) if m["best"] == "1"]
    expected, low = [], math.inf
    for i, e in enumerate(energy_day):
        if e < low:
            expected.append(i)
            low = e
    assert best == expected


def test_multiplier_falls_to_zero_once_the_budget_is_met(tmp_path):
    near = 0.95 * _continuous()
    run = _train(tmp_path / "high", energy_j_per_day=near, initial_multiplier=1.0, multiplier_lr=0.5,
                 update_freq=ROLLOUT)
    rows = _rows(run)
    values = [r["multiplier"] for r in rows]
    assert values[0] == 1.0 and values[-1] == 0.0, values
    assert all(b < a or a == b == 0.0 for a, b in zip(values, values[1:], strict=False)), values
    assert all(r["energy_j_per_day"] < near for r in rows[1:])
    _assert_dual_ascent(rows, 0.5)


def test_resume_continues_the_multiplier_exactly(tmp_path):
    run = tmp_path / "run"
    # Updates every 512 steps, checkpoints every 256: killed after the checkpoint at 768 (4th boundary),
    # halfway between updates, so the steps measured since the update at 512 must survive the restart.
    budget = {"energy_j_per_day": 0.3, "multiplier_lr": 0.2, "update_freq": 512, "checkpoint_freq": 256}
    killed = _python(run, json.dumps(budget), fault="rollout-boundary@4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = json.loads((run / "checkpoints" / "ckpt_768_steps_budget.json").read_text())
    before = _rows(run)
    assert [int(r["timesteps"]) for r in before] == [0, 512]
    assert state["multiplier"] == before[-1]["multiplier"]
    assert state["last_update"] == 512 and state["pending_decisions"] == ROLLOUT
    manifest = json.loads((run / "run.json").read_text())["manifest"]["files"]
    assert "checkpoints/ckpt_768_steps_budget.json" in manifest

    resumed = _python(run, "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at 768 steps" in resumed.stdout and "multiplier now" in resumed.stdout
    rows = _rows(run)
    assert [int(r["timesteps"]) for r in rows] == [0, 512, 1024, 1536, 2048]
    assert repr(rows[:2]) == repr(before)  # NaN energy in the first row
    assert rows[2]["decisions"] == 512  # 256 measured before the kill + 256 after the resume
    _assert_dual_ascent(rows, 0.2)

    # A changed multiplier file is refused at resume, nothing loaded (the manifest holds its hash).
    path = run / "checkpoints" / "ckpt_1792_steps_budget.json"
    data = json.loads(path.read_text())
    data["multiplier"] = 99.0
    path.write_text(json.dumps(data))
    from experiments.training.budget import ENERGY_KEY, EnergyBudget
    from experiments.training.budget_multiplier import EnergyMultiplier
    from experiments.training.folder import MetricsTable
    from simenv.errors import PainloopError

    budget = EnergyBudget(0.3, ENERGY_KEY, 0.3, 7.0, 0.2, 0.2, 512)
    multiplier = EnergyMultiplier(budget, None, MetricsTable(tmp_path / "x.csv", []))
    with pytest.raises(PainloopError) as info:
        multiplier.restore(run, 1792)
    assert info.value.code == "PL-RUN-MANIFEST"


def test_no_budget_trains_exactly_as_before(tmp_path):
    """Budget null and a config without the key at all (an older painloop's) give the same model, no budget files."""
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict, train

    config = default_config("ppo")
    config.agent.hyperparams.n_steps = 64
    config.agent.hyperparams.batch_size = 128
    config.n_envs = config.cohort.n_patients = 4
    config.validation.n_patients = 2
    config.validation.horizon_days = 0.1
    config.total_timesteps, config.eval_freq, config.checkpoint_freq = 1024, 512, 512
    plain = config_dict(config)
    del plain["budget"]
    train(config, tmp_path / "null", show_progress=False)
    train(plain, tmp_path / "absent", show_progress=False)
    a, b = (ttr.policy_params(tmp_path / x / "model.zip") for x in ("null", "absent"))
    assert ttr.same_params(a, b)
    for run in (tmp_path / "null", tmp_path / "absent"):
        assert not (run / "budget.csv").exists()
        assert not list((run / "checkpoints").glob("*_budget.json"))
        assert "energy_budget" not in json.loads((run / "train_config.json").read_text())


# -- bad input -------------------------------------------------------------------------------------------
BAD = {
    "negative": (["budget.energy_j_per_day=-1"], "PL-BUDGET-VALUE", ["budget.energy_j_per_day=-1.0", "> 0 (off)"]),
    "nan": (["budget.energy_j_per_day=nan"], "PL-BUDGET-VALUE", ["budget.energy_j_per_day=nan", "continuous"]),
    "off": (["budget.energy_j_per_day=0"], "PL-BUDGET-VALUE", ["budget.energy_j_per_day=0.0", "> 0 (off)"]),
    "continuous": (["budget.energy_j_per_day=20"], "PL-BUDGET-VALUE", ["=20.0", "continuous stimulation"]),
    "life_past_off": (["budget.battery_life_years=50"], "PL-BUDGET-VALUE", ["budget.battery_life_years=50.0",
                                                                           "< 47.53", "stimulation off"]),
    "life_of_continuous": (["budget.battery_life_years=4"], "PL-BUDGET-VALUE", ["=4.0", "continuous"]),
    "life_inf": (["budget.battery_life_years=inf"], "PL-BUDGET-VALUE", ["budget.battery_life_years=inf"]),
    "both": (["budget.energy_j_per_day=3", "budget.battery_life_years=10"], "PL-BUDGET-CONFLICT",
             ["budget.energy_j_per_day=3.0 and budget.battery_life_years=10.0", "one of them"]),
    "fixed_weight": (["budget.energy_j_per_day=3", "reward.energy=1.0"], "PL-BUDGET-CONFLICT",
                     ["reward.energy=1.0", "default 0.2", "multiplier replaces"]),
    "energy_aware": (["experiment=energy_aware", "budget.battery_life_years=10"], "PL-BUDGET-CONFLICT",
                     ["reward.energy=1.0 with budget.battery_life_years=10.0"]),
    "lr": (["budget.energy_j_per_day=3", "budget.multiplier_lr=0"], "PL-BUDGET-VALUE",
           ["budget.multiplier_lr=0.0", "> 0"]),
    "initial": (["budget.initial_multiplier=-0.1"], "PL-BUDGET-VALUE", ["budget.initial_multiplier=-0.1", ">= 0"]),
    "update_freq": (["budget.update_freq=0"], "PL-BUDGET-VALUE", ["budget.update_freq=0", ">= 1"]),
    "wrong_type": (["budget.energy_j_per_day=abc"], "PL-CONFIG-VALUE", ["budget.energy_j_per_day"]),
    "misspelled": (["budget.energy_j_per_days=3"], "PL-CONFIG-KEY", ["did you mean 'budget.energy_j_per_day'"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_budget_exits_2_before_training(name, tmp_path, capsys):
    args, code, fragments = BAD[name]
    run_dir = tmp_path / "run"
    rc, stdout, stderr = ttr.bad_in_process(ttr.with_small_cohort(args), run_dir, capsys)
    assert rc == 2, (stdout, stderr)
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {code}: "), stderr
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "painloop train: agent" not in stdout
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= ttr.ALLOWED_AFTER_BAD_INPUT, left


def test_bad_budget_on_the_command_line(tmp_path):
    proc = subprocess.run(ttr.cli("budget.energy_j_per_day=-2", "cohort.n_patients=2", run_dir=tmp_path / "run"),
                          cwd=ROOT, capture_output=True, text=True, env=ttr.env(), timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: PL-BUDGET-VALUE: budget.energy_j_per_day=-2.0")


def test_validation_energy_is_read_at_the_training_cohorts_cost():
    """A validation cohort cheaper to stimulate than the training cohort must not let a model pass the budget."""
    from experiments.training.budget import (
        continuous_energy_j_per_day,
        make_budget,
        meets,
        validation_energy,
    )
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict
    from simenv import load_preset

    train = load_preset("train").sample(20)
    val = load_preset("validation").sample(10)
    config = config_dict(default_config("ppo"))
    config["budget"]["energy_j_per_day"] = 3.0
    assert make_budget(config, train).validation_scale == 1.0
    b = make_budget(config, train, val)
    cost = lambda ps: sum(continuous_energy_j_per_day(p) for p in ps) / len(ps)  # noqa: E731
    assert b.validation_scale == pytest.approx(cost(train) / cost(val))
    assert b.validation_scale > 1.05  # the 10 default validation patients are cheaper: a real correction
    # The same duty on both cohorts: 40% on-time is 0.4 x continuous energy on each.
    m = {"stim_energy_j_per_day": 0.4 * cost(val), "mean_pain_nrs": 6.0}
    assert validation_energy(m, b) == pytest.approx(0.4 * cost(train))
    b_between = make_budget(config | {"budget": config["budget"] | {"energy_j_per_day": 0.4 * cost(val) * 1.02}},
                            train, val)
    assert not meets(m, b_between)  # within the budget in validation J/day, over it at the training cohort's cost
