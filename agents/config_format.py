"""Build a ``painloop.controller/v1`` config from detectors, and read its detectors back.

A config is plain JSON, one per patient (normalisation and thresholds are
per-patient): sensing (power bands), detectors LD0 and LD1 (the fields of
``agents.detector.DetectorConfig``), the 9-entry state table, ramps,
stimulation and safety settings, provenance, and the device integers
(``agents.config_encoding``). ``build_config`` writes one (not yet validated:
``agents.controller_config.check_config`` does that); ``detector_configs``
and ``reachable_states`` read what the engine needs. docs/export.md
describes every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.config_encoding import HOLD, device_encoding, ramp_on_grid
from agents.detector import DetectorConfig
from agents.device_limits import DEVICES
from simenv import layout as L

FORMAT = "painloop.controller/v1"
TARGETS = ("summit_rcs", "percept")
N_STATES = 9

# -- building ------------------------------------------------------------------------------------
DETECTOR_FIELDS = (
    "inputs",
    "weight",
    "norm_subtract",
    "norm_multiply",
    "threshold_low",
    "threshold_high",
    "dual_threshold",
    "update_rate_fft_intervals",
    "onset_updates",
    "termination_updates",
    "holdoff_updates",
    "blank_fft_intervals",
    "fractional_fixed_point",
)


def detector_dict(det: DetectorConfig) -> dict:
    """A ``DetectorConfig`` as a config's ``detectors.LDx`` block (field for field)."""
    d = det.to_dict()
    out = {k: d[k] for k in DETECTOR_FIELDS}
    out["threshold_high"] = out["threshold_high"] if det.dual_threshold else out["threshold_low"]
    return out


def power_bands_for(inputs: Sequence[str], target: str) -> list[dict]:
    """Sensing power bands for these feature names: channel pairs per site (0-1 first site, 2-3 second)."""
    bands: list[dict] = []
    per_channel: dict[int, int] = {}
    for name in dict.fromkeys(inputs):
        site, band = name.split("_", 1)
        s = L.SITES.index(site)
        channel = 2 * s if per_channel.get(2 * s, 0) < DEVICES[target].max_bands_per_channel else 2 * s + 1
        per_channel[channel] = per_channel.get(channel, 0) + 1
        low, high = L.BAND_EDGES_HZ[band]
        bands.append({"name": name, "site": site, "channel": channel, "low_hz": low, "high_hz": high})
    return bands


def build_config(
    target: str,
    ld0: DetectorConfig,
    states: Sequence[Any],
    *,
    ld1: DetectorConfig | None = None,
    ramp_up_ma_per_s: float,
    ramp_down_ma_per_s: float,
    amplitude_limits_ma: tuple[float, float],
    pulse_width_us: float,
    rate_hz: float,
    contact_area_cm2: float,
    charge_density_limit_uc_per_cm2: float,
    shannon_k_limit: float,
    provenance: dict,
) -> dict:
    """A complete config dict (not yet validated: call ``check_config``). Ramps go on the device grid."""
    inputs = list(ld0.inputs) + (list(ld1.inputs) if ld1 is not None else [])
    data = {
        "format": FORMAT,
        "target": target,
        "sensing": {
            "fft_interval_ms": int(ld0.fft_interval_ms),
            "power_bands": power_bands_for(inputs, target),
        },
        "detectors": {"LD0": detector_dict(ld0), "LD1": detector_dict(ld1) if ld1 is not None else None},
        "states": [s if (s is None or s == HOLD) else float(s) for s in states],
        "ramp_up_ma_per_s": ramp_on_grid(ramp_up_ma_per_s),
        "ramp_down_ma_per_s": ramp_on_grid(ramp_down_ma_per_s),
        "amplitude_limits_ma": [float(amplitude_limits_ma[0]), float(amplitude_limits_ma[1])],
        "pulse_width_us": float(pulse_width_us),
        "rate_hz": float(rate_hz),
        "safety": {
            "contact_area_cm2": float(contact_area_cm2),
            "charge_density_limit_uc_per_cm2": float(charge_density_limit_uc_per_cm2),
            "shannon_k_limit": float(shannon_k_limit),
        },
        "provenance": dict(provenance),
    }
    data["device_encoding"] = device_encoding(data)
    return data


# -- reading -------------------------------------------------------------------------------------
def detector_configs(data: dict) -> tuple[DetectorConfig, DetectorConfig | None]:
    """The LD0 (and LD1) ``DetectorConfig`` a validated config describes."""
    fft = int(data["sensing"]["fft_interval_ms"])

    def one(d: dict) -> DetectorConfig:
        kw = {k: d[k] for k in DETECTOR_FIELDS}
        for k in ("inputs", "weight", "norm_subtract", "norm_multiply"):
            kw[k] = tuple(kw[k])
        return DetectorConfig(fft_interval_ms=fft, **kw)

    ld1 = data["detectors"].get("LD1")
    return one(data["detectors"]["LD0"]), (one(ld1) if ld1 else None)


def reachable_states(data: dict) -> list[int]:
    """Combined states (LD0 + 3 * LD1) the detectors can produce."""

    def states_of(d: dict | None) -> list[int]:
        if not d:
            return [0]
        return [0, 1, 2] if d["dual_threshold"] else [0, 1]

    return sorted(a + 3 * b for a in states_of(data["detectors"]["LD0"]) for b in states_of(data["detectors"].get("LD1")))
