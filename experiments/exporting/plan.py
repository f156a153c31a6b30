"""An export request checked as a whole before any work: the source, target, cohort and settings.

``ExportRequest`` holds the keys of ``conf/export.yaml`` (its defaults are
that file's values, a test checks); ``make_plan`` checks every one of them,
loads the source controller (a run folder is loaded, and refused, here) and
returns the ``Plan`` the rest of the export runs. Bad input raises
``PainloopError``; the command turns it into exit code 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.distill_fit import DistillSettings
from agents.evaluation_frames import DEFAULT_FRAME, describe_frame
from agents.evaluation_window import check_warmup_days, run_window
from experiments.common.controller_entries import CONTROLLER_DIR, load_controller, parse_entry
from experiments.common.frames import frame_days
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.errors import PainloopError
from simenv.reward import RewardWeights

TARGETS = ("summit_rcs", "percept", "onnx")
DIRECT_KINDS = ("threshold", "dual_threshold")
DISTILL_KINDS = ("threshold", "dual_threshold", "run")


@dataclass(frozen=True)
class DistillOptions:
    """``distill.*``: the distillation's rollout noise and budget (checked by ``make_plan``)."""

    seed: int = DistillSettings.seed
    days: float = DistillSettings.days
    max_inputs: int = DistillSettings.max_inputs
    dagger_rounds: int = DistillSettings.dagger_rounds
    select_top_k: int = DistillSettings.select_top_k
    #: None: the fidelity report's warm-up (the distillation sees the long-run state it is judged in).
    warmup_days: float | None = None
    footprint_limit_db: float | None = DistillSettings.footprint_limit_db
    timing_search: bool = DistillSettings.timing_search
    update_per_decision: bool = DistillSettings.update_per_decision


@dataclass(frozen=True)
class ExportRequest:
    """What to export, for which patients, and how the fidelity report is measured.

    ``source`` is a controller entry (``threshold``, ``dual_threshold``, any
    ``conf/controller/`` file of those kinds, or ``run:<dir>``); ``target`` is
    ``summit_rcs``, ``percept`` or ``onnx``. ``cohort`` names a preset and
    ``n_patients`` its first patients (None: the preset's size); ``reward``
    maps reward terms to weights (None: the defaults). ``seed`` is the
    held-out noise of the clinic calibration, golden traces and fidelity
    report; ``distill.seed`` and the seeds after it are the distillation's.
    The fidelity report is judged in ``frame`` (``agents.evaluation_frames``):
    ``warmup_days`` unscored, then ``fidelity_days`` scored (None: the frame's).
    """

    source: str
    target: str
    cohort: str = "test"
    n_patients: int | None = None
    reward: Mapping[str, float] | None = None
    seed: int = 0
    dt_s: float = 30.0
    initial_state: str = "naive"
    trace_days: float = 1.0
    frame: str = DEFAULT_FRAME
    warmup_days: float | None = None
    fidelity_days: float | None = None
    distill: DistillOptions = field(default_factory=DistillOptions)
    onnx_observations: int = 10_000


@dataclass
class Plan:
    spec: Any
    source: str
    target: str
    method: str  # direct | distill | onnx
    patients: list
    settings: Any  # fidelity evaluation: its horizon_days are the scored days
    reward: Any
    seed: int
    distill: Any
    trace_days: float
    onnx_observations: int
    cohort: str
    cohort_seed: int
    policy: Any = None
    #: The fidelity report's frame (``agents.evaluation_frames``) and its unscored days before the scored window.
    frame: str = DEFAULT_FRAME
    warmup_days: float = 0.0

    @property
    def frame_text(self) -> str:
        """How the fidelity report judges: the frame's line its report repeats."""
        return describe_frame(self.warmup_days, self.settings.horizon_days, self.settings.initial_state)


def make_plan(request: ExportRequest, conf_dir: Path = CONTROLLER_DIR) -> Plan:
    """Check the whole request; raises ``PainloopError`` on bad input."""
    target = str(request.target)
    if target not in TARGETS:
        raise PainloopError("PL-EXPORT-TARGET", f"target='{target}' does not exist; allowed: {list(TARGETS)}.")
    source = str(request.source)
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
    seed = request.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PainloopError("PL-ENV-ARG", f"seed={seed!r}; allowed: a whole number >= 0.")
    preset = load_preset(str(request.cohort))
    patients = preset.sample(request.n_patients)
    warmup_days, fidelity_days = frame_days(request.frame, request.warmup_days, request.fidelity_days)
    settings = EnvSettings(
        dt_s=float(request.dt_s), horizon_days=fidelity_days, initial_state=str(request.initial_state)
    )
    run_window(settings, warmup_days)  # warm-up + scored days within the simulator's longest run
    EnvSettings(dt_s=float(request.dt_s), horizon_days=float(request.trace_days))  # checks trace_days
    reward = RewardWeights.from_mapping(dict(request.reward) if request.reward is not None else None)
    d = request.distill
    distill_warmup = warmup_days if d.warmup_days is None else check_warmup_days(d.warmup_days)
    distill = DistillSettings(
        days=float(d.days), seed=int(d.seed), max_inputs=int(d.max_inputs),
        dagger_rounds=int(d.dagger_rounds), select_top_k=int(d.select_top_k), warmup_days=distill_warmup,
        footprint_limit_db=None if d.footprint_limit_db is None else float(d.footprint_limit_db),
        timing_search=bool(d.timing_search), update_per_decision=bool(d.update_per_decision),
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
    if not 100 <= int(request.onnx_observations) <= 1_000_000:
        raise PainloopError(
            "PL-CONFIG-VALUE", f"onnx_observations={request.onnx_observations!r}; allowed: 100 to 1000000."
        )
    policy = spec.build(settings.dt_s, seed)  # a run folder is loaded (and refused) here
    check = getattr(policy, "check_settings", None)
    if check is not None:
        check(settings)
    if spec.needs_detector:
        spec.detector_settings()
        spec.clinic_settings()
    if method == "onnx" and getattr(policy, "reads_window", False):
        raise PainloopError(
            "PL-EXPORT-SOURCE", f"source='{source}' was trained on env.observation=detector (band powers averaged "
            "over each decision), which its network does not compute; allowed for it: target=summit_rcs (a "
            "detector updating once per decision reads exactly that) or percept.")
    if method == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise PainloopError(
                "PL-EXPORT-TARGET", "target=onnx needs the optional extra 'onnx': pip install 'painloop[onnx]'."
            ) from None
    return Plan(spec, source, target, method, patients, settings, reward, seed, distill, float(request.trace_days),
                int(request.onnx_observations), preset.name, preset.seed, policy, str(request.frame), warmup_days)


def patient_file_stem(p) -> str:
    return f"{p.cohort}_{p.index:03d}_{p.uid}"
