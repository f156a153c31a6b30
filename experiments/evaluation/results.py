"""One paired evaluation of a plan: the engine's result, its summary and paired differences, its files and text.

``evaluate_plan`` runs ``agents.evaluation.evaluate`` on a checked
``Plan`` (``experiments.evaluation.plan``) and keeps what every output is
built from in an ``Evaluation``: ``write_evaluation`` writes its tables and
figures (``experiments.evaluation.report`` and ``.plots``), ``report_text``
gives the tables ``python -m experiments.evaluate`` prints. Plain Python,
no Hydra, no run folder (``experiments.evaluation.run`` adds that).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation import EvaluationResult
from experiments.evaluation import report as evaluation_report
from experiments.evaluation.headroom import headroom_evaluation, headroom_of
from experiments.evaluation.plan import Plan


def plan_title(plan: Plan) -> str:
    """One line naming the evaluation: controllers, patients, cohort, scored days (and warm-up) and seed."""
    days = f"{plan.settings.horizon_days:g} day(s)"
    if plan.warmup_days > 0:
        days = f"{plan.warmup_days:g} + {days}"
    return f"{len(plan.specs)} controllers x {plan.n_patients} patients of cohort '{plan.cohort}', {days}, seed {plan.seed}"


@dataclass
class Evaluation:
    """A paired evaluation: its plan, the engine's result, one summary row and one paired row per controller."""

    plan: Plan
    result: EvaluationResult
    summary: list[dict[str, Any]]  # metrics.csv: mean and 95% interval per controller, in entry order
    paired: list[dict[str, Any]]  # paired.csv: differences to the reference with paired 95% intervals
    #: headroom.csv: each controller's share of the headroom up to a planner (``agents.headroom``); empty
    #: without a planner among the controllers
    headroom: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.plan.reference

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.plan.specs]

    @property
    def objective(self) -> float:
        """What the command returns to a sweeper: the first controller's mean reward per day."""
        return float(self.summary[0]["reward_per_day"])

    @property
    def title(self) -> str:
        return plan_title(self.plan)

    @property
    def meta(self) -> dict[str, Any]:
        """The settings every JSON table of the run folder repeats."""
        settings = self.plan.settings
        return {
            "cohort": self.plan.cohort,
            "n_patients": self.plan.n_patients,
            "frame": self.plan.frame,
            "frame_text": self.plan.frame_text,
            "warmup_days": self.plan.warmup_days,
            "horizon_days": settings.horizon_days,
            "dt_s": settings.dt_s,
            "initial_state": settings.initial_state,
            "seed": self.plan.seed,
            "reference": self.plan.reference,
            "controllers_in_order": self.labels,
            "uses_latent": self.result.uses_latent,
        }


def evaluate_plan(
    plan: Plan,
    show_progress: bool | None = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Run ``plan`` (every controller on the same patients and noise) and summarise it.

    ``show_progress``: a progress bar on stderr (``None``: only on a
    terminal); ``on_progress(done_steps, total_steps)`` is called as the
    simulation advances.
    """
    from tqdm import tqdm

    from agents.evaluation import evaluate, paired_differences, summarise

    def new_bar(desc: str) -> Any:
        return tqdm(total=None, unit="step", unit_scale=True, desc=desc,
                    disable=None if show_progress is None else not show_progress, file=sys.stderr)

    bar = new_bar("calibrating and simulating")

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if on_progress is not None:
            on_progress(done, total)

    try:
        result = evaluate(
            plan.specs,
            plan.patients,
            plan.settings,
            reward=plan.reward,
            seed=plan.seed,
            trace_patient=plan.trace_patient,
            progress=progress,
            extra_specs=plan.extra_specs,
            jobs=plan.jobs,
            warmup_days=plan.warmup_days,
        )
    finally:
        bar.close()
    summary = summarise(result)
    paired = paired_differences(result, plan.reference)
    kinds = {s.label: s.kind for s in plan.specs}
    if plan.headroom_spec is None:
        return Evaluation(plan, result, summary, paired, headroom_of(kinds, result))
    bar = new_bar(f"headroom bound on {plan.headroom_patients} patients")  # the progress callback's bar from here on
    try:
        bounded = headroom_evaluation(plan, result, progress)
    finally:
        bar.close()
    kinds[plan.headroom_spec.label] = plan.headroom_spec.kind
    return Evaluation(plan, result, summary, paired, headroom_of(kinds, bounded))


def write_evaluation(evaluation: Evaluation, folder: str | Path) -> list[Path]:
    """The tables (metrics, per_patient, monthly, paired, detectors) and figures (trace_<label>, bars, pareto,
    monthly) in ``folder``."""
    # matplotlib is loaded when a figure is drawn, not when the module is imported.
    from experiments.evaluation import plots as evaluation_plots

    folder = Path(folder)
    e = evaluation
    written = evaluation_report.write_tables(folder, e.result, e.summary, e.paired, e.reference, e.meta)
    if e.headroom:
        written.append(evaluation_report.write_headroom(folder, e.headroom))
    written += evaluation_plots.write_plots(folder, e.result, e.summary, e.paired, e.reference,
                                            e.plan.trace_patient, f"{e.title}\n{e.plan.frame_text}")
    return written


def report_text(evaluation: Evaluation, paired: bool = True) -> str:
    """The tables the command prints: each controller's key metrics, then the paired differences to the reference.

    Means with the half-width of their 95% interval across patients;
    latent-reading controllers are marked ``(latent)``.
    """
    text = evaluation.plan.frame_text + "\n" + evaluation_report.console_table(evaluation.summary)
    if paired:
        text += "\n\n" + evaluation_report.console_paired(evaluation.paired, evaluation.reference)
    if evaluation.headroom:
        text += "\n\n" + evaluation_report.console_headroom(evaluation.headroom, evaluation.plan.n_patients)
    return text
