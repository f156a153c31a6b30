"""The manifest of a run folder: the SHA-256 of every file a load reads, kept in ``run.json``.

``run.json`` holds ``"manifest": {"format": "painloop.manifest/v1", "files":
{<path relative to the run folder>: <sha256 hex>}}``. Training records a
file's hash before the file becomes visible under its final name (a model
zip is renamed last, so a checkpoint or model that exists is in the
manifest), and every load reads the file once into memory, checks it against
the manifest and works on those same bytes: a file replaced after it was
written is refused with ``PL-RUN-MANIFEST`` naming it.

The manifest is an integrity check (a damaged copy, a file swapped by hand),
not a signature: anyone who can edit the folder can edit ``run.json`` too.
What keeps a shared folder from running code is that no load unpickles
anything (``agents.run_files``); the manifest makes a changed file visible.

A folder with ``train_config.json`` but no manifest was written before this
check (its statistics are pickles): ``PL-RUN-LEGACY`` says how to convert it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agents.atomic_io import write_text_atomic
from agents.json_data import strict_json
from simenv.errors import PainloopError

RUN_FILE = "run.json"
MANIFEST_KEY = "manifest"
MANIFEST_FORMAT = "painloop.manifest/v1"
#: The largest file a run-folder load reads into memory (a model zip of a large network is far below it).
MAX_FILE_BYTES = 1 << 30
#: The command that converts a folder written before the manifest (docs/reliability.md, "Trust boundary").
CONVERT_COMMAND = "python -m experiments.convert_run"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _relative(run_dir: Path, path: str | Path) -> str:
    """``path`` relative to the run folder (given relative to it, or as a path that starts with it)."""
    p = Path(path)
    for base in (run_dir, run_dir.resolve()):
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            pass
    if p.is_absolute():
        return p.resolve().relative_to(run_dir.resolve()).as_posix()
    return p.as_posix()


def _read_run_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PainloopError("PL-RUN-FOLDER", f"'{path}' cannot be read: {exc}.") from None
    data = strict_json(raw, str(path), max_bytes=MAX_FILE_BYTES)
    if not isinstance(data, dict):
        raise PainloopError("PL-RUN-FOLDER", f"'{path}' holds {type(data).__name__}; allowed: a JSON mapping.")
    return data


def manifest_files(run_dir: str | Path) -> dict[str, str] | None:
    """The manifest's ``{relative path: sha256}``, or None if the folder has none (written before it)."""
    info = _read_run_json(Path(run_dir))
    manifest = None if info is None else info.get(MANIFEST_KEY)
    if manifest is None:
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
        raise PainloopError(
            "PL-RUN-MANIFEST",
            f"'{Path(run_dir) / RUN_FILE}': its manifest is not a {MANIFEST_FORMAT} mapping of file names to "
            "SHA-256 hashes; allowed: the manifest experiments.train writes.",
        )
    return dict(files)


def legacy_message(run_dir: str | Path) -> str:
    return (
        f"run folder '{run_dir}' was written before painloop checked run folders: run.json holds no manifest of "
        "file hashes and its statistics are pickles, which could run code when loaded; refused. If the folder is "
        f"yours (you trained it, or you trust who did), convert it once with: {CONVERT_COMMAND} {run_dir}"
    )


def require_manifest(run_dir: str | Path) -> dict[str, str]:
    """The manifest, or ``PL-RUN-LEGACY`` for a folder written before it."""
    files = manifest_files(run_dir)
    if files is None:
        raise PainloopError("PL-RUN-LEGACY", legacy_message(run_dir))
    return files


def read_verified(run_dir: str | Path, path: str | Path, files: Mapping[str, str] | None = None) -> bytes:
    """The bytes of ``path`` (inside ``run_dir``), checked against the manifest; refused with the file's name."""
    run = Path(run_dir)
    files = require_manifest(run) if files is None else files
    rel = _relative(run, path)
    full = run / rel
    expected = files.get(rel)
    if expected is None:
        raise PainloopError(
            "PL-RUN-MANIFEST",
            f"'{full}' is not in the manifest of '{run / RUN_FILE}' (a file added to the folder by hand, or a "
            "write that did not finish); refused. Allowed: the files experiments.train recorded.",
        )
    try:
        size = full.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PainloopError("PL-RUN-FOLDER", f"'{full}' is {size} bytes; allowed: at most {MAX_FILE_BYTES}.")
        data = full.read_bytes()
    except FileNotFoundError:
        raise PainloopError("PL-RUN-FOLDER", f"'{full}' is missing; allowed: a run folder with its files.") from None
    except OSError as exc:
        raise PainloopError("PL-RUN-FOLDER", f"'{full}' cannot be read: {exc}.") from None
    actual = sha256_bytes(data)
    if actual != expected:
        raise PainloopError(
            "PL-RUN-MANIFEST",
            f"'{full}' does not match the manifest in '{run / RUN_FILE}' (SHA-256 {actual[:16]}..., recorded "
            f"{expected[:16]}...): the file was changed or damaged after training wrote it; refused, nothing was "
            "loaded. Allowed: the file as written (copy the folder again, or delete that checkpoint's files to "
            "resume from the previous one).",
        )
    return data


def record(run_dir: str | Path, hashes: Mapping[str | Path, str], remove: Iterable[str | Path] = ()) -> None:
    """Add ``{path: sha256}`` to the manifest in ``run.json`` (and drop ``remove``); one atomic rewrite."""
    run = Path(run_dir)
    info = _read_run_json(run) or {}
    manifest = info.get(MANIFEST_KEY)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        manifest = {"format": MANIFEST_FORMAT, "files": {}}
    files: dict[str, str] = dict(manifest["files"])
    for path, digest in hashes.items():
        files[_relative(run, path)] = digest
    for path in remove:
        files.pop(_relative(run, path), None)
    info[MANIFEST_KEY] = {"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))}
    write_text_atomic(run / RUN_FILE, json.dumps(info, indent=2, allow_nan=False) + "\n")


def record_files(run_dir: str | Path, paths: Iterable[str | Path]) -> None:
    """Hash files already written and add them to the manifest."""
    run = Path(run_dir)
    record(run, {p: sha256_bytes((run / _relative(run, p)).read_bytes()) for p in paths})
