"""Biomarker geometry and the gain that gives each patient its target AUC.

Features are log band powers (dB) at 2 sites x 6 bands. Each loads on the
patient's pain with a per-patient direction (a template with orbitofrontal
bands weighted most, as in Shirvalkar et al. 2023, plus random jitter) and a
common scale chosen so that the best linear combination of all features
separates above- from below-median latent pain (stimulation off, awake) with
the configured AUC.

For Gaussian noise with covariance S and a scalar signal z, every linear
read-out w gives y = c w'g z + noise, and the best one, w ~ S^-1 g, has
signal-to-noise kappa = c sqrt(g' S^-1 g). The AUC is then
E[Phi(kappa (z_h - z_l) / sqrt(2))] over pairs of high and low samples, a
function of kappa alone for a given pain distribution. We sample the
patient's stationary awake pain distribution, and bisect kappa.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from simenv import layout as L
from simenv.params import PatientParams

# Pain loading template per band (same sign at both sites), OFC weighted more.
_BAND_LOADING = np.array([0.5, 0.8, -0.6, -0.4, 0.7, 0.3])
_SITE_WEIGHT = np.array([0.5, 1.0])  # ACC, OFC
# Mean log power per band (1/f-like spectrum), dB.
_BAND_MEAN_DB = np.array([20.0, 15.0, 12.0, 8.0, 3.0, -2.0])
# Sleep shift profile: slow waves up, faster bands down.
SLEEP_PROFILE = np.tile(np.array([1.0, 0.5, -0.3, -0.5, -0.5, -0.3]), L.N_SITES)
# Stimulation lowers beta and low gamma at both sites.
SUPPRESSION_MASK = np.tile(np.array([0.0, 0.0, 0.0, 1.0, 1.0, 0.0]), L.N_SITES)
# Artifact on high gamma of the stimulated site.
ARTIFACT_MASK = np.zeros(L.N_FEATURES)
ARTIFACT_MASK[L.STIMULATED_SITE * L.N_BANDS + L.BANDS.index("high_gamma")] = 1.0

_N_PAIN_SAMPLES = 4096
_N_QUANTILE_BINS = 48


def noise_covariance(params: PatientParams) -> np.ndarray:
    """Stationary covariance of the feature noise: AR(1) per feature plus shared per-site drift."""
    b = params.biomarker
    cov = np.eye(L.N_FEATURES) * b.noise_sd_db**2
    for site in range(L.N_SITES):
        sl = slice(site * L.N_BANDS, (site + 1) * L.N_BANDS)
        cov[sl, sl] += b.drift_sd_db**2
    return cov


def loading_direction(params: PatientParams, rng: np.random.Generator) -> np.ndarray:
    """Per-patient pain loading direction (unscaled), template plus jitter."""
    template = np.outer(_SITE_WEIGHT, _BAND_LOADING).ravel()
    rms = np.sqrt(np.mean(template**2))
    return template + params.biomarker.layout_jitter * rms * rng.standard_normal(L.N_FEATURES)


def feature_means_db(rng: np.random.Generator) -> np.ndarray:
    """Per-patient mean log power of each feature, dB (template plus 1 dB jitter)."""
    return np.tile(_BAND_MEAN_DB, L.N_SITES) + rng.standard_normal(L.N_FEATURES)


def stationary_awake_pain(params: PatientParams, rng: np.random.Generator, n: int = _N_PAIN_SAMPLES) -> np.ndarray:
    """Samples of the stationary pain distribution, stimulation off, awake hours.

    Pain = clip(baseline + circadian + fast OU + slow OU + flare, 0, 10); the OU
    parts are Gaussian with their stationary SDs, the clock hour uniform over
    the waking day, and a flare present with its long-run time fraction.
    """
    p = params.pain
    r = params.reports
    awake_h = (r.sleep_hour - r.wake_hour) % 24.0
    hour = (r.wake_hour + awake_h * rng.random(n)) % 24.0
    circ = p.circadian_amplitude_nrs * np.cos(2 * np.pi * (hour - p.circadian_peak_hour) / 24.0)
    mean_flare_h = p.flare_median_duration_h * np.exp(0.5 * p.flare_duration_log_sd**2)
    rate_per_h = p.flare_rate_per_week / (7 * 24)
    flare_fraction = rate_per_h * mean_flare_h / (1.0 + rate_per_h * mean_flare_h)
    in_flare = rng.random(n) < flare_fraction
    flare = in_flare * p.flare_size_nrs * (0.75 + 0.5 * rng.random(n))
    pain = (
        p.baseline_nrs
        + circ
        + p.fast_sd_nrs * rng.standard_normal(n)
        + p.slow_sd_nrs * rng.standard_normal(n)
        + flare
    )
    return np.clip(pain, 0.0, 10.0)


def _pair_grid(pain: np.ndarray) -> np.ndarray:
    """Differences between quantile-bin means of the high and low halves (median split)."""
    median = np.median(pain)
    high = np.sort(pain[pain > median])
    low = np.sort(pain[pain <= median])
    hb = np.array([c.mean() for c in np.array_split(high, _N_QUANTILE_BINS) if c.size])
    lb = np.array([c.mean() for c in np.array_split(low, _N_QUANTILE_BINS) if c.size])
    return (hb[:, None] - lb[None, :]).ravel()


def auc_for_snr(kappa: float, pair_differences: np.ndarray) -> float:
    """AUC of y = kappa * z + N(0, 1) for the given high-minus-low pain differences."""
    return float(np.mean(ndtr(kappa * pair_differences / np.sqrt(2.0))))


def solve_snr(target_auc: float, pain_samples: np.ndarray) -> float:
    """Signal-to-noise kappa (per NRS) at which the best linear read-out has ``target_auc``."""
    diffs = _pair_grid(pain_samples)
    hi = 1.0
    while auc_for_snr(hi, diffs) < target_auc and hi < 1e4:
        hi *= 2.0
    if auc_for_snr(hi, diffs) < target_auc:  # unreachable (ties in clipped pain): the largest tried
        return hi
    return float(brentq(lambda k: auc_for_snr(k, diffs) - target_auc, 0.0, hi, xtol=1e-14, rtol=1e-15))


def patient_biomarker_layout(params: PatientParams, uid: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean_db, gain_db_per_nrs) of one patient, each of shape (N_FEATURES,).

    Deterministic in (params, uid): the jitter and the pain samples come from
    a stream seeded by the patient uid, independent of any episode seed.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(uid), 0xB10])))
    mean_db = feature_means_db(rng)
    direction = loading_direction(params, rng)
    pain = stationary_awake_pain(params, rng)
    kappa = solve_snr(params.biomarker.auc, pain)
    cov = noise_covariance(params)
    whitened_norm = float(np.sqrt(direction @ np.linalg.solve(cov, direction)))
    gain = direction * (kappa / whitened_norm)
    return mean_db, gain
