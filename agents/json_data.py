"""JSON that someone else may have written, read as data: a size limit, UTF-8, NaN and Infinity refused.

Run folders, their manifests and controller configs travel between people
(docs/reliability.md, "Trust boundary"); every JSON file painloop reads from
them goes through ``strict_json`` or ``read_json_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simenv.errors import PainloopError

#: The largest controller config (``painloop.controller/v1``) read: real ones are a few kB.
MAX_CONFIG_BYTES = 4 << 20


def _loads(text: str) -> Any:
    """``json.loads`` with NaN, Infinity and -Infinity refused (``json.JSONDecodeError``)."""

    def refuse(name: str) -> Any:
        raise json.JSONDecodeError(f"{name} is not allowed (JSON has no NaN or Infinity)", text, 0)

    return json.loads(text, parse_constant=refuse)


def strict_json(data: bytes | str, where: str, code: str = "PL-RUN-FOLDER", max_bytes: int = 16 << 20) -> Any:
    """JSON text as data: UTF-8, at most ``max_bytes``, NaN/Infinity refused; ``code`` names bad content."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise PainloopError(code, f"'{where}' is {len(raw)} bytes; allowed: at most {max_bytes}.")
    try:
        return _loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PainloopError(code, f"'{where}' is not valid JSON: {exc}.") from None


def read_json_file(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """A JSON file as data: at most ``max_bytes``, UTF-8, NaN and Infinity refused.

    Raises what ``json.loads(path.read_text())`` would (``OSError``,
    ``UnicodeDecodeError``, ``json.JSONDecodeError``), so a caller's error
    handling stays as it is; a file that is too large or holds NaN/Infinity
    is a ``json.JSONDecodeError``.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise json.JSONDecodeError(f"the file is {size} bytes; allowed: at most {max_bytes} bytes", "", 0)
    return _loads(p.read_bytes().decode("utf-8"))
