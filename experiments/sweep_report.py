"""``python -m experiments.sweep_report PATH``: one table and two Pareto plots for a whole sweep.

Reads every run below PATH (a Hydra multirun folder of ``experiments.train``
or ``experiments.evaluate``): finished, failed, interrupted, still running
or stale, from each run's ``status.json`` (``experiments.sweeps.runs``).
Failed runs are listed with the last line of their error.

Then, unless ``--no-evaluate``, one paired evaluation with the project's
engine (``agents.evaluation.evaluate``: same patients, same noise) on
``--cohort`` (default the held-out ``test`` preset, 100 patients, started
``naive`` as ``experiments.evaluate``) in the long-term frame (90 days of
unscored warm-up, 28 scored days; ``--frame week``: 7 days, no warm-up;
``--warmup-days`` and ``--days`` override the frame's) of

- every finished training run's best model (by its validation reward) and
  its final model (``--models``): both are policies the sweep produced,
- the baseline fronts (``experiments.evaluation.fronts``): the threshold
  controller (``conf/controller/threshold.yaml``) with its ``target_duty``
  swept over ``--duties``, cycling over ``--cycling-periods-s`` x
  ``--cycling-duties``, the dual threshold over ``--dual-duties``, with off,
  continuous and the calibrated threshold,
- the other baselines (``--baselines``).

Evaluation runs of the sweep keep their own metrics (the first
controller's row). Written to ``--out`` (default ``PATH/sweep_report``):

- ``sweep_table.csv``: one row per run: name, command, state, swept
  parameters, objective, validation metrics of the best model (``val_*``,
  training runs), the evaluated metrics (best model; ``final_*`` for the
  final model), ``pareto_energy`` /
  ``pareto_side_effects`` (on the non-dominated front), error;
- ``baselines.csv``: every setting of the baseline fronts and the other
  baselines, same metrics;
- ``budgets.csv`` (a budget sweep: runs with ``budget.energy_j_per_day``):
  per budget, the policy's energy against it (met within
  ``--energy-tolerance``) and its pain against each front at its energy,
  paired (``experiments.sweeps.budgets``);
- ``pareto_energy.png`` (mean pain vs stimulation energy per day, the
  learned front against the baseline fronts) and
  ``pareto_side_effects.png`` (mean pain vs side-effect events per day);
- ``sweep_report.json``: all of it, with the goal comparison: at each
  threshold point's energy, the sweep front's interpolated mean pain
  against the threshold's (``--tolerance-nrs``).

Bad input (no such folder, no run in it, an unknown baseline, a duty
outside (0, 1)) exits 2 before anything is written.

This module is the command line only; the report is plain Python in
``experiments.sweeps`` (``experiments.sweeps.report``: ``sweep_front``,
``build_report``, ``render``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from experiments.common.run_folder import report_error  # noqa: E402
from experiments.sweeps.options import (  # noqa: E402
    DEFAULT_BASELINES,
    DEFAULT_CYCLING_DUTIES,
    DEFAULT_CYCLING_PERIODS_S,
    DEFAULT_DUAL_DUTIES,
    DEFAULT_DUTIES,
    ReportOptions,
)
from experiments.sweeps.report import build_report, render  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

EXIT_BAD_INPUT = 2


def parse_args(argv: Sequence[str] | None) -> ReportOptions:
    p = argparse.ArgumentParser(prog="python -m experiments.sweep_report", description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path, help="the sweep folder (Hydra multirun output)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default PATH/sweep_report)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="no common evaluation: each run's own metrics, no threshold front")
    p.add_argument("--cohort", default="test", help="preset of the common evaluation (default test)")
    p.add_argument("--patients", type=int, default=100, help="patients of the common evaluation (default 100)")
    p.add_argument("--frame", default="long_term",
                   help="frame of the common evaluation: long_term (default: 90 days of warm-up, 28 scored) or week")
    p.add_argument("--warmup-days", type=float, default=None, help="unscored warm-up days (default: the frame's)")
    p.add_argument("--days", type=float, default=None, help="scored days per patient (default: the frame's)")
    p.add_argument("--jobs", type=int, default=1, help="processes sharing the patients (identical results; default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the common evaluation")
    p.add_argument("--duties", type=float, nargs="+", default=list(DEFAULT_DUTIES),
                   help="threshold target duties that trace its front")
    p.add_argument("--cycling-periods-s", type=float, nargs="+", default=list(DEFAULT_CYCLING_PERIODS_S),
                   help="cycling periods (s) of the cycling front")
    p.add_argument("--cycling-duties", type=float, nargs="+", default=list(DEFAULT_CYCLING_DUTIES),
                   help="cycling duties of the cycling front (on_s = duty x period)")
    p.add_argument("--dual-duties", type=float, nargs="+", default=list(DEFAULT_DUAL_DUTIES),
                   help="dual threshold target duties that trace its front")
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES),
                   help="other controllers of conf/controller/ to overlay")
    p.add_argument("--models", nargs="+", default=["best", "final"],
                   help="which model of each training the common evaluation runs (best, final; default both)")
    p.add_argument("--tolerance-nrs", type=float, default=0.05,
                   help="goal tolerance: front pain may exceed the threshold's by this much (NRS)")
    p.add_argument("--energy-tolerance", type=float, default=0.05,
                   help="a budget is met within this share; fronts are read at the energy x (1 + it) (default 0.05)")
    a = p.parse_args(argv)
    return ReportOptions(path=a.path, out=a.out or a.path / "sweep_report", evaluate=not a.no_evaluate,
                         cohort=a.cohort, patients=a.patients, frame=a.frame, warmup_days=a.warmup_days,
                         days=a.days, seed=a.seed, duties=tuple(a.duties),
                         cycling_periods_s=tuple(a.cycling_periods_s), cycling_duties=tuple(a.cycling_duties),
                         dual_duties=tuple(a.dual_duties), baselines=tuple(a.baselines),
                         tolerance_nrs=a.tolerance_nrs, energy_tolerance=a.energy_tolerance, models=tuple(a.models),
                         jobs=a.jobs)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        report = build_report(opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    except PainloopError as exc:
        report_error(exc)
        return EXIT_BAD_INPUT
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
