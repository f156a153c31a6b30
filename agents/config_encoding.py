"""Device integers of a ``painloop.controller/v1`` config: fixed point, 0.1 mA steps, ramp units.

A config's fields are in human units (mA, mA/s, dB); beside them, in
``device_encoding``, are the integers a device stores:

- detector weights, normalisation vectors and thresholds as fixed-point
  integers ``round(value * 2^F)`` (F = ``fractional_fixed_point``), each in
  a signed 32-bit range, and the human values exactly on that grid;
- state amplitudes in tenths of a mA (the device's 0.1 mA resolution), with
  HOLD as 255 (25.5 mA, the RC+S HOLD code) and unused states as null;
- ramp rates as ``round(mA/s * 65536)``; the human value must equal
  ``integer / 65536``, so the simulator runs what the device would run.

This module owns those conversions (and the HOLD state value they encode);
``agents.controller_config`` checks that a config's integers match them.
"""

from __future__ import annotations

import math
from typing import Any

HOLD = "HOLD"
HOLD_TENTHS_MA = 255  # 25.5 mA: the RC+S code for "keep the current amplitude"
RAMP_SCALE = 65536  # device ramp integer = mA/s * 65536
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def fixed_point_int(value: float, fractional_bits: int) -> int:
    """The device integer of a real value: round(value * 2^F)."""
    return int(round(value * (1 << fractional_bits)))


def on_grid(value: float, fractional_bits: int) -> bool:
    scaled = value * (1 << fractional_bits)
    return math.isfinite(scaled) and scaled == round(scaled)


def ramp_on_grid(ma_per_s: float) -> float:
    """The ramp rate the device runs: the nearest multiple of 1/65536 mA/s (at least one step)."""
    return max(round(ma_per_s * RAMP_SCALE), 1) / RAMP_SCALE


def amplitude_tenths(value: Any) -> int | None:
    if value is None:
        return None
    if value == HOLD:
        return HOLD_TENTHS_MA
    return int(round(float(value) * 10))


def encode_detector(det: dict) -> dict:
    F = int(det["fractional_fixed_point"])
    return {
        "weight": [fixed_point_int(v, F) for v in det["weight"]],
        "norm_subtract": [fixed_point_int(v, F) for v in det["norm_subtract"]],
        "norm_multiply": [fixed_point_int(v, F) for v in det["norm_multiply"]],
        "threshold_low": fixed_point_int(det["threshold_low"], F),
        "threshold_high": fixed_point_int(det["threshold_high"], F),
    }


def device_encoding(data: dict) -> dict:
    """The ``device_encoding`` block of a config from its human-unit fields."""
    ld1 = data["detectors"].get("LD1")
    return {
        "LD0": encode_detector(data["detectors"]["LD0"]),
        "LD1": encode_detector(ld1) if ld1 else None,
        "states_tenths_ma": [amplitude_tenths(s) for s in data["states"]],
        "ramp_up": int(round(data["ramp_up_ma_per_s"] * RAMP_SCALE)),
        "ramp_down": int(round(data["ramp_down_ma_per_s"] * RAMP_SCALE)),
    }
