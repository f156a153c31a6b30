"""Exporters to ``painloop.controller/v1`` configs, golden traces and fidelity statistics.

- ``config_from_detector``: a clinic-calibrated ``threshold`` /
  ``dual_threshold`` detector maps field for field onto LD0; single
  threshold: state 0 = 0 mA, state 1 = the patient's on amplitude; dual
  threshold: state 0 = 0 mA, state 1 = HOLD, state 2 = on. Ramps are the
  patient's, on the device's 1/65536 mA/s grid.
- ``golden_traces``: a simulated run of configs by the reference engine at
  detector-update resolution (docs/export.md names the columns), for testing
  a device-side implementation.
- ``decision_agreement``: balanced accuracy and Cohen's kappa between two
  controllers' commanded amplitudes (classes of 0.1 mA).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from agents.atomic_io import open_atomic
from agents.config_format import build_config
from agents.config_policy import ConfigEngine, check_patient_fit
from agents.detector import DetectorConfig
from simenv import layout as L
from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import Patient
from simenv.core import PHYSICS_VERSION


def painloop_version() -> str | None:
    try:
        return metadata.version("painloop")
    except metadata.PackageNotFoundError:
        return None


def provenance(
    patient: Patient,
    source: str,
    source_kind: str,
    dt_s: float,
    source_run: str | None = None,
    cohort: dict | None = None,
    metrics: dict | None = None,
    fit: dict | None = None,
) -> dict:
    """The ``provenance`` block: what the config came from and under which versions."""
    return {
        "source": source,
        "source_kind": source_kind,
        "source_run": source_run,
        "painloop_version": painloop_version(),
        "physics_version": PHYSICS_VERSION,
        "dt_s": float(dt_s),
        "patient": {"uid": int(patient.uid), "cohort": patient.cohort, "index": int(patient.index)},
        "cohort": cohort,
        "metrics_at_export": metrics,
        "fit": fit,
        "exported": _dt.datetime.now(tz=_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def stimulation_fields(patient: Patient) -> dict:
    """Pulse, rate, amplitude limits and safety limits of a config, from the patient's device settings."""
    st = patient.params.stimulation
    return {
        "ramp_up_ma_per_s": st.ramp_ma_per_s,
        "ramp_down_ma_per_s": st.ramp_ma_per_s,
        "amplitude_limits_ma": (0.0, st.amplitude_max_ma),
        "pulse_width_us": st.pulse_width_us,
        "rate_hz": st.frequency_hz,
        "contact_area_cm2": st.contact_area_cm2,
        "charge_density_limit_uc_per_cm2": st.charge_density_limit_uc_per_cm2,
        "shannon_k_limit": st.shannon_k_limit,
    }


def threshold_states(detector: DetectorConfig, on_ma: float) -> list:
    """The state table of a threshold baseline (agents.baselines.Threshold's semantics)."""
    if detector.dual_threshold:
        head = [0.0, "HOLD", float(on_ma)]
    else:
        head = [0.0, float(on_ma), None]
    return head + [None] * 6


def config_from_detector(
    detector: DetectorConfig,
    patient: Patient,
    prov: dict,
    target: str = "summit_rcs",
) -> dict:
    """A calibrated threshold / dual-threshold detector as a device config (not yet validated)."""
    states = threshold_states(detector, patient.params.stimulation.on_amplitude_ma)
    return build_config(target, detector, states, provenance=prov, **stimulation_fields(patient))


# -- golden traces ------------------------------------------------------------------------------
def trace_columns(config: dict) -> list[str]:
    inputs = list(dict.fromkeys(config["detectors"]["LD0"]["inputs"] + ((config["detectors"].get("LD1") or {}).get("inputs") or [])))
    cols = ["update", "time_s"] + [f"{name}_db" for name in inputs] + ["LD0_output", "LD0_state"]
    if config["detectors"].get("LD1"):
        cols += ["LD1_output", "LD1_state"]
    return cols + ["state", "amplitude_ma", "delivered_amplitude_ma"]


def golden_traces(
    configs: Sequence[dict],
    patients: Sequence[Patient],
    dt_s: float,
    days: float,
    seed: int,
    initial_state: str = "naive",
) -> list[list[dict]]:
    """Run each patient's config in the simulator and return its rows (one per detector update).

    Row k holds the band powers the update read (measured over the step
    before it; with an update period of k steps, their mean over the k steps
    before it), each detector's output and state, the combined state, the
    commanded amplitude after the update, and the amplitude delivered at the
    end of the following step (after the ramps).
    """
    settings = EnvSettings(dt_s=dt_s, horizon_days=days, initial_state=initial_state)
    batch = PainStimBatch(list(patients), settings)
    obs, info = batch.reset(seed=seed)
    for p, c in zip(patients, configs, strict=True):
        check_patient_fit(c, p.params, f"golden trace, patient uid {p.uid}")
    eng = ConfigEngine(list(configs), dt_s)  # slot by slot (a patient may appear twice)
    batch.core.set_ramp_rates(slice(None), eng.ramp_up, eng.ramp_down)
    cols = [trace_columns(c) for c in configs]
    feats = [[L.FEATURE_NAMES.index(c[: -len("_db")]) for c in cs if c.endswith("_db")] for cs in cols]
    rows: list[list[dict]] = [[] for _ in patients]
    while True:
        elapsed = np.asarray(info["elapsed_s"]).copy()
        amps = eng.step(np.asarray(info["features_raw"]), elapsed > 0).copy()
        updated = eng.updated.copy()
        read = None if eng.read_db is None else eng.read_db.copy()
        obs, _, _, truncated = batch.step_arrays(None, amps)
        delivered = batch.core.state[:, L.S_AMPLITUDE_MA].copy()
        if updated.any():
            assert read is not None  # an update reads band powers
            for i in np.flatnonzero(updated):
                row = {"update": len(rows[i]) + 1, "time_s": float(elapsed[i])}
                for j in feats[i]:
                    row[f"{L.FEATURE_NAMES[j]}_db"] = float(read[i, j])
                row["LD0_output"] = float(eng.ld0.last_score[i])
                row["LD0_state"] = int(eng.ld0.state[i])
                if eng.has_ld1[i]:
                    row["LD1_output"] = float(eng.ld1.last_score[i])
                    row["LD1_state"] = int(eng.ld1.state[i])
                row["state"] = int(eng.state[i])
                row["amplitude_ma"] = float(amps[i])
                row["delivered_amplitude_ma"] = float(delivered[i])
                rows[i].append(row)
        info = batch.step_info()
        if truncated.all():
            break
    return rows


def write_trace_csv(path: str | Path, config: dict, rows: Sequence[dict]) -> Path:
    """Write a golden trace; floats with 17 significant digits, so they read back bit for bit."""
    path = Path(path)
    cols = trace_columns(config)
    with open_atomic(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in rows:
            w.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in cols])
    return path


# -- fidelity -----------------------------------------------------------------------------------
def amplitude_classes(amplitudes_ma: np.ndarray) -> np.ndarray:
    """Commanded amplitudes as integer classes of 0.1 mA (0 = off)."""
    return np.round(np.asarray(amplitudes_ma) * 10.0).astype(np.int64)


def decision_agreement(source_ma: np.ndarray, exported_ma: np.ndarray) -> dict:
    """Balanced accuracy and Cohen's kappa of the exported decisions against the source's.

    Inputs have shape (n_decisions,); decisions are amplitude classes (for
    on/off sources: off vs on). NaN where undefined (a single class).
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    y, p = amplitude_classes(source_ma), amplitude_classes(exported_ma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = float(balanced_accuracy_score(y, p)) if y.size else math.nan
        kappa = float(cohen_kappa_score(y, p)) if y.size and len(np.union1d(y, p)) > 1 else math.nan
    return {
        "balanced_accuracy": bacc,
        "cohen_kappa": kappa,
        "raw_agreement": float(np.mean(y == p)) if y.size else math.nan,
        "source_on_fraction": float(np.mean(y > 0)) if y.size else math.nan,
        "exported_on_fraction": float(np.mean(p > 0)) if y.size else math.nan,
        "n_decisions": int(y.size),
    }


def calibrated_detectors(spec, patients: Sequence[Patient], dt_s: float, seed: int) -> list[DetectorConfig]:
    """The detectors a ``threshold`` / ``dual_threshold`` entry fits, exactly as ``evaluate`` fits them."""
    from agents.clinic import fit_detector, record_calibration_period

    records = record_calibration_period(list(patients), dt_s, seed, spec.clinic_settings())
    return [fit_detector(r, spec.detector_settings(), dt_s) for r in records]
