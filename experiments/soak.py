"""Long-horizon soak: many patients for a simulated year, checked against closed forms and rates.

    python -m experiments.soak                                  # 1,000 patients x 365 days, every baseline
    python -m experiments.soak --patients 50 --days 20          # a reduced size (the slow test)
    python -m experiments.soak --part processes --out soak.json # one part only

The parts and their checks are ``experiments.validation.soak``'s. The
report (``--out``, default ``soak.json`` in the working folder) is written
atomically after each part, with the wall time of each part; exit 1 if a
check fails, 2 on bad input. docs/reliability.md lists the figures of the
full run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from experiments.validation.soak import BASELINES, PARTS, render_summary, soak  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 every check holds, 1 a check failed, 2 bad input."""
    ap = argparse.ArgumentParser(prog="python -m experiments.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--controllers", nargs="+", default=list(BASELINES))
    ap.add_argument("--part", choices=PARTS, action="append", help="run only this part (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cohort", default="default")
    ap.add_argument("--out", type=Path, default=Path("soak.json"))
    args = ap.parse_args(argv)
    if args.patients < 1 or not args.days > 0:
        ap.error("--patients must be >= 1 and --days > 0")
    from experiments.common.run_folder import write_json_atomic
    from simenv.errors import PainloopError

    try:
        report = soak(args.patients, args.days, args.controllers, args.part or PARTS, args.seed, args.cohort,
                      on_part=lambda r: write_json_atomic(args.out, r))
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if exc.code == "PL-STATE-NONFINITE" else 2
    print(render_summary(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
