"""Crash-tolerant training: SIGKILL at set points, truncated checkpoints, half-written metrics rows.

The test hook ``PAINLOOP_FAULT=<point>[@n]`` (``agents.atomic_io.fault_point``,
docs/reliability.md) makes the training process kill itself with SIGKILL at
the n-th time it reaches a point, so each case is deterministic:

- ``checkpoint-write``: the checkpoint's statistics are written, its model zip
  is fully written under its temporary name, and the rename has not happened;
- ``rollout-boundary``: at a rollout boundary between two checkpoints;
- ``final-model-write``: the final ``model.zip`` is written under its
  temporary name, not yet renamed.

After each kill, ``resume=<dir>`` must finish exactly at the budget with a
final model that loads, and lose at most one checkpoint interval. The work
lost (steps done before the kill that the resume redoes) is printed per case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["n_envs=4", "cohort.n_patients=4", "validation.n_patients=2", "validation.horizon_days=0.1",
         "progress_bar=false", "agent=ppo", "agent.hyperparams.n_steps=128", "agent.hyperparams.batch_size=128"]
ROLLOUT = 512  # 4 envs x 128 steps
BUDGET = 4096  # 8 rollouts
CHECKPOINT_FREQ = 1536  # every 3 rollouts: checkpoints at 1536 and 3072
ARGS = [*SMALL, f"total_timesteps={BUDGET}", "eval_freq=2048", f"checkpoint_freq={CHECKPOINT_FREQ}"]


def _env(fault: str | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "PAINLOOP_FAULT"}
    e |= {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    if fault:
        e["PAINLOOP_FAULT"] = fault
    return e


def _train(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT, capture_output=True,
                          text=True, env=_env(fault), timeout=600)


def _checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("ckpt_*_steps.zip"))


#: point -> (PAINLOOP_FAULT value, steps done when the process dies)
CASES = {
    # the second checkpoint (3072) is being written: its zip is complete under a temporary name
    "while a checkpoint is written": ("checkpoint-write@2", 2 * CHECKPOINT_FREQ),
    # the 6th rollout boundary is at 5 x 512 = 2560 steps, between the checkpoints at 1536 and 3072
    "between checkpoints": ("rollout-boundary@6", 5 * ROLLOUT),
    # the budget is done and the final model.zip is being written
    "while the final model is saved": ("final-model-write", BUDGET),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_at_a_set_point_then_resume_finishes_the_budget(tmp_path, case):
    fault, done_at_kill = CASES[case]
    run_dir = tmp_path / "run"
    killed = _train(*ARGS, f"hydra.run.dir={run_dir}", fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "running"  # nobody could record anything: that is what SIGKILL means
    assert not (run_dir / "model.zip").exists()
    # Never half a file under a final name: every checkpoint zip there loads.
    from stable_baselines3 import PPO

    for steps in _checkpoints(run_dir):
        assert PPO.load(str(run_dir / "checkpoints" / f"ckpt_{steps}_steps.zip"), device="cpu").num_timesteps == steps
    last = max(_checkpoints(run_dir), default=0)

    resumed = _train(f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["result"]["timesteps"] == BUDGET
    assert status["resumed_from"] in (last, None) and (status["resumed_from"] or 0) == last
    assert PPO.load(str(run_dir / "model.zip"), device="cpu").num_timesteps == BUDGET
    assert not [p.name for p in run_dir.rglob(".*.tmp*")], "temporary files left behind"
    lost = done_at_kill - last
    assert 0 <= lost <= CHECKPOINT_FREQ  # at most one checkpoint interval
    print(f"\n[fault injection] {case}: killed at {done_at_kill} steps, resumed from {last}, "
          f"work lost {lost} steps (checkpoint interval {CHECKPOINT_FREQ})")


# -- truncated checkpoints --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished small run with checkpoints at 1536 and 3072 steps (in-process would share torch state: use a subprocess)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    proc = _train(*ARGS, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _checkpoints(run_dir) == [1536, 3072]
    return run_dir


def _interrupted_copy(trained: Path, dest: Path) -> Path:
    """The finished run as if it had been killed after its last checkpoint (no final model, status running)."""
    import shutil

    run_dir = dest / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "model.zip").unlink()
    (run_dir / "vecnormalize.json").unlink()
    status = json.loads((run_dir / "status.json").read_text())
    status |= {"state": "interrupted", "pid": 0}
    (run_dir / "status.json").write_text(json.dumps(status))
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("part", ["zip", "vecnormalize.json"])
def test_truncated_newest_checkpoint_is_refused_and_the_previous_is_used_once_it_is_deleted(trained, tmp_path, part):
    run_dir = _interrupted_copy(trained, tmp_path)
    newest = run_dir / "checkpoints" / ("ckpt_3072_steps.zip" if part == "zip" else "ckpt_3072_steps_vecnormalize.json")
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # what a non-atomic copy (or a damaged disk) leaves
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    refused = _train(f"resume={run_dir}")
    # The manifest in run.json no longer matches: refused naming the file, the folder left as it was
    # (a changed file is never skipped silently; docs/reliability.md, "Trust boundary").
    assert refused.returncode == 2 and "PL-RUN-MANIFEST" in refused.stderr and newest.name in refused.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before
    for p in newest.parent.glob("ckpt_3072_steps*"):  # what the message says to do
        p.unlink()
    resumed = _train(f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["resumed_from"] == 1536 and status["result"]["timesteps"] == BUDGET
    from stable_baselines3 import PPO

    assert PPO.load(str(run_dir / "model.zip"), device="cpu").num_timesteps == BUDGET
    # The checkpoint at 3072 was taken again on the way.
    assert PPO.load(str(run_dir / "checkpoints" / "ckpt_3072_steps.zip"), device="cpu").num_timesteps == 3072


def test_load_latest_checkpoint_warns_and_reports_when_none_loads(tmp_path):
    from experiments.training import folder as tf
    from simenv.errors import PainloopError

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for steps in (512, 1024):
        for p in tf.checkpoint_paths(tmp_path, steps).values():
            p.write_bytes(b"x")

    def load(steps, paths):
        if steps == 1024:
            raise ValueError("truncated")
        return steps

    with pytest.warns(tf.CheckpointWarning, match="ckpt_1024_steps.zip"):
        assert tf.load_latest_checkpoint(tmp_path, False, load)[0] == 512
    assert (folder / "ckpt_1024_steps.zip.corrupt").is_file() and not (folder / "ckpt_1024_steps.zip").exists()

    def fail(steps, paths):
        raise ValueError("bad")

    before = sorted(p.name for p in folder.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error", tf.CheckpointWarning)  # no warning: nothing was skipped for another
        with pytest.raises(PainloopError) as err:
            tf.load_latest_checkpoint(tmp_path, False, fail)
    assert err.value.code == "PL-RUN-FOLDER" and "ckpt_512_steps.zip" in str(err.value)
    assert sorted(p.name for p in folder.iterdir()) == before  # refused: the folder is left as it was
    assert tf.load_latest_checkpoint(tmp_path / "empty", False, fail) is None


# -- metrics.csv -------------------------------------------------------------------------------------------
def test_metrics_table_drops_a_half_written_last_row(tmp_path):
    from experiments.training.folder import MetricsTable, MetricsWarning

    table = MetricsTable(tmp_path / "metrics.csv", ["timesteps", "reward_per_day"])
    table.append({"timesteps": 0, "reward_per_day": -1.5})
    table.append({"timesteps": 512, "reward_per_day": -1.25})
    with table.path.open("a") as fh:
        fh.write("1024,-1.")  # a process killed in the middle of a row
    with pytest.warns(MetricsWarning, match="incomplete row"):
        rows = table.rows()
    assert rows == [{"timesteps": 0.0, "reward_per_day": -1.5}, {"timesteps": 512.0, "reward_per_day": -1.25}]
    table.append({"timesteps": 1024, "reward_per_day": -1.0})
    assert [r["timesteps"] for r in table.rows()] == [0.0, 512.0, 1024.0]
    assert table.path.read_text().splitlines()[-1] == "1024,-1.0"


# -- the shared atomic writer --------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from agents.atomic_io import atomic_path, open_atomic, remove_temporaries, write_text_atomic

    path = tmp_path / "table.csv"
    write_text_atomic(path, "old\n")
    with pytest.raises(RuntimeError), open_atomic(path, "w") as fh:
        fh.write("half of a new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".plot.png.")
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png" and oct((tmp_path / "plot.png").stat().st_mode)[-3:] == "644"
    (tmp_path / ".model.zip.abc.tmp.zip").write_bytes(b"left by a kill")
    assert [p.name for p in remove_temporaries(tmp_path)] == [".model.zip.abc.tmp.zip"]


def test_fault_point_kills_only_at_the_named_hit(tmp_path):
    code = ("from agents.atomic_io import fault_point\n"
            "for i in range(3):\n"
            "    fault_point('other'); fault_point('here'); print(i, flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env("here@2"), cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split() == ["0"]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(None), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "1", "2"]
