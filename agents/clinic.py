"""Per-patient detector calibration, as a clinic would do it.

1. Record a calibration period (default 7 days) with stimulation off, or on a
   fixed cycling schedule, collecting band powers and the patient's sparse,
   rounded self-reports (never the latent pain).
2. Normalisation: per-feature mean and SD over the whole period (the
   device's subtract and multiply vectors).
3. Label each report high or low by a median split of the reports; pair it
   with the band power averaged over the window before it.
4. Select at most 4 power-band inputs (largest Fisher score) and fit a
   shrinkage LDA (or logistic) score on them.
5. Thresholds: the score quantile that gives a target duty cycle over the
   calibration period, or the best Youden point on the labelled reports.
6. Round weights, normalisation and thresholds to the device's fixed-point
   grid. The result is a ``DetectorConfig``: plain data that the export
   writes into a device config unchanged.

If the reports cannot be split into two classes (too few, or all equal),
the clinic has no detector for that patient and keeps open-loop
stimulation: the config is always-on and ``fit["status"]`` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.detector import MAX_INPUTS, DetectorConfig, to_fixed_point
from simenv import layout as L
from simenv.cohort import Patient
from simenv.core import BatchedCore
from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY

#: Episode index reserved for the clinic's calibration period (never an evaluation episode).
CLINIC_EPISODE = 2**31 - 3
SCHEDULES = ("off", "cycling")
CLASSIFIERS = ("lda", "logistic")
THRESHOLD_METHODS = ("duty", "youden")


@dataclass(frozen=True)
class ClinicSettings:
    """How the calibration period is recorded."""

    days: float = 7.0
    schedule: str = "off"
    window_s: float = 300.0
    sample_every_s: float = 120.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise PainloopError("PL-CALIBRATION", f"calibration schedule='{self.schedule}'; allowed: {list(SCHEDULES)}.")
        if not 0.5 <= self.days <= 90:
            raise PainloopError("PL-CALIBRATION", f"calibration days={self.days!r}; allowed: 0.5 to 90.")


@dataclass(frozen=True)
class ClinicRecord:
    """What the clinic recorded for one patient: reports, band powers and statistics.

    ``drive_sample`` (latent) is kept only for the oracle reference.
    """

    uid: int
    report_nrs: np.ndarray  # (n_reports,)
    report_features_db: np.ndarray  # (n_reports, N_FEATURES) window means before each report
    norm_mean_db: np.ndarray  # (N_FEATURES,)
    norm_sd_db: np.ndarray  # (N_FEATURES,)
    features_sample_db: np.ndarray  # (n_samples, N_FEATURES) every sample_every_s
    drive_sample_nrs: np.ndarray  # (n_samples,)

    def drive_quantile(self, q: float) -> float:
        """Quantile of the latent pain drive over the period (oracle reference only)."""
        return float(np.quantile(self.drive_sample_nrs, q))


def record_calibration_period(
    patients: Sequence[Patient], dt_s: float, seed: int, settings: ClinicSettings | None = None
) -> list[ClinicRecord]:
    """Simulate every patient's calibration period in one batch and return the records."""
    settings = settings or ClinicSettings()
    n = len(patients)
    core = BatchedCore(n, dt_s=dt_s)
    core.reset_slots(range(n), patients, [seed] * n, [CLINIC_EPISODE] * n)
    steps = int(round(settings.days * SECONDS_PER_DAY / dt_s))
    window = max(1, int(round(settings.window_s / dt_s)))
    stride = max(1, int(round(settings.sample_every_s / dt_s)))
    on_ma = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
    ring = np.zeros((n, window, L.N_FEATURES))
    total = np.zeros((n, L.N_FEATURES))
    total_sq = np.zeros((n, L.N_FEATURES))
    n_samples = (steps + stride - 1) // stride
    sample = np.zeros((n, n_samples, L.N_FEATURES), dtype=np.float32)
    drive = np.zeros((n, n_samples), dtype=np.float32)
    reports: list[list[float]] = [[] for _ in range(n)]
    report_features: list[list[np.ndarray]] = [[] for _ in range(n)]
    off = np.zeros(n)
    for t in range(steps):
        if settings.schedule == "cycling":  # 1 min on / 1 min off, as the cycling baseline
            target = on_ma if (t * dt_s) % 120.0 < 60.0 else off
        else:
            target = off
        out = core.step(target)
        f = core.features_db
        ring[:, t % window] = f
        total += f
        total_sq += f * f
        if t % stride == 0:
            sample[:, t // stride] = f
            drive[:, t // stride] = out[:, L.O_DRIVE_NRS]
        r = out[:, L.O_REPORT_NRS]
        for i in np.flatnonzero(~np.isnan(r)):
            filled = min(t + 1, window)
            reports[i].append(float(r[i]))
            report_features[i].append(ring[i, :filled].mean(axis=0) if filled < window else ring[i].mean(axis=0))
    mean = total / steps
    sd = np.sqrt(np.maximum(total_sq / steps - mean**2, 1e-12))
    return [
        ClinicRecord(
            uid=p.uid,
            report_nrs=np.array(reports[i]),
            report_features_db=np.array(report_features[i]).reshape(-1, L.N_FEATURES),
            norm_mean_db=mean[i],
            norm_sd_db=sd[i],
            features_sample_db=sample[i],
            drive_sample_nrs=drive[i],
        )
        for i, p in enumerate(patients)
    ]


@dataclass(frozen=True)
class DetectorSettings:
    """How a detector is fitted and timed (defaults from the RC+S worked example)."""

    classifier: str = "lda"
    max_inputs: int = MAX_INPUTS
    threshold_method: str = "duty"
    target_duty: float = 0.5
    dual_threshold: bool = False
    dual_band: float = 0.2  # dual thresholds at duty +- band/2
    onset_updates: int = 0
    termination_updates: int = 4
    holdoff_updates: int = 0
    blank_fft_intervals: int = 30
    fft_interval_ms: int = 500
    fractional_fixed_point: int = 8

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> PainloopError:
            return PainloopError("PL-CONTROLLER-PARAM", f"detector {name}={getattr(self, name)!r}; allowed: {allowed}.")

        if self.classifier not in CLASSIFIERS:
            raise bad("classifier", str(list(CLASSIFIERS)))
        if self.threshold_method not in THRESHOLD_METHODS:
            raise bad("threshold_method", str(list(THRESHOLD_METHODS)))
        if not 1 <= self.max_inputs <= MAX_INPUTS:
            raise bad("max_inputs", f"1 to {MAX_INPUTS}")
        if not 0.0 < self.target_duty < 1.0:
            raise bad("target_duty", "(0, 1)")
        if not 0.0 <= self.dual_band < 1.0:
            raise bad("dual_band", "[0, 1)")
        if self.dual_threshold and self.threshold_method == "youden":
            raise bad("threshold_method", "'duty' with dual_threshold (a Youden point is one threshold)")
        for name in ("onset_updates", "termination_updates", "holdoff_updates", "blank_fft_intervals"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise bad(name, "a whole number >= 0")
        if not 0 <= self.fractional_fixed_point <= 16:
            raise bad("fractional_fixed_point", "0 to 16")


def _labels(reports: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Median split of the reports; None with a reason when it cannot give two classes."""
    if reports.size < 4:
        return None, f"only {reports.size} self-reports (need >= 4)"
    median = np.median(reports)
    # Integer ratings tie at the median: put the ties on whichever side
    # gives the more balanced classes.
    strict, loose = reports > median, reports >= median
    balance = [min(h.sum(), (~h).sum()) for h in (strict, loose)]
    high = strict if balance[0] >= balance[1] else loose
    if high.sum() < 2 or (~high).sum() < 2:
        return None, f"reports cannot be split into two classes of >= 2 (values {sorted(set(reports.tolist()))})"
    return high, "ok"


def fit_detector(record: ClinicRecord, settings: DetectorSettings, dt_s: float) -> DetectorConfig:
    """Fit one patient's detector from its clinic record (see the module doc)."""
    F = settings.fractional_fixed_point
    update_rate = int(round(1000.0 * dt_s / settings.fft_interval_ms))
    timing: dict[str, Any] = {
        "dual_threshold": settings.dual_threshold,
        "fft_interval_ms": settings.fft_interval_ms,
        "update_rate_fft_intervals": update_rate,
        "onset_updates": settings.onset_updates,
        "termination_updates": settings.termination_updates,
        "holdoff_updates": settings.holdoff_updates,
        "blank_fft_intervals": settings.blank_fft_intervals,
        "fractional_fixed_point": F,
    }
    labels, status = _labels(record.report_nrs)
    mean, sd = record.norm_mean_db, record.norm_sd_db
    if labels is None:
        # No detector: open-loop stimulation stays on (score 0 > threshold -1 always).
        best = 0
        return DetectorConfig(
            inputs=(L.FEATURE_NAMES[best],),
            weight=(0.0,),
            norm_subtract=(to_fixed_point(mean[best], F),),
            norm_multiply=(to_fixed_point(1.0 / sd[best], F),),
            threshold_low=-1.0,
            threshold_high=-1.0,
            fit={"status": f"no detector: {status}; stimulation stays on", "n_reports": int(record.report_nrs.size)},
            **timing,
        )
    z = (record.report_features_db - mean) / sd
    hi, lo = z[labels], z[~labels]
    fisher = (hi.mean(0) - lo.mean(0)) ** 2 / (hi.var(0) + lo.var(0) + 1e-12)
    chosen = np.sort(np.argsort(-fisher)[: settings.max_inputs])
    X = z[:, chosen]
    if settings.classifier == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, labels)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1.0).fit(X, labels)
    coef = model.coef_[0]
    coef = coef / max(np.max(np.abs(coef)), 1e-12)  # unit max weight: best use of the fixed-point grid
    weight = np.array([to_fixed_point(w, F) for w in coef])
    subtract = np.array([to_fixed_point(mean[j], F) for j in chosen])
    multiply = np.array([to_fixed_point(1.0 / sd[j], F) for j in chosen])

    def score(features: np.ndarray) -> np.ndarray:
        return (features[:, chosen] - subtract) @ (weight * multiply)

    sample_scores = score(record.features_sample_db.astype(np.float64))
    report_scores = score(record.report_features_db)
    from sklearn.metrics import roc_auc_score, roc_curve

    auc = float(roc_auc_score(labels, report_scores))
    if settings.threshold_method == "youden":
        fpr, tpr, thr = roc_curve(labels, report_scores)
        finite = np.isfinite(thr)
        best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
        b0 = b1 = float(thr[best]) - 2.0**-F  # roc thresholds are ">="; the device tests ">"
    elif settings.dual_threshold:
        q = 1.0 - settings.target_duty
        b0 = float(np.quantile(sample_scores, max(q - settings.dual_band / 2, 0.0)))
        b1 = float(np.quantile(sample_scores, min(q + settings.dual_band / 2, 1.0)))
    else:
        b0 = b1 = float(np.quantile(sample_scores, 1.0 - settings.target_duty))
    b0, b1 = to_fixed_point(b0, F), to_fixed_point(b1, F)
    calibration_duty = float(np.mean(sample_scores > b0))
    return DetectorConfig(
        inputs=tuple(L.FEATURE_NAMES[j] for j in chosen),
        weight=tuple(weight.tolist()),
        norm_subtract=tuple(subtract.tolist()),
        norm_multiply=tuple(multiply.tolist()),
        threshold_low=b0,
        threshold_high=b1,
        fit={
            "status": "ok",
            "classifier": settings.classifier,
            "threshold_method": settings.threshold_method,
            "target_duty": settings.target_duty,
            "n_reports": int(labels.size),
            "n_high": int(labels.sum()),
            "report_auc_in_sample": auc,
            "calibration_duty_raw": calibration_duty,
        },
        **timing,
    )
