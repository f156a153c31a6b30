"""What a sweep report is asked for (``ReportOptions``) and every check made before any work starts.

The options are the command line of ``python -m experiments.sweep_report``
(``experiments.sweep_report.parse_args``) and the keywords of
``experiments.sweeps.report.sweep_front``. ``check_options`` refuses bad
input (no such folder, no run in it, an unknown baseline, a duty outside
(0, 1), ...) with a ``PainloopError`` before anything is evaluated or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.sweeps.runs import SweepRun, read_sweep
from simenv.errors import PainloopError

DEFAULT_DUTIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEFAULT_BASELINES = ("off", "continuous", "cycling", "cycling_5min", "dual_threshold")
#: Which model of a training the common evaluation runs: the best by its own validation reward, or the last.
MODEL_FILES = {"best": "best_model.zip", "final": "model.zip"}
#: The report's folder inside the sweep folder when ``out`` is not given.
DEFAULT_OUT = "sweep_report"


@dataclass
class ReportOptions:
    """A sweep report's options (defaults: those of the command line)."""

    path: Path  # the sweep folder (Hydra's multirun output) or one run folder
    out: Path | None = None  # where the report is written; None: path / DEFAULT_OUT
    evaluate: bool = True  # the common paired evaluation; False: each run's own metrics, no threshold front
    cohort: str = "test"
    patients: int = 100
    days: float = 7.0
    seed: int = 0
    duties: tuple[float, ...] = DEFAULT_DUTIES
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    tolerance_nrs: float = 0.05
    models: tuple[str, ...] = ("best", "final")

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.path / DEFAULT_OUT


def check_options(opts: ReportOptions) -> list[SweepRun]:
    """Everything that can be refused before work starts; returns the sweep's runs."""
    if not opts.path.is_dir():
        raise PainloopError("PL-SWEEP-PATH", f"'{opts.path}' is not a folder; allowed: a sweep folder "
                            "(Hydra's multirun output, e.g. multirun/train/<date>/<time>) or a run folder.")
    runs = read_sweep(opts.path)
    if not runs:
        raise PainloopError("PL-SWEEP-PATH", f"'{opts.path}' holds no run (no status.json or .hydra/overrides.yaml "
                            "below it); allowed: the output folder of a --multirun of experiments.train or evaluate.")
    if opts.out_dir.exists() and not opts.out_dir.is_dir():
        raise PainloopError("PL-OUTPUT-PATH", f"--out '{opts.out_dir}' exists and is not a folder; allowed: a folder.")
    if opts.evaluate:
        # The evaluation library is loaded only when a common evaluation is asked for.
        from experiments.common.controller_entries import available_controllers

        names = available_controllers()
        unknown = [b for b in opts.baselines if b not in names]
        if unknown:
            raise PainloopError("PL-CONTROLLER-UNKNOWN",
                                f"--baselines {unknown} do not exist; available controllers: {names}.")
        odd = [m for m in opts.models if m not in MODEL_FILES]
        if odd or not opts.models:
            raise PainloopError("PL-CONFIG-VALUE", f"--models {list(opts.models)}; allowed: one or both of "
                                f"{list(MODEL_FILES)}.")
        bad = [d for d in opts.duties if not 0.0 < d < 1.0]
        if bad:
            raise PainloopError("PL-CONTROLLER-PARAM", f"--duties {bad}; allowed: target duties in (0, 1).")
        if opts.patients < 1:
            raise PainloopError("PL-COHORT-SIZE", f"--patients {opts.patients}; allowed: at least 1.")
        if not opts.days > 0:
            raise PainloopError("PL-ENV-ARG", f"--days {opts.days}; allowed: a number of days > 0.")
        from simenv.cohort import load_preset

        load_preset(opts.cohort)
    return runs
