"""The frame keys every judging command shares: ``frame``, ``warmup_days`` and the scored days, resolved and checked.

A command that judges controllers (evaluation fronts, sweeps, benchmarks,
the export's fidelity report) names a frame (``agents.evaluation_frames``)
and may override its warm-up or its scored days; ``frame_days`` turns those
keys into the two numbers the engine runs, with the same checks and error
codes everywhere (``PL-CONFIG-VALUE`` for an unknown frame, ``PL-EVAL-WARMUP``
for a bad warm-up).
"""

from __future__ import annotations

from agents.evaluation_frames import frame_named
from agents.evaluation_window import check_warmup_days


def frame_days(frame: str, warmup_days: float | None = None, horizon_days: float | None = None) -> tuple[float, float]:
    """(warm-up days, scored days) of the named ``frame``, either overridden when given; checked.

    ``PL-CONFIG-VALUE`` for an unknown frame, ``PL-EVAL-WARMUP`` for a
    warm-up that is not a finite number >= 0.
    """
    named = frame_named(frame)
    warm = check_warmup_days(named.warmup_days if warmup_days is None else warmup_days)
    return warm, named.horizon_days if horizon_days is None else float(horizon_days)
