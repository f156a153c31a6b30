"""A paired evaluation from plain Python, in one call: ``evaluate_controllers([...], cohort=..., ...)``.

The same config (``EvaluateConfig``, filled from ``conf/evaluate.yaml`` by
``experiments.evaluation.config``), the same checks and the same engine as
``python -m experiments.evaluate``, without Hydra::

    from experiments.evaluation import evaluate_controllers, report_text

    ev = evaluate_controllers(["continuous", "threshold"], cohort="test", n_patients=5, horizon_days=2)
    print(report_text(ev))        # the tables the command prints
    ev.summary, ev.paired         # the rows of metrics.csv and paired.csv

With ``run_dir`` the call writes the run folder as the command does
(``run.json``, ``status.json``, tables, figures) and prints its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.common.controller_entries import CONTROLLER_DIR
from experiments.config.schema import EvaluateConfig
from experiments.evaluation.config import evaluate_config
from experiments.evaluation.plan import make_plan
from experiments.evaluation.results import Evaluation, evaluate_plan
from experiments.evaluation.run import run_in_folder


def evaluate_controllers(
    controllers: Sequence[str] | None = None,
    *,
    config: EvaluateConfig | None = None,
    run_dir: str | Path | None = None,
    show_progress: bool | None = False,
    controller_dir: Path = CONTROLLER_DIR,
    **keys: Any,
) -> Evaluation:
    """Evaluate ``controllers`` paired (same patients, same noise) and return the ``Evaluation``.

    ``controllers`` are entries as on the command line: names of
    ``conf/controller/`` files, ``label=entry``, ``run:<dir>`` (a training
    run folder), ``config:<dir>`` (exported device configs); ``None``
    keeps the config's. ``config`` is a complete ``EvaluateConfig``
    (default: ``evaluate_config(**keys)``, the command's defaults with
    ``keys`` applied: ``cohort``, ``n_patients``, ``horizon_days``,
    ``seed``, ``reference``, ``dt_s``, ``initial_state``, ``reward``,
    ``trace_patient``, ``jobs``, ``redo``); give one or the other.
    ``controller_dir`` is the folder of controller files.

    Bad input raises ``PainloopError`` before any simulation. With
    ``run_dir``, the run folder is written as ``python -m
    experiments.evaluate`` writes it; an error is recorded in its
    ``status.json`` and raised, a signal exits as the command does; a
    folder that holds a finished run of the same config raises
    ``FileExistsError`` (``redo=True`` evaluates again).
    """
    if config is not None and keys:
        raise TypeError(f"give either config or keys {sorted(keys)}, not both")
    if config is None:
        config = evaluate_config(**keys)
    if controllers is not None:
        config = replace(config, controllers=list(controllers))
    if run_dir is None:
        return evaluate_plan(make_plan(config, controller_dir), show_progress)
    outcome = run_in_folder(config, run_dir, exit_on_error=False, show_progress=show_progress,
                           conf_dir=controller_dir)
    if outcome.error is not None:
        raise outcome.error
    if outcome.evaluation is None:
        raise FileExistsError(f"'{run_dir}' already holds a finished run of this config; give redo=True to "
                              "evaluate again.")
    return outcome.evaluation
