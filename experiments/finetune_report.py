"""Fine-tuning report: how much does a cohort policy gain from fine-tuning on one patient?

``python -m experiments.finetune_report --source <cohort run> --patients 7``

For each test patient asked for, the cohort run is fine-tuned on that one
patient (``python -m experiments.train finetune_from=<source> cohort=<cohort>
'cohort.indices=[i]'``, the clinic's workflow, docs/training.md), then the
cohort policy and the fine-tuned policy play that patient side by side with
``continuous`` and the calibrated ``threshold``, on the same noise, for
``--days`` simulated days, once per evaluation seed (``--eval-seeds``; each
seed is an independent stretch of the patient's life, so the seeds are the
replicates of the paired 95% interval). The fine-tuned policy is the run's
*final* model: its validation runs on other patients, so its "best" model
would be chosen for them, not for this patient. The cohort policy is the
source's best model (by validation reward), as ``run:<dir>`` loads it.

Writes ``<out-dir>/finetune_report.json`` and prints a table. The
evaluation seeds are 1,000,000 + 0..n-1, so the evaluation noise differs
from the noise the fine-tuning saw (training seed ``--seed``, default 0).
Fine-tuning arguments go through ``--override`` (default: learning rate
1e-4), e.g. ``--override experiment=energy_aware`` for a source trained
with that experiment.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.atomic_io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
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
    from experiments.evaluate import load_controller
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.finetune_report", description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True, help="the cohort training run folder")
    p.add_argument("--patients", type=int, nargs="+", default=[0], help="patient indices of --cohort (default 0)")
    p.add_argument("--cohort", default="test", help="cohort preset of the patients (default test)")
    p.add_argument("--steps", type=int, default=1_024_000, help="fine-tuning budget in steps (default 1,024,000)")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed (default 0)")
    p.add_argument("--days", type=float, default=7.0, help="simulated days per evaluation (default 7)")
    p.add_argument("--eval-seeds", type=int, default=10, help="evaluation seeds, the paired replicates (default 10)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="Hydra override for the fine-tuning (repeatable); agent.hyperparams.learning_rate=1e-4 "
                   "unless one sets it")
    p.add_argument("--out-dir", type=Path, default=None, help="default outputs/finetune/<timestamp>")
    args = p.parse_args(argv)
    if not (args.source / "train_config.json").is_file():
        print(f"error: --source {args.source} is not a training run folder (no train_config.json).", file=sys.stderr)
        return 2
    if args.steps < 1 or args.days <= 0 or args.eval_seeds < 2 or any(i < 0 for i in args.patients):
        print("error: --steps >= 1, --days > 0, --eval-seeds >= 2 and patient indices >= 0 are required.", file=sys.stderr)
        return 2
    if not any(o.split("=", 1)[0].lstrip("+~") == "agent.hyperparams.learning_rate" for o in args.override):
        args.override.insert(0, "agent.hyperparams.learning_rate=1e-4")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    started = _dt.datetime.now(_dt.timezone.utc)
    out = args.out_dir or Path("outputs/finetune") / started.strftime("%Y-%m-%d_%H-%M-%S")
    seeds = list(range(args.eval_seeds))
    report = {"source": str(args.source), "cohort": args.cohort, "steps": args.steps, "seed": args.seed,
              "days": args.days, "eval_seeds": [EVAL_SEED_OFFSET + s for s in seeds], "overrides": args.override,
              "created_utc": started.isoformat(timespec="seconds"), "patients": []}
    for index in args.patients:
        run_dir = out / f"patient_{index}"
        print(f"[finetune_report] fine-tuning on {args.cohort}[{index}] -> {run_dir}", file=sys.stderr, flush=True)
        try:
            ft = finetune(args.source, args.cohort, index, args.steps, args.seed, run_dir, args.override)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"[finetune_report] evaluating on {args.cohort}[{index}]: {args.eval_seeds} seeds x {args.days:g} days",
              file=sys.stderr, flush=True)
        report["patients"].append({"finetune": ft, "run_dir": str(run_dir),
                                   "comparison": compare(args.source, run_dir, args.cohort, index, args.days, seeds)})
    write_text_atomic(out / "finetune_report.json", json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {out / 'finetune_report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
