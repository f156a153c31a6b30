"""A budget sweep's table: per budget, did the learned policy keep it, and is its pain at or below every front?

A training run carries an energy budget when its resolved config
(``run.json``) has ``budget.energy_j_per_day``, or its Hydra overrides set
it. For each such run and each evaluated model (best, final), from the
report's common paired evaluation (``experiments.sweeps.paired``, the
report's frame, long-term by default):

- its mean stimulation energy against the budget: met when at most
  ``budget x (1 + energy_tolerance)`` (5% by default);
- its mean pain against each baseline front read at its energy
  (``x (1 + energy_tolerance)``, the envelope's lowest value within +-5%;
  ``experiments.evaluation.front_math``), paired per patient with a 95%
  interval; a front that starts above that energy is not compared;
- ``miss``: what failed, in words (energy over budget by how much, which
  front is lower by how much), empty when both hold.

Runs without a budget are not listed; without a common evaluation the
table says so per run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from experiments.common.run_folder import RUN_FILE
from experiments.sweeps.paired import model_label
from experiments.sweeps.runs import ENERGY, PAIN, SweepRun, as_float

if TYPE_CHECKING:
    from experiments.evaluation.fronts import BaselineFronts

BUDGET_KEY = "budget.energy_j_per_day"


def run_budget(run: SweepRun) -> float | None:
    """The run's energy budget in J/day (resolved config first, then overrides); None when it has none."""
    try:
        value: Any = json.loads((run.path / RUN_FILE).read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        value = None
    for part in BUDGET_KEY.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        value = run.overrides.get(BUDGET_KEY)
    budget = as_float(value)
    return budget if math.isfinite(budget) and budget > 0 else None


def budget_rows(runs: Sequence[SweepRun], fronts: BaselineFronts | None, models: Sequence[str],
                energy_tolerance: float = 0.05) -> list[dict[str, Any]]:
    """One row per budgeted training run and model (module docstring), flat for ``budgets.csv``."""
    rows = []
    budgeted = [(r, b) for r in runs if r.command == "train" for b in [run_budget(r)] if b is not None]
    for run, budget in sorted(budgeted, key=lambda rb: rb[1]):
        for model in models:
            label = model_label(run.name, model)
            row: dict[str, Any] = {"run": run.name, "model": model, "budget_j_per_day": budget}
            if fronts is None or label not in fronts.result.per_patient:
                rows.append(row | {"evaluated": False, "miss": "not evaluated (no common evaluation or no model)"})
                continue
            values = fronts.result.per_patient[label]
            energy = float(values[ENERGY].mean())
            row |= {"evaluated": True, ENERGY: energy, "energy_over_budget": energy / budget - 1.0,
                    "budget_met": bool(energy <= budget * (1.0 + energy_tolerance)), PAIN: float(values[PAIN].mean())}
            misses = [] if row["budget_met"] else [f"energy {row['energy_over_budget']:+.0%} over the budget"]
            compared = above = 0
            for c in fronts.compare(label, energy_tolerance=energy_tolerance):
                row |= {f"{c.family}_front_pain_nrs": c.front_value, f"{c.family}_diff_nrs": c.diff,
                        f"{c.family}_diff_ci_low": c.diff_ci_low, f"{c.family}_diff_ci_high": c.diff_ci_high,
                        f"{c.family}_verdict": c.verdict}
                compared += c.verdict != "not compared"
                above += c.verdict == "above"
                if c.verdict == "above":
                    misses.append(f"{c.family} front lower by {c.diff:.3f} NRS at {c.read_at_j_per_day:.2f} J/day")
            row["at_or_below_every_front"] = bool(compared) and not above
            row["miss"] = "; ".join(misses)
            rows.append(row)
    return rows


def render_budgets(rows: Sequence[dict[str, Any]], families: Sequence[str], frame_text: str) -> list[str]:
    """The console form: per budget, energy (met?), pain and its difference to each front."""
    if not rows:
        return []
    lines = [f"budgets ({frame_text}; energy met within the tolerance; pain - front at the policy's energy, "
             "paired mean [95% interval]):"]
    for r in rows:
        head = f"  {r['run']} ({r['model']}): budget {r['budget_j_per_day']:.2f} J/day"
        if not r["evaluated"]:
            lines.append(f"{head}: {r['miss']}")
            continue
        lines.append(f"{head}, energy {r[ENERGY]:.2f} ({r['energy_over_budget']:+.0%}) -> "
                     f"{'met' if r['budget_met'] else 'MISSED'}; pain {r[PAIN]:.3f} NRS -> "
                     f"{'at or below every front' if r['at_or_below_every_front'] else 'missed: ' + r['miss']}")
        for f in families:
            if r.get(f"{f}_verdict") in (None, "not compared"):
                continue
            lines.append(f"    {f:<15} front {r[f'{f}_front_pain_nrs']:.3f}, diff {r[f'{f}_diff_nrs']:+.3f} "
                         f"[{r[f'{f}_diff_ci_low']:+.3f}, {r[f'{f}_diff_ci_high']:+.3f}] -> {r[f'{f}_verdict']}")
    return lines
