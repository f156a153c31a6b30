"""``python -m experiments.export``: a policy to implantable-controller configs (or ONNX), with a fidelity report.

``source`` uses the controller entry syntax: ``source=threshold`` (or
``dual_threshold``, or any ``conf/controller/`` file of those kinds) maps the
clinic-calibrated detector directly onto an RC+S config; ``source=run:<dir>``
distils a trained policy (``agents.distill``); ``target=percept`` always
distils (one band). ``target=onnx`` exports a run's network with its
normalisation fused in and checks it against SB3 on recorded observations.

The run folder (Hydra's output directory) receives ``configs/<cohort>_<index>_<uid>.json``
(one per patient, ``painloop.controller/v1``), ``traces/<same>.csv`` (golden
traces), ``fidelity.json`` / ``fidelity_per_patient.csv`` /
``fidelity_metrics.csv`` / ``fidelity_paired.csv``, ``run.json`` and ``status.json``; for ONNX,
``policy.onnx`` and ``onnx_check.json``. docs/export.md is the user's guide.

Examples::

    python -m experiments.export source=threshold target=summit_rcs cohort=test cohort.n_patients=5
    python -m experiments.export source=run:outputs/train/2025-01-01/12-00-00 target=summit_rcs
    python -m experiments.export source=run:outputs/train/2025-01-01/12-00-00 target=onnx

Every config is validated (schema, device ranges, encodings, safety) before
any file is written: bad input, or an export that would break a rule, exits
with code 2, listing every violation, and leaves only Hydra's record and
``status.json`` (failed). A failure after that exits 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import csv  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from omegaconf import MISSING, DictConfig, OmegaConf  # noqa: E402

from agents.atomic_io import open_atomic  # noqa: E402
from experiments.common.controller_entries import CONTROLLER_DIR, load_controller, parse_entry  # noqa: E402
from experiments.common.run_folder import RunFolder, RunInterrupted, write_json_atomic  # noqa: E402
from experiments.config import schema as hydra_schema  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

COMMAND = "export"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
TARGETS = ("summit_rcs", "percept", "onnx")
DIRECT_KINDS = ("threshold", "dual_threshold")
DISTILL_KINDS = ("threshold", "dual_threshold", "run")


@dataclass
class DistillConfig:
    seed: int = MISSING
    days: float = MISSING
    max_inputs: int = MISSING
    dagger_rounds: int = MISSING
    select_top_k: int = MISSING


@dataclass
class ExportConfig:
    """``conf/export.yaml``: the values live in the YAML, the schema gives types and keys."""

    source: str = MISSING
    target: str = MISSING
    cohort: hydra_schema.CohortConfig = field(default_factory=hydra_schema.CohortConfig)
    reward: hydra_schema.RewardConfig = field(default_factory=hydra_schema.RewardConfig)  # type: ignore[valid-type]
    seed: int = MISSING
    dt_s: float = MISSING
    initial_state: str = MISSING
    trace_days: float = MISSING
    fidelity_days: float = MISSING
    distill: DistillConfig = field(default_factory=DistillConfig)
    onnx_observations: int = MISSING


GROUPS = {"cohort": "cohort", "reward": "reward"}


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="export_schema", node=ExportConfig)


register()
_TYPED_ARGV: list[str] | None = None


@dataclass
class Plan:
    spec: Any
    source: str
    target: str
    method: str  # direct | distill | onnx
    patients: list
    settings: Any  # fidelity evaluation
    reward: Any
    seed: int
    distill: Any
    trace_days: float
    onnx_observations: int
    cohort: str
    cohort_seed: int
    policy: Any = None


def make_plan(cfg: DictConfig, conf_dir: Path = CONTROLLER_DIR) -> Plan:
    """Check the whole config; raises ``PainloopError`` on bad input."""
    from agents.distill_fit import DistillSettings
    from simenv.batch import EnvSettings
    from simenv.cohort import load_preset
    from simenv.reward import RewardWeights

    target = str(cfg.target)
    if target not in TARGETS:
        raise PainloopError("PL-EXPORT-TARGET", f"target='{target}' does not exist; allowed: {list(TARGETS)}.")
    source = str(cfg.source)
    if source.startswith("config:"):
        raise PainloopError(
            "PL-EXPORT-SOURCE", f"source='{source}' is already a device config; allowed: a controller name of kind "
            f"{list(DIRECT_KINDS)} or run:<dir>."
        )
    label, name = parse_entry(source, conf_dir)
    spec = load_controller(name, "source", conf_dir)
    if target == "onnx":
        if spec.kind != "run":
            raise PainloopError(
                "PL-EXPORT-SOURCE", f"target=onnx needs a trained network; source='{source}' is a '{spec.kind}' "
                "controller. Allowed: source=run:<dir>."
            )
        method = "onnx"
    elif spec.kind in DIRECT_KINDS and target == "summit_rcs":
        method = "direct"
    elif spec.kind in DISTILL_KINDS:
        method = "distill"
    else:
        why = " (it reads the latent pain, which no device can sense)" if spec.uses_latent else ""
        raise PainloopError(
            "PL-EXPORT-SOURCE", f"source='{source}' (kind '{spec.kind}') cannot be exported to {target}{why}; "
            f"allowed: a controller of kind {list(DISTILL_KINDS[:2])} or run:<dir>."
        )
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PainloopError("PL-ENV-ARG", f"seed={seed!r}; allowed: a whole number >= 0.")
    preset = load_preset(str(cfg.cohort.name))
    patients = preset.sample(cfg.cohort.n_patients)
    settings = EnvSettings(
        dt_s=float(cfg.dt_s), horizon_days=float(cfg.fidelity_days), initial_state=str(cfg.initial_state)
    )
    EnvSettings(dt_s=float(cfg.dt_s), horizon_days=float(cfg.trace_days))  # checks trace_days
    reward = RewardWeights.from_mapping(OmegaConf.to_container(cfg.reward, resolve=True))
    distill = DistillSettings(
        days=float(cfg.distill.days), seed=int(cfg.distill.seed), max_inputs=int(cfg.distill.max_inputs),
        dagger_rounds=int(cfg.distill.dagger_rounds), select_top_k=int(cfg.distill.select_top_k),
    )
    # The distillation uses noise seeds distill.seed (rollout), + 1 .. + dagger_rounds (DAgger rounds)
    # and + dagger_rounds + 1 (closed-loop selection).
    fit_seeds = range(distill.seed, distill.seed + distill.dagger_rounds + 2)
    if method == "distill" and seed in fit_seeds:
        raise PainloopError(
            "PL-CONFIG-VALUE", f"seed={seed} is among the distillation's noise seeds {fit_seeds.start}-"
            f"{fit_seeds.stop - 1} (distill.seed={distill.seed} plus one per DAgger round and one for the closed-loop "
            "selection); allowed: a seed outside them (the fidelity report is measured on held-out days: noise the "
            "distillation never saw)."
        )
    if not 100 <= int(cfg.onnx_observations) <= 1_000_000:
        raise PainloopError("PL-CONFIG-VALUE", f"onnx_observations={cfg.onnx_observations!r}; allowed: 100 to 1000000.")
    policy = spec.build(settings.dt_s, seed)  # a run folder is loaded (and refused) here
    check = getattr(policy, "check_settings", None)
    if check is not None:
        check(settings)
    if spec.needs_detector:
        spec.detector_settings()
        spec.clinic_settings()
    if method == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise PainloopError(
                "PL-EXPORT-TARGET", "target=onnx needs the optional extra 'onnx': pip install 'painloop[onnx]'."
            ) from None
    return Plan(spec, source, target, method, patients, settings, reward, seed, distill, float(cfg.trace_days),
                int(cfg.onnx_observations), preset.name, preset.seed, policy)


def patient_file_stem(p) -> str:
    return f"{p.cohort}_{p.index:03d}_{p.uid}"


# -- the work ------------------------------------------------------------------------------------
def build_configs(plan: Plan, progress=None) -> tuple[list[dict], list[dict]]:
    """One config per patient (not written, not yet validated as a set) and the fit information."""
    from agents.config_format import build_config
    from agents.distill import distill
    from agents.export import (
        calibrated_detectors,
        config_from_detector,
        provenance,
        stimulation_fields,
    )

    dt = plan.settings.dt_s
    run = plan.spec.params.get("path") if plan.spec.kind == "run" else None
    cohort = {"name": plan.cohort, "seed": plan.cohort_seed, "n_patients": len(plan.patients)}
    detectors = None
    if plan.spec.needs_detector:
        detectors = calibrated_detectors(plan.spec, plan.patients, dt, plan.seed)
    if plan.method == "direct":
        configs = []
        for p, det in zip(plan.patients, detectors, strict=True):
            prov = provenance(p, plan.source, plan.spec.kind, dt, run, cohort, fit=dict(det.fit) | {"method": "direct"})
            configs.append(config_from_detector(det, p, prov, plan.target))
        return configs, [dict(c["provenance"]["fit"]) for c in configs]

    def make_config(i, det, states, fit):
        p = plan.patients[i]
        prov = provenance(p, plan.source, plan.spec.kind, dt, run, cohort, fit=fit)
        return build_config(plan.target, det, states, provenance=prov, **stimulation_fields(p))

    extra = (lambda i: {"detector": detectors[i]}) if detectors is not None else None
    return distill(
        lambda: plan.spec.build(dt, plan.seed), plan.patients, plan.target, dt, plan.distill, make_config,
        contexts_extra=extra, initial_state=plan.settings.initial_state, progress=progress,
    )


def validate_all(plan: Plan, configs: Sequence[dict]) -> None:
    """Every config checked; one ``PL-CONFIG-INVALID`` (or ``-SCHEMA``) listing every patient's violations."""
    from agents.config_policy import check_patient_fit
    from agents.controller_config import ConfigError, format_violations, validate_config

    messages, codes, all_violations = [], set(), []
    for p, c in zip(plan.patients, configs, strict=True):
        found = validate_config(c, plan.settings.dt_s)
        if found:
            messages.append(format_violations(found, f"patient {patient_file_stem(p)}"))
            codes.update(v.code for v in found)
            all_violations += found
        else:
            check_patient_fit(c, p.params, f"patient {patient_file_stem(p)}")
    if messages:
        code = "PL-CONFIG-SCHEMA" if codes == {"PL-CONFIG-SCHEMA"} else "PL-CONFIG-INVALID"
        raise ConfigError(code, f"export refused, no file written: {' | '.join(messages)}", all_violations)


def fidelity(plan: Plan, configs: Sequence[dict]) -> dict:
    """Source vs exported on held-out days: decision agreement and paired clinical metrics."""
    import numpy as np

    from agents.config_policy import ConfigPolicy
    from agents.controllers import ControllerSpec
    from agents.evaluation import METRICS, evaluate, paired_differences, summarise
    from agents.export import decision_agreement
    from agents.rollout import rollout

    dt = plan.settings.dt_s
    by_uid = {int(p.uid): c for p, c in zip(plan.patients, configs, strict=True)}
    source_spec = ControllerSpec("source", plan.spec.kind, plan.spec.params)
    specs = [
        ControllerSpec("off", "off"),
        source_spec,
        ControllerSpec("exported", "policy", factory=lambda: ConfigPolicy("exported", by_uid, dt)),
    ]
    res = evaluate(specs, plan.patients, plan.settings, reward=plan.reward, seed=plan.seed, record_actions=True)
    # Shadow: the exported controller's decisions on the source's own held-out trajectory.
    detectors = res.detectors.get("source")
    extra = (lambda i: {"detector": detectors[i]}) if detectors else None
    shadow = rollout(source_spec.build(dt, plan.seed), plan.patients, plan.settings, plan.seed, extra,
                     shadow=ConfigPolicy("exported", by_uid, dt))
    rows = []
    for i, p in enumerate(plan.patients):
        closed = decision_agreement(res.actions["source"][i], res.actions["exported"][i])
        open_ = decision_agreement(shadow.amplitudes_ma[i, 1:], shadow.shadow_ma[i, 1:])
        row = {"patient": patient_file_stem(p), "uid": int(p.uid), "index": int(p.index)}
        row |= {f"closed_loop_{k}": v for k, v in closed.items()}
        row |= {f"shadow_{k}": v for k, v in open_.items()}
        for label in ("off", "source", "exported"):
            for m in ("reward_per_day", "mean_pain_nrs", "high_pain_fraction", "duty_cycle", "battery_life_years"):
                row[f"{label}_{m}"] = float(res.per_patient[label][m][i])
        rows.append(row)
    pooled_closed = decision_agreement(res.actions["source"].ravel(), res.actions["exported"].ravel())
    pooled_shadow = decision_agreement(shadow.amplitudes_ma[:, 1:].ravel(), shadow.shadow_ma[:, 1:].ravel())
    r = {k: float(np.mean(res.per_patient[k]["reward_per_day"])) for k in ("off", "source", "exported")}
    gain = r["source"] - r["off"]
    retention = (r["exported"] - r["off"]) / gain if abs(gain) > 1e-12 else math.nan
    summary = summarise(res)
    paired = paired_differences(res, "source")

    def mean_ci(key: str) -> dict:
        values = np.array([row[key] for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        from scipy import stats

        n = values.size
        if n == 0:
            return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
        mean = float(values.mean())
        half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(n)}

    agreement = {
        f"{mode}_{k}": mean_ci(f"{mode}_{k}")
        for mode in ("closed_loop", "shadow")
        for k in ("balanced_accuracy", "cohen_kappa", "raw_agreement")
    }
    return {
        "held_out": {"seed": plan.seed, "days": plan.settings.horizon_days, "initial_state": plan.settings.initial_state,
                     "note": "noise seed differs from the distillation's (distill.seed); threshold sources are "
                             "mapped directly and compared on the same days"},
        "agreement_per_patient_mean": agreement,
        "agreement_pooled": {"closed_loop": pooled_closed, "shadow": pooled_shadow},
        "reward_per_day_mean": r,
        "reward_gain_retention": retention,
        "exact_decisions": bool(all(np.array_equal(res.actions["source"][i], res.actions["exported"][i])
                                    for i in range(len(plan.patients)))),
        "per_patient": rows,
        "metrics": [s for s in summary],
        "paired_vs_source": [p for p in paired if p["controller"] == "exported"],
        "metric_names": list(METRICS),
    }


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
    from agents.export import golden_traces, write_trace_csv

    n = len(plan.patients)
    print(f"painloop export: {plan.source} -> {plan.target} ({plan.method}) for {n} patients of cohort "
          f"'{plan.cohort}'; run folder {run_dir}", flush=True)

    def progress(r, i):
        folder.heartbeat(progress={"stage": "distill", "round": r, "patient": i, "n_patients": n})

    configs, fits = build_configs(plan, progress)
    validate_all(plan, configs)  # refuses (exit 2) before any file is written
    folder.heartbeat(progress={"stage": "fidelity"}, force=True)
    report = fidelity(plan, configs)
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
    from agents.onnx_export import check_onnx, export_onnx, record_observations
    from simenv.batch import EnvSettings

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


def run(
    cfg: DictConfig,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    conf_dir: Path = CONTROLLER_DIR,
) -> float:
    """Export as ``cfg`` says into ``run_dir``; returns the closed-loop balanced accuracy (1.0 for ONNX)."""
    from agents.controller_config import ConfigError

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
        plan = make_plan(cfg, conf_dir)
    except PainloopError as exc:
        return stop(exc, EXIT_BAD_INPUT)
    config = OmegaConf.to_container(cfg, resolve=True)
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


@hydra.main(config_path="../conf", config_name="export", version_base=None)
def hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    argv = _TYPED_ARGV if _TYPED_ARGV is not None else sys.argv
    return run(cfg, Path(HydraConfig.get().runtime.output_dir), argv=argv)


def precheck(argv: Sequence[str]) -> list[str]:
    """Keys and group options checked before Hydra runs (``PL-CONFIG-KEY``, ``PL-COHORT-UNKNOWN``, ...)."""
    _flags, overrides = hydra_schema.split_argv(argv)
    fixed = hydra_schema.check_overrides(overrides, ExportConfig, GROUPS)
    hydra_schema.compose_check("export", fixed, "docs/export.md")
    return hydra_schema.splice_overrides(argv, overrides, fixed)


def main(argv: Sequence[str] | None = None) -> None:
    global _TYPED_ARGV
    args = list(sys.argv[1:] if argv is None else argv)
    _TYPED_ARGV = [sys.argv[0], *args]
    try:
        args = precheck(args)
    except PainloopError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    sys.argv = [sys.argv[0], *args]
    hydra_main()


if __name__ == "__main__":
    main()
