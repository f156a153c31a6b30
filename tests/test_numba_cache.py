"""Compiled code never runs from a cache filled before a module it depends on changed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simenv.numba_cache import cached_dispatchers, sources_digest

USER_MODULE = """
import numba
from cachepkg import dep

@numba.njit(cache=True)
def value():
    return dep.CONSTANT
{guard}
"""
GUARD = '\nfrom simenv.numba_cache import forget_when_changed\nforget_when_changed(__name__, depends_on=("cachepkg.dep",))\n'


def _run(root: Path) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *sys.path]))
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", "from cachepkg.user import value; print(value())"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    return int(out.stdout.strip())


def _package(root: Path, guarded: bool) -> Path:
    pkg = root / "cachepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "dep.py").write_text("CONSTANT = 1\n")
    (pkg / "user.py").write_text(textwrap.dedent(USER_MODULE.format(guard=GUARD if guarded else "")))
    return pkg


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "numba-alone"])
def test_a_changed_dependency_recompiles_only_with_the_guard(tmp_path, guarded):
    pkg = _package(tmp_path, guarded)
    assert _run(tmp_path) == 1
    assert list((pkg / "__pycache__").glob("user.value-*.nbc")), "the first run filled the cache"
    (pkg / "dep.py").write_text("CONSTANT = 2\n")
    if guarded:
        assert _run(tmp_path) == 2
    else:
        # Numba's own limitation, the reason for the guard: it still runs the old machine code.
        assert _run(tmp_path) == 1


def test_every_module_with_cached_kernels_is_stamped():
    import agents.evaluation  # noqa: F401
    import simenv.decision
    import simenv.kernel  # noqa: F401

    names = {d.py_func.__name__ for d in cached_dispatchers("simenv.decision")}
    assert {"simulate_steps", "finish_decision", "after_sim_step"} <= names
    assert "step_kernel" not in names  # imported there, owned by simenv.kernel
    stamp = Path(simenv.decision.simulate_steps._cache.cache_path) / "simenv.decision.sources-sha256"
    expected = sources_digest(["simenv.decision", "simenv.layout", "simenv.params", "simenv.kernel"])
    assert stamp.read_text() == expected
