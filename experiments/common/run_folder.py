"""The run-folder contract every painloop command writes (evaluate now, training later).

A run folder holds:

- the resolved config (Hydra's ``.hydra/`` record: ``config.yaml``,
  ``hydra.yaml``, ``overrides.yaml``);
- ``run.json``: the command line, seeds, package versions, the simulator's
  ``PHYSICS_VERSION``, the git revision (``"unknown"`` outside a checkout),
  Python, host and start time;
- ``status.json``, always replaced atomically (temporary file in the same
  folder, then ``os.replace``), so a reader never sees half a file:

  ========== ==========================================================
  state      meaning
  ========== ==========================================================
  running    work in progress; ``heartbeat_unix`` is refreshed by a
             background thread and by progress updates, at most every
             ``HEARTBEAT_EVERY_S`` (30 s) and at least once a minute
  finished   done; ``result`` holds the command's summary (objective)
  failed     ``error`` holds ``code`` (a ``PL-*`` code, or null for an
             unexpected exception), ``message`` and ``type``
  interrupted stopped by SIGINT, SIGTERM or SIGUSR2; ``signal`` and
             ``last_checkpoint`` (training) say where it stopped
  ========== ==========================================================

``read_status`` reports a ``running`` run whose heartbeat is older than
``STALE_AFTER_S`` (10 minutes) as ``stale`` (the process died without a
word: killed, out of memory, node lost).

Plain Python and the standard library only, so any command (and a sweep
report) can use it without Hydra.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from agents.atomic_io import write_text_atomic

STATUS_FILE = "status.json"
RUN_FILE = "run.json"
RUN_FORMAT = "painloop.run/v1"
STATUS_FORMAT = "painloop.status/v1"
STATES = ("running", "finished", "failed", "interrupted")
STALE_AFTER_S = 600.0
HEARTBEAT_EVERY_S = 30.0
#: Packages whose versions every run records (looked up in the installed metadata, never imported).
PACKAGES = (
    "numpy",
    "scipy",
    "numba",
    "gymnasium",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "hydra-core",
    "omegaconf",
    "scikit-learn",
    "matplotlib",
    "painloop",
)
INTERRUPT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name)
)


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """json.dump fallback: NumPy scalars and arrays, paths, tuples, sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean_floats(value: Any) -> Any:
    """NaN and inf become null (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_floats(v) for v in value]
    return value


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (``agents.atomic_io``: temporary file, then ``os.replace``)."""
    text = json.dumps(_clean_floats(json.loads(json.dumps(data, default=_jsonable))), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions from package metadata (nothing is imported; None if not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(root: str | Path | None = None) -> tuple[str, bool | None]:
    """(commit hash, work tree has uncommitted changes) of the checkout at ``root``; ("unknown", None) without git."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return (rev or "unknown"), bool(dirty)


def read_status(folder: str | Path, now: float | None = None, stale_after_s: float = STALE_AFTER_S) -> dict:
    """The run's status, with ``state`` ``stale`` for a ``running`` run whose heartbeat is too old.

    Returns ``{"state": "missing"}`` when the folder has no ``status.json``
    (never started, or not a run folder). A stale status keeps the written
    state in ``recorded_state`` and the heartbeat's age in ``heartbeat_age_s``.
    """
    path = Path(folder) / STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return {"state": "missing"}
    now = time.time() if now is None else now
    if status.get("state") == "running":
        age = now - float(status.get("heartbeat_unix", 0.0))
        status["heartbeat_age_s"] = age
        if age > stale_after_s:
            status["recorded_state"] = "running"
            status["state"] = "stale"
    return status


class RunInterrupted(BaseException):
    """Raised in the main thread when an interrupt signal arrives (SIGINT, SIGTERM, SIGUSR2)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


class RunFolder:
    """Writes ``run.json`` and ``status.json`` of one run; every status write is atomic.

    Typical use::

        run = RunFolder(path, command="evaluate")
        run.write_run_info(argv=sys.argv, seeds={"seed": 0})
        run.start()
        with run.heartbeat_thread(), run.interrupt_signals():
            ... run.heartbeat(progress={"done": d, "total": n}) ...
        run.finish(result={...})

    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        path: str | Path,
        command: str,
        clock: Callable[[], float] = time.time,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
    ) -> None:
        self.path = Path(path)
        self.command = command
        self.clock = clock
        self.heartbeat_every_s = heartbeat_every_s
        self.state: str | None = None
        self._status: dict[str, Any] = {}
        self._last_beat = -math.inf
        self._lock = threading.RLock()

    # -- files -------------------------------------------------------------------------------
    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def run_path(self) -> Path:
        return self.path / RUN_FILE

    def write_run_info(
        self,
        argv: Sequence[str] | None = None,
        seeds: dict[str, Any] | None = None,
        config: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> dict:
        """Write ``run.json`` (what ran, with which seeds, code and packages); returns its content."""
        from simenv import PHYSICS_VERSION

        argv = list(sys.argv if argv is None else argv)
        revision, dirty = git_revision()
        info = {
            "format": RUN_FORMAT,
            "command": self.command,
            "argv": argv,
            "command_line": " ".join([Path(sys.executable).name, "-m", f"experiments.{self.command}", *argv[1:]]),
            "cwd": os.getcwd(),
            "started": _iso(self.clock()),
            "seeds": dict(seeds or {}),
            "physics_version": PHYSICS_VERSION,
            "git_revision": revision,
            "git_dirty": dirty,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "packages": package_versions(),
            "config": config,
        } | dict(extra or {})
        write_json_atomic(self.run_path, info)
        return info

    def _write(self, state: str, **fields: Any) -> dict:
        if state not in STATES:
            raise ValueError(f"state {state!r}; allowed: {list(STATES)}")
        with self._lock:
            now = self.clock()
            status = dict(self._status)
            status.update(
                {
                    "format": STATUS_FORMAT,
                    "command": self.command,
                    "state": state,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "updated": _iso(now),
                    "updated_unix": now,
                }
            )
            status.setdefault("started_unix", now)
            status.setdefault("started", _iso(now))
            if state == "running":
                status["heartbeat_unix"] = now
                status["heartbeat"] = _iso(now)
            else:
                status["elapsed_s"] = now - status["started_unix"]
            status.update(fields)
            write_json_atomic(self.status_path, status)
            self._status = status
            self.state = state
            return status

    # -- transitions -----------------------------------------------------------------------------
    def start(self, **fields: Any) -> dict:
        """State ``running`` (first heartbeat); ``fields`` are added to the status (e.g. ``slurm_job_id``)."""
        self._last_beat = self.clock()
        return self._write("running", progress=None, error=None, **fields)

    def heartbeat(self, progress: dict[str, Any] | None = None, force: bool = False) -> bool:
        """Refresh the heartbeat (and progress) if ``heartbeat_every_s`` has passed; True if written.

        Does nothing unless the run is ``running`` (a late beat never overwrites a final state).
        """
        with self._lock:
            if self.state != "running":
                return False
            now = self.clock()
            if not force and now - self._last_beat < self.heartbeat_every_s:
                if progress is not None:
                    self._status["progress"] = progress
                return False
            self._last_beat = now
            fields = {"progress": progress} if progress is not None else {}
            self._write("running", **fields)
            return True

    def finish(self, result: dict[str, Any] | None = None) -> dict:
        """State ``finished`` with the command's summary."""
        return self._write("finished", result=result, error=None)

    def fail(self, code: str | None, message: str, exit_code: int, error_type: str | None = None) -> dict:
        """State ``failed``; ``code`` is the ``PL-*`` code (None for an unexpected exception)."""
        return self._write(
            "failed", error={"code": code, "message": message, "type": error_type}, exit_code=exit_code
        )

    def interrupt(self, signal_name: str, last_checkpoint: str | None = None) -> dict:
        """State ``interrupted`` after a signal; ``last_checkpoint`` is where a resume would start."""
        return self._write("interrupted", signal=signal_name, last_checkpoint=last_checkpoint)

    # -- helpers -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def heartbeat_thread(self) -> Iterator[None]:
        """A daemon thread that beats every ``heartbeat_every_s`` while the block runs.

        Keeps the heartbeat fresh through long steps that report no progress
        (e.g. the clinic calibration, a PPO update).
        """
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_every_s / 2):
                self.heartbeat()

        thread = threading.Thread(target=beat, name=f"{self.command}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    @staticmethod
    @contextlib.contextmanager
    def interrupt_signals(signals: Sequence[int] = INTERRUPT_SIGNALS) -> Iterator[None]:
        """Turn SIGINT/SIGTERM/SIGUSR2 into ``RunInterrupted`` inside the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: Any) -> None:
            raise RunInterrupted(signum)

        previous = {s: signal.signal(s, handler) for s in signals}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


# -- shared command-line error handling ----------------------------------------------------------
def report_error(exc: BaseException) -> None:
    """Print ``error: <CODE>: message`` on stderr (the one-line form every command uses)."""
    print(f"error: {exc}", file=sys.stderr, flush=True)


def stop(code: int, exit_on_error: bool) -> float:
    """Exit with ``code`` on the command line; inside a sweep return NaN so other jobs go on."""
    if exit_on_error:
        raise SystemExit(code)
    return math.nan


def fail_run(folder: RunFolder, exc: BaseException, exit_on_error: bool, exit_code: int = 1) -> float:
    """Record a failure after work started (status ``failed``), then exit 1 or return NaN.

    A ``PainloopError`` prints its one-line message; anything else keeps its
    traceback (Hydra prints it when exiting, or it is printed here in a sweep).
    """
    from simenv.errors import PainloopError

    if isinstance(exc, PainloopError):
        folder.fail(exc.code, exc.detail, exit_code, type(exc).__name__)
        report_error(exc)
        return stop(exit_code, exit_on_error)
    folder.fail(None, f"{type(exc).__name__}: {exc}", exit_code, type(exc).__name__)
    if exit_on_error:
        raise exc
    traceback.print_exception(exc)
    return math.nan
