"""Judging the learning section's trained runs: the threshold tuned on validation, then one paired test evaluation.

Both evaluations use the section's frame (``LearningOptions.frame``, default
``long_term``: 90 days of unscored warm-up from a naive start, 28 scored
days; ``week``: 7 days, no warm-up), and every table says which.

1. ``tune_threshold``: the calibrated threshold's ``target_duty`` swept on
   the ``validation`` cohort; the best mean reward per day becomes
   ``threshold_tuned``.
2. ``evaluate_runs``: on the ``test`` cohort, the baseline fronts
   (``experiments.evaluation.fronts``: threshold over its duty grid, cycling
   over periods and duties, dual threshold, with off, continuous and the
   calibrated threshold), ``threshold_tuned`` and every trained run (its best
   model), all in *one* paired evaluation. Per run, two sets of goals:

   - the RL-training issue's (``goal_check``): the paired interval of
     (learned - calibrated threshold) reward per day above 0, mean pain at
     most 0.2 NRS worse, energy no higher;
   - the long-term issue's (``long_term_goals``): (i) mean pain below
     continuous stimulation's (the paired interval's upper end < 0) with at
     most 60% of its mean energy; (ii) at the run's energy (+5%, the
     envelope's lowest value within +-5%), the run's mean pain at or below
     every front's (paired, interpolated; a front that starts above that
     energy is not compared); (iii) time in high pain (>= 7 NRS) at or below
     the calibrated threshold's (paired mean difference <= 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.benchmarks.learning import LearningOptions

REFERENCE = "threshold"
TUNED = "threshold_tuned"
#: The RL-training issue's goal against the calibrated threshold.
MAX_PAIN_WORSE_NRS = 0.2
#: The long-term issue's goals: energy share of continuous's, the front reading's energy tolerance.
MAX_ENERGY_SHARE_OF_CONTINUOUS = 0.6
FRONT_ENERGY_TOLERANCE = 0.05
HIGH_PAIN = "high_pain_fraction"
ENERGY, PAIN = "stim_energy_j_per_day", "mean_pain_nrs"
#: Metrics reported per controller (and differences for the first three).
TABLE_METRICS = ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day", "duty_cycle")
DIFF_METRICS = ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day")


def evaluation_settings(days: float):
    from simenv.settings import EnvSettings

    # As experiments.evaluate: on_off, dt_s 30, naive initial state.
    return EnvSettings(action_mode="on_off", dt_s=30.0, horizon_days=float(days), initial_state="naive")


def _frame_text(warmup_days: float, days: float) -> str:
    from agents.evaluation_frames import describe_frame

    return describe_frame(warmup_days, days, "naive")


def tune_threshold(opts: LearningOptions, log: Callable[[str], None]) -> dict:
    """Sweep the threshold's target duty on the validation cohort, in the section's frame; the best reward wins."""
    from agents.evaluation import evaluate, summarise
    from experiments.evaluation.fronts import controller_from_file as from_file
    from experiments.evaluation.fronts import threshold_label
    from simenv import load_preset

    specs = [from_file("threshold", threshold_label(d), target_duty=float(d)) for d in opts.tune_duties]
    patients = load_preset("validation").sample(opts.tune_patients)
    frame = _frame_text(opts.warmup, opts.tune_scored_days)
    log(f"tuning the threshold on {len(patients)} validation patients ({frame}): target_duty in "
        f"{list(opts.tune_duties)}")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, evaluation_settings(opts.tune_scored_days), seed=opts.tune_seed, jobs=opts.eval_jobs,
                      warmup_days=opts.warmup)
    rows = summarise(result)
    sweep = [
        {"target_duty": float(d), **{m: row[m] for m in (*TABLE_METRICS, "reward_per_day_ci_low", "reward_per_day_ci_high")}}
        for d, row in zip(opts.tune_duties, rows, strict=True)
    ]
    best = max(sweep, key=lambda r: r["reward_per_day"])
    return {
        "cohort": "validation",
        "n_patients": len(patients),
        "days": opts.tune_scored_days,
        "warmup_days": opts.warmup,
        "frame_text": frame,
        "seed": opts.tune_seed,
        "sweep": sweep,
        "best_target_duty": best["target_duty"],
        "best_reward_per_day": best["reward_per_day"],
        "on_grid_edge": best["target_duty"] in (min(opts.tune_duties), max(opts.tune_duties)),
        "wall_s": time.perf_counter() - t0,
    }


def evaluate_runs(opts: LearningOptions, trainings: Sequence[dict], best_duty: float, log: Callable[[str], None]) -> dict:
    """One paired evaluation on the test cohort: the baseline fronts, the tuned threshold and every trained run."""
    from agents.controllers import ControllerSpec
    from agents.evaluation import paired_differences, summarise
    from experiments.evaluation.fronts import controller_from_file as from_file
    from experiments.evaluation.fronts import evaluate_fronts, front_specs

    evaluated = [t for t in trainings if (Path(t["run_dir"]) / "best_model.zip").is_file()
                 or (Path(t["run_dir"]) / "model.zip").is_file()]
    extra = [from_file("threshold", TUNED, target_duty=float(best_duty))]
    extra += [ControllerSpec(t["label"], "run", {"path": t["run_dir"]}) for t in evaluated]
    n_baselines = sum(len(v) for v in front_specs(opts.front_grid).values())
    log(f"evaluating {n_baselines} baselines, the tuned threshold and {len(evaluated)} trained run(s) on "
        f"{opts.test_patients} test patients ({_frame_text(opts.warmup, opts.scored_days)}), paired, "
        f"{opts.eval_jobs} process(es)")
    fronts = evaluate_fronts("test", opts.test_patients, opts.frame, seed=opts.eval_seed, jobs=opts.eval_jobs,
                             grid=opts.front_grid, extra_specs=extra, warmup_days=opts.warmup, horizon_days=opts.scored_days)
    result = fronts.result
    shown = ["off", "continuous", REFERENCE, TUNED, *(t["label"] for t in evaluated)]
    keep = [f"{m}{s}" for m in (*TABLE_METRICS, HIGH_PAIN, "battery_draw_j_per_day", "switches_per_hour",
                                 "mild_events_per_day")
            for s in ("", "_ci_low", "_ci_high")]
    controllers = [{"controller": r["controller"], **{k: r[k] for k in keep}}
                   for r in summarise(result) if r["controller"] in shown]
    diffs = {}
    for ref in (REFERENCE, TUNED, "continuous"):
        diffs[ref] = [
            {"controller": r["controller"],
             **{f"{m}_diff{s}": r[f"{m}_diff{s}"] for m in (*DIFF_METRICS, "duty_cycle", HIGH_PAIN)
                for s in ("", "_ci_low", "_ci_high")}}
            for r in paired_differences(result, ref) if r["controller"] in shown
        ]
    labels = {t["label"] for t in evaluated}
    return {
        "cohort": "test",
        "n_patients": len(result.patients),
        "frame": opts.frame,
        "frame_text": fronts.frame_text,
        "warmup_days": opts.warmup,
        "days": opts.scored_days,
        "seed": opts.eval_seed,
        "initial_state": "naive",
        "threshold_tuned_target_duty": float(best_duty),
        "controllers": controllers,
        "fronts": fronts.rows(),
        "paired_differences": diffs,
        "goal": [goal_check(row) for row in diffs[REFERENCE] if row["controller"] in labels],
        "long_term_goals": [long_term_goals(fronts, t["label"]) for t in evaluated],
        "not_evaluated": [t["label"] for t in trainings if t not in evaluated],
        "wall_s": fronts.wall_s,
    }


def goal_check(diff: dict) -> dict:
    """The RL-training issue's goal for one run, from its paired differences against the calibrated threshold."""
    reward_above = diff["reward_per_day_diff_ci_low"] > 0
    pain_ok = diff["mean_pain_nrs_diff"] <= MAX_PAIN_WORSE_NRS
    energy_ok = diff["stim_energy_j_per_day_diff"] <= 0
    return {
        "controller": diff["controller"],
        "reward_interval_above_0": bool(reward_above),
        "pain_at_most_0.2_worse": bool(pain_ok),
        "energy_no_higher": bool(energy_ok),
        "met": bool(reward_above and pain_ok and energy_ok),
    }


def _paired(result: Any, label: str, reference: str, metric: str, scale: float = 1.0) -> dict[str, float]:
    """Mean and paired 95% interval of ``label``'s metric minus ``scale`` x ``reference``'s, per patient."""
    from experiments.evaluation.front_math import paired_interval

    a = result.per_patient[label][metric]
    b = result.per_patient[reference][metric]
    mean, lo, hi = paired_interval(a - scale * b)
    return {"diff": mean, "diff_ci_low": lo, "diff_ci_high": hi}


def long_term_goals(fronts: Any, label: str) -> dict[str, Any]:
    """The long-term issue's three goals for the evaluated run ``label`` (module docstring)."""
    result = fronts.result
    run = result.per_patient[label]
    cont = result.per_patient["continuous"]
    share = float(run[ENERGY].mean() / cont[ENERGY].mean()) if cont[ENERGY].mean() > 0 else float("nan")
    pain = _paired(result, label, "continuous", PAIN)
    beats = {
        "pain_vs_continuous": pain,
        "energy_share_of_continuous": share,
        "energy_minus_share_of_continuous": _paired(result, label, "continuous", ENERGY, MAX_ENERGY_SHARE_OF_CONTINUOUS),
        "pain_interval_below_0": bool(pain["diff_ci_high"] < 0),
        "energy_at_most_share": bool(share <= MAX_ENERGY_SHARE_OF_CONTINUOUS),
    }
    beats["met"] = beats["pain_interval_below_0"] and beats["energy_at_most_share"]
    comparisons = fronts.compare(label, energy_tolerance=FRONT_ENERGY_TOLERANCE)
    compared = [c for c in comparisons if c.verdict != "not compared"]
    front = {
        "energy_tolerance": FRONT_ENERGY_TOLERANCE,
        "comparisons": [{**asdict(c), "verdict": c.verdict} for c in comparisons],
        "met": bool(compared) and all(c.verdict == "at or below" for c in compared),
    }
    high = _paired(result, label, REFERENCE, HIGH_PAIN)
    high["met"] = bool(high["diff"] <= 0)
    return {
        "controller": label,
        "energy_j_per_day": float(run[ENERGY].mean()),
        "mean_pain_nrs": float(run[PAIN].mean()),
        "beats_continuous": beats,
        "front": front,
        "high_pain_vs_threshold": high,
        "met": bool(beats["met"] and front["met"] and high["met"]),
    }
