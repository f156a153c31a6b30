"""Estimators of the model's observable statistics from simulated records.

Each function takes arrays of shape ``(n_patients, n_steps)`` (or
``(n_patients, n_steps, n_features)``) from ``experiments.validation.simulations``
and returns per-patient estimates, shape ``(n_patients,)``, with NaN where
the record is too short to estimate. They measure; they never read the
configured value they are compared with.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import roc_auc_score

from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR

#: Clock windows (start hour, end hour) of the circadian comparison.
MORNING_H = (7.0, 11.0)
EVENING_H = (18.0, 22.0)
#: Shortest record (days) for the fast time-constant fit.
FAST_MIN_DAYS = 2.0
#: Longest lag of the fast fit, and the share of the record it may span.
FAST_MAX_LAG_H = 24.0
#: Shortest record (days) for the slow time constant: 4 x DOMAIN's 25 d.
SLOW_MIN_DAYS = 100.0


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of each row of ``x`` (n, T) at lags 0..max_lag, shape (n, max_lag + 1).

    Unbiased lag products (divided by T - lag), normalised by the variance.
    """
    n, t = x.shape
    size = 1 << int(math.ceil(math.log2(2 * t)))
    out = np.empty((n, max_lag + 1))
    for i in range(n):  # one row at a time: bounded memory for long records
        centred = np.asarray(x[i], dtype=np.float64) - float(np.mean(x[i], dtype=np.float64))
        spectrum = np.fft.rfft(centred, n=size)
        acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size)[: max_lag + 1]
        acov /= t - np.arange(max_lag + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = acov / acov[0]
    return out


def _fast_model(lag_h: np.ndarray, a: float, tau_h: float, b: float, c: float) -> np.ndarray:
    return a * np.exp(-lag_h / tau_h) + b * np.cos(2.0 * np.pi * lag_h / 24.0) + c


def fast_fit_lags(n_steps: int, dt_s: float) -> int:
    """Number of lags used by the fast fit (up to 24 h, at most a quarter of the record)."""
    record_h = n_steps * dt_s / SECONDS_PER_HOUR
    return int(min(FAST_MAX_LAG_H, record_h / 4.0) * SECONDS_PER_HOUR / dt_s)


def fit_fast_time_constant(acf: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Fast time constant (h) per patient from its autocorrelation (n, lags).

    Model: ``a exp(-lag / tau) + b cos(2 pi lag / 24 h) + c``; the constant
    ``c`` absorbs the slow drift, which barely decays within a day. Returns
    (tau_h, parameters (n, 4)); NaN where the fit fails.
    """
    lag_h = np.arange(acf.shape[1]) * dt_s / SECONDS_PER_HOUR
    taus = np.full(acf.shape[0], np.nan)
    params = np.full((acf.shape[0], 4), np.nan)
    for i, row in enumerate(acf):
        if not np.all(np.isfinite(row)):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                p, _ = curve_fit(
                    _fast_model,
                    lag_h,
                    row,
                    p0=(0.7, 2.0, 0.05, 0.1),
                    bounds=((0.0, 0.05, -1.0, -1.0), (2.0, 48.0, 1.0, 1.0)),
                    maxfev=20_000,
                )
        except (RuntimeError, ValueError):
            continue
        taus[i] = p[1]
        params[i] = p
    return taus, params


def fast_model_curve(params: np.ndarray, lag_h: np.ndarray) -> np.ndarray:
    """The fitted fast model at ``lag_h`` for one parameter row (for plots)."""
    return _fast_model(lag_h, *params)


def daily_means(x: np.ndarray, dt_s: float) -> np.ndarray:
    """Mean of each whole day, shape (n, n_days)."""
    per_day = int(round(SECONDS_PER_DAY / dt_s))
    days = x.shape[1] // per_day
    return x[:, : days * per_day].reshape(x.shape[0], days, per_day).mean(axis=2)


def slow_time_constant_days(x: np.ndarray, dt_s: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Cohort slow time constant (days) from the variogram of daily mean pain.

    ``gamma(l) = 0.5 E[(m(d + l) - m(d))^2]`` of the daily means m, averaged
    over patients, fitted by ``nugget + s^2 (1 - exp(-l / tau))`` for lags of
    1 day to a third of the record. A variogram, unlike the autocorrelation,
    needs no mean subtraction, so it is not biased by the record's length.
    Returns (tau_days, lags, gamma); tau NaN if the record is shorter than
    ``SLOW_MIN_DAYS`` or the fit fails.
    """
    m = daily_means(x, dt_s)
    n_days = m.shape[1]
    if n_days < SLOW_MIN_DAYS:
        return math.nan, np.zeros(0), np.zeros(0)
    lags = np.arange(1, n_days // 3 + 1)
    gamma = np.array([0.5 * np.mean((m[:, lag:] - m[:, :-lag]) ** 2) for lag in lags])

    def model(lag: np.ndarray, nugget: float, sill: float, tau: float) -> np.ndarray:
        return nugget + sill * (1.0 - np.exp(-lag / tau))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            p, _ = curve_fit(
                model, lags, gamma, p0=(gamma[0], gamma[-1], 20.0),
                bounds=((0.0, 0.0, 0.5), (10.0, 10.0, 1000.0)), maxfev=20_000,
            )
    except (RuntimeError, ValueError):
        return math.nan, lags, gamma
    return float(p[2]), lags, gamma


def window_mean(x: np.ndarray, step_hour: np.ndarray, window_h: tuple[float, float]) -> np.ndarray:
    """Mean of each row over the steps whose clock hour lies in ``[start, end)``."""
    mask = (step_hour >= window_h[0]) & (step_hour < window_h[1])
    if not mask.any():
        return np.full(x.shape[0], np.nan)
    return x[:, mask].mean(axis=1)


def circadian_difference(pain: np.ndarray, step_hour: np.ndarray) -> np.ndarray:
    """Evening minus morning mean pain per patient, NRS (windows ``EVENING_H``, ``MORNING_H``)."""
    return window_mean(pain, step_hour, EVENING_H) - window_mean(pain, step_hour, MORNING_H)


def reports_per_day(report: np.ndarray, dt_s: float) -> np.ndarray:
    """Self-reports per day per patient."""
    days = report.shape[1] * dt_s / SECONDS_PER_DAY
    return np.sum(~np.isnan(report), axis=1) / days


def report_sd(report: np.ndarray) -> np.ndarray:
    """SD of each patient's self-reports (NaN with fewer than 3)."""
    out = np.full(report.shape[0], np.nan)
    for i, row in enumerate(report):
        r = row[~np.isnan(row)]
        if r.size >= 3:
            out[i] = r.std(ddof=1)
    return out


def flare_episodes(level: np.ndarray, dt_s: float) -> dict[str, np.ndarray]:
    """Flares as runs of steps with a positive flare level.

    Returns arrays over all flares of the cohort: ``patient``, ``duration_h``,
    ``size_nrs`` (the flare's level) and ``censored`` (still running at the
    record's end, so its duration is a lower bound).
    """
    patient, duration, size, censored = [], [], [], []
    for i, row in enumerate(level):
        active = row > 0.0
        if not active.any():
            continue
        edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        stops = np.flatnonzero(edges == -1)
        for a, b in zip(starts, stops, strict=True):
            patient.append(i)
            duration.append((b - a) * dt_s / SECONDS_PER_HOUR)
            size.append(float(row[a]))
            censored.append(b == row.size)
    return {
        "patient": np.array(patient, dtype=np.int64),
        "duration_h": np.array(duration),
        "size_nrs": np.array(size),
        "censored": np.array(censored, dtype=bool),
    }


def lda_auc(features: np.ndarray, pain: np.ndarray, awake: np.ndarray) -> np.ndarray:
    """Held-out AUC of a shrinkage LDA per patient, as DOMAIN.md defines it.

    Awake steps only (stimulation is off in the record); labels are latent
    pain above its median; the LDA (``solver="lsqr", shrinkage="auto"``) is
    fitted on the first half of the steps in time and scored on the second.
    ``features`` (n, T, F), ``pain`` and ``awake`` (n, T). NaN where a half
    lacks one of the classes.
    """
    out = np.full(features.shape[0], np.nan)
    for i in range(features.shape[0]):
        x = features[i][awake[i]].astype(np.float64)
        p = pain[i][awake[i]]
        if x.shape[0] < 20:
            continue
        y = p > np.median(p)
        half = x.shape[0] // 2
        if len(np.unique(y[:half])) < 2 or len(np.unique(y[half:])) < 2:
            continue
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x[:half], y[:half])
        out[i] = roc_auc_score(y[half:], lda.decision_function(x[half:]))
    return out


def decay_time_constant(values: np.ndarray, start: int, dt_s: float, floor: float = 0.01) -> np.ndarray:
    """Time constant (min) of an exponential decay per row, from step ``start + 1`` on.

    Log-linear least squares over the steps after ``start`` (the first off
    step holds the ramp down, so it is skipped) while the value is above
    ``floor`` times its value at ``start``. NaN with fewer than 3 points.
    """
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        v0 = row[start]
        tail = row[start + 1 :]
        if not v0 > 0.0:
            continue
        keep = tail > floor * v0
        below = np.flatnonzero(~keep)
        end = below[0] if below.size else tail.size
        if end < 3:
            continue
        t_min = (np.arange(end) + 1) * dt_s / 60.0
        slope = np.polyfit(t_min, np.log(tail[:end]), 1)[0]
        if slope < 0:
            out[i] = -1.0 / slope
    return out
