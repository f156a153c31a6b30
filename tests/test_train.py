"""``python -m experiments.train``: run folder, TensorBoard, signals and resume, determinism, fine-tuning, bad input.

Tiny budgets (a few thousand steps, 4 slots, 2 validation patients for a
few hours) keep every training to seconds. Two real command lines (a full
run; a run stopped by SIGTERM and resumed with ``resume=<dir>``) run as
subprocesses; the rest goes in-process through ``experiments.train.run``
with a composed config (what Hydra's task function calls).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
#: 4 slots, 4 training patients, 2 validation patients for 2.4 h: seconds per training.
SMALL = ["n_envs=4", "cohort.n_patients=4", "validation.n_patients=2", "validation.horizon_days=0.1",
         "progress_bar=false"]
PPO_SMALL = ["agent=ppo", "agent.hyperparams.n_steps=128", "agent.hyperparams.batch_size=128"]  # rollout 512
RUN_FILES = {"train_config.json", "run.json", "status.json", "model.zip", "vecnormalize.json", "best_model.zip",
             "best_vecnormalize.json", "metrics.csv", "tb", "checkpoints", "validation_trace.png"}
CLINICAL_TAGS = ["validation/mean_pain_nrs", "validation/high_pain_fraction", "validation/duty_cycle",
                 "validation/stim_energy_j_per_day", "validation/side_effect_events_per_day",
                 "validation/switches_per_hour", "validation/reward_per_day"]
#: What bad input may leave behind: Hydra's own record and log, and status.json (failed).
ALLOWED_AFTER_BAD_INPUT = {".hydra", "train.log", "status.json"}


def cli(*args: str, run_dir: Path | None = None) -> list[str]:
    extra = [f"hydra.run.dir={run_dir}"] if run_dir is not None else []
    return [sys.executable, "-m", "experiments.train", *args, *extra]


def env() -> dict[str, str]:
    return os.environ | {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import experiments.train  # noqa: F401  (registers the schemas)

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return hydra_compose(config_name="train", overrides=list(overrides))


def train_in_process(run_dir: Path, *overrides: str, **kwargs):
    """``precheck`` (as the console entry does), then ``run`` on the composed config; returns (objective, stdout)."""
    from experiments.train import precheck, run

    args, _, _ = precheck(list(overrides))
    out = io.StringIO()
    with redirect_stdout(out):
        value = run(compose(*args), run_dir, show_progress=False, **kwargs)
    return value, out.getvalue()


def policy_params(path: Path, algo: str = "PPO") -> dict:
    from experiments.training.agents import ALGORITHMS

    model = ALGORITHMS[algo].load_class().load(str(path), device="cpu")
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def same_params(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def wait_for(predicate, timeout_s: float = 60.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("ckpt_*_steps.zip"))


# -- a full command-line run ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("train") / "run"
    args = [*SMALL, *PPO_SMALL, "total_timesteps=4000", "eval_freq=2048", "checkpoint_freq=2048"]
    proc = subprocess.run(cli(*args, run_dir=run_dir), cwd=ROOT, capture_output=True, text=True, env=env(),
                          timeout=300)
    return proc, run_dir


def test_cli_run_writes_the_run_folder_contract(cli_run):
    import simenv
    from simenv.batch import EnvSettings

    proc, run_dir = cli_run
    assert proc.returncode == 0, proc.stderr
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    cfg = json.loads((run_dir / "train_config.json").read_text())
    assert cfg["agent"] == "ppo" and cfg["algo_class"] == "PPO"
    assert cfg["physics_version"] == simenv.PHYSICS_VERSION and cfg["painloop_version"]
    # 4000 requested steps, rollouts of 128 steps x 4 slots: rounded up to 8 whole rollouts.
    assert cfg["requested_total_timesteps"] == 4000 and cfg["total_timesteps"] == 4096
    assert EnvSettings(**cfg["env_settings"]).decision_interval_s == 60.0
    assert cfg["env_settings"]["initial_state"] == "randomized" and cfg["env_settings"]["action_mode"] == "on_off"
    assert set(cfg["reward"]) == set(simenv.TERMS)
    assert cfg["train_cohort"]["name"] == "train" and len(cfg["train_cohort"]["uids"]) == 4
    assert cfg["validation_cohort"]["name"] == "validation" and cfg["seed"] == 0
    assert not set(cfg["train_cohort"]["uids"]) & set(cfg["validation_cohort"]["uids"])
    run_info = json.loads((run_dir / "run.json").read_text())
    assert run_info["command"] == "train" and run_info["git_revision"] and run_info["packages"]["stable-baselines3"]
    st = status(run_dir)
    assert st["state"] == "finished" and st["result"]["timesteps"] == 4096
    assert checkpoint_steps(run_dir) == [2048]
    assert (run_dir / "checkpoints" / "ckpt_2048_steps_vecnormalize.json").is_file()
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["timesteps"]) for r in rows] == [0, 2048, 4096]
    for col in ("wall_time_s", "fps", "reward_per_day", "mean_pain_nrs", "high_pain_fraction", "duty_cycle",
                "stim_energy_j_per_day", "side_effect_events_per_day", "switches_per_hour", "term_pain"):
        assert col in rows[0], col
    best = max(float(r["reward_per_day"]) for r in rows)
    assert st["result"]["objective"] == pytest.approx(best)
    assert sum(int(r["best"]) for r in rows) >= 1 and int(rows[0]["best"]) == 1
    # The final model holds exactly the budget; the best model is one of the validated ones.
    from stable_baselines3 import PPO

    assert PPO.load(str(run_dir / "model.zip"), device="cpu").num_timesteps == 4096
    assert PPO.load(str(run_dir / "best_model.zip"), device="cpu").num_timesteps in {0, 2048, 4096}


def test_tensorboard_events_hold_clinical_scalars_terms_and_the_trace_image(cli_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc, run_dir = cli_run
    assert proc.returncode == 0, proc.stderr
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in CLINICAL_TAGS:
        assert [e.step for e in acc.Scalars(tag)] == [0, 2048, 4096], tag
    # SB3's own scalars, steps per second and the hyper-parameter table.
    assert {"time/fps", "train/loss", "perf/train_fps"} <= set(tags["scalars"])
    assert any(t.startswith("config/hyperparameters") for t in tags["tensors"])
    text = acc.Tensors(next(t for t in tags["tensors"] if t.startswith("config/hyperparameters")))[0]
    assert b"hyperparams.n_steps" in text.tensor_proto.string_val[0]
    # Each reward term's weighted contribution adds up to the reward, at every validation.
    rows = read_csv(run_dir / "metrics.csv")
    terms = ("pain", "high_pain", "energy", "side_effects", "switching")
    for i, row in enumerate(rows):
        parts = sum(acc.Scalars(f"validation_reward_per_day/{t}")[i].value for t in terms)
        assert parts == pytest.approx(float(row["reward_per_day"]), rel=1e-5)
        assert acc.Scalars("validation_terms/pain")[i].value == pytest.approx(float(row["term_pain"]), rel=1e-6)
    images = acc.Images("validation/trace_day")
    assert [im.step for im in images] == [0, 2048, 4096]
    assert images[0].width > 300 and images[0].height > 200
    assert images[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_run_folder_loads_as_a_policy(cli_run):
    from agents.rl_policy import load_run_policy

    _, run_dir = cli_run
    policy = load_run_policy(run_dir)
    assert policy.action_mode == "on_off" and policy.steps_per_decision == 2


# -- SIGTERM, then resume=<dir> -------------------------------------------------------------------
def test_sigterm_checkpoints_and_resume_finishes_exactly_at_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    args = [*SMALL, *PPO_SMALL, "total_timesteps=20480", "eval_freq=8192", "checkpoint_freq=4096"]
    proc = subprocess.Popen(cli(*args, run_dir=run_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    try:
        assert wait_for(lambda: checkpoint_steps(run_dir) if (run_dir / "checkpoints").is_dir() else False), \
            "no checkpoint appeared"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    st = status(run_dir)
    assert st["state"] == "interrupted" and st["signal"] == "SIGTERM"
    stopped = int(st["progress"]["timesteps"])
    assert 0 < stopped < 20480 and stopped % 512 == 0  # at a rollout boundary
    assert st["last_checkpoint"] == f"checkpoints/ckpt_{stopped}_steps.zip" and (run_dir / st["last_checkpoint"]).is_file()
    assert not (run_dir / "model.zip").exists()
    from stable_baselines3 import PPO

    assert PPO.load(str(run_dir / st["last_checkpoint"]), device="cpu").num_timesteps == stopped

    resumed = subprocess.run(cli(f"resume={run_dir}"), cwd=ROOT, capture_output=True, text=True, env=env(),
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    st = status(run_dir)
    assert st["state"] == "finished" and st["result"]["timesteps"] == 20480 and st["resumed_from"] == stopped
    assert PPO.load(str(run_dir / "model.zip"), device="cpu").num_timesteps == 20480
    steps = [int(r["timesteps"]) for r in read_csv(run_dir / "metrics.csv")]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 20480  # none repeated
    assert all(s % 512 == 0 for s in checkpoint_steps(run_dir))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumes"][0]["timesteps"] == stopped and info["resumes"][0]["from_checkpoint"] == st_checkpoint(stopped)
    # Resuming a finished run does nothing.
    again = subprocess.run(cli(f"resume={run_dir}"), cwd=ROOT, capture_output=True, text=True, env=env(), timeout=120)
    assert again.returncode == 0 and "already finished" in again.stdout


def st_checkpoint(steps: int) -> str:
    return f"checkpoints/ckpt_{steps}_steps.zip"


# -- SIGUSR2 (Slurm/submitit) and the requeued job resuming in its own folder --------------------------
def test_sigusr2_checkpoints_hands_on_to_submitit_and_the_requeued_job_resumes(tmp_path):
    """Off-policy (DQN): the replay buffer is part of the checkpoint and matches its step count."""
    import pickle

    run_dir = tmp_path / "run"
    args = [*SMALL, "agent=dqn", "agent.hyperparams.learning_starts=512", "total_timesteps=24576",
            "eval_freq=8192", "checkpoint_freq=2048"]
    seen: dict = {}

    def submitit_handler(signum, _frame):  # stands in for submitit's: requeue (here: record what it saw)
        seen["signum"] = signum
        seen["status"] = status(run_dir)
        seen["checkpoint_exists"] = (run_dir / seen["status"]["last_checkpoint"]).is_file()

    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    killer = threading.Thread(
        target=lambda: wait_for(lambda: (run_dir / "checkpoints").is_dir() and checkpoint_steps(run_dir))
        and os.kill(os.getpid(), signal.SIGUSR2),
        daemon=True,
    )
    try:
        killer.start()
        with pytest.raises(SystemExit) as info:
            train_in_process(run_dir, *args)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert info.value.code == 128 + signal.SIGUSR2
    assert seen["signum"] == signal.SIGUSR2 and seen["checkpoint_exists"]
    assert seen["status"]["state"] == "interrupted" and seen["status"]["signal"] == "SIGUSR2"
    stopped = int(seen["status"]["progress"]["timesteps"])
    assert 0 < stopped < 24576 and stopped % 16 == 0  # DQN: train_freq 4 x 4 slots
    buffers = sorted((run_dir / "checkpoints").glob("*_replay_buffer.pkl"))
    assert [b.name for b in buffers] == [f"ckpt_{stopped}_steps_replay_buffer.pkl"]  # the newest only
    with open(buffers[0], "rb") as fh:
        buffer = pickle.load(fh)
    assert buffer.pos * 4 == stopped  # exactly the checkpoint's steps, none after it

    # The requeued job runs the same config in the same folder: it resumes by itself, once the folder is
    # trusted (the replay buffer is a pickle; docs/reliability.md, "Trust boundary").
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    with pytest.raises(SystemExit) as refused:
        train_in_process(run_dir, *args)
    assert refused.value.code == 2
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before
    value, out = train_in_process(run_dir, *args, "trust_run_folder=true")
    assert f"resuming at {stopped:,} steps" in out
    st = status(run_dir)
    assert st["state"] == "finished" and st["result"]["timesteps"] == 24576 and value == st["result"]["objective"]
    from stable_baselines3 import DQN

    assert DQN.load(str(run_dir / "model.zip"), device="cpu").num_timesteps == 24576
    # A re-run sweep job finds it finished and skips it.
    again, out = train_in_process(run_dir, *args)
    assert "already finished" in out and again == value


def test_a_second_signal_stops_at_once(tmp_path, monkeypatch):
    from experiments.training import callbacks as training_callbacks

    run_dir = tmp_path / "run"
    original = training_callbacks.TrainingCallback._on_step
    calls = {"n": 0}

    def stepping(self):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(training_callbacks.TrainingCallback, "_on_step", stepping)
    with pytest.raises(SystemExit) as info:
        train_in_process(run_dir, *SMALL, *PPO_SMALL, "total_timesteps=4096", "eval_freq=4096",
                         "checkpoint_freq=4096")
    assert info.value.code == 128 + signal.SIGINT
    st = status(run_dir)
    assert st["state"] == "interrupted" and st["signal"] == "SIGINT" and st["last_checkpoint"] is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


# -- determinism ----------------------------------------------------------------------------------
def test_same_seed_gives_identical_parameters_and_another_seed_does_not(tmp_path):
    import torch

    assert torch.get_num_threads() >= 1
    args = [*SMALL, *PPO_SMALL, "total_timesteps=2048", "eval_freq=1024", "checkpoint_freq=1024"]
    a, _ = train_in_process(tmp_path / "a", *args)
    b, _ = train_in_process(tmp_path / "b", *args)
    c, _ = train_in_process(tmp_path / "c", *args, "seed=1")
    assert torch.get_num_threads() == 1  # torch_threads=1
    pa, pb, pc = (policy_params(tmp_path / x / "model.zip") for x in "abc")
    assert same_params(pa, pb)
    assert not same_params(pa, pc)
    assert a == b
    drop = ("wall_time_s", "fps", "validation_s")
    ra = [{k: v for k, v in r.items() if k not in drop} for r in read_csv(tmp_path / "a" / "metrics.csv")]
    rb = [{k: v for k, v in r.items() if k not in drop} for r in read_csv(tmp_path / "b" / "metrics.csv")]
    assert ra == rb


# -- every agent ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("agent", "extra", "mode"),
    [
        ("a2c", [], "on_off"),
        ("dqn", ["agent.hyperparams.learning_starts=256", "env.action_mode=levels"], "levels"),
        ("recurrent_ppo", ["agent.hyperparams.n_steps=64", "agent.hyperparams.batch_size=128"], "on_off"),
        ("sac", ["agent.hyperparams.learning_starts=256"], "continuous"),
        ("ppo", ["agent.hyperparams.n_steps=128", "agent.hyperparams.batch_size=128", "env.action_mode=continuous"],
         "continuous"),
    ],
)
def test_every_agent_trains_and_writes_its_run_folder(tmp_path, agent, extra, mode):
    from experiments.training.agents import ALGORITHMS

    value, _ = train_in_process(tmp_path, *SMALL, f"agent={agent}", *extra, "total_timesteps=1024",
                                "eval_freq=1024", "checkpoint_freq=512")
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert cfg["agent"] == agent and cfg["env_settings"]["action_mode"] == mode
    assert math.isfinite(value) and status(tmp_path)["state"] == "finished"
    model = ALGORITHMS[cfg["algo_class"]].load_class().load(str(tmp_path / "model.zip"), device="cpu")
    assert model.num_timesteps == cfg["total_timesteps"] >= 1024
    if agent == "recurrent_ppo":
        assert cfg["policy"] == "MlpLstmPolicy"


# -- fine-tuning ---------------------------------------------------------------------------------
def test_finetune_starts_from_the_source_model_on_one_patient(tmp_path):
    source = tmp_path / "cohort_policy"
    train_in_process(source, *SMALL, *PPO_SMALL, "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=1024")
    # With learning rate 0 the fine-tuned model must equal the source's best model exactly.
    tuned = tmp_path / "patient_policy"
    train_in_process(tuned, *SMALL, f"finetune_from={source}", "cohort=test", "cohort.indices=[7]",
                     "agent.hyperparams.learning_rate=0", "agent.hyperparams.n_steps=128",
                     "agent.hyperparams.batch_size=128", "total_timesteps=512", "eval_freq=512",
                     "checkpoint_freq=512")
    cfg = json.loads((tuned / "train_config.json").read_text())
    assert cfg["finetuned_from"]["run"] == str(source.resolve()) and cfg["finetuned_from"]["model"] == "best_model.zip"
    assert cfg["train_cohort"]["name"] == "test" and cfg["train_cohort"]["indices"] == [7]
    assert cfg["total_timesteps"] == 512
    assert same_params(policy_params(tuned / "model.zip"), policy_params(source / "best_model.zip"))
    # A real learning rate moves it.
    moved = tmp_path / "moved"
    train_in_process(moved, *SMALL, f"finetune_from={source}", "cohort.n_patients=1", "agent.hyperparams.n_steps=128",
                     "agent.hyperparams.batch_size=128", "total_timesteps=512", "eval_freq=512", "checkpoint_freq=512")
    assert not same_params(policy_params(moved / "model.zip"), policy_params(source / "best_model.zip"))


# -- budget arithmetic -----------------------------------------------------------------------------
def test_budget_rounds_up_to_whole_rollouts_of_each_algorithm():
    from experiments.training.agents import ALGORITHMS, round_budget

    assert ALGORITHMS["PPO"].rollout_steps({"n_steps": 256}, 32) == 8192
    assert ALGORITHMS["DQN"].rollout_steps({"train_freq": 4}, 8) == 32
    assert round_budget(2_000_000, 8192) == 2_007_040 and round_budget(8192, 8192) == 8192
    assert round_budget(1, 32) == 32


# -- bad input ------------------------------------------------------------------------------------
BAD = {
    # name: (overrides, code, fragments of the message)
    "unknown_agent": (["agent=pp0"], "PL-AGENT-UNKNOWN", ["'pp0'", "a2c", "dqn", "ppo", "recurrent_ppo", "sac"]),
    "dqn_continuous": (["agent=dqn", "env.action_mode=continuous"], "PL-AGENT-ACTION-MODE",
                       ["'dqn'", "['a2c', 'ppo', 'recurrent_ppo', 'sac']"]),
    "sac_discrete": (["agent=sac", "env.action_mode=on_off"], "PL-AGENT-ACTION-MODE",
                     ["'sac'", "['a2c', 'dqn', 'ppo', 'recurrent_ppo']"]),
    "resume_missing": (["resume=/nonexistent/run"], "PL-RUN-FOLDER", ["/nonexistent/run", "does not exist"]),
    "finetune_missing": (["finetune_from=/nonexistent/run"], "PL-RUN-FOLDER", ["/nonexistent/run"]),
    "misspelled_hyperparameter": (["agent.hyperparams.n_step=64"], "PL-CONFIG-KEY",
                                  ["did you mean 'agent.hyperparams.n_steps'", "agent.hyperparams.batch_size"]),
    "hyperparameter_of_another_agent": (["agent=dqn", "agent.hyperparams.n_epochs=3"], "PL-CONFIG-KEY",
                                        ["agent.hyperparams.train_freq"]),
    "misspelled_key": (["total_timestep=5"], "PL-CONFIG-KEY", ["did you mean 'total_timesteps'", "eval_freq"]),
    "unknown_experiment": (["experiment=nope"], "PL-CONFIG-KEY", ["smoke", "default"]),
    "unknown_cohort": (["cohort=tset"], "PL-COHORT-UNKNOWN", ["train", "validation"]),
    "unknown_validation_cohort": (["validation.cohort=nope"], "PL-COHORT-UNKNOWN", ["'nope'"]),
    "zero_budget": (["total_timesteps=0"], "PL-CONFIG-VALUE", ["total_timesteps=0", ">= 1"]),
    "wrong_type": (["seed=abc"], "PL-CONFIG-VALUE", ["seed=abc"]),
    "bad_batch": (["agent.hyperparams.batch_size=1"], "PL-AGENT-PARAM", ["batch_size"]),
    "bad_activation": (["agent.policy_kwargs.activation_fn=swish"], "PL-AGENT-PARAM", ["'swish'", "relu"]),
    "bad_gamma": (["agent.hyperparams.gamma=1.5"], "PL-AGENT-PARAM", ["gamma=1.5", "(0, 1]"]),
    "bad_env": (["env.decision_interval_s=45"], "PL-ENV-ARG", ["decision_interval_s"]),
    "trace_patient": (["validation.trace_patient=10"], "PL-CONFIG-VALUE", ["validation.trace_patient=10", "0 to 9"]),
    "resume_with_other_keys": (["resume=/tmp/x", "seed=3"], "PL-CONFIG-VALUE", ["['seed']", "progress_bar"]),
}
#: Run as real command lines, together (each exits before training); the others in-process.
CLI_CASES = ("unknown_agent", "dqn_continuous", "resume_missing", "misspelled_hyperparameter", "bad_batch")


@pytest.fixture(scope="module")
def bad_cli_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    procs = {
        name: (subprocess.Popen(cli(*with_small_cohort(BAD[name][0]), run_dir=base / name), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()), base / name)
        for name in CLI_CASES
    }
    out = {}
    for name, (proc, run_dir) in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        out[name] = (proc.returncode, stdout, stderr, run_dir)
    return out


def with_small_cohort(args: list[str]) -> list[str]:
    """A small training pool (fast to build), except where resume forbids other keys."""
    return list(args) if any(a.startswith("resume=") for a in args) else [*args, "cohort.n_patients=2"]


def bad_in_process(args: list[str], run_dir: Path, capsys) -> tuple[int, str, str]:
    """The console entry's path without a Hydra process: ``main``'s check, then ``run`` on the composed config."""
    from experiments.train import main, precheck, run
    from simenv.errors import PainloopError

    with pytest.raises(SystemExit) as info:
        try:
            fixed, resume, kept = precheck(args)
        except PainloopError:
            main(args)  # the console entry refuses before Hydra starts
        else:
            with redirect_stdout(io.StringIO()):
                if resume is not None:
                    run({"resume": str(resume), **kept}, resume, show_progress=False)
                else:
                    run(compose(*fixed), run_dir, show_progress=False)
            raise AssertionError(f"{args} was not refused")
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_before_training(bad_cli_runs, name, tmp_path, capsys):
    args, code, fragments = BAD[name]
    if name in CLI_CASES:
        rc, stdout, stderr, run_dir = bad_cli_runs[name]
    else:
        run_dir = tmp_path / "run"
        rc, stdout, stderr = bad_in_process(with_small_cohort(args), run_dir, capsys)
    assert rc == 2, (stdout, stderr)
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {code}: "), stderr
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "painloop train: agent" not in stdout  # training never started
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= ALLOWED_AFTER_BAD_INPUT, left
    if "status.json" in left:
        st = status(run_dir)
        assert st["state"] == "failed" and st["error"]["code"] == code and st["exit_code"] == 2


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished tiny run to break in various ways (copied per test)."""
    run_dir = tmp_path_factory.mktemp("small") / "run"
    train_in_process(run_dir, *SMALL, *PPO_SMALL, "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=512")
    return run_dir


def copy_run(src: Path, dst: Path, state: str = "interrupted") -> Path:
    shutil.copytree(src, dst)
    st = status(dst)
    st["state"] = state
    (dst / "status.json").write_text(json.dumps(st))
    return dst


def assert_refused(args: list[str], code: str, fragments: list[str], capsys, tmp_path: Path,
                   run_dir: Path | None = None) -> None:
    before = None if run_dir is None else {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    rc, _, err = bad_in_process(args, tmp_path / "new", capsys)
    err = err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith(f"error: {code}: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    if run_dir is not None:  # the refused folder is left exactly as it was
        assert {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before


def test_corrupt_or_foreign_run_folders_are_refused_untouched(small_run, tmp_path, capsys):
    # train_config.json that is not JSON.
    broken = copy_run(small_run, tmp_path / "broken")
    (broken / "train_config.json").write_text("{not json")
    assert_refused([f"resume={broken}"], "PL-RUN-FOLDER", ["train_config.json"], capsys, tmp_path, broken)
    assert_refused([f"finetune_from={broken}"], "PL-RUN-FOLDER", ["train_config.json"], capsys, tmp_path, broken)
    # A folder that is not a training run.
    assert_refused([f"resume={tmp_path}"], "PL-RUN-FOLDER", ["train_config.json is missing"], capsys, tmp_path)
    # A truncated checkpoint zip: it no longer matches the manifest in run.json.
    truncated = copy_run(small_run, tmp_path / "truncated")
    newest = truncated / "checkpoints" / f"ckpt_{checkpoint_steps(truncated)[-1]}_steps.zip"
    newest.write_bytes(newest.read_bytes()[:200])
    assert_refused([f"resume={truncated}"], "PL-RUN-MANIFEST", [newest.name, "does not match the manifest"], capsys,
                   tmp_path, truncated)
    # The same with the manifest rewritten to match: the zip itself cannot be loaded.
    from agents.run_manifest import record_files

    record_files(truncated, [newest])
    assert_refused([f"resume={truncated}"], "PL-RUN-FOLDER", [newest.name, "cannot be loaded"], capsys,
                   tmp_path, truncated)
    # A checkpoint without its statistics.
    partial = copy_run(small_run, tmp_path / "partial")
    (partial / "checkpoints" / f"ckpt_{checkpoint_steps(partial)[-1]}_steps_vecnormalize.json").unlink()
    assert_refused([f"resume={partial}"], "PL-RUN-FOLDER", ["incomplete", "vecnormalize"], capsys, tmp_path, partial)
    # A run another process is still writing.
    busy = copy_run(small_run, tmp_path / "busy", state="running")
    st = status(busy)
    st.update(pid=os.getppid(), heartbeat_unix=time.time())
    (busy / "status.json").write_text(json.dumps(st))
    assert_refused([f"resume={busy}"], "PL-RUN-FOLDER", ["still running"], capsys, tmp_path, busy)


def test_finetune_source_from_another_physics_version_or_model_is_refused(small_run, tmp_path, capsys):
    old = copy_run(small_run, tmp_path / "old", state="finished")
    cfg = json.loads((old / "train_config.json").read_text())
    cfg["physics_version"] = -1
    (old / "train_config.json").write_text(json.dumps(cfg))
    assert_refused([f"finetune_from={old}", "cohort.n_patients=1"], "PL-RUN-PHYSICS", ["physics version -1",
                   "allow_physics_mismatch"], capsys, tmp_path, old)
    # The agent must match the source's algorithm, and policy-shaping settings its values.
    assert_refused([f"finetune_from={small_run}", "agent=dqn"], "PL-RUN-SETTINGS", ["PPO", "agent=ppo"], capsys, tmp_path)
    assert_refused([f"finetune_from={small_run}", "env.feature_history=3"], "PL-RUN-SETTINGS",
                   ["env.feature_history=3"], capsys, tmp_path)
    nobest = copy_run(small_run, tmp_path / "nobest", state="finished")
    (nobest / "best_model.zip").unlink()
    assert_refused([f"finetune_from={nobest}"], "PL-RUN-FOLDER", ["best_model.zip", "finetune_model=final"], capsys, tmp_path)


def test_a_folder_holding_another_training_is_refused(small_run, tmp_path, capsys):
    run_dir = copy_run(small_run, tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        train_in_process(run_dir, *SMALL, *PPO_SMALL, "total_timesteps=1024", "eval_freq=512",
                         "checkpoint_freq=512", "seed=5")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "PL-RUN-FOLDER" in err and "['seed']" in err
    assert status(run_dir)["state"] == "interrupted"  # untouched


# -- documentation ------------------------------------------------------------------------------
def test_docs_cover_agents_files_tags_keys_and_time_scales():
    from experiments.config.schema import schema_keys
    from experiments.config.train_schema import TrainConfig
    from experiments.training.agents import available_agents

    text = (ROOT / "docs" / "training.md").read_text()
    missing = [f"`{a}`" for a in available_agents() if f"`{a}`" not in text]
    missing += [f"`{f}`" for f in sorted(RUN_FILES | {"checkpoints/ckpt_<steps>_steps.zip"})
                if f"`{f}`" not in text and f"`{f}/`" not in text]
    missing += [t for t in ("validation/", "validation_terms/", "validation_reward_per_day/", "validation/trace_day",
                            "perf/train_fps", "config/hyperparameters") if t not in text]
    missing += [f"`{k}`" for k in schema_keys(TrainConfig) if "." not in k and f"`{k}`" not in text]
    assert missing == []
    for phrase in ("tensorboard --logdir", "resume=", "finetune_from=", "SIGUSR2", "gamma", "decision_interval_s"):
        assert phrase in text, phrase
