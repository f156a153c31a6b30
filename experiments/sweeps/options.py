"""What a sweep report is asked for (``ReportOptions``) and every check made before any work starts.

The options are the command line of ``python -m experiments.sweep_report``
(``experiments.sweep_report.parse_args``) and the keywords of
``experiments.sweeps.report.sweep_front``. ``check_options`` refuses bad
input (no such folder, no run in it, an unknown baseline, a duty outside
(0, 1), an unknown frame, ...) with a ``PainloopError`` before anything is
evaluated or written.

The common evaluation's frame defaults to ``long_term`` (90 days of
unscored warm-up, 28 scored; ``agents.evaluation_frames``), ``week`` is
the 7-day frame; ``warmup_days`` and ``days`` override the frame's values.
The baseline fronts' grids are ``experiments.evaluation.fronts.FrontGrid``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.sweeps.runs import SweepRun, read_sweep
from simenv.errors import PainloopError

#: The baseline fronts' default grids (``experiments.evaluation.fronts.FrontGrid``, repeated here so the command
#: line's help reads them without loading NumPy; a test checks they agree).
DEFAULT_DUTIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEFAULT_CYCLING_PERIODS_S = (600.0, 1800.0, 3600.0, 7200.0)
DEFAULT_CYCLING_DUTIES = (0.2, 0.35, 0.5, 0.7)
DEFAULT_DUAL_DUTIES = (0.2, 0.35, 0.5, 0.65, 0.8)
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
    frame: str = "long_term"  # long_term | week (agents.evaluation_frames)
    warmup_days: float | None = None  # unscored days before the scored window (None: the frame's)
    days: float | None = None  # scored days (None: the frame's)
    seed: int = 0
    duties: tuple[float, ...] = DEFAULT_DUTIES  # the threshold front's target duties
    cycling_periods_s: tuple[float, ...] = DEFAULT_CYCLING_PERIODS_S
    cycling_duties: tuple[float, ...] = DEFAULT_CYCLING_DUTIES
    dual_duties: tuple[float, ...] = DEFAULT_DUAL_DUTIES
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    tolerance_nrs: float = 0.05
    energy_tolerance: float = 0.05  # a budget is met within it; fronts are read at the energy times 1 + it
    models: tuple[str, ...] = ("best", "final")
    jobs: int = 1  # processes sharing the common evaluation's patients (identical results; -1: every core)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.path / DEFAULT_OUT

    @property
    def warmup(self) -> float:
        from experiments.evaluation.fronts import frame_days

        return frame_days(self.frame, self.warmup_days, self.days)[0]

    @property
    def scored_days(self) -> float:
        from experiments.evaluation.fronts import frame_days

        return frame_days(self.frame, self.warmup_days, self.days)[1]

    def grid(self):
        """The baseline fronts' grid (``FrontGrid``; ``PL-CONTROLLER-PARAM`` on a bad value)."""
        from experiments.evaluation.fronts import FrontGrid

        return FrontGrid(threshold_duties=tuple(self.duties), cycling_periods_s=tuple(self.cycling_periods_s),
                         cycling_duties=tuple(self.cycling_duties), dual_duties=tuple(self.dual_duties))


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
        from experiments.evaluation.fronts import front_specs

        for spec in front_specs(opts.grid())["cycling"]:  # on and off parts of at least one 30 s step
            spec.build(30.0, opts.seed)
        if opts.patients < 1:
            raise PainloopError("PL-COHORT-SIZE", f"--patients {opts.patients}; allowed: at least 1.")
        # An unknown frame and a warm-up that is not a finite number >= 0 are refused as the days are read.
        if not opts.scored_days > 0:
            raise PainloopError("PL-ENV-ARG", f"--days {opts.days}; allowed: a number of days > 0.")
        if not 0 <= opts.energy_tolerance < 1:
            raise PainloopError("PL-CONFIG-VALUE", f"--energy-tolerance {opts.energy_tolerance}; allowed: a share "
                                "in [0, 1), e.g. 0.05.")
        from simenv.cohort import load_preset

        load_preset(opts.cohort)
    return runs
