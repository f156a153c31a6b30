"""What the biomarker is worth: threshold control against random at the same duty.

``python -m experiments.biomarker_value`` evaluates, on the same patients and
noise, the clinic-calibrated ``threshold`` controller and a ``random`` on/off
controller matched to its per-patient duty cycle and mean burst length, for
every combination of biomarker AUC and carry-over time constant (set for the
whole cohort; patient uids, hence noise, unchanged). The paired difference
threshold - random is what the biomarker adds beyond "stimulate this much,
in bursts this long". Prints a table and writes it as CSV and JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agents.atomic_io import open_atomic, write_text_atomic
from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from simenv.batch import EnvSettings
from simenv.cohort import resolve_patients, with_overrides
from simenv.errors import PainloopError

METRICS = ("mean_pain_nrs", "high_pain_fraction", "stim_energy_j_per_day", "duty_cycle")


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b and its paired 95% t interval."""
    from scipy import stats

    d = a - b
    n = d.size
    half = float(stats.t.ppf(0.975, n - 1)) * float(np.std(d, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    mean = float(np.mean(d))
    return mean, mean - half, mean + half


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.biomarker_value", description=__doc__.splitlines()[0])
    p.add_argument("--cohort", default="test")
    p.add_argument("--n-patients", type=int, default=100)
    p.add_argument("--days", type=float, default=28.0)
    p.add_argument("--auc", type=float, nargs="+", default=[0.6, 0.7, 0.8])
    p.add_argument("--carryover-min", type=float, nargs="+", default=[10.0, 60.0, 300.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("outputs/biomarker_value"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.days <= 0:
            raise PainloopError("PL-ENV-ARG", f"--days={args.days}; allowed: > 0.")
        base = resolve_patients(args.cohort, n_patients=args.n_patients)
        grid = [(a, c) for a in args.auc for c in args.carryover_min]
        for a, c in grid:  # check every grid point before any work
            with_overrides(base[:1], {"biomarker.auc": a, "relief.carryover_tau_min": c})
        if args.out.exists() and not args.out.is_dir():
            raise PainloopError("PL-OUTPUT-PATH", f"--out {args.out} exists and is not a folder.")
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = [
        ControllerSpec("continuous", "continuous"),
        ControllerSpec("threshold", "threshold"),
        ControllerSpec("random", "random", {"match": "threshold"}),
    ]
    settings = EnvSettings(horizon_days=args.days)
    rows = []
    started = time.perf_counter()
    for auc, carry in tqdm(grid, desc="grid", unit="point", file=sys.stderr):
        patients = with_overrides(base, {"biomarker.auc": auc, "relief.carryover_tau_min": carry})
        res = evaluate(specs, patients, settings, seed=args.seed)
        m = res.per_patient
        row = {"auc": auc, "carryover_min": carry, "n_patients": len(patients), "days": args.days}
        for metric in METRICS:
            row[f"threshold_{metric}"] = float(np.mean(m["threshold"][metric]))
            row[f"random_{metric}"] = float(np.mean(m["random"][metric]))
            row[f"continuous_{metric}"] = float(np.mean(m["continuous"][metric]))
            row[f"diff_{metric}"], row[f"diff_{metric}_ci_low"], row[f"diff_{metric}_ci_high"] = paired(
                m["threshold"][metric], m["random"][metric]
            )
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    with open_atomic(args.out / "biomarker_value.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(args.out / "biomarker_value.json", json.dumps(rows, indent=2))
    print(
        f"\nthreshold - random (matched duty and bursts), paired over {len(base)} patients, "
        f"{args.days:g} days, cohort '{args.cohort}', seed {args.seed}:"
    )
    print(f"{'AUC':>5} {'carry-over':>11} {'duty thr/rnd':>13} {'d pain NRS [95% CI]':>28} {'d high-pain frac [95% CI]':>30} {'thr pain':>9} {'cont pain':>9}")
    for r in rows:
        print(
            f"{r['auc']:>5.2f} {r['carryover_min']:>8.0f} min "
            f"{r['threshold_duty_cycle']:>6.2f}/{r['random_duty_cycle']:<6.2f}"
            f"{r['diff_mean_pain_nrs']:>+10.3f} [{r['diff_mean_pain_nrs_ci_low']:+.3f}, {r['diff_mean_pain_nrs_ci_high']:+.3f}]"
            f"{r['diff_high_pain_fraction']:>+12.4f} [{r['diff_high_pain_fraction_ci_low']:+.4f}, {r['diff_high_pain_fraction_ci_high']:+.4f}]"
            f"{r['threshold_mean_pain_nrs']:>9.2f} {r['continuous_mean_pain_nrs']:>9.2f}"
        )
    print(f"\nwrote {args.out / 'biomarker_value.csv'} and .json in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
