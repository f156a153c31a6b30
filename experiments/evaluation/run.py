"""An evaluation in a run folder: ``run.json``, ``status.json`` with heartbeats, tables, figures, console text.

What ``python -m experiments.evaluate`` does once Hydra has composed the
config and chosen the folder: skip a folder that already holds a finished
run of the same config (``experiments.sweeps.rerun``), check the plan
(bad input: status ``failed``, exit code 2), evaluate with a progress bar,
write the outputs and print the tables. A failure after the work started
is recorded ``failed`` (exit code 1); SIGINT/SIGTERM/SIGUSR2 record
``interrupted`` and exit 128 + the signal number. Plain Python, no Hydra:
``experiments.evaluation.api`` calls the same function.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.common.controller_entries import CONTROLLER_DIR
from experiments.common.run_folder import RunFolder, RunInterrupted, fail_run, report_error, stop
from experiments.config.schema import EvaluateConfig
from experiments.evaluation.config import as_dictconfig
from experiments.evaluation.plan import Plan, make_plan
from experiments.evaluation.results import (
    Evaluation,
    evaluate_plan,
    plan_title,
    report_text,
    write_evaluation,
)
from experiments.sweeps.rerun import finished_objective
from simenv.errors import PainloopError

COMMAND = "evaluate"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


@dataclass
class RunOutcome:
    """What a run folder evaluation ended with."""

    objective: float  # the first controller's mean reward per day; NaN after a recorded error
    evaluation: Evaluation | None = None  # None: skipped (already finished) or failed
    error: BaseException | None = None  # the recorded error when ``exit_on_error`` is false


def run_in_folder(
    cfg: EvaluateConfig | DictConfig,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    show_progress: bool | None = None,
    conf_dir: Path = CONTROLLER_DIR,
) -> RunOutcome:
    """Evaluate as ``cfg`` says into ``run_dir`` (see ``run``); returns the objective and the evaluation."""
    cfg = as_dictconfig(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)  # recorded in run.json, compared on a re-run
    done = None if cfg.get("redo") else finished_objective(run_dir, config)
    if done is not None:  # a re-run sweep: this job's folder already holds its finished result
        print(f"painloop evaluate: run '{run_dir}' is already finished; nothing to do (redo=true evaluates again).")
        return RunOutcome(done)
    folder = RunFolder(run_dir, COMMAND)
    try:
        plan = make_plan(cfg, conf_dir)
    except PainloopError as exc:
        folder.fail(exc.code, exc.detail, EXIT_BAD_INPUT, type(exc).__name__)
        report_error(exc)
        return RunOutcome(stop(EXIT_BAD_INPUT, exit_on_error), error=exc)

    folder.write_run_info(
        argv=argv,
        seeds={
            "seed": plan.seed,
            "noise": "numpy.random.SeedSequence([seed, patient_uid, episode]) per patient",
            "cohort": plan.cohort,
            "cohort_seed": plan.cohort_seed,
            "patient_uids": [p.uid for p in plan.patients],
        },
        config=config,
    )
    t0 = time.perf_counter()
    try:
        with RunFolder.interrupt_signals():
            folder.start()
            with folder.heartbeat_thread():
                evaluation = _evaluate_and_write(plan, folder, run_dir, show_progress)
                objective = evaluation.objective
    except RunInterrupted as exc:  # a signal stops a sweep too: always exit
        folder.interrupt(exc.signal_name)
        print(f"interrupted by {exc.signal_name}; status recorded in {folder.status_path}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except Exception as exc:  # after work started: status failed, exit 1 (NaN inside a sweep)
        return RunOutcome(fail_run(folder, exc, exit_on_error, EXIT_FAILED), error=exc)
    folder.finish(
        result={
            "objective": objective,
            "objective_name": f"reward_per_day of '{plan.specs[0].label}' (mean across patients)",
            "wall_s": time.perf_counter() - t0,
        }
    )
    return RunOutcome(objective, evaluation)


def run(
    cfg: EvaluateConfig | DictConfig,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    show_progress: bool | None = None,
    conf_dir: Path = CONTROLLER_DIR,
) -> float:
    """Evaluate as ``cfg`` says into ``run_dir``; returns the objective (mean reward/day of the first controller).

    On error: ``SystemExit`` with code 2 (bad input) or 1 (failure after the
    work started; an unexpected exception is re-raised) if ``exit_on_error``,
    else the error is recorded and NaN returned (sweeps). A signal always
    records ``interrupted`` and exits with 128 + its number.
    ``show_progress=None`` shows the bar only on a terminal.
    """
    return run_in_folder(cfg, run_dir, argv, exit_on_error, show_progress, conf_dir).objective


def _evaluate_and_write(plan: Plan, folder: RunFolder, run_dir: Path, show_progress: bool | None) -> Evaluation:
    title = plan_title(plan)
    processes = f"; {plan.jobs} processes" if plan.jobs > 1 else ""
    print(f"painloop evaluate: {title}{processes}; run folder {run_dir}", flush=True)

    def heartbeat(done: int, total: int) -> None:
        folder.heartbeat(progress={"done_steps": done, "total_steps": total})

    evaluation = evaluate_plan(plan, show_progress, on_progress=heartbeat)
    write_evaluation(evaluation, run_dir)
    print()
    print(report_text(evaluation))
    print(
        "\nmean ± half-width of the 95% interval across patients (paired for differences); "
        "'(latent)' reads state no device can sense.\n"
        f"tables (metrics, per_patient, monthly, paired, detectors) and plots (trace_<label>, bars, pareto, monthly) in {run_dir}",
        flush=True,
    )
    return evaluation
