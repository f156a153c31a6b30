"""What fine-tuning a cohort policy on one patient gains: the fine-tuning run, the paired comparison, the table.

The library of ``python -m experiments.finetune_report`` (docs/training.md,
"What fine-tuning gains"). ``finetune`` fine-tunes the cohort run on one
patient in a ``python -m experiments.train`` subprocess (the clinic's
workflow); ``compare`` plays the cohort policy (the source's best model) and
the fine-tuned policy (its *final* model: its validation runs on other
patients, so its "best" model would be chosen for them) beside
``continuous`` and the calibrated ``threshold`` on that patient, on the
same noise, once per evaluation seed (1,000,000 + 0..n-1, so the noise
differs from the fine-tuning's); each seed is an independent stretch of the
patient's life, so the seeds are the replicates of the paired 95% interval.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("reward_per_day", "mean_pain_nrs", "stim_energy_j_per_day", "duty_cycle", "high_pain_fraction")
EVAL_SEED_OFFSET = 1_000_000


def finetune(source: Path, cohort: str, index: int, steps: int, seed: int, run_dir: Path, overrides: Sequence[str]) -> dict:
    """Fine-tune ``source`` on patient ``index`` of ``cohort`` in a subprocess; wall time and status."""
    cmd = [
        sys.executable, "-m", "experiments.train", f"hydra.run.dir={run_dir}", "progress_bar=false",
        f"finetune_from={source}", f"cohort={cohort}", f"cohort.indices=[{index}]",
        f"total_timesteps={steps}", f"seed={seed}", *overrides,
    ]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        status = {}
    if proc.returncode != 0 or status.get("state") != "finished":
        raise RuntimeError(f"fine-tuning on patient {index} failed (exit {proc.returncode}); see {run_dir}.log")
    result = status.get("result") or {}
    # A finished fine-tuning found in run_dir (same config) is left alone by experiments.train: then
    # command_wall_s is short and training_wall_s is the run's own record.
    return {"command": cmd, "command_wall_s": wall, "training_wall_s": result.get("wall_s"),
            "train_fps": result.get("train_fps"),
            "timesteps": (status.get("progress") or {}).get("timesteps")}


def _interval(values: Sequence[float]) -> dict:
    """Mean and 95% t interval of ``values`` (the seeds are the replicates)."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def compare(source: Path, tuned: Path, cohort: str, index: int, days: float, seeds: Sequence[int]) -> dict:
    """Cohort vs fine-tuned policy (and baselines) on one patient, one paired evaluation per seed."""
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate
    from experiments.common.controller_entries import load_controller
    from simenv import load_preset
    from simenv.batch import EnvSettings

    patient = load_preset(cohort).patient(index)
    specs = [
        load_controller("continuous", "continuous"),
        load_controller("threshold", "threshold"),
        ControllerSpec("cohort_policy", "run", {"path": str(source)}),
        ControllerSpec("finetuned", "run", {"path": str(tuned), "which": "final"}),
    ]
    settings = EnvSettings(action_mode="on_off", dt_s=30.0, horizon_days=float(days), initial_state="naive")
    # The fine-tuning's own objective: the same terms under the weights it trained with (if not the default).
    weights = json.loads((tuned / "train_config.json").read_text()).get("reward") or {}
    decisions_per_day = 86_400.0 / settings.dt_s
    metrics = METRICS + (("training_objective_per_day",) if weights else ())
    per_seed = []
    for s in seeds:
        res = evaluate(specs, [patient], settings, seed=EVAL_SEED_OFFSET + int(s))
        row = {}
        for lab in res.labels:
            m = res.per_patient[lab]
            row[lab] = {k: float(m[k][0]) for k in METRICS}
            if weights:
                row[lab]["training_objective_per_day"] = -decisions_per_day * sum(
                    float(w) * float(m[f"term_{t}"][0]) for t, w in weights.items())
        per_seed.append(row)
    labels = [s.label for s in specs]
    summary = {lab: {m: _interval([r[lab][m] for r in per_seed]) for m in metrics} for lab in labels}
    gain = {m: _interval([r["finetuned"][m] - r["cohort_policy"][m] for r in per_seed]) for m in metrics}
    return {"patient": {"cohort": cohort, "index": index, "uid": patient.uid}, "training_reward_weights": weights,
            "per_seed": per_seed,
            "summary": summary, "gain_finetuned_minus_cohort": gain}


def render(report: dict) -> str:
    """The report as printed: per patient, each controller's figures and the fine-tuning's gain."""
    def ci(x: dict, d: int) -> str:
        return f"{x['mean']:,.{d}f} [{x['ci_low']:,.{d}f}, {x['ci_high']:,.{d}f}]"

    lines = [f"source: {report['source']}; {report['days']:g} days x {len(report['eval_seeds'])} evaluation seeds "
             "per patient; mean [95% interval across seeds]"]
    for p in report["patients"]:
        c = p["comparison"]
        pat = c["patient"]
        lines.append("")
        lines.append(f"patient {pat['cohort']}[{pat['index']}] (fine-tuned {p['finetune']['timesteps']:,} steps in "
                     f"{p['finetune']['training_wall_s']:.0f} s of training)")
        lines.append(f"  {'controller':<14} {'reward/day':>28} {'mean pain NRS':>24} {'stim energy J/day':>22} {'duty':>20}")
        for lab, row in c["summary"].items():
            lines.append(f"  {lab:<14} {ci(row['reward_per_day'], 0):>28} {ci(row['mean_pain_nrs'], 3):>24} "
                         f"{ci(row['stim_energy_j_per_day'], 2):>22} {ci(row['duty_cycle'], 2):>20}")
        g = c["gain_finetuned_minus_cohort"]
        lines.append(f"  gain (fine-tuned - cohort, paired): reward/day {ci(g['reward_per_day'], 0)}, pain "
                     f"{ci(g['mean_pain_nrs'], 3)} NRS, energy {ci(g['stim_energy_j_per_day'], 2)} J/day")
        if "training_objective_per_day" in g:
            w = ", ".join(f"{k} {v:g}" for k, v in c["training_reward_weights"].items())
            lines.append(f"  the fine-tuning's own objective ({w}) per day: cohort "
                         f"{ci(c['summary']['cohort_policy']['training_objective_per_day'], 0)}, fine-tuned "
                         f"{ci(c['summary']['finetuned']['training_objective_per_day'], 0)}, gain "
                         f"{ci(g['training_objective_per_day'], 0)}")
    return "\n".join(lines)
