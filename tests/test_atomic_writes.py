"""Every file a command writes goes through the one atomic writer, ``agents.atomic_io``.

A source scan: direct writes (``open(..., "w")``, ``write_text``,
``write_bytes``, ``savefig``, ``onnx.save``, ``torch.save``, ``np.save``)
appear nowhere in the package except in ``agents/atomic_io.py`` and the
append-only streams docs/reliability.md names (logs of child processes,
``metrics.csv`` rows) and the numba cache's stamp; a new writer that bypasses the helper fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simenv", "agents", "experiments")
DIRECT = re.compile(
    r"""open\([^)]*["'][wax]b?["']|\.write_text\(|\.write_bytes\(|\.savefig\(|onnx\.save\(|torch\.save\(|np\.save"""
)
#: file -> direct writes allowed there, each an append-only stream (docs/reliability.md, "Not atomic")
ALLOWED = {
    "agents/atomic_io.py": None,  # the helper itself
    "experiments/studies/finetune.py": 1,  # the log a child training streams into
    "experiments/benchmarks/learning.py": 1,  # the same, per benchmark job
    "experiments/training/folder.py": 1,  # metrics.csv rows, appended whole and fsynced (a half row is dropped on read)
    # The hash stamp beside numba's own cache files: a cache record, not a result; written to a
    # temporary name and renamed (simenv imports nothing from agents, so not through the helper).
    "simenv/numba_cache.py": 1,
}


def test_no_file_is_written_around_the_atomic_helper():
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            hits = [ln.strip() for ln in path.read_text().splitlines() if DIRECT.search(ln) and not ln.lstrip().startswith("#")]
            if hits:
                found[rel] = hits
    unexpected = {f: h for f, h in found.items() if f not in ALLOWED}
    assert unexpected == {}, f"direct file writes outside agents.atomic_io: {unexpected}"
    for f, allowed in ALLOWED.items():
        if allowed is not None:
            assert len(found.get(f, [])) == allowed, (f, found.get(f))


def test_the_scan_sees_a_direct_write():
    assert DIRECT.search('with path.open("w", newline="") as fh:')
    assert DIRECT.search("fig.savefig(path, dpi=100)") and DIRECT.search("out.write_text(text)")
    assert not DIRECT.search("save_figure_atomic(fig, path)")
