"""Numba's on-disk cache, kept in step with the other modules compiled code depends on.

Numba reuses a cached function's machine code as long as the function's own
source file is unchanged. It does not look at the modules whose constants the
function reads (``simenv.layout``'s column indices) or whose compiled functions
it calls (``simenv.decision.simulate_steps`` calls ``simenv.kernel.step_kernel``):
after an edit there, the cache would go on running the old model, silently.

``forget_when_changed`` keeps a hash of those modules' sources beside the cache.
When the hash differs, it empties the cache index of the calling module's
compiled functions, so they compile afresh once and are cached again.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from numba.core.registry import CPUDispatcher


def sources_digest(module_names: Sequence[str]) -> str:
    """SHA-256 over the source files of the named (imported) modules, in order."""
    digest = hashlib.sha256()
    for name in module_names:
        path = Path(sys.modules[name].__file__ or "")
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cached_dispatchers(module_name: str) -> list[CPUDispatcher]:
    """The module's own ``njit(cache=True)`` functions (not those it imports)."""
    module = sys.modules[module_name]
    return [
        value
        for value in vars(module).values()
        if isinstance(value, CPUDispatcher)
        and value.py_func.__module__ == module_name
        and hasattr(getattr(value, "_cache", None), "cache_path")
    ]


def forget_when_changed(module_name: str, depends_on: Sequence[str]) -> bool:
    """Empty the cache of ``module_name``'s compiled functions if ``depends_on`` changed since it was filled.

    Call it at the end of a module with cached compiled functions, naming
    every module their code reads (the module itself included). Returns True
    when the cache was emptied. A cache folder that cannot be written is left
    as numba leaves it.
    """
    dispatchers = cached_dispatchers(module_name)
    if not dispatchers:
        return False
    digest = sources_digest([module_name, *depends_on])
    # ``_cache`` is numba's own (private) attribute, absent from its annotations.
    cache_path = dispatchers[0]._cache.cache_path  # type: ignore[attr-defined]
    stamp = Path(cache_path) / f"{module_name}.sources-sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass  # no stamp yet: a cache filled before the stamp existed is not trusted either
    try:
        for dispatcher in dispatchers:
            dispatcher._cache.flush()  # type: ignore[attr-defined]  # numba's private cache
        stamp.parent.mkdir(parents=True, exist_ok=True)
        partial = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        partial.write_text(digest)
        os.replace(partial, stamp)
    except OSError:
        return False
    return True
