"""Controllers a clinic could run today, plus two references.

- ``off`` and ``continuous``: open loop;
- ``cycling``: a fixed on/off schedule (default 1 min / 1 min, as RC+S cycling);
- ``threshold`` and ``dual_threshold``: the clinic-calibrated biomarker
  detector, run in device arithmetic (``agents.detector``);
- ``latent_threshold`` (formerly ``oracle``, still accepted as an alias):
  a threshold on the latent pain drive, a reference with information no
  device has (``uses_latent = True``); perfect information with a naive rule,
  not an upper bound (the headroom planner, ``agents.planner``, is the bound);
- ``random``: a random on/off process at a given (or matched) duty cycle and
  mean burst length, the null hypothesis for "the biomarker is worth it".

All emit ``on_off`` actions (0 = off, 1 = the patient's on amplitude).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from agents.detector import DetectorEngine
from agents.policy import BasePolicy, PatientContext
from simenv.errors import PainloopError


class Off(BasePolicy):
    """Never stimulate."""

    reads_observations = False

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        return np.zeros(len(observations), dtype=np.int64)


class Continuous(BasePolicy):
    """Always stimulate at the on amplitude (today's open-loop standard)."""

    reads_observations = False

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        return np.ones(len(observations), dtype=np.int64)


class Cycling(BasePolicy):
    """Fixed schedule: ``on_s`` on, then ``off_s`` off, from the start of the episode.

    Durations are rounded to whole decisions of ``dt_s``; with ramps counted as
    on, the delivered duty exceeds on/(on+off) by the ramp-down time.
    """

    reads_observations = False

    def __init__(self, name: str, on_s: float = 60.0, off_s: float = 60.0, dt_s: float = 30.0) -> None:
        super().__init__(name)
        for field, value in (("on_s", on_s), ("off_s", off_s)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < dt_s:
                raise PainloopError(
                    "PL-CONTROLLER-PARAM",
                    f"cycling {field}={value!r}; allowed: a duration >= dt_s={dt_s:g} s.",
                )
        self.on_steps = int(round(on_s / dt_s))
        self.off_steps = int(round(off_s / dt_s))
        self.t = np.zeros(0, dtype=np.int64)

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        self.t = np.zeros(self.n, dtype=np.int64)

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        on = np.empty(self.n, dtype=np.int64)
        _cycle(self.t, self.on_steps + self.off_steps, self.on_steps, on)
        return on


@numba.njit(cache=True)
def _cycle(t, period, on_steps, on) -> None:
    """On in the first ``on_steps`` of each ``period`` of a slot's decisions; every slot's counter moves on.

    One compiled pass: as array operations, a decision cost several small NumPy calls per controller.
    """
    for i in range(t.shape[0]):
        on[i] = t[i] % period < on_steps
        t[i] += 1


@numba.njit(cache=True)
def _markov_step(on, u, p_off, p_on, out) -> None:
    """One decision of the on/off chain per slot (``u`` uniform): on stays on unless ``u < p_off``, off turns
    on if ``u < p_on``; ``out`` gets the new state as 0/1."""
    for i in range(on.shape[0]):
        on[i] = u[i] >= p_off[i] if on[i] else u[i] < p_on[i]
        out[i] = on[i]


class RandomOnOff(BasePolicy):
    """A two-state Markov on/off process with a given duty and mean burst length.

    Matching both the duty and the mean on-burst of another controller makes
    it the fair null for that controller: same energy, same switching
    pattern, no information. Randomness is the controller's own, seeded per
    patient uid, so two runs with the same seed are identical.
    """

    reads_observations = False

    def __init__(self, name: str, duty: float | None = 0.5, mean_on_s: float = 300.0, dt_s: float = 30.0, seed: int = 0) -> None:
        super().__init__(name)
        if duty is not None and not 0.0 <= duty <= 1.0:
            raise PainloopError("PL-CONTROLLER-PARAM", f"random duty={duty!r}; allowed: [0, 1].")
        if not mean_on_s >= dt_s:
            raise PainloopError("PL-CONTROLLER-PARAM", f"random mean_on_s={mean_on_s!r}; allowed: >= dt_s={dt_s:g} s.")
        self.duty = duty
        self.mean_on_s = mean_on_s
        self.dt_s = dt_s
        self.seed = seed
        self.per_patient_duty: dict[int, float] = {}
        self.per_patient_mean_on_s: dict[int, float] = {}

    def match(self, duty_by_uid: dict[int, float], mean_on_s_by_uid: dict[int, float]) -> None:
        """Use these per-patient duty cycles and mean burst lengths (from the matched controller)."""
        self.per_patient_duty = dict(duty_by_uid)
        self.per_patient_mean_on_s = dict(mean_on_s_by_uid)

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        duty = np.array([self.per_patient_duty.get(p.uid, self.duty if self.duty is not None else 0.5) for p in patients])
        mean_on = np.array([max(self.per_patient_mean_on_s.get(p.uid, self.mean_on_s), self.dt_s) for p in patients])
        # P(on -> off) = dt / mean_on; P(off -> on) keeps the stationary duty.
        self.p_off = np.clip(self.dt_s / mean_on, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.p_on = np.where(duty < 1.0, np.clip(self.p_off * duty / np.maximum(1.0 - duty, 1e-12), 0.0, 1.0), 1.0)
        self.p_on = np.where(duty <= 0.0, 0.0, self.p_on)
        self.rngs = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, p.uid, 0xAD]))) for p in patients]
        self._draws = np.zeros((self.n, 0))
        self._next = 0
        self.on = self._uniforms() < duty

    def _uniforms(self) -> np.ndarray:
        """Next uniform per slot, from per-patient streams drawn ahead in chunks."""
        if self._next >= self._draws.shape[1]:
            self._draws = np.stack([rng.random(512) for rng in self.rngs])
            self._next = 0
        u = self._draws[:, self._next]
        self._next += 1
        return u

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        u = self._uniforms()
        out = np.empty(self.n, dtype=np.int64)
        _markov_step(self.on, u, self.p_off, self.p_on, out)
        return out


class LatentThreshold(BasePolicy):
    """Stimulate while the latent pain drive exceeds the patient's threshold.

    The threshold is the drive quantile that gives ``target_duty`` over the
    clinic's calibration period. No device can sense the drive: this is a
    privileged reference and is labelled so everywhere (``uses_latent``). It
    is not an upper bound: on while the drive is high stimulates in blocks of
    hours, which bursting controllers beat (docs/evaluation.md).
    """

    reads_observations = False
    uses_latent = True

    def __init__(self, name: str, target_duty: float = 0.5) -> None:
        super().__init__(name)
        if not 0.0 < target_duty < 1.0:
            raise PainloopError("PL-CONTROLLER-PARAM", f"latent_threshold target_duty={target_duty!r}; allowed: (0, 1).")
        self.target_duty = target_duty

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        self.threshold = np.array([p.calibration.drive_quantile(1.0 - self.target_duty) for p in patients])
        self.last_drive = np.array([p.params.pain.baseline_nrs for p in patients])

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        drive = info.get("pain_drive_nrs")
        if drive is not None:
            self.last_drive = np.where(np.isnan(drive), self.last_drive, drive)
        return (self.last_drive > self.threshold).astype(np.int64)


@numba.njit(cache=True)
def _switch_on_states(state, dual, on) -> None:
    """On in state >= 1; a dual-threshold detector's middle state 1 holds the current decision."""
    for i in range(state.shape[0]):
        if not (dual[i] and state[i] == 1):
            on[i] = state[i] >= 1


class Threshold(BasePolicy):
    """The clinic-calibrated detector, in device arithmetic, switching stimulation.

    Single threshold: on in detector state 1. Dual threshold (hysteresis): on
    in state 2, off in state 0, HOLD (keep the current action) in state 1.
    """

    reads_observations = False

    needs_detector = True

    def __init__(self, name: str, dt_s: float = 30.0) -> None:
        super().__init__(name)
        self.dt_s = dt_s

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        configs = [p.detector for p in patients]
        if any(c is None for c in configs):
            raise PainloopError(
                "PL-CONTROLLER-PARAM", f"controller '{self.name}' needs a calibrated detector for every patient."
            )
        self.engine = DetectorEngine(configs, dt_s=self.dt_s)
        self.on = np.zeros(self.n, dtype=bool)

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        # Band power exists only after a step: at an episode's start the
        # detector has nothing to update on and stays in state 0.
        if self.engine.update_measured(info["features_raw"], info["elapsed_s"]):
            _switch_on_states(self.engine.state, self.engine.dual, self.on)
        return self.on.astype(np.int64)

    @property
    def scores(self) -> np.ndarray:
        """The detector output of the last update (for traces)."""
        return self.engine.last_score
