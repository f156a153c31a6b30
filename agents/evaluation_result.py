"""What a paired evaluation returns, and the statistics read from it.

``EvaluationResult`` holds per-patient metrics per controller label (with
traces, fitted detectors and recorded actions); ``merge_results`` joins the
results of contiguous patient groups (``agents.evaluation_pool``) into one;
``summarise`` and ``paired_differences`` make the table rows. Kept apart from
``agents.evaluation`` (which runs the simulation) so that the worker pool
and the reports need the result type without the evaluation engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agents.monthly_means import MonthlyMeans, concat_patients
from simenv.cohort import Patient
from simenv.errors import PainloopError


@dataclass
class EvaluationResult:
    """Per-patient metrics per controller label, plus traces and fitted detectors."""

    labels: list[str]
    patients: list[Patient]
    per_patient: dict[str, dict[str, np.ndarray]]  # label -> metric -> (n_patients,)
    uses_latent: dict[str, bool]
    horizon_days: float
    seed: int
    traces: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    detectors: dict[str, list] = field(default_factory=dict)
    #: With ``record_actions=True``: label -> commanded amplitude (mA) per patient and decision,
    #: shape (n_patients, n_decisions).
    actions: dict[str, np.ndarray] = field(default_factory=dict)
    #: Unscored days simulated before the scored window of ``horizon_days`` (0: the short frame).
    warmup_days: float = 0.0
    #: Means over 30-day blocks of the whole run, warm-up included (``agents.monthly_means``).
    monthly: MonthlyMeans = field(default_factory=MonthlyMeans)


def merge_results(results: Sequence[EvaluationResult], patients: list[Patient]) -> EvaluationResult:
    """One ``EvaluationResult`` from the groups' results, patients in order."""
    first = results[0]
    per_patient = {
        label: {metric: np.concatenate([r.per_patient[label][metric] for r in results]) for metric in first.per_patient[label]}
        for label in first.labels
    }
    traces: dict[str, dict[str, np.ndarray]] = next((r.traces for r in results if r.traces), {})
    detectors = {label: [d for r in results for d in r.detectors[label]] for label in first.detectors}
    actions = {label: np.concatenate([r.actions[label] for r in results], axis=0) for label in first.actions}
    return EvaluationResult(
        labels=list(first.labels),
        patients=patients,
        per_patient=per_patient,
        uses_latent=dict(first.uses_latent),
        horizon_days=first.horizon_days,
        seed=first.seed,
        traces=traces,
        detectors=detectors,
        actions=actions,
        warmup_days=first.warmup_days,
        monthly=concat_patients([r.monthly for r in results]),
    )


def summarise(result: EvaluationResult) -> list[dict]:
    """Table rows: per controller and metric, the mean and 95% interval across patients."""
    from scipy import stats

    rows = []
    n = len(result.patients)
    tcrit = float(stats.t.ppf(0.975, n - 1)) if n > 1 else math.nan
    for label in result.labels:
        row = {"controller": label, "uses_latent": result.uses_latent[label], "n_patients": n}
        for metric, values in result.per_patient[label].items():
            mean = float(np.mean(values))
            half = tcrit * float(np.std(values, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
            row[metric] = mean
            row[f"{metric}_ci_low"] = mean - half
            row[f"{metric}_ci_high"] = mean + half
        rows.append(row)
    return rows


def paired_differences(result: EvaluationResult, reference: str) -> list[dict]:
    """Per controller and metric: mean of (controller - reference) per patient and its paired 95% interval."""
    from scipy import stats

    if reference not in result.per_patient:
        raise PainloopError(
            "PL-REFERENCE-UNKNOWN", f"reference '{reference}' is not a controller label; available: {result.labels}."
        )
    n = len(result.patients)
    tcrit = float(stats.t.ppf(0.975, n - 1)) if n > 1 else math.nan
    rows = []
    ref = result.per_patient[reference]
    for label in result.labels:
        row = {"controller": label, "reference": reference, "uses_latent": result.uses_latent[label]}
        for metric, values in result.per_patient[label].items():
            diff = values - ref[metric]
            mean = float(np.mean(diff))
            half = tcrit * float(np.std(diff, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
            row[f"{metric}_diff"] = mean
            row[f"{metric}_diff_ci_low"] = mean - half
            row[f"{metric}_diff_ci_high"] = mean + half
        rows.append(row)
    return rows
