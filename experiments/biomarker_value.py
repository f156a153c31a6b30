"""What the biomarker is worth: threshold control against random at the same duty.

``python -m experiments.biomarker_value`` evaluates, on the same patients and
noise, the clinic-calibrated ``threshold`` controller and a ``random`` on/off
controller matched to its per-patient duty cycle and mean burst length, for
every combination of biomarker AUC and carry-over time constant (set for the
whole cohort; patient uids, hence noise, unchanged). The paired difference
threshold - random is what the biomarker adds beyond "stimulate this much,
in bursts this long". Prints a table and writes it as CSV and JSON; the
evaluation is ``experiments.studies.biomarker_value``'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from agents.atomic_io import open_atomic, write_text_atomic
from experiments.studies.biomarker_value import evaluate_grid, grid_overrides, render
from simenv.cohort import resolve_patients, with_overrides
from simenv.errors import PainloopError


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
    """The command: 0 done, 2 bad input (checked before any evaluation)."""
    args = build_parser().parse_args(argv)
    try:
        if args.days <= 0:
            raise PainloopError("PL-ENV-ARG", f"--days={args.days}; allowed: > 0.")
        base = resolve_patients(args.cohort, n_patients=args.n_patients)
        grid = [(a, c) for a in args.auc for c in args.carryover_min]
        for a, c in grid:  # check every grid point before any work
            with_overrides(base[:1], grid_overrides(a, c))
        if args.out.exists() and not args.out.is_dir():
            raise PainloopError("PL-OUTPUT-PATH", f"--out {args.out} exists and is not a folder.")
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = evaluate_grid(base, grid, args.days, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with open_atomic(args.out / "biomarker_value.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(args.out / "biomarker_value.json", json.dumps(rows, indent=2))
    print(render(rows, len(base), args.days, args.cohort, args.seed))
    print(f"\nwrote {args.out / 'biomarker_value.csv'} and .json in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
