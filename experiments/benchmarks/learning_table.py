"""The learning section's printed report: trainings, threshold tuning, the paired test table and the goal."""

from __future__ import annotations

from collections.abc import Sequence

from experiments.benchmarks.learning import MAX_PAIN_WORSE_NRS, REFERENCE, TUNED


def _ci(row: dict, metric: str, digits: int, suffix: str = "") -> str:
    m, lo, hi = row[f"{metric}{suffix}"], row[f"{metric}{suffix}_ci_low"], row[f"{metric}{suffix}_ci_high"]
    return f"{m:,.{digits}f} [{lo:,.{digits}f}, {hi:,.{digits}f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
           for r in [header, *rows]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def render_learning(results: dict) -> str:
    """The section's tables, as printed after a run."""
    lines = []
    tr = results["trainings"]
    lines.append("trainings (experiment '{}'; wall s: the whole command; steps/s learn(): budget / SB3 learn() wall, "
                 "validations included; steps/s updates: median between validations, validations excluded; "
                 "best at: the step of the model evaluated below (the best by validation); last val duty: at the last "
                 "validation):".format(results["options"]["experiment"]))
    lines += _table(
        ("run", "steps", "state", "wall s", "steps/s learn()", "steps/s updates", "best val reward/day", "best at",
         "last val duty", "limit"),
        [(t["label"], f"{t['timesteps'] or 0:,}", str(t["state"]) + (" (reused)" if t["reused"] else ""),
          f"{t['wall_s'] or float('nan'):.0f}",
          f"{t['train_fps'] or float('nan'):,.0f}", f"{t['median_interval_fps'] or float('nan'):,.0f}",
          f"{t['best_validation_reward_per_day'] or float('nan'):,.0f}",
          "-" if t.get("best_at_timesteps") is None else f"{t['best_at_timesteps']:,}",
          f"{t['final_validation_duty_cycle'] if t['final_validation_duty_cycle'] is not None else float('nan'):.2f}",
          "OVER" if t["over_time_limit"] else "ok")
         for t in tr],
    )
    tu = results["threshold_tuning"]
    lines.append("")
    lines.append(f"threshold tuned on {tu['n_patients']} validation patients x {tu['days']:g} days: "
                 + ", ".join(f"{r['target_duty']:g}: {r['reward_per_day']:,.0f}" for r in tu["sweep"])
                 + f" -> target_duty {tu['best_target_duty']:g}" + (" (edge of the grid)" if tu["on_grid_edge"] else ""))
    ev = results["evaluation"]
    lines.append("")
    lines.append(f"test cohort: {ev['n_patients']} patients x {ev['days']:g} days, seed {ev['seed']}, paired; "
                 "mean [95% interval across patients]")
    lines += _table(
        ("controller", "reward/day", "mean pain NRS", "stim energy J/day", "duty"),
        [(r["controller"], _ci(r, "reward_per_day", 0), _ci(r, "mean_pain_nrs", 3), _ci(r, "stim_energy_j_per_day", 2),
          _ci(r, "duty_cycle", 2)) for r in ev["controllers"]],
    )
    goal = {g["controller"]: g for g in ev["goal"]}
    diffs = [d for d in ev["paired_differences"][REFERENCE] if d["controller"] in goal]
    lines.append("")
    lines.append("learned - calibrated threshold, paired mean [95% interval]; goal: reward interval > 0, "
                 f"pain <= +{MAX_PAIN_WORSE_NRS} NRS, energy <= 0")
    lines += _table(
        ("run", "d reward/day", "d pain NRS", "d energy J/day", "goal"),
        [(d["controller"], _ci(d, "reward_per_day", 0, "_diff"), _ci(d, "mean_pain_nrs", 3, "_diff"),
          _ci(d, "stim_energy_j_per_day", 2, "_diff"),
          "MET" if goal[d["controller"]]["met"] else "missed: " + ", ".join(
              k for k in ("reward_interval_above_0", "pain_at_most_0.2_worse", "energy_no_higher")
              if not goal[d["controller"]][k]))
         for d in diffs],
    )
    tuned = {d["controller"]: d for d in ev["paired_differences"][TUNED]}
    lines.append("")
    lines.append(f"learned - tuned threshold (target_duty {ev['threshold_tuned_target_duty']:g}), reward/day: "
                 + "; ".join(f"{lab} {_ci(tuned[lab], 'reward_per_day', 0, '_diff')}" for lab in goal))
    if ev["not_evaluated"]:
        lines.append(f"not evaluated (no model): {', '.join(ev['not_evaluated'])}")
    return "\n".join(lines)
