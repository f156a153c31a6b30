"""Check a controller's actions before they reach the simulator: refuse, never clip.

The evaluation engine calls ``checked_action`` on what every policy's
``act`` returns, so a policy that returns NaN, inf, a value outside its
action space or the wrong number of actions stops the evaluation with
``PL-ACTION-INVALID`` naming the controller, the slot, the value and what is
allowed, instead of a silent clip or a confusing error deeper down.
Amplitudes above a patient's safe ceiling (``amplitude_ma`` mode) are
refused by the simulator itself (``PL-SAFETY-AMPLITUDE``).

One vectorised test on the hot path; the diagnosis runs only on failure.
"""

from __future__ import annotations

import numpy as np

from simenv.errors import PainloopError, UnsafeStimulationError

#: float32 rounding of a policy network's output (the simulator allows the same)
_SLACK = 1e-6
_ALLOWED = {
    "on_off": "whole numbers 0 (off) or 1 (on)",
    "levels": "whole numbers 0..{top}",
    "continuous": "finite values in [-1, 1]",
    "amplitude_ma": "finite amplitudes >= 0 mA",
}


def checked_action(
    label: str, action: object, mode: str, n_levels: int | None, n_slots: int, amplitude_max_ma: np.ndarray | None = None
) -> np.ndarray:
    """``action`` as an array if every slot's action is valid for ``mode``; else ``PL-ACTION-INVALID``.

    With ``amplitude_max_ma`` (per slot), amplitudes above it (``amplitude_ma``
    mode) are ``PL-SAFETY-AMPLITUDE``, naming the controller.
    """
    a = np.asarray(action)
    if mode == "continuous" and a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.shape != (n_slots,) or a.dtype.kind not in "biuf":
        raise PainloopError(
            "PL-ACTION-INVALID",
            f"controller '{label}' returned actions of shape {a.shape} and dtype {a.dtype}; allowed: "
            f"{n_slots} numbers, one per patient slot ({_allowed(mode, n_levels)}).",
        )
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if mode == "continuous":
        ok = (a >= -1.0 - _SLACK) & (a <= 1.0 + _SLACK)
    elif mode == "amplitude_ma":
        ok = (a >= 0.0) & np.isfinite(a)
    else:
        top = 1 if mode == "on_off" else int(n_levels or 2) - 1
        ok = (a >= 0) & (a <= top)
        if a.dtype.kind == "f":
            ok &= a == np.round(a)
    if ok.all():  # NaN fails every comparison
        if mode == "amplitude_ma" and amplitude_max_ma is not None and np.any(a > amplitude_max_ma + 1e-9):
            bad = int(np.flatnonzero(a > amplitude_max_ma + 1e-9)[0])
            raise UnsafeStimulationError(
                "PL-SAFETY-AMPLITUDE",
                f"controller '{label}' requested {a[bad]:g} mA for slot {bad}, above its safe ceiling "
                f"stimulation.amplitude_max_ma={amplitude_max_ma[bad]:g} mA; refused, not clipped.",
            )
        return a
    bad = int(np.flatnonzero(~ok)[0])
    raise PainloopError(
        "PL-ACTION-INVALID",
        f"controller '{label}' returned action {a[bad]!r} for slot {bad} ({int((~ok).sum())} of {n_slots} slots "
        f"invalid) in action mode '{mode}'; allowed: {_allowed(mode, n_levels)}. Refused, not clipped.",
    )


def _allowed(mode: str, n_levels: int | None) -> str:
    return _ALLOWED.get(mode, f"action mode '{mode}'").format(top=int(n_levels or 2) - 1)
