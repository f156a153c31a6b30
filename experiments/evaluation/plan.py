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
    #: ``headroom.bound`` when it is measured on fewer patients than the plan's (the first
    #: ``headroom_patients``, in a paired evaluation of their own); ``None``: the bound, if any, is among ``specs``.
    headroom_spec: Any = None
    headroom_patients: int = 0

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
    headroom_spec, headroom_patients = _headroom_bound(cfg.get("headroom"), specs, len(patients), settings, seed,
                                                       conf_dir)
    if headroom_spec is not None and headroom_patients == len(patients):
        specs, headroom_spec = [*specs, headroom_spec], None  # measured on every patient: one paired evaluation
    return Plan(specs, extra, patients, settings, reward, seed, reference, int(trace_patient), preset.name,
                preset.seed, len(patients), jobs, frame_name, warmup_days, headroom_spec, headroom_patients)


def _headroom_bound(headroom: Any, specs: list, n_patients: int, settings: Any, seed: int,
                    conf_dir: Path) -> tuple[Any, int]:
    """``headroom.bound`` as a checked planner spec (or ``None``) and the number of patients it is measured on."""
    bound = None if headroom is None else headroom.get("bound")
    patients = None if headroom is None else headroom.get("patients")
    if bound is None:
        if patients is not None:
            raise PainloopError("PL-CONFIG-VALUE", f"headroom.patients={patients!r} without headroom.bound; allowed: "
                                "null, or a number of patients together with headroom.bound=<planner entry>.")
        return None, n_patients
    if patients is None:
        patients = n_patients
    if isinstance(patients, bool) or not isinstance(patients, int) or not 2 <= patients <= n_patients:
        raise PainloopError("PL-CONFIG-VALUE", f"headroom.patients={patients!r}; allowed: null (every patient) or a "
                            f"whole number from 2 to cohort.n_patients={n_patients}.")
    found, _ = resolve_controllers([str(bound)], conf_dir)
    spec = found[0]
    if spec.kind != "planner":
        raise PainloopError("PL-CONFIG-VALUE", f"headroom.bound={bound!r} is a controller of kind '{spec.kind}'; "
                            "allowed: a planner entry (planner_clairvoyant, planner, or label=planner_...).")
    if spec.label in {s.label for s in specs}:
        raise PainloopError("PL-CONTROLLER-LABEL", f"headroom.bound's label '{spec.label}' is also a controller "
                            "label; allowed: a bound that is not among the controllers (leave it out of them: the "
                            "headroom's evaluation runs it beside them).")
    spec.build(settings.dt_s, seed)  # its parameter ranges, checked before any simulation
    return spec, patients
