"""Fine-tuning report: how much does a cohort policy gain from fine-tuning on one patient?

``python -m experiments.finetune_report --source <cohort run> --patients 7``

For each test patient asked for, the cohort run is fine-tuned on that one
patient, then the cohort policy and the fine-tuned policy play that patient
side by side with ``continuous`` and the calibrated ``threshold``, on the
same noise, for ``--days`` simulated days, once per evaluation seed
(``--eval-seeds``); ``experiments.studies.finetune`` does the work.

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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.atomic_io import write_text_atomic
from experiments.studies.finetune import EVAL_SEED_OFFSET, compare, finetune, render


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 done, 1 a fine-tuning failed, 2 bad input."""
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
