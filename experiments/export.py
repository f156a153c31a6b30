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

This module is the Hydra layer only: the typed schema of ``conf/export.yaml``,
the key checks made before Hydra runs, and the translation of the composed
config into an ``ExportRequest`` for ``experiments.exporting.run.run_export``,
which does the work (and is usable from Python without Hydra).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import hydra  # noqa: E402
from omegaconf import MISSING, DictConfig, OmegaConf  # noqa: E402

from experiments.common.controller_entries import CONTROLLER_DIR  # noqa: E402
from experiments.config import schema as hydra_schema  # noqa: E402
from experiments.exporting.plan import DistillOptions, ExportRequest  # noqa: E402
from experiments.exporting.run import EXIT_BAD_INPUT, run_export  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402


@dataclass
class DistillConfig:
    seed: int = MISSING
    days: float = MISSING
    max_inputs: int = MISSING
    dagger_rounds: int = MISSING
    select_top_k: int = MISSING
    warmup_days: Optional[float] = MISSING  # noqa: UP045 (OmegaConf reads Optional); None: the report's warm-up
    footprint_limit_db: Optional[float] = MISSING  # noqa: UP045 (None: any band)
    timing_search: bool = MISSING
    update_per_decision: bool = MISSING


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
    frame: str = MISSING  # long_term | week (agents.evaluation_frames): the fidelity report's warm-up and scored days
    warmup_days: Optional[float] = None  # noqa: UP045 (OmegaConf reads Optional); None: the frame's
    fidelity_days: Optional[float] = None  # noqa: UP045 (scored days); None: the frame's
    distill: DistillConfig = field(default_factory=DistillConfig)
    onnx_observations: int = MISSING


GROUPS = {"cohort": "cohort", "reward": "reward"}


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="export_schema", node=ExportConfig)


register()
_TYPED_ARGV: list[str] | None = None


def export_request(cfg: DictConfig) -> ExportRequest:
    """The composed ``conf/export.yaml`` as an ``ExportRequest`` (values unchecked: ``make_plan`` checks them)."""
    d = cfg.distill
    return ExportRequest(
        source=cfg.source,
        target=cfg.target,
        cohort=cfg.cohort.name,
        n_patients=cfg.cohort.n_patients,
        reward=OmegaConf.to_container(cfg.reward, resolve=True),
        seed=cfg.seed,
        dt_s=cfg.dt_s,
        initial_state=cfg.initial_state,
        trace_days=cfg.trace_days,
        frame=cfg.frame,
        warmup_days=cfg.warmup_days,
        fidelity_days=cfg.fidelity_days,
        distill=DistillOptions(
            seed=d.seed, days=d.days, max_inputs=d.max_inputs, dagger_rounds=d.dagger_rounds,
            select_top_k=d.select_top_k, warmup_days=d.warmup_days, footprint_limit_db=d.footprint_limit_db,
            timing_search=d.timing_search, update_per_decision=d.update_per_decision,
        ),
        onnx_observations=cfg.onnx_observations,
    )


def run(
    cfg: DictConfig,
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    conf_dir: Path = CONTROLLER_DIR,
) -> float:
    """Export as ``cfg`` says into ``run_dir``; returns the closed-loop balanced accuracy (1.0 for ONNX)."""
    return run_export(export_request(cfg), run_dir, argv, exit_on_error, conf_dir,
                      config=OmegaConf.to_container(cfg, resolve=True))


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
