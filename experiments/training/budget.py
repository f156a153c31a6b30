"""The energy budget of a constrained training: the ``budget.*`` keys checked and turned into a target in J/day.

A budget is asked for as stimulation energy, ``budget.energy_j_per_day``
(TEED delivered to tissue, the evaluation metric ``stim_energy_j_per_day``),
or as battery life, ``budget.battery_life_years``. Both become one target
``B`` in J/day for the training cohort; the multiplier that enforces it is
``experiments.training.budget_multiplier``'s.

Battery life to energy, per patient i (``simenv.params.BatteryParams``:
capacity ``C_i`` J, efficiency ``eta_i``, overhead ``P_oh,i`` W; the
simulator draws ``stim / eta + P_oh`` from the battery)::

    life L years  <=>  mean draw C_i / (L * Y)  (Y = SECONDS_PER_YEAR)
    E_i(L) = 86400 * eta_i * (C_i / (L * Y) - P_oh,i)      J/day of stimulation

and the cohort's target is the mean ``B = mean_i E_i(L)`` (the multiplier
holds the cohort's mean energy, not each patient's). Every shipped preset
gives all patients the same battery, so then ``B = E_i(L)`` for each of them;
with batteries that differ, the mean is the choice: a shared policy cannot
hold a different energy per patient it does not observe.

Allowed: ``0 < B < continuous``, where ``continuous`` is the mean over the
training patients of ``86400 * k_i * a_on,i^2`` (``k_i`` W per mA^2 =
impedance x rate x pulse width, the simulator's own ``param_row``; ``a_on``
the ``on`` amplitude), computed from the parameters, not simulated. ``off``
uses 0 J/day: a budget at or below it, or at or above continuous
stimulation's, leaves nothing to learn. For a battery life: shorter than the
shortest battery life with stimulation off (overhead only, ``C_i / P_oh,i``)
of any training patient, and longer than the life whose target equals
continuous stimulation's.

Validation (the best model) measures energy on the validation patients,
whose stimulation costs differ from the training cohort's (the 10 default
validation patients: 7.62 J/day of continuous stimulation against 8.48 on
``train``). The budget is the training cohort's, so a validation's energy is
read at the training cohort's cost before it is compared:
``E_val x continuous_train / continuous_val`` (``validation_scale``; a policy's
energy is its on-time times the cohort's continuous energy, to the extent
its duty does not depend on the patient's stimulation cost). Without the
scale the best models of a budget sweep used 12-15% more than their budget
on ``test`` (docs/training.md, "Budgets").

In budget mode the multiplier *is* the training reward's energy weight, so
``reward.energy`` must stay at its default (``RewardWeights().energy``):
another value (e.g. ``experiment=energy_aware``) is refused as a conflict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_YEAR
from simenv.reward import RewardWeights

ENERGY_KEY = "budget.energy_j_per_day"
LIFE_KEY = "budget.battery_life_years"


@dataclass(frozen=True)
class EnergyBudget:
    """A checked budget: the target and how the multiplier that holds it moves."""

    target_j_per_day: float  # B: the training cohort's mean stimulation energy to hold
    key: str  # the key it was asked with (ENERGY_KEY or LIFE_KEY)
    asked: float  # its value as asked (J/day or years)
    continuous_j_per_day: float  # continuous stimulation at the on amplitude, training cohort mean
    initial_multiplier: float
    multiplier_lr: float
    update_freq: int
    #: continuous stimulation's energy on the training cohort / on the validation cohort: validation energies
    #: are multiplied by it before they are compared with the budget (module docstring)
    validation_scale: float = 1.0

    def describe(self) -> str:
        unit = "J/day" if self.key == ENERGY_KEY else "years"
        return (f"energy budget {self.target_j_per_day:.3f} J/day ({self.key}={self.asked:g} {unit}; continuous "
                f"stimulation {self.continuous_j_per_day:.3f} J/day on the training cohort); multiplier from "
                f"{self.initial_multiplier:g}, step {self.multiplier_lr:g} per update every {self.update_freq:,} steps; "
                f"validation energies x {self.validation_scale:.4f} (the training cohort's stimulation cost)")


def _power_w_per_ma2(patient: Any) -> float:
    from simenv import layout as L
    from simenv.core import param_row

    return float(param_row(patient.params, 30.0, 0.0)[L.P_POWER_W_PER_MA2])  # dt_s and hour do not enter it


def continuous_energy_j_per_day(patient: Any) -> float:
    """Stimulation energy per day of the ``on`` amplitude held all the time (J/day)."""
    on_ma = patient.params.stimulation.on_amplitude_ma
    return _power_w_per_ma2(patient) * on_ma * on_ma * SECONDS_PER_DAY


def off_battery_life_years(patient: Any) -> float:
    """Battery life with stimulation off: the overhead alone drains it."""
    battery = patient.params.battery
    return battery.capacity_j / (battery.overhead_uw * 1e-6) / SECONDS_PER_YEAR


def energy_for_battery_life(life_years: float, patient: Any) -> float:
    """Stimulation energy per day (J/day) at which ``patient``'s battery lasts ``life_years``."""
    battery = patient.params.battery
    draw_w = battery.capacity_j / (life_years * SECONDS_PER_YEAR)
    return battery.efficiency * (draw_w - battery.overhead_uw * 1e-6) * SECONDS_PER_DAY


def _life_for_energy(energy_j_per_day: float, patients: Sequence[Any]) -> float:
    """The battery life whose cohort-mean target is ``energy_j_per_day`` (inverse of the mean of E_i(L))."""
    n = len(patients)
    # mean_i E_i(L) = 86400 * (mean(eta C) / (L Y) - mean(eta P_oh)): linear in 1/L.
    eta_c = sum(p.params.battery.efficiency * p.params.battery.capacity_j for p in patients) / n
    eta_oh = sum(p.params.battery.efficiency * p.params.battery.overhead_uw * 1e-6 for p in patients) / n
    return eta_c / (SECONDS_PER_YEAR * (energy_j_per_day / SECONDS_PER_DAY + eta_oh))


def _number(value: Any, key: str, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PainloopError("PL-BUDGET-VALUE", f"{key}={value!r}; allowed: {allowed}.")
    return float(value)


def _settings(budget: Mapping[str, Any]) -> tuple[float, float, int]:
    initial = _number(budget.get("initial_multiplier", 0.2), "budget.initial_multiplier", "a finite number >= 0")
    if initial < 0:
        raise PainloopError("PL-BUDGET-VALUE", f"budget.initial_multiplier={initial!r}; allowed: a finite number >= 0.")
    lr = _number(budget.get("multiplier_lr", 0.05), "budget.multiplier_lr", "a finite number > 0")
    if lr <= 0:
        raise PainloopError("PL-BUDGET-VALUE", f"budget.multiplier_lr={lr!r}; allowed: a finite number > 0.")
    freq = budget.get("update_freq", 8192)
    if isinstance(freq, bool) or not isinstance(freq, int) or freq < 1:
        raise PainloopError("PL-BUDGET-VALUE", f"budget.update_freq={freq!r}; allowed: a whole number >= 1 (env steps).")
    return initial, lr, freq


def make_budget(config: Mapping[str, Any], patients: Sequence[Any],
                validation_patients: Sequence[Any] = ()) -> EnergyBudget | None:
    """The checked budget of a training config (``None``: no budget), for its training ``patients``.

    ``validation_patients`` set ``validation_scale`` (1 when none are given).

    Raises ``PL-BUDGET-VALUE`` (a value out of range) or ``PL-BUDGET-CONFLICT``
    (both budget keys, or a budget beside a changed ``reward.energy``).
    """
    budget = dict(config.get("budget") or {})
    initial, lr, freq = _settings(budget)
    energy, life = budget.get("energy_j_per_day"), budget.get("battery_life_years")
    if energy is None and life is None:
        return None
    if energy is not None and life is not None:
        raise PainloopError(
            "PL-BUDGET-CONFLICT",
            f"{ENERGY_KEY}={energy!r} and {LIFE_KEY}={life!r} together; allowed: one of them (the other null).",
        )
    default_energy = RewardWeights().energy
    reward_energy = (config.get("reward") or {}).get("energy", default_energy)
    if reward_energy != default_energy:
        raise PainloopError(
            "PL-BUDGET-CONFLICT",
            f"reward.energy={reward_energy!r} with {ENERGY_KEY if energy is not None else LIFE_KEY}="
            f"{energy if energy is not None else life!r}; allowed: reward.energy at its default {default_energy!r} "
            "(in budget mode the multiplier replaces the energy weight; set budget.initial_multiplier instead).",
        )
    continuous = sum(continuous_energy_j_per_day(p) for p in patients) / len(patients)
    scale = (continuous * len(validation_patients) / sum(continuous_energy_j_per_day(p) for p in validation_patients)
             if validation_patients else 1.0)
    off_life = min(off_battery_life_years(p) for p in patients)
    continuous_life = _life_for_energy(continuous, patients)
    if energy is not None:
        allowed = (f"a number of J/day > 0 (off) and < {continuous:.4g} (continuous stimulation at the on amplitude, "
                   f"mean over the {len(patients)} training patients)")
        target = _number(energy, ENERGY_KEY, allowed)
        if not 0 < target < continuous:
            raise PainloopError("PL-BUDGET-VALUE", f"{ENERGY_KEY}={energy!r}; allowed: {allowed}.")
        return EnergyBudget(target, ENERGY_KEY, target, continuous, initial, lr, freq, scale)
    allowed = (f"a number of years > {continuous_life:.4g} (continuous stimulation at the on amplitude, training "
               f"cohort) and < {off_life:.4g} (the battery with stimulation off: overhead only)")
    years = _number(life, LIFE_KEY, allowed)
    if not continuous_life < years < off_life:
        raise PainloopError("PL-BUDGET-VALUE", f"{LIFE_KEY}={life!r}; allowed: {allowed}.")
    target = sum(energy_for_battery_life(years, p) for p in patients) / len(patients)
    if not 0 < target < continuous:  # batteries that differ: the mean can leave the range inside the bounds
        raise PainloopError("PL-BUDGET-VALUE", f"{LIFE_KEY}={life!r} gives {target:.4g} J/day on the training "
                            f"cohort; allowed: {allowed}, giving between 0 and {continuous:.4g} J/day.")
    return EnergyBudget(target, LIFE_KEY, years, continuous, initial, lr, freq, scale)


def meets(metrics: Mapping[str, float], budget: EnergyBudget) -> bool:
    """Does a validation's mean stimulation energy per day, at the training cohort's cost, stay within the budget?"""
    return validation_energy(metrics, budget) <= budget.target_j_per_day


def validation_energy(metrics: Mapping[str, float], budget: EnergyBudget) -> float:
    """A validation's mean stimulation energy read at the training cohort's cost (J/day, module docstring)."""
    return float(metrics["stim_energy_j_per_day"]) * budget.validation_scale


def better(candidate: Mapping[str, float], incumbent: Mapping[str, float] | None, budget: EnergyBudget) -> bool:
    """Is ``candidate`` a better model than ``incumbent`` in budget mode (both validation metrics)?

    A validation within the budget beats one over it; among those within,
    lower mean pain wins; among those over (no model within the budget yet),
    lower energy wins. Ties keep the incumbent.
    """
    if incumbent is None:
        return True

    def key(m: Mapping[str, float]) -> tuple[int, float]:
        if meets(m, budget):
            return 1, -float(m["mean_pain_nrs"])
        return 0, -validation_energy(m, budget)

    return key(candidate) > key(incumbent)
