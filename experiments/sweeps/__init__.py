"""Sweep workflow: reading a sweep folder, re-runs, sweeper objectives, the report's table and Pareto fronts.

- ``runs``: every run of a sweep folder, its state, swept parameters and own metrics;
- ``options``: the report's options and the checks made before any work;
- ``paired``: the report's common paired evaluation (trained models, threshold duties, baselines);
- ``table``: one row per run, on the fronts or not; ``front``: non-dominated sets, the goal comparison;
- ``report``: ``sweep_front`` (nothing written), ``build_report`` (the files), ``render`` (the console);
- ``plots``: the Pareto figures; ``rerun``: finished runs skipped on a re-run; ``objective``: what a job returns.

``python -m experiments.sweep_report PATH`` is the command line over ``report``.
Everything here is importable without Hydra::

    from experiments.sweeps import sweep_front

    front = sweep_front("multirun/pareto", evaluate=False)
"""

from experiments.sweeps.options import ReportOptions
from experiments.sweeps.report import SweepFront, build_report, render, sweep_front

__all__ = ["ReportOptions", "SweepFront", "build_report", "render", "sweep_front"]
