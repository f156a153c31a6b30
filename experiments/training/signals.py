"""Signals during training: stop at the next safe point instead of mid-update.

``StopSignals`` turns SIGINT, SIGTERM and SIGUSR2 into a flag. The training
callback sees it at the next rollout boundary (after the model's update),
saves a checkpoint there and stops; ``run`` then records ``interrupted``.
A second signal stops at once (``RunInterrupted``), for a user who does not
want to wait for the update to finish.

SIGUSR2 is Slurm's warning before a time limit (submitit sends it about 90 s
ahead). After the checkpoint, ``hand_on`` calls the handler that was
installed before ours when it is a Python callable: under submitit that is
submitit's own, which requeues the job; the requeued job finds the
interrupted run in the same folder and resumes by itself.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from experiments.common.run_folder import INTERRUPT_SIGNALS, RunInterrupted


def under_submitit() -> bool:
    """True inside a submitit job (it sets ``SUBMITIT_*`` variables)."""
    return any(k.startswith("SUBMITIT_") for k in os.environ)


class StopSignals:
    """Context manager: record the first stop signal; raise ``RunInterrupted`` on the second."""

    def __init__(self, signals: tuple[int, ...] = INTERRUPT_SIGNALS) -> None:
        self.signals = signals
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}  # handlers before ours (kept after restore, for hand_on)
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            raise RunInterrupted(signum)
        self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handler) for s in self.signals}
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        if self._installed:
            for s, h in self.previous.items():
                signal.signal(s, h)
            self._installed = False

    def hand_on(self) -> bool:
        """After the checkpoint: pass SIGUSR2 on to the handler installed before ours (submitit's).

        Returns True if a previous handler was called (it may exit the
        process itself, as submitit's does after requeueing the job).
        """
        if self.signum != getattr(signal, "SIGUSR2", None):
            return False
        prev = self.previous.get(self.signum)
        if callable(prev):
            prev(self.signum, None)
            return True
        return False
