"""Charge-per-phase, charge-density and Shannon-limit checks.

An unsafe stimulation setting is refused with an error, never clipped:
a researcher who asks for 18 mA at 450 us must learn that the device would
not deliver it, not receive a quietly weaker stimulus.

Shannon (1992): log10(D) = k - log10(Q), with D the charge density per phase
(uC/cm^2) and Q the charge per phase (uC); tissue damage becomes possible at
k >= 1.85. Devices add their own density limit (30 uC/cm^2/phase).
"""

from __future__ import annotations

import math

from simenv.errors import UnsafeStimulationError


def charge_per_phase_uc(amplitude_ma: float, pulse_width_us: float) -> float:
    """Charge per phase in microcoulombs: mA * us = nC, so divide by 1000."""
    return amplitude_ma * pulse_width_us * 1e-3


def charge_density_uc_per_cm2(
    amplitude_ma: float, pulse_width_us: float, contact_area_cm2: float
) -> float:
    """Charge density per phase in uC/cm^2 over the contact area."""
    return charge_per_phase_uc(amplitude_ma, pulse_width_us) / contact_area_cm2


def shannon_k(amplitude_ma: float, pulse_width_us: float, contact_area_cm2: float) -> float:
    """Shannon's k = log10(D) + log10(Q); -inf at zero amplitude."""
    q = charge_per_phase_uc(amplitude_ma, pulse_width_us)
    if q <= 0.0:
        return -math.inf
    return math.log10(q / contact_area_cm2) + math.log10(q)


def max_safe_amplitude_ma(
    pulse_width_us: float,
    contact_area_cm2: float,
    charge_density_limit_uc_per_cm2: float,
    shannon_k_limit: float,
) -> float:
    """Largest amplitude that satisfies both the density and Shannon limits.

    Density: I <= D_max * A / PW. Shannon: k = log10(Q^2 / A) < k_max, so
    Q < sqrt(A * 10^k_max). The Shannon bound is strict; callers compare
    with ``<=`` against this value, so it is nudged just below the bound.
    """
    q_density_uc = charge_density_limit_uc_per_cm2 * contact_area_cm2
    q_shannon_uc = math.sqrt(contact_area_cm2 * 10.0**shannon_k_limit) * (1.0 - 1e-9)
    q_max_uc = min(q_density_uc, q_shannon_uc)
    return q_max_uc / (pulse_width_us * 1e-3)


def check_stimulation_safe(
    amplitude_ma: float,
    pulse_width_us: float,
    contact_area_cm2: float,
    charge_density_limit_uc_per_cm2: float,
    shannon_k_limit: float,
    field: str = "stimulation.amplitude_max_ma",
) -> None:
    """Raise ``UnsafeStimulationError`` if a setting breaks either limit.

    The density limit is checked first because at DBS contact sizes
    (0.06 cm^2) it binds before Shannon's; both messages name the setting,
    the computed quantity and the limit.
    """
    q = charge_per_phase_uc(amplitude_ma, pulse_width_us)
    d = q / contact_area_cm2
    setting = (
        f"{field}={amplitude_ma:g} mA at pulse_width_us={pulse_width_us:g} "
        f"on contact_area_cm2={contact_area_cm2:g}"
    )
    # Relative slack: 18 mA x 100 us / 0.06 cm^2 is 30.000000000000004 in floating point.
    if d > charge_density_limit_uc_per_cm2 * (1.0 + 1e-9):
        raise UnsafeStimulationError(
            "PL-SAFETY-CHARGE-DENSITY",
            f"{setting} gives a charge density of {d:.3g} uC/cm^2/phase "
            f"(charge {q:.3g} uC/phase); the device limit is "
            f"{charge_density_limit_uc_per_cm2:g} uC/cm^2/phase. Allowed: amplitude <= "
            f"{charge_density_limit_uc_per_cm2 * contact_area_cm2 / (pulse_width_us * 1e-3):.3g} mA "
            "at this pulse width and area.",
        )
    k = shannon_k(amplitude_ma, pulse_width_us, contact_area_cm2)
    if k >= shannon_k_limit:
        raise UnsafeStimulationError(
            "PL-SAFETY-SHANNON",
            f"{setting} gives Shannon k = {k:.3f} (charge {q:.3g} uC/phase, density "
            f"{d:.3g} uC/cm^2/phase); tissue damage is possible at k >= {shannon_k_limit:g}. "
            "Allowed: k < "
            f"{shannon_k_limit:g}, i.e. amplitude < "
            f"{max_safe_amplitude_ma(pulse_width_us, contact_area_cm2, math.inf, shannon_k_limit):.3g} mA "
            "at this pulse width and area.",
        )
