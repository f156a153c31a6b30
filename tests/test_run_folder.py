"""The run-folder contract (experiments/common/run_folder.py): status transitions, atomic writes, stale detection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import atomic_io
from experiments.common import run_folder as rf
from experiments.common.run_folder import RunFolder, read_status, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def status(folder: Path) -> dict:
    return json.loads((folder / "status.json").read_text())


def test_status_transitions_running_heartbeat_finished(tmp_path):
    clock = FakeClock()
    run = RunFolder(tmp_path, "evaluate", clock=clock, heartbeat_every_s=30)
    run.start()
    s = status(tmp_path)
    assert s["state"] == "running" and s["heartbeat_unix"] == clock.t and s["command"] == "evaluate"
    assert s["pid"] == os.getpid()

    clock.t += 10  # within the heartbeat interval: throttled, nothing written
    assert run.heartbeat(progress={"done_steps": 5, "total_steps": 10}) is False
    assert status(tmp_path)["heartbeat_unix"] == clock.t - 10
    clock.t += 25  # 35 s after the last beat: written, with the latest progress
    assert run.heartbeat(progress={"done_steps": 7, "total_steps": 10}) is True
    s = status(tmp_path)
    assert s["heartbeat_unix"] == clock.t and s["progress"] == {"done_steps": 7, "total_steps": 10}
    clock.t += 1
    assert run.heartbeat(force=True) is True and status(tmp_path)["heartbeat_unix"] == clock.t

    clock.t += 4
    run.finish(result={"objective": -1.5})
    s = status(tmp_path)
    assert s["state"] == "finished" and s["result"] == {"objective": -1.5}
    assert s["elapsed_s"] == pytest.approx(40.0) and s["error"] is None
    # A late heartbeat (e.g. from the background thread) never overwrites a final state.
    clock.t += 100
    assert run.heartbeat(force=True) is False
    assert status(tmp_path)["state"] == "finished"


def test_failed_and_interrupted_record_what_happened(tmp_path):
    run = RunFolder(tmp_path / "a", "evaluate")
    run.start()
    run.fail("PL-STATE-NONFINITE", "slot 3 holds NaN", exit_code=1, error_type="NonFiniteStateError")
    s = status(tmp_path / "a")
    assert s["state"] == "failed" and s["exit_code"] == 1
    assert s["error"] == {"code": "PL-STATE-NONFINITE", "message": "slot 3 holds NaN", "type": "NonFiniteStateError"}

    run = RunFolder(tmp_path / "b", "train")
    run.start()
    run.interrupt("SIGTERM", last_checkpoint="checkpoints/step_1000.zip")
    s = status(tmp_path / "b")
    assert s["state"] == "interrupted" and s["signal"] == "SIGTERM"
    assert s["last_checkpoint"] == "checkpoints/step_1000.zip"

    with pytest.raises(ValueError, match="allowed"):
        run._write("paused")


def test_stale_detection(tmp_path):
    clock = FakeClock()
    run = RunFolder(tmp_path, "evaluate", clock=clock)
    run.start()
    beat = clock.t
    assert read_status(tmp_path, now=beat + rf.STALE_AFTER_S - 1)["state"] == "running"
    stale = read_status(tmp_path, now=beat + rf.STALE_AFTER_S + 1)
    assert stale["state"] == "stale" and stale["recorded_state"] == "running"
    assert stale["heartbeat_age_s"] == pytest.approx(rf.STALE_AFTER_S + 1)
    assert rf.STALE_AFTER_S == 600.0  # DESIGN.md: over 10 minutes without a heartbeat
    # Only a running run can be stale: a finished run an hour later is still finished.
    run.finish()
    assert read_status(tmp_path, now=beat + 3600)["state"] == "finished"
    assert read_status(tmp_path / "nowhere")["state"] == "missing"


def test_write_json_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"state": "running", "x": float("nan")})
    assert json.loads(path.read_text()) == {"state": "running", "x": None}  # strict JSON: NaN -> null
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)

    # A write that fails half-way (the data is in the temporary file, syncing it fails)
    # leaves the previous file intact and no temporary behind.
    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_io.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"state": "finished"})
    monkeypatch.undo()
    assert json.loads(path.read_text())["state"] == "running"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_write_json_atomic_uses_os_replace(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((Path(src).parent, Path(dst)))
        assert Path(src).name.startswith(".status.json.") and Path(src).exists()
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, "replace", spy)
    write_json_atomic(tmp_path / "status.json", {"state": "running"})
    assert calls == [(tmp_path, tmp_path / "status.json")]  # same folder: os.replace is atomic there


def test_heartbeat_thread_beats_while_the_block_runs(tmp_path):
    run = RunFolder(tmp_path, "evaluate", heartbeat_every_s=0.05)
    run.start()
    first = status(tmp_path)["heartbeat_unix"]
    with run.heartbeat_thread():
        time.sleep(0.4)
    assert status(tmp_path)["heartbeat_unix"] > first
    run.finish()
    time.sleep(0.1)
    assert status(tmp_path)["state"] == "finished"


def test_run_info_records_versions_physics_and_git_without_importing_torch(tmp_path):
    script = (
        "import json, sys\n"
        "from experiments.common.run_folder import RunFolder\n"
        f"info = RunFolder({str(tmp_path)!r}, 'evaluate').write_run_info(argv=['x', 'seed=3'], seeds={{'seed': 3}})\n"
        "print(json.dumps({'torch_imported': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch_imported": False}
    info = json.loads((tmp_path / "run.json").read_text())
    import numpy

    import simenv

    assert info["physics_version"] == simenv.PHYSICS_VERSION
    assert info["packages"]["numpy"] == numpy.__version__
    assert {"numba", "gymnasium", "stable-baselines3", "torch"} <= set(info["packages"])
    rev = info["git_revision"]
    assert rev == "unknown" or (len(rev) == 40 and all(c in "0123456789abcdef" for c in rev))
    assert info["seeds"] == {"seed": 3} and info["argv"] == ["x", "seed=3"]
    assert info["command_line"].endswith("-m experiments.evaluate seed=3")


def test_git_revision_outside_a_checkout_is_unknown(tmp_path):
    assert rf.git_revision(tmp_path) == ("unknown", None)


def test_sigterm_records_interrupted(tmp_path):
    script = (
        "import sys, time\n"
        "from experiments.common.run_folder import RunFolder, RunInterrupted\n"
        f"run = RunFolder({str(tmp_path)!r}, 'train')\n"
        "run.start()\n"
        "try:\n"
        "    with run.interrupt_signals():\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(30)\n"
        "except RunInterrupted as exc:\n"
        "    run.interrupt(exc.signal_name, last_checkpoint='ckpt.zip')\n"
        "    sys.exit(128 + exc.signum)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert status(tmp_path)["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    s = status(tmp_path)
    assert s["state"] == "interrupted" and s["signal"] == "SIGTERM" and s["last_checkpoint"] == "ckpt.zip"
