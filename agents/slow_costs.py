"""Training that sees the slow cost of stimulating: tolerance at the policy's own equilibrium, and its price.

A training day is 1 day long and the discount looks 100 minutes ahead, while
tolerance builds over a month and recovers over a week (docs/model.md,
section 5). What a stimulation decision does to tolerance is therefore
invisible in the returns, and a policy trained on them stimulates as if
tolerance were free. This module makes that cost visible to training, and to
training only: the evaluation reward and the physics are untouched; the
simulator kernel stays the only step implementation (everything here reads
the patient's parameters and ``simenv.core.tolerance_equilibrium``).

**Separation of time scales.** Relief, pain fluctuations and the policy's
on/off pattern live on minutes to hours; tolerance on weeks. Averaged over a
fast on/off pattern of duty ``d`` (on-time fraction), the kernel's tolerance
update (build toward ``T_c = P_TOL_MAX * effect`` with ``tau_b`` while on,
recover toward 0 with ``tau_r`` while off) is

    dT/dt = d (T_c - T) / tau_b - (1 - d) T / tau_r

whose fixed point and slope are, with ``rho = tau_r / tau_b``,

    T_eq(d)   = T_c d rho / (1 - d (1 - rho))                (``equilibrium_tolerance``)
    T_eq'(d)  = T_c rho / (1 - d (1 - rho))^2                (``equilibrium_tolerance_slope``)

reached with the time constant ``1 / (d / tau_b + (1 - d) / tau_r)`` (7 to 30
days at the defaults). ``T_c`` is ``simenv.core.tolerance_equilibrium``.

**The price of tolerance.** The relief target is ``R e (1 - T)``; relief
follows it with time constants of minutes, and its update is positively
homogeneous in the target, so at a tolerance constant over hours the relief
is ``(1 - T) u(t)``, ``u`` the relief the same on/off pattern would give
without tolerance. Pain is ``drive - r * excess``, so one unit of tolerance
costs ``u * excess = relief_nrs / efficacy`` NRS at each moment, and the
fraction of time at or above 7 NRS rises by the density of pain at 7 times
the same amount (a box kernel of half-width ``high_pain_band_nrs``). Per
decision, in reward units,

    c = w_pain * g + w_high_pain * 1(|pain - 7| < b) / (2 b) * g,     g = relief_nrs / efficacy

and its long-run mean ``c_T`` under the policy is the reward lost per
decision per unit of tolerance. The long-run reward per decision at duty
``d`` is ``J(d) = J_fast(d, T_eq(d))``, so

    dJ/dd = dJ_fast/dd (at fixed T)  -  c_T T_eq'(d).

A training day at tolerance ``T_eq(d_ref)`` measures the first term (what
its returns see); charging every decision ``price = c_T T_eq'(d_ref)`` times
its on-time fraction (``price_tolerance``) supplies the second. With
``d_ref`` the policy's own running duty on that patient, the shaped day's
gradient in the duty equals the long-run one wherever the policy's duty is
``d_ref``: the stationary duties of the shaped objective are those of the
long-run objective (``price_duty: day`` takes the slope at the slot's own
24 h duty instead). ``equilibrium_start`` starts every training day at
``T_eq(d_ref)``, so the policy lives with the tolerance its own behaviour
causes (a ``randomized`` start draws it uniformly, whatever the policy
does), with the 30 min / 24 h / 7 day duty features at ``d_ref`` (what they
are after months) or drawn uniformly (``start_features: uniform``: at
``d_ref`` they tell the policy its price, and a policy can learn to answer
with heavy days after light ones and light after heavy, which over months
is stimulation in blocks; measured in docs/training.md).

**Where it can fail.** (1) Duty that varies over days (e.g. with the slow
pain drift) is not fast next to the tolerance time constants: ``T`` then
lags the duty, and the average formula is only first order. (2) The price is
a linearisation at ``d_ref``: right for small policy changes, corrected as
``d_ref`` follows the policy (it lags by about a day of each slot). (3)
``c_T`` and ``d_ref`` are estimates over the policy's recent days on each
patient (a pool patient comes back every ~200 episodes; a shared running
value follows the policy at once, each patient adds its own offset). (4)
Only on/off actions: with levels, the effect, and so ``T_c``, depends on the
amplitude. (5) Ramps count as on-time, as in the kernel's duty. (6) The
running estimates are not checkpointed: a resumed run estimates them again
within a training day. The battery
needs no such term: its cost is the energy term, paid in the decision that
spends the energy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import Patient
from simenv.core import tolerance_equilibrium
from simenv.errors import PainloopError
from simenv.info_layout import STEP_INFO
from simenv.params import PatientParams
from simenv.reward import RewardWeights

_COL = {name: i for i, name in enumerate(STEP_INFO)}
_DUTY_FEATURES = (L.S_DUTY_30MIN, L.S_DUTY_24H, L.S_DUTY_7D)
#: The keys of ``slow_costs`` that take a name, and the names allowed.
CHOICES: dict[str, tuple[str, ...]] = {
    "price_duty": ("policy", "day"),  # the duty the price's slope is taken at
    "start_features": ("duty", "uniform"),  # the duty features an equilibrium start sets
}


@dataclass(frozen=True)
class SlowCostSettings:
    """The training keys ``slow_costs.*``; every default leaves training exactly as it was."""

    price_tolerance: bool = False  # charge each decision the long-run tolerance cost of its on-time
    equilibrium_start: bool = False  # start each training day at T_eq(policy's duty), duty features alike
    equilibrium_validation: bool = False  # validate (select the best model) at each patient's T_eq, too
    price_scale: float = 1.0  # multiplies the price (1: the derived one)
    price_duty: str = "policy"  # where T_eq' is taken: policy (d_ref) | day (the slot's own 24 h duty feature)
    start_features: str = "duty"  # duty features at an equilibrium start: duty (d_ref) | uniform (drawn in [0, 1])
    duty_memory: float = 0.5  # weight of a patient's newest day in its running duty offset and cost
    high_pain_band_nrs: float = 0.5  # half-width of the box kernel for the density of pain at 7 NRS
    initial_duty: float = 0.5  # d_ref before any decision was seen (an untrained policy's duty)

    def __post_init__(self) -> None:
        ranges = {"price_scale": (0.0, 100.0), "duty_memory": (1e-3, 1.0), "high_pain_band_nrs": (0.05, 3.0),
                  "initial_duty": (0.0, 1.0)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ranges:
                low, high = ranges[f.name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                    raise PainloopError("PL-CONFIG-VALUE", f"slow_costs.{f.name}={value!r}; allowed: a number "
                                        f"from {low:g} to {high:g}.")
                object.__setattr__(self, f.name, float(value))
            elif f.name in CHOICES:
                if value not in CHOICES[f.name]:
                    raise PainloopError("PL-CONFIG-VALUE", f"slow_costs.{f.name}={value!r}; allowed: "
                                        f"{list(CHOICES[f.name])}.")
            elif not isinstance(value, bool):
                raise PainloopError("PL-CONFIG-VALUE", f"slow_costs.{f.name}={value!r}; allowed: true or false.")

    @property
    def shapes_training(self) -> bool:
        """Does the training env change (price or equilibrium start)?"""
        return self.price_tolerance or self.equilibrium_start

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> SlowCostSettings:
        """From the config's ``slow_costs`` mapping (absent: off); an unknown key lists the valid ones."""
        mapping = dict(mapping or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise PainloopError("PL-CONFIG-KEY", f"unknown key(s) slow_costs.{unknown}; allowed: {names}.")
        return cls(**mapping)


#: The ``slow_costs`` keys at their defaults (off): what a run recorded before the keys existed trained with.
SLOW_COSTS_OFF: dict[str, Any] = {f.name: f.default for f in fields(SlowCostSettings)}


def check_action_mode(settings: SlowCostSettings, action_mode: str) -> None:
    """Refuse a slow-cost option with actions other than on/off (``T_c`` then depends on the amplitude)."""
    if (settings.shapes_training or settings.equilibrium_validation) and action_mode != "on_off":
        raise PainloopError("PL-CONFIG-VALUE", f"slow_costs with env.action_mode='{action_mode}'; allowed: "
                            "env.action_mode=on_off (the tolerance equilibrium is that of the on amplitude).")


# -- the closed forms -------------------------------------------------------------------------------------
def _constants(params: PatientParams) -> tuple[float, float]:
    """``(T_c, rho)``: tolerance under continuous stimulation and ``tau_recover / tau_build``."""
    t = params.tolerance
    return tolerance_equilibrium(params), t.recovery_tau_days / t.build_tau_days


def _unit(duty: Any) -> Any:
    return np.minimum(np.maximum(duty, 0.0), 1.0)  # np.clip costs several times more on small arrays


def _t_eq(t_c: Any, rho: Any, duty: Any) -> Any:
    d = _unit(duty)
    return t_c * d * rho / (1.0 - d * (1.0 - rho))


def _t_eq_slope(t_c: Any, rho: Any, duty: Any) -> Any:
    d = _unit(duty)
    return t_c * rho / (1.0 - d * (1.0 - rho)) ** 2


def equilibrium_tolerance(params: PatientParams, duty: float | np.ndarray) -> float | np.ndarray:
    """``T_eq(d) = T_c d rho / (1 - d (1 - rho))``: the long-run tolerance at on-fraction ``duty`` (0-1)."""
    return _t_eq(*_constants(params), duty)


def equilibrium_tolerance_slope(params: PatientParams, duty: float | np.ndarray) -> float | np.ndarray:
    """``dT_eq/dd = T_c rho / (1 - d (1 - rho))^2`` at on-fraction ``duty`` (0-1)."""
    return _t_eq_slope(*_constants(params), duty)


def tolerance_cost(info: np.ndarray, reward: RewardWeights, band_nrs: float) -> np.ndarray:
    """``c`` of each slot's last decision: reward lost per unit of tolerance (packed info, shape (n_slots,)).

    ``info`` is ``PainStimBatch.last_info`` (columns ``simenv.info_layout.STEP_INFO``).
    """
    g = info[:, _COL["relief_nrs"]] / info[:, _COL["efficacy"]]
    near_high = np.abs(info[:, _COL["pain_nrs"]] - L.HIGH_PAIN_NRS) < band_nrs
    return (reward.pain + reward.high_pain * near_high / (2.0 * band_nrs)) * g


def start_at_equilibrium(batch: PainStimBatch, slots: np.ndarray, duties: np.ndarray,
                         feature_duties: np.ndarray | None = None) -> None:
    """Set each slot's tolerance to ``T_eq`` of its duty and its duty features to that duty (before observing).

    ``feature_duties`` (one per slot) sets the duty features to other values.
    """
    state = batch.core.state
    features = duties if feature_duties is None else feature_duties
    for slot, duty, feature in zip(slots, duties, features, strict=True):
        patient = batch.slot_patients[int(slot)]
        state[slot, L.S_TOLERANCE] = equilibrium_tolerance(patient.params, float(duty))
        for col in _DUTY_FEATURES:
            state[slot, col] = feature


def uniform_duties(batch: PainStimBatch, slots: np.ndarray) -> np.ndarray:
    """A duty uniform in [0, 1] per slot, from its own stream (the batch's seed, the slot and its episode)."""
    return np.array([np.random.default_rng([batch.seed_value, 0x51C05, int(slot), int(batch.slot_episode[slot])]).random()
                     for slot in slots])


# -- running estimates and the training env's hook -------------------------------------------------------
class _Running:
    """A value shared by all patients (mean over slots, time constant one training day) plus each patient's offset."""

    def __init__(self, n_patients: int, initial: float, rate: float, memory: float) -> None:
        self.shared = initial
        self.started = False
        self.offset = np.zeros(n_patients)
        self.rate, self.memory = rate, memory

    def observe(self, values: np.ndarray) -> None:
        mean = float(values.mean())
        self.shared = mean if not self.started else self.shared + self.rate * (mean - self.shared)
        self.started = True

    def episode_end(self, patients: np.ndarray, episode_means: np.ndarray) -> None:
        for p, v in zip(patients, episode_means, strict=True):
            self.offset[p] += self.memory * ((v - self.shared) - self.offset[p])

    def estimate(self, patients: np.ndarray) -> np.ndarray:
        return self.shared + self.offset[patients]


class SlowCosts:
    """Per-patient running duty and tolerance cost of the policy, the tolerance price, the equilibrium start.

    Built over the training pool; ``attach`` hooks it to the training
    batch's resets, and ``after_decision`` (called by the SB3 adapter before
    its autoreset) books the decision and returns the training reward.
    """

    def __init__(self, patients: Sequence[Patient], settings: SlowCostSettings, reward: RewardWeights,
                 decisions_per_episode: int) -> None:
        self.settings = settings
        self.reward = reward
        pool = list(dict.fromkeys(patients))
        self._index = {p.uid: i for i, p in enumerate(pool)}
        self._t_c, self._rho = np.array([_constants(p.params) for p in pool]).T
        n = len(pool)
        rate = 1.0 / max(decisions_per_episode, 1)
        self.duty = _Running(n, settings.initial_duty, rate, settings.duty_memory)
        self.cost = _Running(n, 0.0, rate, settings.duty_memory)
        self._slot_patient = np.zeros(0, dtype=np.int64)
        self._on_s = np.zeros(0)  # each slot's on-time at its previous decision
        # Per slot, this episode: decisions, on-time fractions and costs summed.
        self._decisions, self._on_sum, self._cost_sum = np.zeros(0), np.zeros(0), np.zeros(0)
        self.last_price = np.zeros(0)
        self._all_slots = np.zeros(0, dtype=np.int64)

    def attach(self, batch: PainStimBatch) -> None:
        self._slot_patient = np.zeros(batch.n, dtype=np.int64)
        self._on_s = np.zeros(batch.n)
        self._decisions, self._on_sum, self._cost_sum = np.zeros(batch.n), np.zeros(batch.n), np.zeros(batch.n)
        self.last_price = np.zeros(batch.n)
        self._all_slots = np.arange(batch.n)
        batch.reset_hook = self.start_slots

    def start_slots(self, batch: PainStimBatch, slots: np.ndarray) -> None:
        """``PainStimBatch.reset_hook``: new episodes in ``slots`` (at ``T_eq`` with ``equilibrium_start``)."""
        for slot in slots:
            self._slot_patient[slot] = self._index[batch.slot_patients[int(slot)].uid]
        self._on_s[slots] = batch.core.state[slots, L.S_ON_TIME_S]
        for sums in (self._decisions, self._on_sum, self._cost_sum):
            sums[slots] = 0.0
        if self.settings.equilibrium_start:
            features = uniform_duties(batch, slots) if self.settings.start_features == "uniform" else None
            start_at_equilibrium(batch, slots, self.reference_duty(slots), features)

    def summary(self) -> dict[str, float]:
        """The shared running values: the policy's duty ``d_ref``, the cost ``c_T`` and the last mean price."""
        return {"d_ref": self.duty.shared, "c_T": self.cost.shared, "price": float(np.mean(self.last_price))}

    def reference_duty(self, slots: np.ndarray) -> np.ndarray:
        """``d_ref`` of the patients in ``slots``: the policy's running duty on each."""
        return _unit(self.duty.estimate(self._slot_patient[slots]))

    def price(self, batch: PainStimBatch, slots: np.ndarray) -> np.ndarray:
        """Reward charged per unit of on-time fraction in ``slots``: ``price_scale * c_T * T_eq'(d)``.

        ``d`` is ``d_ref`` (``price_duty: policy``) or the slot's own 24 h duty feature (``day``).
        """
        patients = self._slot_patient[slots]
        cost = np.maximum(self.cost.estimate(patients), 0.0)
        if self.settings.price_duty == "day":
            duty = batch.core.state[slots, L.S_DUTY_24H]
        else:
            duty = self.duty.estimate(patients)
        slope = _t_eq_slope(self._t_c[patients], self._rho[patients], duty)
        return self.settings.price_scale * cost * slope

    def after_decision(self, batch: PainStimBatch, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Book the decision just taken (before the autoreset) and return the training reward."""
        info = batch.last_info
        on_s = info[:, _COL["on_time_total_s"]]
        decision_s = batch.settings.steps_per_decision * batch.settings.dt_s
        on_fraction = _unit((on_s - self._on_s) / decision_s)
        self._on_s = on_s.copy()
        cost = tolerance_cost(info, self.reward, self.settings.high_pain_band_nrs)
        self.duty.observe(on_fraction)
        self.cost.observe(cost)
        self._decisions += 1.0
        self._on_sum += on_fraction
        self._cost_sum += cost
        out = reward
        if self.settings.price_tolerance:
            self.last_price = self.price(batch, self._all_slots)
            out = reward - self.last_price * on_fraction
        if done.any():
            finished = np.flatnonzero(done)
            patients = self._slot_patient[finished]
            self.duty.episode_end(patients, self._on_sum[finished] / self._decisions[finished])
            self.cost.episode_end(patients, self._cost_sum[finished] / self._decisions[finished])
        return out
