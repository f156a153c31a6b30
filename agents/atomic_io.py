"""Atomic file writes: the one helper every painloop command writes its files through.

A file is written under a hidden temporary name in the same folder
(``.<name>.<random>.tmp<suffix>``), flushed to disk, then renamed over the
final name with ``os.replace``. A killed process therefore leaves the old
file or the new one, never half of one; at most a hidden temporary file
remains (``remove_temporaries`` clears them). The temporary keeps the final
suffix, so writers that pick a format from the name (matplotlib, ONNX) work.

Standard library only, and in ``agents`` (whose ``__init__`` imports
nothing) so that exports in ``agents`` and every command in ``experiments``
share it cheaply; ``simenv`` writes no files.

``fault_point`` is a test hook for fault injection (docs/reliability.md):
when the environment variable ``PAINLOOP_FAULT`` names a point, the process
kills itself with SIGKILL there, so tests can stop a run at a set point.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Environment variable naming a fault point (``<point>`` or ``<point>@<n>``: the n-th time it is reached).
FAULT_ENV = "PAINLOOP_FAULT"
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook: SIGKILL this process if ``PAINLOOP_FAULT`` names this point (and its hit count).

    ``PAINLOOP_FAULT=checkpoint-write@2`` kills at the second time the
    ``checkpoint-write`` point is reached; without ``@n`` at the first.
    Unset (the normal case), this is a dictionary look-up and nothing else.
    """
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, fault: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Whatever is written to the yielded path (by any library: ``savefig``,
    ``onnx.save``, ``model.save``) becomes ``path`` only when the block ends
    without an exception; otherwise the temporary file is removed and
    ``path`` is left as it was. ``fault`` names a ``fault_point`` reached
    after the data is written and before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; run folders are meant to be read by others
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if fault is not None:
            fault_point(fault)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open`` for writing that replaces ``path`` atomically when the block ends without an error."""
    if not mode.startswith("w"):
        raise ValueError(f"open_atomic writes whole files; mode {mode!r} is not allowed (use 'w' or 'wb').")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes_atomic(path: str | Path, data: bytes, fault: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path, fault=fault) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_figure_atomic(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """``fig.savefig`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` (not recursive); returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    left = [p for p in folder.glob(".*.tmp*") if p.is_file()]
    for p in left:
        with contextlib.suppress(OSError):
            p.unlink()
    return left
