"""Check the virtual cohort against DOMAIN.md's targets: a table and plots.

    python -m experiments.validate_model [--cohort default] [--n-patients N]
        [--days 28] [--dt-s 30] [--seed 0] [--out validation_report]

Simulates the cohort on ``simenv.core.BatchedCore`` three times (stimulation
off, continuous stimulation, and a switch-off for carry-over), prints each
statistic beside its target range marked within/outside, and writes
``validation.csv``, ``validation.json`` and PNG figures into ``--out``.
``--write-docs-table`` instead regenerates docs/model.md's generated tables.

Bad input (unknown cohort, n-patients < 1, days <= 0, dt-s outside 5-600 s)
exits with code 2 and ``error: <code>: <message>`` before anything is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from experiments.validation import parameter_docs
from experiments.validation import plots as validation_plots
from experiments.validation import table as validation_table
from experiments.validation.simulations import (
    carryover_steps,
    simulate_carryover,
    simulate_continuous,
    simulate_natural_history,
)
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.core import PHYSICS_VERSION
from simenv.errors import PainloopError
from simenv.params import SECONDS_PER_DAY

DEFAULT_OUT = Path("validation_report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.validate_model",
        description="Simulate a cohort and compare its statistics with DOMAIN.md's targets.",
    )
    parser.add_argument("--cohort", default="default", help="cohort preset name (default: default)")
    parser.add_argument("--n-patients", type=int, default=None,
                        help="number of patients (default: the preset's n_patients)")
    parser.add_argument("--days", type=float, default=28.0, help="simulated days per run (default: 28)")
    parser.add_argument("--dt-s", type=float, default=30.0, help="control step in seconds, 5-600 (default: 30)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed of every patient (default: 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT}/, git-ignored)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--write-docs-table", action="store_true",
                        help="regenerate the parameter and preset tables of docs/model.md and exit")
    return parser


def _check_inputs(args: argparse.Namespace):
    """Validate every input before any work; returns the patients. Raises PainloopError."""
    preset = load_preset(args.cohort)  # PL-COHORT-UNKNOWN
    n = preset.n_patients if args.n_patients is None else args.n_patients
    patients = preset.sample(n)  # PL-COHORT-SIZE
    # The environment's rules for a horizon and a step (PL-ENV-ARG), named as on the command line.
    if not 5.0 <= args.dt_s <= 600.0:
        raise PainloopError("PL-ENV-ARG", f"--dt-s={args.dt_s:g}; allowed: 5 to 600 seconds.")
    if not 0.0 < args.days <= 3650.0:
        raise PainloopError("PL-ENV-ARG", f"--days={args.days:g}; allowed: a number of days in (0, 3650].")
    EnvSettings(dt_s=args.dt_s, horizon_days=args.days)  # at least one step of dt_s
    if args.seed < 0:
        raise PainloopError("PL-ENV-ARG", f"--seed={args.seed}; allowed: a whole number >= 0.")
    return patients


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    if args.write_docs_table:
        print(f"updated {parameter_docs.write_tables()}")
        return 0
    try:
        patients = _check_inputs(args)
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists() and not out.is_dir():
        error = PainloopError("PL-OUTPUT-PATH", f"--out {out} exists and is not a folder; allowed: a folder path.")
        print(f"error: {error}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    n, dt, days = len(patients), float(args.dt_s), float(args.days)
    steps = int(round(days * SECONDS_PER_DAY / dt))
    total = 2 * max(steps, 1) + carryover_steps(dt)
    print(f"validating cohort '{args.cohort}': {n} patients, {days:g} days, dt {dt:g} s, seed {args.seed}")
    with tqdm(total=total, unit="step", desc="simulating", disable=args.no_progress or None,
              file=sys.stderr) as bar:
        natural = simulate_natural_history(patients, days, dt, args.seed, bar.update)
        continuous = simulate_continuous(patients, days, dt, args.seed, bar.update)
        carry = simulate_carryover(patients, dt, args.seed, bar.update)
    simulated = time.perf_counter() - started
    m = validation_table.measure(patients, natural, continuous, carry)
    rows = validation_table.build_rows(m)

    out.mkdir(parents=True, exist_ok=True)
    figures = validation_plots.draw_all(out, patients, m, continuous, carry)
    runtime = time.perf_counter() - started
    meta = {
        "cohort": args.cohort,
        "n_patients": n,
        "days": days,
        "dt_s": dt,
        "seed": args.seed,
        "physics_version": PHYSICS_VERSION,
        "simulation_s": round(simulated, 2),
        "runtime_s": round(runtime, 2),
    }
    csv_path, json_path = out / "validation.csv", out / "validation.json"
    validation_table.write_csv(rows, csv_path)
    validation_table.write_json(rows, m, patients, meta, json_path)

    print()
    print(validation_table.format_table(rows))
    notes = [r for r in rows if r.note and r.status in ("outside", "not estimated")]
    if notes:
        print()
        for r in notes:
            print(f"- {r.key}: {r.note}")
    counts = {s: sum(r.status == s for r in rows) for s in ("within", "outside", "not estimated", "info")}
    print()
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    print(f"wrote {csv_path}, {json_path}")
    print("figures: " + ", ".join(str(f) for f in figures))
    print(f"runtime {runtime:.1f} s (simulation {simulated:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
