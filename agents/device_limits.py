"""What each target device accepts: sensing, detector and stimulation ranges, and the safety ceilings.

``DEVICES`` maps a config's ``target`` to its ``DeviceLimits`` (docs/export.md,
"Device ranges"); the Percept constants are the emulation's extra rules. The
values are data read by ``agents.controller_config.validate_config`` and
``agents.config_format.power_bands_for``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.config_encoding import RAMP_SCALE
from agents.detector import MAX_INPUTS

#: Safety ceilings no config may raise (DOMAIN.md): 30 uC/cm^2/phase and Shannon k 1.85.
MAX_DENSITY_LIMIT_UC_PER_CM2 = 30.0
MAX_SHANNON_K = 1.85


@dataclass(frozen=True)
class DeviceLimits:
    """Ranges a target device accepts (docs/export.md, "Device ranges").

    Count fields are the RC+S API's 8-bit widths (0-255); Percept's are its
    documented ranges in seconds, converted with the emulation's intervals.
    """

    name: str
    fft_interval_ms: tuple[int, int]
    update_rate_fft_intervals: tuple[int, int]
    max_count_updates: int  # onset, termination, holdoff
    max_blank_fft_intervals: int
    max_power_bands: int
    max_bands_per_channel: int
    max_inputs: int
    allows_ld1: bool
    amplitude_max_ma: float  # exclusive: 25.5 is the HOLD code
    pulse_width_us: tuple[float, float]
    rate_hz: tuple[float, float]
    ramp_ma_per_s: tuple[float, float]
    fractional_fixed_point: tuple[int, int] = (0, 16)


DEVICES: dict[str, DeviceLimits] = {
    "summit_rcs": DeviceLimits(
        name="Medtronic Summit RC+S",
        fft_interval_ms=(50, 10_000),
        update_rate_fft_intervals=(1, 255),
        max_count_updates=255,
        max_blank_fft_intervals=255,
        max_power_bands=8,
        max_bands_per_channel=2,
        max_inputs=MAX_INPUTS,
        allows_ld1=True,
        amplitude_max_ma=25.5,
        pulse_width_us=(60.0, 450.0),
        rate_hz=(2.0, 250.0),
        ramp_ma_per_s=(1.0 / RAMP_SCALE, 1.0),
    ),
    # Percept BrainSense Adaptive, emulated at dt_s: 5 Hz updates (200 ms), averaging,
    # onset and blanking each 0-30 s, ramps over 2 s-30 min, one band within 8-30 Hz.
    "percept": DeviceLimits(
        name="Medtronic Percept (BrainSense Adaptive, emulated)",
        fft_interval_ms=(200, 200),
        update_rate_fft_intervals=(1, 150),
        max_count_updates=255,
        max_blank_fft_intervals=150,
        max_power_bands=1,
        max_bands_per_channel=1,
        max_inputs=1,
        allows_ld1=False,
        amplitude_max_ma=25.5,
        pulse_width_us=(20.0, 450.0),
        rate_hz=(2.0, 250.0),
        ramp_ma_per_s=(1.0 / RAMP_SCALE, 1000.0),
    ),
}
PERCEPT_MAX_ONSET_S = 30.0
PERCEPT_RAMP_S = (2.0, 1800.0)
PERCEPT_BAND_HZ = (8.0, 30.0)
