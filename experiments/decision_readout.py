"""What a learned policy's decisions can be read from, by a linear read-out (docs/export.md).

``python -m experiments.decision_readout --run <dir>`` rolls the run's best
policy out on test patients after a warm-up and prints the held-out balanced
accuracy of linear read-outs of its decisions from the band power of one
step, from band powers averaged over the decision interval (what a device
detector with that update period reads), from the bands stimulation leaves
alone, and from its own previous decision; the study is
``experiments.studies.decision_readout``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.rl_policy import load_run_policy
from experiments.studies.decision_readout import decision_readout, render
from simenv.cohort import resolve_patients
from simenv.errors import PainloopError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.decision_readout", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="training run folder (its best model)")
    p.add_argument("--cohort", default="test")
    p.add_argument("--n-patients", type=int, default=20)
    p.add_argument("--days", type=float, default=4.0, help="recorded days: the first half fits, the second scores")
    p.add_argument("--warmup-days", type=float, default=90.0, help="unrecorded days first (the long-run state)")
    p.add_argument("--dt-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 2 <= args.n_patients <= 1000:
            raise PainloopError("PL-CONFIG-VALUE", f"--n-patients {args.n_patients}; allowed: 2 to 1000.")
        if not 0.5 <= args.days <= 60:
            raise PainloopError("PL-CONFIG-VALUE", f"--days {args.days}; allowed: 0.5 to 60.")
        patients = resolve_patients(args.cohort, args.n_patients)
        policy = load_run_policy(args.run)
        result = decision_readout(policy, patients, args.dt_s, args.days, args.warmup_days, args.seed)
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.run}: {args.cohort} patients 0-{args.n_patients - 1}, {args.warmup_days:g} days of warm-up, "
          f"{args.days:g} recorded days (noise {args.seed})")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
