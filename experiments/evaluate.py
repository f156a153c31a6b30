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
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from agents.evaluation_pool import resolve_jobs  # noqa: E402
from experiments.common.controller_entries import (  # noqa: E402
    CONTROLLER_DIR,
    available_controllers,
    load_controller,
    parse_entry,
)
from experiments.common.run_folder import RunFolder, RunInterrupted, fail_run, report_error, stop  # noqa: E402
from experiments.config import schema as hydra_schema  # noqa: E402
from experiments.sweeps.rerun import finished_objective  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

COMMAND = "evaluate"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

hydra_schema.register()
#: The command line as typed (``main`` rewrites ``sys.argv`` for Hydra); recorded in run.json.
_TYPED_ARGV: list[str] | None = None


# -- controller entries (read by experiments.common.controller_entries) -------------------------
def resolve_controllers(entries: Sequence[str], conf_dir: Path = CONTROLLER_DIR) -> tuple[list, list]:
    """Controller entries -> (specs in order, hidden specs that ``random`` entries match)."""
    if isinstance(entries, (str, bytes)) or not entries:
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"controllers={entries!r}; allowed: a non-empty list of entries, e.g. [continuous,threshold].",
        )
    parsed = [parse_entry(e, conf_dir) for e in entries]
    labels = [label for label, _ in parsed]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise PainloopError(
            "PL-CONTROLLER-LABEL",
            f"controller labels {dupes} appear more than once; labels must be unique: write label=name, "
            "e.g. 'controllers=[threshold,thr2=threshold]'.",
        )
    specs = [load_controller(name, label, conf_dir) for label, name in parsed]
    by_label = {s.label: s for s in specs}
    extra: dict[str, Any] = {}
    for s in specs:
        m = s.match
        if m is None or m in by_label or m in extra:
            continue
        if m not in available_controllers(conf_dir):
            raise PainloopError(
                "PL-CONTROLLER-MATCH",
                f"controller '{s.label}' matches '{m}', which is neither an entry label {labels} nor a controller "
                f"name {available_controllers(conf_dir)}.",
            )
        extra[m] = load_controller(m, m, conf_dir)
    for s in specs:
        target = by_label.get(s.match) or extra.get(s.match) if s.match is not None else None
        if target is not None and target.match is not None:
            raise PainloopError(
                "PL-CONTROLLER-MATCH",
                f"controller '{s.label}' matches '{target.label}', which is itself matched to another controller; "
                "allowed: a controller that runs on its own (e.g. threshold).",
            )
    return specs, list(extra.values())


# -- the plan: every input checked before anything is written ------------------------------------
@dataclass
class Plan:
    specs: list
    extra_specs: list
    patients: list
    settings: Any
    reward: Any
    seed: int
    reference: str
    trace_patient: int
    cohort: str
    cohort_seed: int
    n_patients: int
    jobs: int = 1


def make_plan(cfg: DictConfig, conf_dir: Path = CONTROLLER_DIR) -> Plan:
    """Check the whole config and build what ``evaluate`` needs; raises ``PainloopError`` on bad input."""
    from simenv.batch import EnvSettings
    from simenv.cohort import load_preset
    from simenv.reward import RewardWeights

    specs, extra = resolve_controllers(list(cfg.controllers), conf_dir)
    labels = [s.label for s in specs]
    reference = str(cfg.reference)
    if reference not in labels:
        raise PainloopError(
            "PL-REFERENCE-UNKNOWN",
            f"reference '{reference}' is not a controller label; available: {labels} (set reference=<label>).",
        )
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PainloopError("PL-ENV-ARG", f"seed={seed!r}; allowed: a whole number >= 0.")
    preset = load_preset(str(cfg.cohort.name))
    patients = preset.sample(cfg.cohort.n_patients)
    settings = EnvSettings(
        action_mode="on_off",
        dt_s=float(cfg.dt_s),
        horizon_days=float(cfg.horizon_days),
        initial_state=str(cfg.initial_state),
    )
    reward = RewardWeights.from_mapping(OmegaConf.to_container(cfg.reward, resolve=True))
    trace_patient = cfg.trace_patient
    if not 0 <= trace_patient < len(patients):
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"trace_patient={trace_patient!r}; allowed: a patient index from 0 to {len(patients) - 1} "
            f"(cohort.n_patients={len(patients)}).",
        )
    for s in [*specs, *extra]:  # parameter ranges are checked when the objects are built
        pol = s.build(settings.dt_s, seed)
        if s.kind == "config":  # every patient has a config that fits it, at this dt_s
            pol.check_settings(settings)
            pol.configs_for(patients)
        if s.needs_detector:
            s.detector_settings()
        if s.needs_detector or s.kind == "oracle":
            s.clinic_settings()
    jobs = resolve_jobs(cfg.get("jobs", 1), len(patients))
    return Plan(specs, extra, patients, settings, reward, seed, reference, int(trace_patient), preset.name,
                preset.seed, len(patients), jobs)


# -- running -----------------------------------------------------------------------------------
def run(
    cfg: DictConfig,
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
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = None if cfg.get("redo") else finished_objective(run_dir, OmegaConf.to_container(cfg, resolve=True))
    if done is not None:  # a re-run sweep: this job's folder already holds its finished result
        print(f"painloop evaluate: run '{run_dir}' is already finished; nothing to do (redo=true evaluates again).")
        return done
    folder = RunFolder(run_dir, COMMAND)
    try:
        plan = make_plan(cfg, conf_dir)
    except PainloopError as exc:
        folder.fail(exc.code, exc.detail, EXIT_BAD_INPUT, type(exc).__name__)
        report_error(exc)
        return stop(EXIT_BAD_INPUT, exit_on_error)

    config = OmegaConf.to_container(cfg, resolve=True)
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
                objective = _evaluate_and_write(plan, folder, run_dir, show_progress)
    except RunInterrupted as exc:  # a signal stops a sweep too: always exit
        folder.interrupt(exc.signal_name)
        print(f"interrupted by {exc.signal_name}; status recorded in {folder.status_path}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except Exception as exc:  # after work started: status failed, exit 1 (NaN inside a sweep)
        return fail_run(folder, exc, exit_on_error, EXIT_FAILED)
    folder.finish(
        result={
            "objective": objective,
            "objective_name": f"reward_per_day of '{plan.specs[0].label}' (mean across patients)",
            "wall_s": time.perf_counter() - t0,
        }
    )
    return objective


def _evaluate_and_write(plan: Plan, folder: RunFolder, run_dir: Path, show_progress: bool | None) -> float:
    from tqdm import tqdm

    from agents.evaluation import evaluate, paired_differences, summarise
    from experiments.evaluation import plots as evaluation_plots
    from experiments.evaluation import report as evaluation_report

    labels = [s.label for s in plan.specs]
    title = (
        f"{len(labels)} controllers x {plan.n_patients} patients of cohort '{plan.cohort}', "
        f"{plan.settings.horizon_days:g} day(s), seed {plan.seed}"
    )
    processes = f"; {plan.jobs} processes" if plan.jobs > 1 else ""
    print(f"painloop evaluate: {title}{processes}; run folder {run_dir}", flush=True)
    bar = tqdm(total=None, unit="step", unit_scale=True, desc="calibrating and simulating",
               disable=None if show_progress is None else not show_progress, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        folder.heartbeat(progress={"done_steps": done, "total_steps": total})

    try:
        result = evaluate(
            plan.specs,
            plan.patients,
            plan.settings,
            reward=plan.reward,
            seed=plan.seed,
            trace_patient=plan.trace_patient,
            progress=progress,
            extra_specs=plan.extra_specs,
            jobs=plan.jobs,
        )
    finally:
        bar.close()
    summary = summarise(result)
    paired = paired_differences(result, plan.reference)
    meta = {
        "cohort": plan.cohort,
        "n_patients": plan.n_patients,
        "horizon_days": plan.settings.horizon_days,
        "dt_s": plan.settings.dt_s,
        "initial_state": plan.settings.initial_state,
        "seed": plan.seed,
        "reference": plan.reference,
        "controllers_in_order": labels,
        "uses_latent": result.uses_latent,
    }
    evaluation_report.write_tables(run_dir, result, summary, paired, plan.reference, meta)
    evaluation_plots.write_plots(run_dir, result, summary, paired, plan.reference, plan.trace_patient, title)
    print()
    print(evaluation_report.console_table(summary))
    print()
    print(evaluation_report.console_paired(paired, plan.reference))
    print(
        "\nmean ± half-width of the 95% interval across patients (paired for differences); "
        "'(latent)' reads state no device can sense.\n"
        f"tables (metrics, per_patient, paired, detectors) and plots (trace_<label>, bars, pareto) in {run_dir}",
        flush=True,
    )
    return float(summary[0]["reward_per_day"])


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
