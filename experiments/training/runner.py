"""One training run, from a resolved config to its final status: what ``python -m experiments.train`` runs.

``run`` is the command's task function without Hydra: it decides between a
new run, a resumed one (``resume=<dir>``, or a folder that already holds the
same training) and a finished one; builds the plan; records the run folder;
trains under the stop signals and the heartbeat; and ends the run as
``finished``, ``interrupted`` (exit 128 + signal) or ``failed`` (exit 1; bad
input before the start: exit 2). ``train`` is the same for a Python caller
(a notebook): a typed config, keyword arguments for resuming, and a
``TrainResult``.

Nothing here imports Hydra: the command line (``experiments.train``)
composes the config and calls ``run``. What belongs in ``agents/`` and what
here: the package docstring (``experiments.training``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.common.run_folder import (
    RunFolder,
    RunInterrupted,
    fail_run,
    read_status,
    report_error,
    stop,
)
from experiments.config.train_schema import TrainConfig
from experiments.sweeps import rerun as sweep_rerun
from experiments.training import folder as tf
from experiments.training.build import build, torch_setup
from experiments.training.loop import learn
from experiments.training.plan import TrainPlan, make_plan, read_run_config
from experiments.training.record import record_run
from experiments.training.resume import existing_run
from experiments.training.signals import StopSignals
from simenv.errors import PainloopError

COMMAND = "train"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
#: Keys that may differ between a run and its resumption.
VOLATILE = ("resume", "progress_bar", "objective", "redo", "trust_run_folder")


def run(
    cfg: Mapping[str, Any],
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    show_progress: bool | None = None,
) -> float:
    """Train as ``cfg`` (plain resolved values) says into ``run_dir``; returns the best mean validation reward/day.

    ``cfg.resume=<dir>`` continues that run in its own folder with its own
    config (``run_dir`` is then unused); a ``run_dir`` that already holds the
    same training (a requeued Slurm job, a re-run sweep) resumes it, or
    returns its result if it finished. On error: ``SystemExit`` with code 2
    (bad input, nothing written but a failed status in a new folder) or 1
    (failure after the start; an unexpected exception is re-raised) if
    ``exit_on_error``, else the error is recorded and NaN returned (sweeps).
    A signal always records ``interrupted`` and exits with 128 + its number.
    """
    config = dict(cfg)
    run_dir = Path(run_dir)
    fresh = False
    try:
        if config.get("resume"):
            run_dir = Path(config["resume"])
            recorded = read_run_config(run_dir)
            existing = existing_run(run_dir)
            overrides = {k: config[k] for k in ("progress_bar", "trust_run_folder") if config.get(k) is not None}
            config = dict(recorded["config"]) | overrides | {"resume": None}
        else:
            existing = existing_run(run_dir)
            fresh = existing is None
            if existing is not None and sweep_rerun.comparable(existing.recorded["config"], VOLATILE) != sweep_rerun.comparable(config, VOLATILE):
                old, new = (sweep_rerun.comparable(c, VOLATILE) for c in (existing.recorded["config"], config))
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise PainloopError(
                    "PL-RUN-FOLDER",
                    f"'{run_dir}' already holds another training (keys that differ: {keys}); allowed: a new folder "
                    "(hydra.run.dir=...), or resume=<dir> to continue that training.",
                )
        if existing is not None and existing.finished:
            if not config.get("redo"):
                print(f"painloop train: run '{run_dir}' is already finished; nothing to do (redo=true "
                      "trains it again).", flush=True)
                return existing.objective
            sweep_rerun.clear_training(run_dir)
            existing, fresh = None, True
        plan = make_plan(config)
        torch_setup(config)
        built = build(plan, run_dir, existing)
    except PainloopError as exc:
        if fresh:
            run_dir.mkdir(parents=True, exist_ok=True)
            RunFolder(run_dir, COMMAND).fail(exc.code, exc.detail, EXIT_BAD_INPUT, type(exc).__name__)
        report_error(exc)
        return stop(EXIT_BAD_INPUT, exit_on_error)

    folder = RunFolder(run_dir, COMMAND)
    signals = StopSignals()
    t0 = time.perf_counter()
    try:
        with signals:
            record_run(plan, folder, built, argv)
            folder.start(slurm_job_id=os.environ.get("SLURM_JOB_ID"), resumed_from=built.start_timesteps or None)
            with folder.heartbeat_thread():
                outcome = learn(plan, built, folder, signals, show_progress)
    except RunInterrupted as exc:  # a second signal: stop at once, the last periodic checkpoint stands
        last = _last_checkpoint_name(run_dir, plan)
        folder.interrupt(exc.signal_name, last_checkpoint=last)
        print(f"interrupted by {exc.signal_name} (second signal); last checkpoint {last}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except Exception as exc:  # after work started: status failed, exit 1 (NaN inside a sweep)
        return fail_run(folder, exc, exit_on_error, EXIT_FAILED)
    if outcome["interrupted"]:
        folder.interrupt(signals.signal_name, last_checkpoint=outcome["last_checkpoint"])
        print(
            f"interrupted by {signals.signal_name} at {outcome['timesteps']:,} of {plan.budget:,} steps; checkpoint "
            f"{outcome['last_checkpoint']}; continue with: python -m experiments.train resume={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        if signals.hand_on():
            print("SIGUSR2 handed on to the previous handler (submitit: requeue)", file=sys.stderr, flush=True)
        raise SystemExit(128 + signals.signum)
    objective = outcome["best_reward_per_day"]
    folder.finish(
        result={
            "objective": objective,
            "objective_name": "best mean validation reward per day" if plan.energy_budget is None else
            "mean validation reward per day of the best model (lowest pain within the energy budget)",
            "timesteps": outcome["timesteps"],
            "final_validation": outcome["final_validation"],
            "wall_s": time.perf_counter() - t0,
            "train_fps": outcome["train_fps"],
        }
    )
    print(f"painloop train: finished {outcome['timesteps']:,} steps; best validation reward/day {objective:.3f}; "
          f"run folder {run_dir}", flush=True)
    return objective


def _last_checkpoint_name(run_dir: Path, plan: TrainPlan) -> str | None:
    try:
        found = tf.latest_checkpoint(run_dir, plan.algo.off_policy)
    except PainloopError:
        return None
    return None if found is None else str(found[1]["model"].relative_to(run_dir))


# -- the same from Python ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What ``train`` gives back: the run folder, the objective and the run's ``status.json``."""

    run_dir: Path
    objective: float  # best mean validation reward per day (NaN: failed, with exit_on_error=False)
    status: dict[str, Any]  # status.json as read_status reads it (state, result, error, ...)

    @property
    def state(self) -> str:
        """``finished`` or ``failed`` (an interrupted run raises ``SystemExit`` instead)."""
        return str(self.status.get("state", "missing"))

    @property
    def timesteps(self) -> int | None:
        """Steps trained when the run finished (None otherwise)."""
        value = (self.status.get("result") or {}).get("timesteps")
        return None if value is None else int(value)


def config_dict(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A training config as the plain mapping ``run`` takes; refuses a key left without a value (``???``)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)

    def unset(value: Any, key: str) -> list[str]:
        if isinstance(value, Mapping):
            return [k for name, v in value.items() for k in unset(v, f"{key}.{name}" if key else str(name))]
        return [key] if value == "???" else []

    missing = unset(data, "")
    if missing:
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"{missing} have no value; allowed: a value for every key, e.g. from "
            "experiments.training.defaults.default_config().",
        )
    return data


def train(
    config: TrainConfig | Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool | str | Path = False,
    trust_run_folder: bool = False,
    show_progress: bool | None = None,
    exit_on_error: bool = True,
    argv: Sequence[str] | None = None,
) -> TrainResult:
    """Train as ``config`` says into ``run_dir``, as ``python -m experiments.train hydra.run.dir=<run_dir>`` does.

    ``config`` is a ``TrainConfig`` with every key set (start from
    ``experiments.training.defaults.default_config(agent)``) or the same keys
    as a mapping (e.g. a run's recorded ``train_config.json["config"]``). A
    ``run_dir`` that already holds the same training resumes it (or gives back
    its result if it finished); one holding another training is refused.

    ``resume=True`` continues the run in ``run_dir`` with its own config to its
    own budget (the command's ``resume=<run_dir>``; ``config`` must then be
    None); ``resume=<dir>`` is the same for ``<dir>``. ``trust_run_folder``
    allows loading an off-policy run's pickled replay buffer on resume.

    As on the command line, bad input raises ``SystemExit(2)`` and a failure
    after the start ``SystemExit(1)`` (an unexpected exception is re-raised)
    once ``status.json`` records it; ``exit_on_error=False`` instead returns
    a ``TrainResult`` whose state is ``failed`` (as a sweep job does). A stop
    signal (Ctrl-C) checkpoints and raises ``SystemExit(128 + signal)``.
    Arguments that do not fit together raise ``PainloopError`` at once.
    """
    if resume is not False:
        target = run_dir if resume is True else resume
        if target is None or (run_dir is not None and Path(run_dir) != Path(target)):
            raise PainloopError("PL-CONFIG-VALUE", f"resume={resume!r} with run_dir={run_dir!r}; allowed: "
                                "resume=True with run_dir=<dir>, or resume=<dir> (a run resumes in its own folder).")
        if config is not None:
            raise PainloopError("PL-CONFIG-VALUE", "resume continues that run with its own config; allowed with "
                                "resume: config=None (and trust_run_folder, show_progress).")
        folder = Path(target)
        cfg: dict[str, Any] = {"resume": str(folder), "progress_bar": None, "trust_run_folder": bool(trust_run_folder)}
    else:
        if config is None or run_dir is None:
            raise PainloopError("PL-CONFIG-VALUE", "train() needs config and run_dir; allowed: both given, or "
                                "resume=True with run_dir=<dir> (or resume=<dir>).")
        folder = Path(run_dir)
        cfg = config_dict(config)
        if cfg.get("resume"):
            raise PainloopError("PL-CONFIG-VALUE", f"config resume={cfg['resume']!r}; allowed: null (resume a run "
                                "with train(resume=<dir>)).")
        if trust_run_folder:
            cfg["trust_run_folder"] = True
    objective = run(cfg, folder, argv=argv, exit_on_error=exit_on_error, show_progress=show_progress)
    return TrainResult(folder, objective, read_status(folder))
