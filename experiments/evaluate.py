"""``python -m experiments.evaluate``: any set of controllers on a cohort, paired, with tables and plots.

Every controller runs on the same patients and the same noise (common random
numbers, ``agents.evaluation.evaluate``); the run folder (Hydra's output
directory) receives the resolved config, ``run.json``, ``status.json``,
metrics (mean and 95% interval per controller) as CSV and JSON, per-patient
rows, paired differences against ``reference``, the fitted detectors and
PNG figures. docs/evaluation.md is the user's guide.

Examples::

    python -m experiments.evaluate cohort=test cohort.n_patients=5 horizon_days=1
    python -m experiments.evaluate 'controllers=[continuous,threshold,thr20=threshold_duty20]'

Bad input (unknown key, controller, preset; a size or horizon <= 0; ...)
is refused before any result file is written: ``error: <CODE>: message``
on stderr and exit code 2. A failure after the work started is recorded in
``status.json`` (``failed``) and exits 1; SIGINT/SIGTERM/SIGUSR2 record
``interrupted`` and exit 128 + the signal number. Under ``--multirun`` a
failing job records its error and returns NaN instead (fault isolation for
sweeps). The task function returns the objective: the mean reward per day of
the first controller.

This module is the Hydra layer only (the command-line check, the task
function); the work is plain Python in ``experiments.evaluation``
(``experiments.evaluation.run.run``), which a notebook calls without Hydra.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from experiments.common.controller_entries import (  # noqa: E402
    CONTROLLER_DIR,
    available_controllers,
    load_controller,
    parse_entry,
    resolve_controllers,
)
from experiments.common.run_folder import report_error  # noqa: E402
from experiments.config import schema as hydra_schema  # noqa: E402
from experiments.evaluation.plan import Plan, make_plan  # noqa: E402
from experiments.evaluation.run import COMMAND, EXIT_BAD_INPUT, EXIT_FAILED, run  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

#: The library's names, importable from here as before (``experiments.evaluation`` holds them).
__all__ = ["COMMAND", "CONTROLLER_DIR", "EXIT_BAD_INPUT", "EXIT_FAILED", "Plan", "available_controllers",
           "hydra_main", "load_controller", "main", "make_plan", "parse_entry", "precheck", "resolve_controllers",
           "run"]

hydra_schema.register()
#: The command line as typed (``main`` rewrites ``sys.argv`` for Hydra); recorded in run.json.
_TYPED_ARGV: list[str] | None = None


# -- entry points ------------------------------------------------------------------------------
@hydra.main(config_path="../conf", config_name="evaluate", version_base=None)
def hydra_main(cfg: DictConfig) -> float:
    """The Hydra task function (also what a sweeper calls); returns the objective."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    argv = _TYPED_ARGV if _TYPED_ARGV is not None else sys.argv
    return run(cfg, Path(hc.runtime.output_dir), argv=argv, exit_on_error=hc.mode != RunMode.MULTIRUN)


def precheck(argv: Sequence[str]) -> list[str]:
    """Check the command line before Hydra runs; returns it with ``label=name`` list entries quoted.

    Raises ``PainloopError`` (``PL-CONFIG-SYNTAX``, ``PL-CONFIG-KEY``,
    ``PL-COHORT-UNKNOWN``, ``PL-CONFIG-VALUE``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    flags, overrides = hydra_schema.split_argv(argv)
    fixed = hydra_schema.check_overrides(overrides, hydra_schema.EvaluateConfig, hydra_schema.GROUPS)
    out = hydra_schema.splice_overrides(argv, overrides, fixed)
    parsed = OverridesParser.create().parse_overrides(fixed)
    sweeping = any(o.is_sweep_override() for o in parsed) or any(f in ("-m", "--multirun") for f in flags)
    if not sweeping:
        hydra_schema.compose_check("evaluate", fixed, "docs/evaluation.md")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry: check the command line, then hand it to Hydra."""
    global _TYPED_ARGV
    args = list(sys.argv[1:] if argv is None else argv)
    _TYPED_ARGV = [sys.argv[0], *args]
    try:
        args = precheck(args)
    except PainloopError as exc:
        report_error(exc)
        raise SystemExit(EXIT_BAD_INPUT) from None
    sys.argv = [sys.argv[0], *args]
    hydra_main()


if __name__ == "__main__":
    main()
