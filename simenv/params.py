"""Patient and device parameters as frozen, validated dataclasses.

Every field carries its unit in its name and, in its metadata, the allowed
range, a one-line meaning and its source (DOMAIN.md) or the word *assumed*.
``docs/model.md``'s parameter table is generated from this metadata, and a
test checks that the two agree, so documentation cannot drift from code.

A bad value raises ``PainloopError`` with code ``PL-PARAM-RANGE`` naming the
field, the value and the allowed range, at construction time: no simulator
is ever built on an invalid patient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from simenv.errors import PainloopError
from simenv.safety import check_stimulation_safe

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY


def param(
    default: float,
    low: float,
    high: float,
    doc: str,
    source: str,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """A dataclass field with its allowed range, meaning and source."""
    return field(
        default=default,
        metadata={
            "low": low,
            "high": high,
            "low_open": low_open,
            "high_open": high_open,
            "doc": doc,
            "source": source,
            "integer": integer,
        },
    )


def _range_text(meta: Mapping[str, Any]) -> str:
    left = "(" if meta["low_open"] else "["
    right = ")" if meta["high_open"] else "]"
    return f"{left}{meta['low']:g}, {meta['high']:g}{right}"


class _Validated:
    """Mixin: check every float field against its metadata range."""

    _group: str = ""
    #: Set by ``@dataclass`` on every subclass (declared here for the type checker only).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            meta = f.metadata
            if "low" not in meta:
                continue
            value = getattr(self, f.name)
            name = f"{self._group}.{f.name}" if self._group else f.name
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PainloopError(
                    "PL-PARAM-TYPE",
                    f"{name}={value!r} is not a number; allowed: a number in {_range_text(meta)}.",
                )
            value = float(value)
            too_low = value <= meta["low"] if meta["low_open"] else value < meta["low"]
            too_high = value >= meta["high"] if meta["high_open"] else value > meta["high"]
            if not math.isfinite(value) or too_low or too_high:
                raise PainloopError(
                    "PL-PARAM-RANGE",
                    f"{name}={value:g} is outside the allowed range {_range_text(meta)}"
                    f" ({meta['doc']}).",
                )
            if meta["integer"] and value != int(value):
                raise PainloopError(
                    "PL-PARAM-RANGE", f"{name}={value:g} must be a whole number in {_range_text(meta)}."
                )
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Cross-field checks; overridden where fields constrain each other."""


@dataclass(frozen=True)
class PainParams(_Validated):
    """Latent pain drive: baseline, daily rhythm, fluctuations and flares."""

    _group = "pain"
    baseline_nrs: float = param(7.5, 0.0, 10.0, "mean pain drive without stimulation", "Shirvalkar 2023: 7.0-8.5 (UCSF)")
    circadian_amplitude_nrs: float = param(0.3, 0.0, 3.0, "half peak-to-trough of the daily rhythm", "UCSF data: evening 0.2-0.9 above morning")
    circadian_peak_hour: float = param(20.0, 0.0, 24.0, "clock hour of the daily maximum", "UCSF data: worse in the evening")
    fast_tau_h: float = param(2.6, 0.05, 48.0, "time constant of the fast OU fluctuation", "UCSF data: about 2.6 h", low_open=False)
    fast_sd_nrs: float = param(0.8, 0.0, 3.0, "stationary SD of the fast fluctuation", "UCSF data: within-patient SD 0.5-1.0")
    slow_tau_days: float = param(25.0, 0.5, 365.0, "time constant of the slow OU drift", "UCSF data: about 25 days")
    slow_sd_nrs: float = param(0.3, 0.0, 3.0, "stationary SD of the slow drift", "UCSF data")
    flare_rate_per_week: float = param(0.5, 0.0, 14.0, "Poisson rate of flare onsets", "Suri 2011/2012: 0.2-1 per week")
    flare_size_nrs: float = param(2.7, 0.0, 10.0, "mean pain added during a flare (each flare 0.75-1.25 x this)", "Suri: +2.7 NRS (2-3)")
    flare_median_duration_h: float = param(4.0, 0.1, 72.0, "median flare duration (lognormal)", "Suri 2011/2012: median ~4 h, 1-24 h")
    flare_duration_log_sd: float = param(0.9, 0.0, 3.0, "SD of log flare duration", "*assumed*: 0.9 spans 1-24 h at +-2 SD (Suri's 3/4 < 1 day would need ~2.7)")


@dataclass(frozen=True)
class ReliefParams(_Validated):
    """Analgesic effect of stimulation: dose-response, onset and carry-over."""

    _group = "relief"
    max_relief_fraction: float = param(0.45, 0.0, 1.0, "largest fraction of pain above the floor that stimulation removes", "*assumed*: median 0.45 (0.1-0.9), DBS 20-70% responders")
    floor_nrs: float = param(2.0, 0.0, 10.0, "pain below this level is not relieved", "*assumed*: 2 NRS (0-4)")
    half_effect_charge_uc: float = param(0.2, 0.001, 10.0, "charge per phase for half the maximal effect", "*assumed*: near 2 mA at 100 us", low_open=True)
    hill_coefficient: float = param(4.0, 0.5, 10.0, "steepness of the saturating dose-response (4: 84% of the maximal effect at 3 mA, 100 us)", "*assumed*")
    onset_tau_min: float = param(5.0, 0.1, 240.0, "time constant of relief rising while stimulating", "*assumed*: 5 min (1-60)")
    carryover_tau_min: float = param(30.0, 0.5, 2880.0, "time constant of relief decaying after stimulation stops", "*assumed* for DBS: median 30 min (5 min-5 h); SCS: 5 h (EChO)")


@dataclass(frozen=True)
class ToleranceParams(_Validated):
    """Habituation that builds while stimulating and recovers while off."""

    _group = "tolerance"
    build_tau_days: float = param(30.0, 0.1, 365.0, "time constant of tolerance building under stimulation", "*assumed*: 30 d (14-90)")
    recovery_tau_days: float = param(7.0, 0.1, 365.0, "time constant of tolerance recovering while off", "*assumed*: 7 d")
    efficacy_floor: float = param(0.3, 0.0, 1.0, "efficacy left at full tolerance", "*assumed*: 30%")


@dataclass(frozen=True)
class BiomarkerParams(_Validated):
    """Band-power features (2 sites x 6 bands, in dB) that track pain imperfectly."""

    _group = "biomarker"
    auc: float = param(0.80, 0.5, 1.0, "AUC of the best linear combination of all features, high vs low pain (stimulation off, awake)", "Shirvalkar 2023: 0.60-0.85", low_open=True, high_open=True)
    noise_sd_db: float = param(1.0, 0.01, 10.0, "stationary SD of the AR(1) feature noise", "*assumed*")
    noise_tau_s: float = param(60.0, 1.0, 3600.0, "correlation time of the AR(1) feature noise", "*assumed*: about 1 min")
    drift_sd_db: float = param(0.4, 0.0, 10.0, "stationary SD of the slow per-site drift", "*assumed*")
    drift_tau_days: float = param(5.0, 0.1, 365.0, "time constant of the slow per-site drift", "*assumed*")
    sleep_shift_db: float = param(2.0, 0.0, 20.0, "scale of the band-power shift during sleep (delta up, faster bands down)", "*assumed*")
    stim_suppression_fraction: float = param(0.2, 0.0, 0.9, "band-power drop in beta and low gamma at the amplitude ceiling", "UCSF patient: 10-30%")
    stim_settle_s: float = param(45.0, 1.0, 600.0, "time for band power to settle after an amplitude step (3 time constants)", "UCSF patient: about 45 s")
    artifact_db: float = param(3.0, 0.0, 30.0, "stimulation artifact added to high gamma at the stimulated site, at the amplitude ceiling", "*assumed*")
    layout_jitter: float = param(0.3, 0.0, 2.0, "per-patient random spread of the pain loadings around the template", "*assumed*")


@dataclass(frozen=True)
class ReportParams(_Validated):
    """Sparse, rounded, noisy self-reports while awake; also defines the waking day."""

    _group = "reports"
    reports_per_day: float = param(3.0, 0.0, 48.0, "mean number of report prompts per waking day", "UCSF: 1.3-5.6 per day observed")
    adherence: float = param(0.8, 0.0, 1.0, "probability that a prompt is answered", "*assumed*: 80%")
    report_sd_nrs: float = param(0.5, 0.0, 5.0, "SD of the rating error before rounding", "*assumed*")
    wake_hour: float = param(7.0, 0.0, 24.0, "clock hour of waking", "*assumed*")
    sleep_hour: float = param(23.0, 0.0, 24.0, "clock hour of falling asleep", "*assumed*")

    def _check(self) -> None:
        if self.wake_hour == self.sleep_hour:
            raise PainloopError(
                "PL-PARAM-RANGE",
                f"reports.wake_hour={self.wake_hour:g} equals reports.sleep_hour; allowed: two different clock hours.",
            )


@dataclass(frozen=True)
class StimulationParams(_Validated):
    """Device and electrode settings; the amplitude ceiling is checked for safety."""

    _group = "stimulation"
    on_amplitude_ma: float = param(3.0, 0.0, 25.5, "amplitude of 'on' in on_off mode", "UCSF patient: 3.0 mA")
    amplitude_max_ma: float = param(5.0, 0.0, 25.5, "amplitude ceiling of the levels and continuous modes", "UCSF patient: 0-5 mA (4.5 mA ceiling)", low_open=True)
    amplitude_step_ma: float = param(0.1, 0.01, 5.0, "amplitude resolution of the device", "RC+S: 0.1 mA")
    pulse_width_us: float = param(100.0, 10.0, 1000.0, "pulse width per phase", "UCSF patient: 60-180 us")
    frequency_hz: float = param(110.0, 1.0, 1000.0, "pulse rate", "UCSF patient: 55 or 110 Hz")
    impedance_ohm: float = param(1000.0, 100.0, 10000.0, "electrode impedance", "Butson 2006: 500-1500 ohm")
    ramp_ma_per_s: float = param(0.3, 0.001, 1000.0, "amplitude slew rate of ramps (large = abrupt)", "RC+S; ACC series: ramps over ~8 s prevented after-discharges")
    contact_area_cm2: float = param(0.06, 0.001, 10.0, "electrode contact area", "DBS contact about 0.06 cm^2", low_open=True)
    charge_density_limit_uc_per_cm2: float = param(30.0, 0.0, 1000.0, "device limit on charge density per phase", "device warning at 30 uC/cm^2/phase", low_open=True)
    shannon_k_limit: float = param(1.85, 0.0, 3.0, "Shannon k at which damage becomes possible", "Shannon 1992: k >= 1.85")

    def _check(self) -> None:
        if self.on_amplitude_ma > self.amplitude_max_ma:
            raise PainloopError(
                "PL-PARAM-RANGE",
                f"stimulation.on_amplitude_ma={self.on_amplitude_ma:g} exceeds "
                f"stimulation.amplitude_max_ma={self.amplitude_max_ma:g}; allowed: on <= max.",
            )
        check_stimulation_safe(
            self.amplitude_max_ma,
            self.pulse_width_us,
            self.contact_area_cm2,
            self.charge_density_limit_uc_per_cm2,
            self.shannon_k_limit,
        )


@dataclass(frozen=True)
class SideEffectParams(_Validated):
    """Mild dose-dependent side effects, seizure risk on abrupt steps, and burden."""

    _group = "side_effects"
    mild_max_rate_per_day: float = param(2.0, 0.0, 100.0, "mild event rate at saturating charge", "*assumed*")
    mild_half_charge_uc: float = param(0.4, 0.001, 10.0, "charge per phase at half the maximal mild rate", "*assumed*: logistic above ~3 mA at 100 us")
    mild_slope_charge_uc: float = param(0.05, 0.001, 10.0, "width of the logistic in charge per phase", "*assumed*")
    seizure_prob_abrupt: float = param(0.01, 0.0, 1.0, "after-discharge probability of an abrupt step of the reference size to the reference amplitude", "*assumed*; ACC series")
    seizure_reference_ma: float = param(3.0, 0.01, 25.5, "reference amplitude of the seizure hazard", "*assumed*")
    seizure_half_rate_ma_per_s: float = param(3.0, 0.001, 1000.0, "slew rate at which the seizure hazard is half that of an abrupt step", "*assumed*: ~8 s ramps to 3 mA were safe")
    seizure_rate_exponent: float = param(4.0, 0.5, 10.0, "steepness of the seizure hazard in the slew rate", "*assumed*: 0.3 mA/s ramps make it 1e-4 of an abrupt step's")
    seizure_burden_weight: float = param(10.0, 0.0, 1000.0, "burden added by a seizure relative to a mild event", "*assumed*")
    burden_tau_days: float = param(3.0, 0.01, 365.0, "decay time constant of the side-effect burden", "*assumed*")


@dataclass(frozen=True)
class BatteryParams(_Validated):
    """Battery draw beyond the stimulation energy itself."""

    _group = "battery"
    overhead_uw: float = param(20.0, 0.01, 10_000.0, "constant draw for sensing and telemetry (>= 0.01 uW: every implant senses, and a vanishing draw would make battery life infinite)", "*assumed*: ~20 uW")
    efficiency: float = param(0.5, 0.01, 1.0, "conversion efficiency from battery to tissue", "*assumed*: 0.5")
    capacity_j: float = param(30_000.0, 1.0, 1e7, "usable battery energy", "*assumed*: gives 4.4 years of continuous default stimulation")


GROUPS: dict[str, type[_Validated]] = {
    "pain": PainParams,
    "relief": ReliefParams,
    "tolerance": ToleranceParams,
    "biomarker": BiomarkerParams,
    "reports": ReportParams,
    "stimulation": StimulationParams,
    "side_effects": SideEffectParams,
    "battery": BatteryParams,
}


@dataclass(frozen=True)
class PatientParams:
    """All parameters of one virtual patient, grouped by model part."""

    pain: PainParams = field(default_factory=PainParams)
    relief: ReliefParams = field(default_factory=ReliefParams)
    tolerance: ToleranceParams = field(default_factory=ToleranceParams)
    biomarker: BiomarkerParams = field(default_factory=BiomarkerParams)
    reports: ReportParams = field(default_factory=ReportParams)
    stimulation: StimulationParams = field(default_factory=StimulationParams)
    side_effects: SideEffectParams = field(default_factory=SideEffectParams)
    battery: BatteryParams = field(default_factory=BatteryParams)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Nested plain dict (group -> field -> value), for YAML and JSON."""
        return {g: dataclasses.asdict(getattr(self, g)) for g in GROUPS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "patient") -> PatientParams:
        """Build from a nested dict; unknown groups or fields raise ``PL-PARAM-UNKNOWN``."""
        if not isinstance(data, dict):
            raise PainloopError(
                "PL-PATIENT-YAML",
                f"{where}: expected a mapping of groups {sorted(GROUPS)}, got {type(data).__name__}.",
            )
        unknown = sorted(set(data) - set(GROUPS))
        if unknown:
            raise PainloopError(
                "PL-PARAM-UNKNOWN",
                f"{where}: unknown parameter group(s) {unknown}; allowed: {sorted(GROUPS)}.",
            )
        groups: dict[str, Any] = {}
        for name, klass in GROUPS.items():
            values = data.get(name) or {}
            if not isinstance(values, dict):
                raise PainloopError(
                    "PL-PATIENT-YAML",
                    f"{where}: group '{name}' must be a mapping of field: value, got {values!r}.",
                )
            allowed = [f.name for f in dataclasses.fields(klass)]
            bad = sorted(set(values) - set(allowed))
            if bad:
                raise PainloopError(
                    "PL-PARAM-UNKNOWN",
                    f"{where}: unknown field(s) {[f'{name}.{b}' for b in bad]}; allowed in '{name}': {allowed}.",
                )
            groups[name] = klass(**values)
        return cls(**groups)

    def replace(self, **changes: dict[str, float]) -> PatientParams:
        """Copy with some fields changed, e.g. ``replace(relief={"carryover_tau_min": 60})``."""
        data = self.to_dict()
        for group, values in changes.items():
            if group not in GROUPS:
                raise PainloopError(
                    "PL-PARAM-UNKNOWN", f"unknown parameter group '{group}'; allowed: {sorted(GROUPS)}."
                )
            data[group].update(values)
        return PatientParams.from_dict(data)


def iter_parameter_metadata():
    """Yield (group, field name, default, metadata) for the docs table."""
    for group, klass in GROUPS.items():
        for f in dataclasses.fields(klass):
            if "low" in f.metadata:
                yield group, f.name, f.default, f.metadata
