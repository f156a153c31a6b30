"""What a run folder already holds: a training to resume, a finished one, or one still running elsewhere.

``existing_run`` is asked before every training (``experiments.training.runner``):
a folder without ``train_config.json`` is new; one whose ``status.json``
says ``running`` for a live process (same host: the pid exists; another
host: a fresh heartbeat) is refused, unless it is this very Slurm job being
requeued; a finished one gives back its objective.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from experiments.common.run_folder import read_status
from experiments.training import folder as tf
from experiments.training.plan import read_run_config
from simenv.errors import PainloopError


@dataclass
class ResumeState:
    """Where an existing run folder stands."""

    run_dir: Path
    recorded: dict  # its train_config.json
    state: str
    finished: bool = False
    objective: float = math.nan


def _holder_alive(status: dict) -> bool:
    """Is the process that wrote a ``running`` status still alive?"""
    if status.get("state") != "running":
        return False
    if status.get("slurm_job_id") and status.get("slurm_job_id") == os.environ.get("SLURM_JOB_ID"):
        return False  # we are the requeued attempt of that same job
    if status.get("host") == socket.gethostname():
        pid = int(status.get("pid") or 0)
        if pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return True  # another host, heartbeat fresh (read_status turns an old one into 'stale')


def existing_run(run_dir: Path) -> ResumeState | None:
    """The training recorded in ``run_dir``, or None if it holds none."""
    if not (run_dir / tf.TRAIN_CONFIG).is_file():
        return None
    recorded = read_run_config(run_dir)
    status = read_status(run_dir)
    state = status.get("state", "missing")
    if _holder_alive(status):
        raise PainloopError(
            "PL-RUN-FOLDER",
            f"run '{run_dir}' is still running (pid {status.get('pid')} on {status.get('host')}, heartbeat "
            f"{status.get('heartbeat_age_s', 0):.0f} s ago); allowed: a run that is interrupted, failed or stale "
            "(stop the other process first).",
        )
    if state == "finished":
        result = status.get("result") or {}
        objective = result.get("objective")
        return ResumeState(run_dir, recorded, state, True, math.nan if objective is None else float(objective))
    return ResumeState(run_dir, recorded, state)
