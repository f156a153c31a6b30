"""Controller config files: read one (``load_config``), or every config of an export folder.

Each file is read as data (``agents.json_data``: NaN, Infinity and files over
4 MiB refused) and validated (``agents.controller_config.check_config``)
before anything uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

from agents.config_format import FORMAT
from agents.controller_config import ConfigError, Violation, check_config
from agents.json_data import read_json_file
from simenv.errors import PainloopError


def load_config(path: str | Path, dt_s: float | None = None) -> dict:
    """Read and validate one config file (a corrupted file fails with ``PL-CONFIG-SCHEMA``)."""
    path = Path(path)
    try:
        data = read_json_file(path)  # NaN/Infinity and files over 4 MiB refused (agents.json_data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            "PL-CONFIG-SCHEMA",
            f"config {path}: 1 violation(s): (1) $: not readable as JSON ({exc}); allowed: a "
            f"{FORMAT} JSON document.",
            [Violation("$", "PL-CONFIG-SCHEMA", f"not readable as JSON ({exc})")],
        ) from None
    return check_config(data, dt_s, where=str(path))


def config_files(folder: str | Path) -> list[Path]:
    """Config files of an export: ``<folder>/configs/*.json`` (an export run folder) or ``<folder>/*.json``."""
    folder = Path(folder)
    sub = folder / "configs"
    base = sub if sub.is_dir() else folder
    return sorted(base.glob("*.json"))


def load_config_dir(folder: str | Path, dt_s: float | None = None) -> dict[int, dict]:
    """Every config of an export folder, validated, keyed by patient uid."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PainloopError("PL-CONFIG-MISSING", f"config folder '{folder}' does not exist; allowed: the folder an "
                            "export wrote (or its configs/ subfolder).")
    files = [p for p in config_files(folder) if p.name not in ("fidelity.json", "run.json", "status.json")]
    if not files:
        raise PainloopError("PL-CONFIG-MISSING", f"config folder '{folder}' holds no *.json configs (looked in "
                            f"{folder / 'configs'} and {folder}).")
    out: dict[int, dict] = {}
    for path in files:
        data = load_config(path, dt_s)
        uid = int(data["provenance"]["patient"]["uid"])
        if uid in out:
            raise PainloopError("PL-CONFIG-MISSING", f"config folder '{folder}' holds two configs for patient uid "
                                f"{uid}; allowed: one per patient.")
        out[uid] = data
    return out
