"""A biomarker detector as an implant runs it, and its plain-data configuration.

``DetectorConfig`` is what the clinic calibration produces and what the
export writes into a device config (``painloop.controller/v1``), field for
field. ``DetectorEngine`` executes a batch of them step by step, the way the
Summit RC+S embedded linear discriminant does (DESIGN.md, "Controller
configs"):

- score y = sum_i w_i * m_i * (x_i - s_i) over at most 4 band-power inputs,
  with weights, normalisation and thresholds on the fixed-point grid
  (real = integer / 2^F);
- raw state: single threshold, 1 if y > B0 else 0; dual threshold, 0 if
  y <= B0, 2 if y > B1, else 1;
- a higher state takes effect after ``onset_updates + 1`` consecutive
  updates asking for it, a lower one after ``termination_updates + 1`` (0
  means at once);
- after a state change, the next ``blank_updates`` updates are ignored
  (blanking rounded up to whole updates); ``holdoff_updates`` updates are
  ignored after start-up.

The engine runs one update per call. An update period (``fft_interval_ms x
update_rate_fft_intervals``) of one simulator step is the rule for the
threshold baselines; a device config may update every k steps, reading the
band power averaged over them (the RC+S LD averages its FFT intervals over
the update period): ``agents.config_policy.ConfigEngine`` does that averaging
and calls the engine once per period (``DetectorEngine(..., multi_step=True)``).

The band powers ``x`` are the simulator's log band powers (dB): the device
would hold linear powers in its own integer units; the arithmetic is the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numba
import numpy as np

from simenv import layout as L
from simenv.errors import PainloopError

MAX_INPUTS = 4


def to_fixed_point(value: float, fractional_bits: int) -> float:
    """Round to the device grid: the nearest multiple of 2^-F."""
    scale = float(1 << fractional_bits)
    return round(value * scale) / scale


@dataclass(frozen=True)
class DetectorConfig:
    """One patient's detector, in human units on the device's fixed-point grid.

    ``inputs`` are feature names from ``simenv.layout.FEATURE_NAMES``
    (site_band); ``weight``, ``norm_subtract`` and ``norm_multiply`` have one
    entry per input; thresholds and vectors are already multiples of 2^-F.
    """

    inputs: tuple[str, ...]
    weight: tuple[float, ...]
    norm_subtract: tuple[float, ...]
    norm_multiply: tuple[float, ...]
    threshold_low: float
    threshold_high: float
    dual_threshold: bool = False
    fft_interval_ms: int = 500
    update_rate_fft_intervals: int = 60
    onset_updates: int = 0
    termination_updates: int = 4
    holdoff_updates: int = 0
    blank_fft_intervals: int = 30
    fractional_fixed_point: int = 8
    # Provenance of the fit (not executed by the device).
    fit: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if not 1 <= n <= MAX_INPUTS:
            raise PainloopError(
                "PL-DETECTOR-CONFIG", f"detector inputs {list(self.inputs)}: allowed 1 to {MAX_INPUTS} power bands."
            )
        unknown = [i for i in self.inputs if i not in L.FEATURE_NAMES]
        if unknown:
            raise PainloopError(
                "PL-DETECTOR-CONFIG", f"detector inputs {unknown} are not features; allowed: {list(L.FEATURE_NAMES)}."
            )
        for name in ("weight", "norm_subtract", "norm_multiply"):
            values = getattr(self, name)
            if len(values) != n or not all(math.isfinite(v) for v in values):
                raise PainloopError(
                    "PL-DETECTOR-CONFIG", f"detector {name}={list(values)}: allowed {n} finite numbers, one per input."
                )
        if not (math.isfinite(self.threshold_low) and math.isfinite(self.threshold_high)):
            raise PainloopError("PL-DETECTOR-CONFIG", "detector thresholds must be finite numbers.")
        if self.dual_threshold and self.threshold_high < self.threshold_low:
            raise PainloopError(
                "PL-DETECTOR-CONFIG",
                f"threshold_high={self.threshold_high:g} < threshold_low={self.threshold_low:g}; allowed: high >= low.",
            )
        for name in ("onset_updates", "termination_updates", "holdoff_updates", "blank_fft_intervals", "fft_interval_ms", "update_rate_fft_intervals", "fractional_fixed_point"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise PainloopError("PL-DETECTOR-CONFIG", f"detector {name}={value!r}; allowed: a whole number >= 0.")

    @property
    def update_period_s(self) -> float:
        return self.fft_interval_ms * self.update_rate_fft_intervals / 1000.0

    @property
    def blank_updates(self) -> int:
        """Blanking in whole detector updates (rounded up): the updates ignored after a state change."""
        rate = max(int(self.update_rate_fft_intervals), 1)
        return -(-int(self.blank_fft_intervals) // rate)

    def steps_per_update(self, dt_s: float) -> int:
        """Simulator steps per detector update (the update period over ``dt_s``), or 0 if not a whole number >= 1."""
        k = self.update_period_s / dt_s
        return int(round(k)) if abs(k - round(k)) < 1e-9 and round(k) >= 1 else 0

    def check_step(self, dt_s: float, multi_step: bool = False) -> None:
        """The update period must be one simulator step (``multi_step``: a whole number of steps; DESIGN.md)."""
        k = self.steps_per_update(dt_s)
        if k == 1 or (multi_step and k >= 1):
            return
        allowed = "a whole multiple of it (one update every k steps)" if multi_step else "equal (one step per detector update)"
        raise PainloopError(
            "PL-DETECTOR-CONFIG",
            f"fft_interval_ms * update_rate_fft_intervals = {self.update_period_s * 1000:g} ms but the "
            f"simulator step is dt_s={dt_s:g} s; allowed: {allowed}.",
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        for key in ("weight", "norm_subtract", "norm_multiply"):
            data[key] = list(data[key])
        return data


def silent_detector(
    fft_interval_ms: int, update_rate_fft_intervals: int, fractional_fixed_point: int = 8
) -> DetectorConfig:
    """A detector that never leaves state 0 (zero weight): an absent LD1, or a constant state table."""
    return DetectorConfig(
        inputs=(L.FEATURE_NAMES[0],),
        weight=(0.0,),
        norm_subtract=(0.0,),
        norm_multiply=(0.0,),
        threshold_low=0.0,
        threshold_high=0.0,
        fft_interval_ms=fft_interval_ms,
        update_rate_fft_intervals=update_rate_fft_intervals,
        onset_updates=0,
        termination_updates=0,
        holdoff_updates=0,
        blank_fft_intervals=0,
        fractional_fixed_point=fractional_fixed_point,
    )


class DetectorEngine:
    """Run a batch of detectors update by update (one slot per config)."""

    def __init__(self, configs: Sequence[DetectorConfig], dt_s: float = 30.0, multi_step: bool = False) -> None:
        n = len(configs)
        self.n = n
        for c in configs:
            c.check_step(dt_s, multi_step)
        self.index = np.zeros((n, MAX_INPUTS), dtype=np.int64)
        self.gain = np.zeros((n, MAX_INPUTS))  # w * m, zero for unused inputs
        self.subtract = np.zeros((n, MAX_INPUTS))
        for i, c in enumerate(configs):
            k = len(c.inputs)
            self.index[i, :k] = [L.FEATURE_NAMES.index(name) for name in c.inputs]
            self.gain[i, :k] = np.array(c.weight) * np.array(c.norm_multiply)
            self.subtract[i, :k] = c.norm_subtract
        self.b0 = np.array([c.threshold_low for c in configs])
        self.b1 = np.array([c.threshold_high if c.dual_threshold else math.inf for c in configs])
        self.dual = np.array([c.dual_threshold for c in configs])
        self.onset = np.array([c.onset_updates for c in configs], dtype=np.int64)
        self.termination = np.array([c.termination_updates for c in configs], dtype=np.int64)
        self.blank = np.array([c.blank_updates for c in configs], dtype=np.int64)
        self.holdoff = np.array([c.holdoff_updates for c in configs], dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        n = self.n
        self.state = np.zeros(n, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int64)  # consecutive updates asking for a change
        self.pending = np.zeros(n, dtype=np.int64)  # the state they ask for
        self.blank_left = np.zeros(n, dtype=np.int64)
        self.holdoff_left = self.holdoff.copy()
        #: Detector output of the last update, every slot (overwritten by the next update).
        self.last_score = np.zeros(n)
        self._all_active = np.ones(n, dtype=bool)
        self._measured = np.zeros(n, dtype=bool)  # update_measured's mask (work array)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Detector output y for raw band powers of shape (n, N_FEATURES) (no state change)."""
        y = np.empty(self.n)
        _scores(features, self.index, self.gain, self.subtract, y)
        return y

    def update(self, features: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """One detector update per slot (slots where ``mask`` is False are skipped); returns states."""
        self.update_in_place(features, mask)
        return self.state.copy()  # the engine's own array changes at the next update

    def update_measured(self, features: np.ndarray, elapsed_s: np.ndarray) -> bool:
        """``update_in_place`` of the slots with a measured band power (``elapsed_s`` > 0); False, and nothing
        changed (scores included), if none has one yet.

        A controller's update at every decision: one compiled call instead of building a mask and testing it.
        """
        return _update_measured(features, np.asarray(elapsed_s, dtype=np.float64), self._measured, self.index,
                                self.gain, self.subtract, self.b0, self.b1, self.dual, self.onset, self.termination,
                                self.blank, self.state, self.count, self.pending, self.blank_left, self.holdoff_left,
                                self.last_score)

    def update_in_place(self, features: np.ndarray, mask: np.ndarray | None = None) -> None:
        """``update`` without the copy: read ``state`` and ``last_score`` before the next update."""
        active = self._all_active if mask is None else np.asarray(mask, dtype=bool)
        _update(features, active, self.index, self.gain, self.subtract, self.b0, self.b1, self.dual, self.onset,
                self.termination, self.blank, self.state, self.count, self.pending, self.blank_left,
                self.holdoff_left, self.last_score)


@numba.njit(cache=True)
def _scores(features, index, gain, subtract, y) -> None:
    """y_i = sum_k gain_ik * (x_i[index_ik] - subtract_ik), summed in input order (unused inputs add 0)."""
    for i in range(y.shape[0]):
        total = gain[i, 0] * (features[i, index[i, 0]] - subtract[i, 0])  # as NumPy's sum: no 0.0 + first
        for k in range(1, index.shape[1]):
            total += gain[i, k] * (features[i, index[i, k]] - subtract[i, k])
        y[i] = total


@numba.njit(cache=True)
def _update(features, active, index, gain, subtract, b0, b1, dual, onset, termination, blank, state, count,
            pending, blank_left, holdoff_left, y) -> None:
    """One update: every slot's score into ``y``, then the state machine of the active slots (in place)."""
    _scores(features, index, gain, subtract, y)
    for i in range(y.shape[0]):
        if not active[i]:
            continue
        raw = 1 if y[i] > b0[i] else 0
        if dual[i] and y[i] > b1[i]:
            raw = 2
        # Holdoff after start-up, then blanking after each change: updates ignored.
        if holdoff_left[i] > 0:
            holdoff_left[i] -= 1
            continue
        if blank_left[i] > 0:
            blank_left[i] -= 1
            continue
        if raw == state[i]:
            count[i] = 0
            continue
        count[i] = count[i] + 1 if raw == pending[i] else 1
        pending[i] = raw
        needed = onset[i] + 1 if raw > state[i] else termination[i] + 1
        if count[i] >= needed:
            state[i] = raw
            count[i] = 0
            blank_left[i] = blank[i]


@numba.njit(cache=True)
def _update_measured(features, elapsed_s, measured, index, gain, subtract, b0, b1, dual, onset, termination, blank,
                     state, count, pending, blank_left, holdoff_left, y) -> bool:
    """``_update`` of the slots with ``elapsed_s`` > 0 (marked in ``measured``); nothing at all if there is none."""
    any_measured = False
    for i in range(elapsed_s.shape[0]):
        measured[i] = elapsed_s[i] > 0
        any_measured |= measured[i]
    if any_measured:
        _update(features, measured, index, gain, subtract, b0, b1, dual, onset, termination, blank, state, count,
                pending, blank_left, holdoff_left, y)
    return any_measured
