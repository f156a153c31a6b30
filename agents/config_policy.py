"""The reference engine: a ``painloop.controller/v1`` config executed as a policy.

Step by step, as the device logic does (DESIGN.md, "Controller configs"):
LD0 (and LD1) run in ``agents.detector.DetectorEngine`` (normalisation,
weighted sum, fixed-point values, single or dual thresholds, onset and
termination counts with the +1 rule, holdoff, blanking rounded up to whole
updates); a detector updates once per update period (``fft_interval_ms x
update_rate_fft_intervals``, a whole number k of simulator steps) and reads
the band power averaged over the k steps of the period, as the RC+S LD
averages its FFT intervals (k = 1: each step's band power, unchanged);
the combined state LD0 + 3 x LD1 indexes the 9-entry state table,
whose entry is an amplitude in mA or HOLD (keep the current amplitude);
the config's ramp rates replace the patient's in the simulator
(``BatchedCore.set_ramp_rates``), so the delivered amplitude slews as the
device's would.

At start-up both detectors are in state 0 and the commanded amplitude is
``states[0]`` (0 mA if that is HOLD). Band power exists only after a step,
so the first update happens at the second decision (as for the threshold
baselines). The policy's actions are amplitudes in mA
(``action_mode = "amplitude_ma"``), passed to the simulator unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.config_encoding import HOLD
from agents.config_files import load_config_dir
from agents.config_format import N_STATES, detector_configs
from agents.detector import DetectorEngine, silent_detector
from agents.policy import BasePolicy, PatientContext
from simenv.errors import PainloopError

AMPLITUDE_MODE = "amplitude_ma"


class ConfigEngine:
    """A batch of configs (one per slot): detectors, state table and the commanded amplitude."""

    def __init__(self, configs: Sequence[dict], dt_s: float) -> None:
        n = len(configs)
        self.n = n
        pairs = [detector_configs(c) for c in configs]
        self.ld0 = DetectorEngine([a for a, _ in pairs], dt_s=dt_s, multi_step=True)
        self.ld1 = DetectorEngine([b if b is not None else silent_detector(a.fft_interval_ms, a.update_rate_fft_intervals) for a, b in pairs], dt_s=dt_s, multi_step=True)
        #: Simulator steps per detector update, per slot (validation makes LD0's and LD1's periods equal).
        self.steps_per_update = np.array([a.steps_per_update(dt_s) for a, _ in pairs], dtype=np.int64)
        self._single_step = bool(np.all(self.steps_per_update == 1))
        self.has_ld1 = np.array([b is not None for _, b in pairs])
        self.table = np.zeros((n, N_STATES))
        self.hold = np.zeros((n, N_STATES), dtype=bool)
        self.invalid = np.zeros((n, N_STATES), dtype=bool)
        for i, c in enumerate(configs):
            for k, s in enumerate(c["states"]):
                if s is None:
                    self.invalid[i, k] = True
                elif s == HOLD:
                    self.hold[i, k] = True
                else:
                    self.table[i, k] = float(s)
        self.initial_ma = np.where(self.hold[:, 0] | self.invalid[:, 0], 0.0, self.table[:, 0])
        self.ramp_up = np.array([float(c["ramp_up_ma_per_s"]) for c in configs])
        self.ramp_down = np.array([float(c["ramp_down_ma_per_s"]) for c in configs])
        self.reset()

    def reset(self) -> None:
        self.ld0.reset()
        self.ld1.reset()
        self.state = np.zeros(self.n, dtype=np.int64)
        self.amplitude_ma = self.initial_ma.copy()
        self._sum_db: np.ndarray | None = None  # band powers summed since each slot's last update
        self._count = np.zeros(self.n, dtype=np.int64)
        #: Per slot, whether the last ``step`` updated it, and the band powers that update read.
        self.updated = np.zeros(self.n, dtype=bool)
        self.read_db: np.ndarray | None = None

    def step(self, features_db: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """One simulator step's band powers (raw, (n, N_FEATURES)) for the ``measured`` slots; returns amplitudes.

        Each slot updates once it has collected its ``steps_per_update`` measured
        steps, reading their mean; with one step per update that is every
        measured step, on the step's own band power (bit for bit).
        """
        measured = np.asarray(measured, dtype=bool)
        features_db = np.asarray(features_db, dtype=np.float64)
        if self._single_step:
            self.updated = measured
            self.read_db = features_db
            if measured.any():
                self.update(features_db, mask=measured)
            return self.amplitude_ma
        if self._sum_db is None:
            self._sum_db = np.zeros_like(features_db)
        self._sum_db[measured] += features_db[measured]
        self._count += measured
        due = self._count >= self.steps_per_update
        self.updated = due
        if due.any():
            mean = self._sum_db / np.maximum(self._count, 1)[:, None]
            self.read_db = mean
            self.update(mean, mask=due)
            self._sum_db[due] = 0.0
            self._count[due] = 0
        return self.amplitude_ma

    def update(self, features_db: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """One detector update per slot (raw band powers, shape (n, N_FEATURES)); returns amplitudes in mA."""
        active = np.ones(self.n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        s0 = self.ld0.update(features_db, active)
        s1 = self.ld1.update(features_db, active)
        combined = s0 + 3 * s1
        rows = np.arange(self.n)
        bad = active & self.invalid[rows, combined]
        if bad.any():  # validation refuses reachable null states; this guards hand-built engines
            i = int(np.flatnonzero(bad)[0])
            raise PainloopError(
                "PL-CONFIG-INVALID", f"slot {i} reached state {int(combined[i])}, which its config marks null (invalid)."
            )
        new = np.where(self.hold[rows, combined], self.amplitude_ma, self.table[rows, combined])
        self.amplitude_ma = np.where(active, new, self.amplitude_ma)
        self.state = np.where(active, combined, self.state)
        return self.amplitude_ma

    # What evaluation traces read from a policy's ``engine`` (LD0's output and low threshold).
    @property
    def last_score(self) -> np.ndarray:
        return self.ld0.last_score

    @property
    def b0(self) -> np.ndarray:
        return self.ld0.b0


class ConfigPolicy(BasePolicy):
    """Exported per-patient configs as a controller; each slot's config is found by patient uid."""

    reads_observations = False

    action_mode = AMPLITUDE_MODE

    def __init__(self, name: str, configs_by_uid: dict[int, dict], dt_s: float = 30.0, source: str = "") -> None:
        super().__init__(name)
        self.configs_by_uid = dict(configs_by_uid)
        self.dt_s = float(dt_s)
        self.source = source

    @classmethod
    def from_dir(cls, folder: str | Path, name: str, dt_s: float = 30.0) -> ConfigPolicy:
        """Load and validate every config of an export folder (``config:<dir>`` entries)."""
        return cls(name, load_config_dir(folder, dt_s=dt_s), dt_s=dt_s, source=str(folder))

    def check_settings(self, settings) -> None:
        """The device runs at the simulator step: the evaluation must decide every step at dt_s."""
        if settings.dt_s != self.dt_s or settings.steps_per_decision != 1:
            raise PainloopError(
                "PL-CONFIG-MISMATCH",
                f"controller '{self.name}' runs device configs at one detector update per step of dt_s={self.dt_s:g} s; "
                f"the evaluation has dt_s={settings.dt_s:g} s and {settings.steps_per_decision} step(s) per decision "
                "(allowed: the configs' dt_s, one step per decision).",
            )

    def configs_for(self, patients: Sequence[PatientContext]) -> list[dict]:
        """Each slot's config, checked against the patient's device settings."""
        out = []
        for p in patients:
            c = self.configs_by_uid.get(int(p.uid))
            if c is None:
                raise PainloopError(
                    "PL-CONFIG-MISSING",
                    f"controller '{self.name}' ({self.source or 'configs'}) has no config for patient uid {p.uid} "
                    f"(cohort '{p.cohort}', index {p.index}); it holds configs for uids "
                    f"{sorted(self.configs_by_uid)[:10]}{'...' if len(self.configs_by_uid) > 10 else ''}: export the "
                    "same cohort you evaluate.",
                )
            check_patient_fit(c, p.params, f"controller '{self.name}', patient uid {p.uid}")
            out.append(c)
        return out

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        self.configs = self.configs_for(patients)
        self.engine = ConfigEngine(self.configs, self.dt_s)

    def configure_core(self, core, slots: slice) -> None:
        """Apply the configs' ramp rates to this policy's slots of the simulator (until their next reset)."""
        core.set_ramp_rates(slots, self.engine.ramp_up, self.engine.ramp_down)

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        measured = np.asarray(info["elapsed_s"]) > 0
        return self.engine.step(np.asarray(info["features_raw"]), measured).copy()

    @property
    def scores(self) -> np.ndarray:
        return self.engine.last_score


class SlotConfigPolicy(ConfigPolicy):
    """Configs given in slot order rather than by patient uid: several candidate configs of one
    patient side by side in one batch (distillation compares them on the same noise)."""

    def __init__(self, name: str, slot_configs: Sequence[dict], dt_s: float = 30.0) -> None:
        super().__init__(name, {}, dt_s)
        self.slot_configs = list(slot_configs)

    def configs_for(self, patients: Sequence[PatientContext]) -> list[dict]:
        if len(patients) != len(self.slot_configs):
            raise PainloopError(
                "PL-CONFIG-MISMATCH",
                f"controller '{self.name}' holds {len(self.slot_configs)} configs for {len(patients)} slots; "
                "allowed: one config per slot.",
            )
        for p, c in zip(patients, self.slot_configs, strict=True):
            check_patient_fit(c, p.params, f"controller '{self.name}', patient uid {p.uid}")
        return list(self.slot_configs)


def check_patient_fit(config: dict, params, where: str) -> None:
    """A config runs on a patient only with the patient's pulse width and rate, within its amplitude ceiling."""
    st = params.stimulation
    problems = []
    if float(config["pulse_width_us"]) != float(st.pulse_width_us):
        problems.append(f"pulse_width_us={config['pulse_width_us']:g} but the patient's is {st.pulse_width_us:g}")
    if float(config["rate_hz"]) != float(st.frequency_hz):
        problems.append(f"rate_hz={config['rate_hz']:g} but the patient's frequency_hz is {st.frequency_hz:g}")
    top = float(config["amplitude_limits_ma"][1])
    if top > st.amplitude_max_ma + 1e-9:
        problems.append(f"amplitude_limits_ma[1]={top:g} mA exceeds the patient's amplitude_max_ma={st.amplitude_max_ma:g}")
    if problems:
        raise PainloopError(
            "PL-CONFIG-MISMATCH",
            f"{where}: the config does not fit the patient: {'; '.join(problems)} (allowed: the patient's own "
            "stimulation settings, which the simulator uses).",
        )
