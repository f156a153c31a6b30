"""The plan of an evaluation: every input of a config checked, and built, before anything is written.

``make_plan`` turns an ``EvaluateConfig`` (or the ``DictConfig`` Hydra
composes from it) into the controller specs, the patients, the env
settings and the reward weights ``agents.evaluation.evaluate`` runs on;
bad input raises ``PainloopError`` here, so a run folder records it before
any simulation. Plain Python, no Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.evaluation_frames import describe_frame
from agents.evaluation_pool import resolve_jobs
from agents.evaluation_window import run_window
from experiments.common.controller_entries import CONTROLLER_DIR, resolve_controllers
from experiments.common.frames import frame_days
from experiments.config.schema import EvaluateConfig
from experiments.evaluation.config import as_dictconfig
from simenv.errors import PainloopError


@dataclass
class Plan:
    """Everything an evaluation needs, checked: controller specs, patients, env settings, reward, seed."""

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
    #: The named frame (``agents.evaluation_frames``) and the unscored days before the scored window.
    frame: str = "week"
    warmup_days: float = 0.0

    @property
    def frame_text(self) -> str:
        """How this evaluation judges: the frame's line every table and figure repeats."""
        return describe_frame(self.warmup_days, self.settings.horizon_days, self.settings.initial_state)


def make_plan(cfg: EvaluateConfig | DictConfig, conf_dir: Path = CONTROLLER_DIR) -> Plan:
    """Check the whole config and build what ``evaluate`` needs; raises ``PainloopError`` on bad input."""
    from simenv.batch import EnvSettings
    from simenv.cohort import load_preset
    from simenv.reward import RewardWeights

    cfg = as_dictconfig(cfg)
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
    frame_name = cfg.get("frame", "week")
    warmup_days, horizon_days = frame_days(frame_name, cfg.get("warmup_days"), cfg.get("horizon_days"))
    preset = load_preset(str(cfg.cohort.name))
    patients = preset.sample(cfg.cohort.n_patients)
    settings = EnvSettings(
        action_mode="on_off",
        dt_s=float(cfg.dt_s),
        horizon_days=horizon_days,
        initial_state=str(cfg.initial_state),
    )
    run_window(settings, warmup_days)  # warm-up + window within the simulator's longest run
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
        if s.needs_calibration:
            s.clinic_settings()
    jobs = resolve_jobs(cfg.get("jobs", 1), len(patients))
    return Plan(specs, extra, patients, settings, reward, seed, reference, int(trace_patient), preset.name,
                preset.seed, len(patients), jobs, frame_name, warmup_days)
