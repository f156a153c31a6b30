"""Baseline fronts: what the hand-designed controllers trade between pain and energy, in one paired evaluation.

Three families, each over a grid of its parameters (``FrontGrid``), read
from ``conf/controller/`` with one parameter changed:

- ``threshold`` (``threshold.yaml``): ``target_duty`` over 0.05 ... 0.95, the
  clinic's single threshold at that calibration-week duty;
- ``cycling`` (``cycling.yaml``): every period (10 min, 30 min, 1 h, 2 h) at
  every duty (0.2, 0.35, 0.5, 0.7), ``on_s = duty x period``;
- ``dual_threshold`` (``dual_threshold.yaml``): ``target_duty`` over 0.2 ...
  0.8, band 0.2;

beside the references ``off``, ``continuous`` and the calibrated
``threshold`` (its file as it is). ``evaluate_fronts`` runs all of them,
and any other controller given (a trained policy), in *one*
``agents.evaluation.evaluate`` call on a cohort in a frame (default: 100
``test`` patients, ``long_term``: 90 days of warm-up, 28 scored), so every
difference is paired. ``BaselineFronts.front_at(energy)`` reads each
family's front at an energy and ``compare`` puts a policy against each;
the arithmetic (monotone lower envelope, paired readings) is
``experiments.evaluation.front_math``'s. ``off`` and ``continuous`` are
one-point fronts: flat to the right of their energy, absent below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.controllers import ControllerSpec
from agents.evaluation_result import EvaluationResult
from experiments.common.controller_entries import load_controller
from experiments.common.frames import frame_days as frame_days  # importable from here too
from experiments.evaluation.front_math import (
    ENERGY,
    PAIN,
    Front,
    FrontComparison,
    FrontReading,
    compare_with_front,
)
from simenv.errors import PainloopError

FAMILIES = ("threshold", "cycling", "dual_threshold")
#: Controllers of ``conf/controller/`` evaluated as they are: one-point fronts (off, continuous) and the
#: calibrated threshold the learning benchmark's third goal compares with.
REFERENCES = ("off", "continuous", "threshold")
POINT_FRONTS = ("off", "continuous")
#: Per-patient metrics a front carries (and interpolates).
FRONT_METRICS = (ENERGY, PAIN, "high_pain_fraction", "reward_per_day", "duty_cycle", "battery_life_years")


@dataclass(frozen=True)
class FrontGrid:
    """The parameter grid of each family (module docstring); ``PL-CONTROLLER-PARAM`` on a value out of range."""

    threshold_duties: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    cycling_periods_s: tuple[float, ...] = (600.0, 1800.0, 3600.0, 7200.0)
    cycling_duties: tuple[float, ...] = (0.2, 0.35, 0.5, 0.7)
    dual_duties: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)

    def __post_init__(self) -> None:
        for name in ("threshold_duties", "cycling_duties", "dual_duties"):
            bad = [d for d in getattr(self, name) if not 0.0 < d < 1.0]
            if bad:
                raise PainloopError("PL-CONTROLLER-PARAM", f"front grid {name}={bad}; allowed: duties in (0, 1).")
        bad = [p for p in self.cycling_periods_s if not p > 0]
        if bad:
            raise PainloopError("PL-CONTROLLER-PARAM", f"front grid cycling_periods_s={bad}; allowed: periods > 0 s "
                                "whose on and off parts are at least one simulator step.")

    @property
    def size(self) -> int:
        """Number of controllers the grid evaluates (references included)."""
        return (len(self.threshold_duties) + len(self.cycling_periods_s) * len(self.cycling_duties)
                + len(self.dual_duties) + len(REFERENCES))


#: A small grid for plumbing checks (``--quick``), not for conclusions.
QUICK_GRID = FrontGrid(threshold_duties=(0.3, 0.7), cycling_periods_s=(600.0, 1800.0), cycling_duties=(0.35, 0.7),
                       dual_duties=(0.5,))


def threshold_label(duty: float) -> str:
    return f"threshold_duty{duty:g}"


def cycling_label(period_s: float, duty: float) -> str:
    return f"cycling_{period_s / 60:g}min_duty{duty:g}"


def dual_label(duty: float) -> str:
    return f"dual_threshold_duty{duty:g}"


def controller_from_file(name: str, label: str, **params: Any) -> ControllerSpec:
    """``conf/controller/<name>.yaml`` (the evaluate command's reader) labelled ``label``, ``params`` overridden."""
    spec = load_controller(name, label)
    return ControllerSpec(label, spec.kind, {**spec.params, **params})


def front_specs(grid: FrontGrid = FrontGrid()) -> dict[str, list[ControllerSpec]]:
    """Each family's controllers in grid order, and ``references`` (off, continuous, threshold as in their files)."""
    cycling = [controller_from_file("cycling", cycling_label(p, d), on_s=round(d * p, 6), off_s=round((1 - d) * p, 6))
               for p in grid.cycling_periods_s for d in grid.cycling_duties]
    return {
        "threshold": [controller_from_file("threshold", threshold_label(d), target_duty=float(d)) for d in grid.threshold_duties],
        "cycling": cycling,
        "dual_threshold": [controller_from_file("dual_threshold", dual_label(d), target_duty=float(d)) for d in grid.dual_duties],
        "references": [load_controller(name, name) for name in REFERENCES],
    }


@dataclass
class BaselineFronts:
    """The families' fronts from one paired evaluation, the references, and how they were judged."""

    result: EvaluationResult  # every controller of the evaluation, extra ones (policies) included
    fronts: dict[str, Front]  # threshold, cycling, dual_threshold, then the one-point fronts off and continuous
    frame_text: str
    cohort: str
    wall_s: float = float("nan")
    family_labels: dict[str, list[str]] = field(default_factory=dict)

    def front_at(self, energy_j_per_day: float) -> dict[str, FrontReading]:
        """Each front read at ``energy_j_per_day`` (``front_math``: inside, above or below its range)."""
        return {name: front.at(energy_j_per_day) for name, front in self.fronts.items()}

    def compare(self, label: str, energy_tolerance: float = 0.05, metric: str = PAIN) -> list[FrontComparison]:
        """The evaluated controller ``label`` against every front at its energy (+ ``energy_tolerance``), paired."""
        if label not in self.result.per_patient:
            raise PainloopError("PL-CONTROLLER-LABEL", f"'{label}' was not evaluated with the fronts; "
                                f"evaluated: {self.result.labels}.")
        return [compare_with_front(front, label, self.result.per_patient[label], energy_tolerance, metric)
                for front in self.fronts.values()]

    def rows(self) -> list[dict[str, Any]]:
        """One row per baseline setting: family, label, means of ``FRONT_METRICS``, on the envelope or not."""
        out = []
        for family, labels in self.family_labels.items():
            on = set(self.fronts[family].envelope()) if family in self.fronts else set()
            for label in labels:
                values = self.result.per_patient[label]
                out.append({"family": family, "label": label,
                            **{m: float(values[m].mean()) for m in FRONT_METRICS},
                            "on_front": label in on if family in self.fronts else None})
        return out


def fronts_from_result(result: EvaluationResult, specs: dict[str, list[ControllerSpec]], frame_text: str,
                       cohort: str, wall_s: float = float("nan")) -> BaselineFronts:
    """The fronts of ``specs`` (``front_specs``) from a paired evaluation that ran them."""
    fronts = {}
    families = {f: [s.label for s in specs[f]] for f in FAMILIES}
    families["references"] = [s.label for s in specs["references"]]
    for family in (*FAMILIES, *POINT_FRONTS):
        labels = families[family] if family in FAMILIES else [family]
        fronts[family] = Front(family, {label: {m: result.per_patient[label][m] for m in FRONT_METRICS}
                                        for label in labels})
    return BaselineFronts(result, fronts, frame_text, cohort, wall_s, families)


def evaluate_fronts(
    cohort: str = "test",
    n_patients: int = 100,
    frame: str = "long_term",
    *,
    seed: int = 0,
    jobs: int = 2,
    grid: FrontGrid = FrontGrid(),
    extra_specs: Sequence[ControllerSpec] = (),
    warmup_days: float | None = None,
    horizon_days: float | None = None,
    dt_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> BaselineFronts:
    """Evaluate every baseline of ``grid`` and ``extra_specs`` paired on ``n_patients`` of ``cohort``; the fronts.

    ``frame`` names the frame (``agents.evaluation_frames``); ``warmup_days``
    and ``horizon_days`` override its values. Settings as
    ``experiments.evaluate``'s defaults: on/off, ``dt_s`` 30 s, naive start.
    ``jobs`` processes share the patients (same results). Extra specs are
    evaluated beside the baselines, so ``BaselineFronts.compare(label)``
    pairs them with the fronts.
    """
    from agents.evaluation import evaluate
    from agents.evaluation_frames import describe_frame
    from agents.evaluation_pool import resolve_jobs
    from simenv.cohort import load_preset
    from simenv.settings import EnvSettings

    warm, days = frame_days(frame, warmup_days, horizon_days)
    settings = EnvSettings(action_mode="on_off", dt_s=float(dt_s), horizon_days=days, initial_state="naive")
    specs = front_specs(grid)
    every = [s for group in specs.values() for s in group] + list(extra_specs)
    patients = load_preset(cohort).sample(n_patients)
    t0 = time.perf_counter()
    result = evaluate(every, patients, settings, seed=seed, progress=progress, jobs=resolve_jobs(jobs, len(patients)),
                      warmup_days=warm)
    return fronts_from_result(result, specs, describe_frame(warm, days, "naive"), cohort, time.perf_counter() - t0)


def render_fronts(fronts: BaselineFronts) -> str:
    """The fronts as a console table: every setting's energy, pain, time in high pain, reward; '*' on the envelope."""
    lines = [f"baseline fronts: {len(fronts.result.patients)} '{fronts.cohort}' patients, paired; {fronts.frame_text}",
             f"{'family':<15} {'setting':<28} {'J/day':>7} {'pain NRS':>8} {'high pain':>9} {'reward/day':>11} "
             f"{'duty':>5}  front"]
    for r in fronts.rows():
        mark = "" if r["on_front"] is None else ("*" if r["on_front"] else "")
        lines.append(f"{r['family']:<15} {r['label']:<28} {r[ENERGY]:7.2f} {r[PAIN]:8.3f} "
                     f"{r['high_pain_fraction']:9.3f} {r['reward_per_day']:11,.0f} {r['duty_cycle']:5.2f}  {mark}")
    return "\n".join(lines)
