"""Share of headroom closed, for an evaluation: which controllers are baselines, the baselines' front, the bound's run.

``agents.headroom`` computes the shares from an ``EvaluationResult``; this
module decides what goes in:

- **the bound**: the best planner of the evaluation (``kind: planner``),
  or ``headroom.bound`` of the config. The planner re-plans on copies of
  every patient and costs about 15 s per patient in the long-term frame on
  a free core (docs/performance.md), so ``headroom.patients`` can measure
  the headroom on the cohort's first N patients only: then the bound runs
  on those patients, paired with the main run's values for them
  (``headroom_evaluation``), and the main tables keep every patient
  without the bound;
- **the baselines**: the hand-designed, non-privileged controllers
  (not ``run:``, ``config:``, planners or latent readers); the best by mean
  reward is the share's 0;
- **the baselines' front** for pain at matched energy: one monotone lower
  envelope over every baseline of the evaluation, read at each
  controller's mean energy (``experiments.evaluation.front_math``: adjacent
  settings joined by straight lines, flat above the most energetic one,
  paired per patient with weights from the means). The front is only as
  fine as the baselines evaluated: with the few default ones it is coarse,
  with the benchmark's grids (``experiments.evaluation.fronts``) it is the
  families' front.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.evaluation_result import EvaluationResult
from experiments.evaluation.front_math import ENERGY, PAIN, Front
from experiments.evaluation.plan import Plan

#: Controller kinds that are not hand-designed baselines: learned policies, exported configs, the bound itself.
NOT_BASELINES = ("run", "config", "planner")


def baseline_labels(kinds: dict[str, str], result: EvaluationResult) -> list[str]:
    """The hand-designed, non-privileged controllers among ``kinds`` (label -> kind), in order."""
    return [label for label, kind in kinds.items() if kind not in NOT_BASELINES and not result.uses_latent[label]]


def matched_front_pain(result: EvaluationResult, baselines: list[str]) -> dict[str, np.ndarray]:
    """Per label, each patient's pain on the baselines' front read at that label's mean energy (module docstring)."""
    front = Front("baselines", {label: {ENERGY: result.per_patient[label][ENERGY],
                                        PAIN: result.per_patient[label][PAIN]} for label in baselines})
    return {label: front.at(float(np.mean(result.per_patient[label][ENERGY]))).per_patient[PAIN]
            for label in result.labels}


def headroom_of(kinds: dict[str, str], result: EvaluationResult) -> list[dict[str, Any]]:
    """Shares of headroom closed when a planner is among ``kinds``' labels (the best planner is the bound); else []."""
    from agents.headroom import headroom_rows

    planners = [label for label, kind in kinds.items() if kind == "planner"]
    baselines = baseline_labels(kinds, result)
    if not planners or not baselines:
        return []
    bound = max(planners, key=lambda label: float(result.per_patient[label]["reward_per_day"].mean()))
    return headroom_rows(result, bound, baselines, kinds, matched_front_pain(result, baselines))


def headroom_evaluation(plan: Plan, result: EvaluationResult,
                        progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """``result`` (the plan's evaluation) on its first ``headroom_patients``, with the bound run on them beside it.

    Only the bound is simulated: with common random numbers keyed by
    patient, a controller's per-patient values do not depend on which
    other patients or controllers share its run, so the first patients'
    values of ``result`` are, bit for bit, those of a paired evaluation of
    those patients with the bound (``tests/test_headroom.py``).
    """
    from agents.evaluation import evaluate
    from agents.evaluation_pool import resolve_jobs

    n = plan.headroom_patients
    patients = plan.patients[:n]
    spec = plan.headroom_spec
    bound = evaluate([spec], patients, plan.settings, reward=plan.reward, seed=plan.seed, trace_patient=-1,
                     progress=progress, jobs=resolve_jobs(plan.jobs, n), warmup_days=plan.warmup_days)
    per_patient = {label: {m: v[:n] for m, v in result.per_patient[label].items()} for label in result.labels}
    per_patient[spec.label] = bound.per_patient[spec.label]
    return EvaluationResult(labels=[*result.labels, spec.label], patients=list(patients), per_patient=per_patient,
                            uses_latent=result.uses_latent | bound.uses_latent, horizon_days=result.horizon_days,
                            seed=result.seed, warmup_days=result.warmup_days)
