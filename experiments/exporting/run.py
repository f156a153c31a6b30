"""An export into a run folder: configs, golden traces and the fidelity report (or ONNX), under the run-folder contract.

``run_export`` is the command's work for one ``ExportRequest``: every input
is checked first (bad input: ``error: <CODE>: ...`` on stderr, ``status.json``
failed, exit code 2), then the configs are built and validated as a set (an
export that would break a rule is refused the same way, no file written),
and only then are files written. The folder receives
``configs/<cohort>_<index>_<uid>.json`` (one per patient,
``painloop.controller/v1``), ``traces/<same>.csv`` (golden traces),
``fidelity.json`` / ``fidelity_per_patient.csv`` / ``fidelity_metrics.csv`` /
``fidelity_paired.csv``, ``run.json`` and ``status.json``; for ONNX,
``policy.onnx`` and ``onnx_check.json``. A failure after the checks exits 1;
SIGINT/SIGTERM/SIGUSR2 record ``interrupted`` and exit 128 + the signal number.
``export_controller`` is the same from Python with keyword arguments.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.atomic_io import open_atomic
from agents.controller_config import ConfigError
from agents.export import golden_traces, write_trace_csv
from agents.onnx_export import check_onnx, export_onnx, record_observations
from experiments.common.controller_entries import CONTROLLER_DIR
from experiments.common.run_folder import RunFolder, RunInterrupted, write_json_atomic
from experiments.exporting.configs import build_configs, validate_all
from experiments.exporting.fidelity import fidelity_report
from experiments.exporting.plan import ExportRequest, Plan, make_plan, patient_file_stem
from simenv.batch import EnvSettings
from simenv.errors import PainloopError

COMMAND = "export"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    with open_atomic(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})


def _export_configs(plan: Plan, folder: RunFolder, run_dir: Path, argv, config) -> dict:
    n = len(plan.patients)
    print(f"painloop export: {plan.source} -> {plan.target} ({plan.method}) for {n} patients of cohort "
          f"'{plan.cohort}'; run folder {run_dir}", flush=True)

    def progress(r, i):
        folder.heartbeat(progress={"stage": "distill", "round": r, "patient": i, "n_patients": n})

    configs, fits = build_configs(plan, progress)
    validate_all(plan, configs)  # refuses (exit 2) before any file is written
    folder.heartbeat(progress={"stage": "fidelity"}, force=True)
    report = fidelity_report(plan, configs)
    per = {row["uid"]: row for row in report["per_patient"]}
    for p, c in zip(plan.patients, configs, strict=True):
        row = per[int(p.uid)]
        c["provenance"]["metrics_at_export"] = {
            k: row[k] for k in row if k.startswith(("closed_loop_", "shadow_", "source_", "exported_", "off_"))
        }
    folder.write_run_info(
        argv=argv,
        seeds={"seed": plan.seed, "distill_seed": plan.distill.seed if plan.method == "distill" else None,
               "noise": "numpy.random.SeedSequence([seed, patient_uid, episode]) per patient",
               "cohort": plan.cohort, "cohort_seed": plan.cohort_seed,
               "patient_uids": [p.uid for p in plan.patients]},
        config=config,
    )
    (run_dir / "configs").mkdir(exist_ok=True)
    (run_dir / "traces").mkdir(exist_ok=True)
    for p, c in zip(plan.patients, configs, strict=True):
        write_json_atomic(run_dir / "configs" / f"{patient_file_stem(p)}.json", c)
    folder.heartbeat(progress={"stage": "golden traces"}, force=True)
    traces = golden_traces(configs, plan.patients, plan.settings.dt_s, plan.trace_days, plan.seed,
                           plan.settings.initial_state)
    for p, c, rows in zip(plan.patients, configs, traces, strict=True):
        write_trace_csv(run_dir / "traces" / f"{patient_file_stem(p)}.csv", c, rows)
    write_json_atomic(run_dir / "fidelity.json", {k: v for k, v in report.items() if k != "per_patient"}
                      | {"per_patient": report["per_patient"], "fits": fits})
    _write_csv(run_dir / "fidelity_per_patient.csv", report["per_patient"])
    _write_csv(run_dir / "fidelity_metrics.csv", report["metrics"])
    _write_csv(run_dir / "fidelity_paired.csv", report["paired_vs_source"])
    a = report["agreement_per_patient_mean"]
    r = report["reward_per_day_mean"]
    print(
        f"fidelity report, {plan.frame_text}\n"
        f"agreement with the source on held-out days (mean over patients, 95% CI):\n"
        f"  closed loop: balanced accuracy {a['closed_loop_balanced_accuracy']['mean']:.3f} "
        f"[{a['closed_loop_balanced_accuracy']['ci_low']:.3f}, {a['closed_loop_balanced_accuracy']['ci_high']:.3f}], "
        f"kappa {a['closed_loop_cohen_kappa']['mean']:.3f}\n"
        f"  shadow (on the source's trajectory): balanced accuracy {a['shadow_balanced_accuracy']['mean']:.3f}, "
        f"kappa {a['shadow_cohen_kappa']['mean']:.3f}\n"
        f"  exact decisions on every patient: {report['exact_decisions']}\n"
        f"reward/day: off {r['off']:.1f}, source {r['source']:.1f}, exported {r['exported']:.1f}; "
        f"gain over off retained: {report['reward_gain_retention']:.3f}\n"
        f"configs in {run_dir / 'configs'}, golden traces in {run_dir / 'traces'}, report fidelity.json",
        flush=True,
    )
    return {
        "n_configs": len(configs),
        "closed_loop_balanced_accuracy": a["closed_loop_balanced_accuracy"]["mean"],
        "closed_loop_cohen_kappa": a["closed_loop_cohen_kappa"]["mean"],
        "shadow_balanced_accuracy": a["shadow_balanced_accuracy"]["mean"],
        "reward_gain_retention": report["reward_gain_retention"],
        "exact_decisions": report["exact_decisions"],
    }


def _export_onnx(plan: Plan, folder: RunFolder, run_dir: Path, argv, config) -> dict:
    folder.write_run_info(argv=argv, seeds={"seed": plan.seed, "cohort": plan.cohort}, config=config)
    path = export_onnx(plan.policy, run_dir / "policy.onnx")
    settings = EnvSettings(dt_s=plan.settings.dt_s, horizon_days=1.0, initial_state=plan.settings.initial_state)
    obs = record_observations(plan.policy, plan.patients, settings, plan.seed, plan.onnx_observations)
    check = check_onnx(plan.policy, path, obs)
    write_json_atomic(run_dir / "onnx_check.json", check | {"source": plan.source})
    print(f"ONNX graph {path}: {check['n_equal']} of {check['n_observations']} actions equal SB3's deterministic "
          "actions", flush=True)
    if not check["all_equal"]:
        raise PainloopError(
            "PL-EXPORT-ONNX", f"the exported graph's actions differ from SB3's on {check['n_observations'] - check['n_equal']} "
            f"of {check['n_observations']} observations (largest difference {check['max_abs_difference']:g}); see "
            f"{run_dir / 'onnx_check.json'}."
        )
    return check


def run_export(
    request: ExportRequest,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    conf_dir: Path = CONTROLLER_DIR,
    config: Any = None,
) -> float:
    """Export as ``request`` says into ``run_dir``; returns the closed-loop balanced accuracy (ONNX: 1.0).

    ``argv`` (default ``sys.argv``) and ``config`` (default: the request's
    fields) are recorded in ``run.json``; ``conf_dir`` holds the controller
    files. On bad input or a failure the error is printed and recorded in
    ``status.json``, then ``SystemExit`` is raised with the exit code (2 or
    1), or, with ``exit_on_error=False``, NaN is returned.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(run_dir, COMMAND)

    def stop(exc: PainloopError, code: int) -> float:
        folder.fail(exc.code, exc.detail, code, type(exc).__name__)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if exit_on_error:
            raise SystemExit(code)
        return math.nan

    try:
        plan = make_plan(request, conf_dir)
    except PainloopError as exc:
        return stop(exc, EXIT_BAD_INPUT)
    if config is None:
        config = dataclasses.asdict(request)
    t0 = time.perf_counter()
    try:
        with RunFolder.interrupt_signals():
            folder.start()
            with folder.heartbeat_thread():
                if plan.method == "onnx":
                    result = _export_onnx(plan, folder, run_dir, argv, config)
                    objective = 1.0 if result["all_equal"] else 0.0
                else:
                    result = _export_configs(plan, folder, run_dir, argv, config)
                    objective = float(result["closed_loop_balanced_accuracy"])
    except RunInterrupted as exc:
        folder.interrupt(exc.signal_name)
        print(f"interrupted by {exc.signal_name}; status recorded in {folder.status_path}", file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except ConfigError as exc:  # an export that would break a rule: refused, nothing written
        return stop(exc, EXIT_BAD_INPUT)
    except PainloopError as exc:
        if exc.code == "PL-CONFIG-MISMATCH":
            return stop(exc, EXIT_BAD_INPUT)
        return stop(exc, EXIT_FAILED)
    except Exception as exc:
        folder.fail(None, f"{type(exc).__name__}: {exc}", EXIT_FAILED, type(exc).__name__)
        raise
    folder.finish(result=result | {"wall_s": time.perf_counter() - t0})
    return objective


def export_controller(
    source: str,
    target: str,
    out_dir: str | Path,
    *,
    exit_on_error: bool = True,
    conf_dir: Path = CONTROLLER_DIR,
    **options: Any,
) -> float:
    """Export controller entry ``source`` to ``target`` into ``out_dir``, as ``python -m experiments.export`` does.

    ``options`` are the other ``ExportRequest`` fields (``cohort``,
    ``n_patients``, ``seed``, ``dt_s``, ``initial_state``, ``trace_days``,
    ``frame``, ``warmup_days``, ``fidelity_days``, ``reward``, ``distill=DistillOptions(...)``,
    ``onnx_observations``). Returns what ``run_export`` returns; the files and
    ``status.json`` are in ``out_dir``.
    """
    request = ExportRequest(source=source, target=target, **options)
    return run_export(request, out_dir, exit_on_error=exit_on_error, conf_dir=conf_dir)
