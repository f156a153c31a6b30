"""The settings shared by every patient slot of an environment, checked when made.

``EnvSettings`` is what the Gymnasium env's keyword arguments, the training
config's ``env`` keys and a run folder's recorded ``env_settings`` become;
a bad value raises ``PL-ENV-ARG`` naming what is allowed. Settings added
after run folders were first written get the value such a folder ran with
(``with_added_settings``).
"""

from __future__ import annotations

from dataclasses import dataclass

from simenv.calibration import DEFAULT_CALIBRATION_DAYS
from simenv.core import INITIAL_STATES
from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY

ACTION_MODES = ("on_off", "levels", "continuous")
#: ``full``: band powers, stimulation state, time since switch, duty cycles, clock (DESIGN.md).
#: ``biomarkers``: only what an implant's detector can read (band powers and their lags), so
#: that a policy trained on it can be distilled into a band-power detector (docs/export.md).
#: ``detector``: what a device detector reads *as it reads it*: the band powers stimulation
#: leaves alone, averaged over the decision interval (a detector updating once per decision on
#: its averaged FFT powers, as the RC+S LD does); no lags, no self-report (``simenv.detector_view``).
OBSERVATIONS = ("full", "biomarkers", "detector")
#: Settings added after run folders were first written, with the value a record that lacks
#: them meant (what the simulator did before the setting existed).
SETTINGS_ADDED_LATER: dict[str, object] = {"observation": "full"}


@dataclass(frozen=True)
class EnvSettings:
    """Settings shared by every patient slot of an environment."""

    action_mode: str = "on_off"
    dt_s: float = 30.0
    horizon_days: float = 1.0
    decision_interval_s: float | None = None
    initial_state: str = "naive"
    n_levels: int = 6
    feature_history: int = 0
    include_self_report: bool = False
    calibration_days: float = DEFAULT_CALIBRATION_DAYS
    start_hour: float = 0.0
    debug_checks: bool = False
    observation: str = "full"

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> PainloopError:
            return PainloopError("PL-ENV-ARG", f"{name}={getattr(self, name)!r}; allowed: {allowed}.")

        if self.action_mode not in ACTION_MODES:
            raise bad("action_mode", str(list(ACTION_MODES)))
        if self.observation not in OBSERVATIONS:
            raise bad("observation", str(list(OBSERVATIONS)))
        if self.initial_state not in INITIAL_STATES:
            raise bad("initial_state", str(list(INITIAL_STATES)))
        if not isinstance(self.dt_s, (int, float)) or not 5.0 <= self.dt_s <= 600.0:
            raise bad("dt_s", "5 to 600 seconds")
        if not isinstance(self.horizon_days, (int, float)) or not 0 < self.horizon_days <= 3650:
            raise bad("horizon_days", "a number of days in (0, 3650]")
        steps = self.horizon_days * SECONDS_PER_DAY / self.dt_s
        if steps < 1:
            raise bad("horizon_days", f"at least one step of dt_s={self.dt_s:g} s")
        interval = self.decision_interval_s if self.decision_interval_s is not None else self.dt_s
        ratio = interval / self.dt_s
        if interval <= 0 or abs(ratio - round(ratio)) > 1e-9:
            raise bad("decision_interval_s", f"a positive whole multiple of dt_s={self.dt_s:g} s")
        if isinstance(self.n_levels, bool) or int(self.n_levels) != self.n_levels or not 2 <= self.n_levels <= 256:
            raise bad("n_levels", "a whole number from 2 to 256")
        if isinstance(self.feature_history, bool) or int(self.feature_history) != self.feature_history or not 0 <= self.feature_history <= 120:
            raise bad("feature_history", "a whole number of past steps from 0 to 120")
        if not isinstance(self.calibration_days, (int, float)) or not 0.5 <= self.calibration_days <= 60:
            raise bad("calibration_days", "0.5 to 60 days")
        if not isinstance(self.start_hour, (int, float)) or not 0 <= self.start_hour < 24:
            raise bad("start_hour", "a clock hour in [0, 24)")
        if self.observation == "detector" and (self.feature_history or self.include_self_report):
            raise PainloopError(
                "PL-ENV-ARG", f"observation='detector' with feature_history={self.feature_history!r} and "
                f"include_self_report={self.include_self_report!r}; allowed: 0 and False (a device detector reads "
                "the band powers averaged over its update, no lags, no self-report).")

    @property
    def steps_per_decision(self) -> int:
        interval = self.decision_interval_s if self.decision_interval_s is not None else self.dt_s
        return int(round(interval / self.dt_s))

    @property
    def horizon_steps(self) -> int:
        return int(round(self.horizon_days * SECONDS_PER_DAY / self.dt_s))


def with_added_settings(recorded: dict) -> dict:
    """A recorded settings mapping with ``SETTINGS_ADDED_LATER`` filled in where it lacks them.

    A run folder written before a setting existed ran with the behaviour that
    setting's recorded default names, so it stays loadable and comparable.
    """
    return {**SETTINGS_ADDED_LATER, **recorded}
