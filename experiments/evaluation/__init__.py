"""Evaluation workflow: controllers on a cohort, paired, with tables and figures; plain Python, no Hydra.

- ``controllers``: controller entries (``name``, ``label=name``, ``run:<dir>``, ``config:<dir>``) -> specs;
- ``config``: ``EvaluateConfig`` filled as the command line fills it (``conf/evaluate.yaml``);
- ``plan``: every input checked and built before any work;
- ``results``: the engine's run of a plan, its summary, paired differences, files and console text;
- ``run``: the same in a run folder (status, heartbeats, exit codes), what the command does;
- ``api``: ``evaluate_controllers``, the one call a notebook needs;
- ``report`` and ``plots``: the tables and figures.

``python -m experiments.evaluate`` is the Hydra entry point over ``run``.
Everything here is importable without Hydra::

    from experiments.evaluation import evaluate_controllers, report_text

    ev = evaluate_controllers(["continuous", "threshold"], cohort="test", n_patients=5, horizon_days=2,
                              seed=0, reference="continuous")
    print(report_text(ev))
"""

from experiments.evaluation.api import evaluate_controllers
from experiments.evaluation.config import evaluate_config
from experiments.evaluation.results import Evaluation, report_text, write_evaluation
from experiments.evaluation.run import run as run_evaluation

__all__ = ["Evaluation", "evaluate_config", "evaluate_controllers", "report_text", "run_evaluation",
           "write_evaluation"]
