"""The learning section's printed report: trainings and their time to the goal, threshold tuning, the paired test
table, the baseline fronts, and per run the RL-training issue's goal and the long-term issue's three.

Every evaluation table names its frame (``long_term`` or ``week``, or custom days)."""

from __future__ import annotations

from collections.abc import Sequence

from experiments.benchmarks.learning_headroom import render_headroom
from experiments.benchmarks.learning_judge import (
    FRONT_ENERGY_TOLERANCE,
    MAX_ENERGY_SHARE_OF_CONTINUOUS,
    MAX_PAIN_WORSE_NRS,
    REFERENCE,
    TUNED,
)


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
                 "best at / best at s: the step and training wall time of the model evaluated below (the best by "
                 "validation): the time to the goal; last val duty: at the last validation):"
                 .format(results["options"]["experiment"]))
    lines += _table(
        ("run", "steps", "state", "wall s", "steps/s learn()", "steps/s updates", "best val reward/day", "best at",
         "best at s", "last val duty", "limit"),
        [(t["label"], f"{t['timesteps'] or 0:,}", str(t["state"]) + (" (reused)" if t["reused"] else ""),
          f"{t['wall_s'] or float('nan'):.0f}",
          f"{t['train_fps'] or float('nan'):,.0f}", f"{t['median_interval_fps'] or float('nan'):,.0f}",
          f"{t['best_validation_reward_per_day'] or float('nan'):,.0f}",
          "-" if t.get("best_at_timesteps") is None else f"{t['best_at_timesteps']:,}",
          "-" if t.get("best_at_wall_s") is None else f"{t['best_at_wall_s']:.0f}",
          f"{t['final_validation_duty_cycle'] if t['final_validation_duty_cycle'] is not None else float('nan'):.2f}",
          "OVER" if t["over_time_limit"] else "ok")
         for t in tr],
    )
    tu = results["threshold_tuning"]
    lines.append("")
    lines.append(f"threshold tuned on {tu['n_patients']} validation patients ({tu['frame_text']}): "
                 + ", ".join(f"{r['target_duty']:g}: {r['reward_per_day']:,.0f}" for r in tu["sweep"])
                 + f" -> target_duty {tu['best_target_duty']:g}" + (" (edge of the grid)" if tu["on_grid_edge"] else ""))
    ev = results["evaluation"]
    lines.append("")
    lines.append(f"test cohort: {ev['n_patients']} patients, seed {ev['seed']}, paired; {ev['frame_text']}; "
                 "mean [95% interval across patients]")
    lines += _table(
        ("controller", "reward/day", "mean pain NRS", "stim energy J/day", "duty", "time in high pain"),
        [(r["controller"], _ci(r, "reward_per_day", 0), _ci(r, "mean_pain_nrs", 3), _ci(r, "stim_energy_j_per_day", 2),
          _ci(r, "duty_cycle", 2), _ci(r, "high_pain_fraction", 3)) for r in ev["controllers"]],
    )
    goal = {g["controller"]: g for g in ev["goal"]}
    diffs = [d for d in ev["paired_differences"][REFERENCE] if d["controller"] in goal]
    lines.append("")
    lines += _fronts_table(ev)
    lines.append("")
    lines += _long_term_goals(ev, results["trainings"])
    lines.append("")
    lines.append(f"learned - calibrated threshold, paired mean [95% interval] ({ev['frame_text']}); RL-training "
                 f"issue's goal: reward interval > 0, pain <= +{MAX_PAIN_WORSE_NRS} NRS, energy <= 0")
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
    headroom = render_headroom(results.get("headroom") or {}, ev["frame_text"], ev["n_patients"])
    if headroom:
        lines += ["", *headroom]
    if ev["not_evaluated"]:
        lines.append(f"not evaluated (no model): {', '.join(ev['not_evaluated'])}")
    return "\n".join(lines)


def _fronts_table(ev: dict) -> list[str]:
    """The baseline settings, '*' on their family's front (the monotone lower envelope)."""
    lines = [f"baseline fronts on test ({ev['frame_text']}); '*': on the family's front"]
    lines += _table(
        ("family", "setting", "J/day", "pain NRS", "high pain", "reward/day", "duty", "front"),
        [(r["family"], r["label"], f"{r['stim_energy_j_per_day']:.2f}", f"{r['mean_pain_nrs']:.3f}",
          f"{r['high_pain_fraction']:.3f}", f"{r['reward_per_day']:,.0f}", f"{r['duty_cycle']:.2f}",
          "*" if r["on_front"] else "")
         for r in ev["fronts"]],
    )
    return lines


def _mark(met: bool) -> str:
    return "MET" if met else "missed"


def _long_term_goals(ev: dict, trainings: list[dict]) -> list[str]:
    """Per run: the long-term issue's goals (i), (ii), (iii) with their paired intervals, and the time to the goal."""
    lines = [f"long-term issue's goals per run ({ev['frame_text']}; paired mean [95% interval]): "
             f"(i) pain - continuous's interval < 0 with energy <= {MAX_ENERGY_SHARE_OF_CONTINUOUS:.0%} of "
             f"continuous's; (ii) pain - each baseline front's at the run's energy +{FRONT_ENERGY_TOLERANCE:.0%} "
             "<= 0 (interpolated, paired; a front starting above that energy is not compared); "
             "(iii) time in high pain - calibrated threshold's <= 0"]
    timing = {t["label"]: t for t in trainings}
    for g in ev["long_term_goals"]:
        b, f, h = g["beats_continuous"], g["front"], g["high_pain_vs_threshold"]
        t = timing.get(g["controller"], {})
        steps = "-" if t.get("best_at_timesteps") is None else f"{t['best_at_timesteps']:,}"
        wall = "-" if t.get("best_at_wall_s") is None else f"{t['best_at_wall_s']:.0f} s"
        lines.append(f"{g['controller']}: {g['energy_j_per_day']:.2f} J/day, pain {g['mean_pain_nrs']:.3f} NRS -> "
                     f"{'ALL MET' if g['met'] else 'not all met'}; time to the goal: best model at {steps} steps, "
                     f"{wall} into training (training wall {t.get('wall_s') or float('nan'):.0f} s)")
        pain = b["pain_vs_continuous"]
        lines.append(f"  (i) pain - continuous {pain['diff']:+.3f} [{pain['diff_ci_low']:+.3f}, "
                     f"{pain['diff_ci_high']:+.3f}] NRS, energy {b['energy_share_of_continuous']:.0%} of "
                     f"continuous's -> {_mark(b['met'])}")
        for c in f["comparisons"]:
            where = (f"read at {c['read_at_j_per_day']:.2f} J/day ({c['status']}): front {c['front_value']:.3f}, "
                     f"diff {c['diff']:+.3f} [{c['diff_ci_low']:+.3f}, {c['diff_ci_high']:+.3f}]"
                     if c["verdict"] != "not compared" else
                     f"front starts above {c['read_at_j_per_day']:.2f} J/day")
            lines.append(f"  (ii) {c['family']:<15} {where} -> {c['verdict']}")
        lines.append(f"  (ii) -> {_mark(f['met'])}")
        lines.append(f"  (iii) time in high pain - threshold {h['diff']:+.4f} [{h['diff_ci_low']:+.4f}, "
                     f"{h['diff_ci_high']:+.4f}] -> {_mark(h['met'])}")
    return lines
