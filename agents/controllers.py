"""Controller specifications: a label, a kind and its parameters, and the factory.

The Hydra layer reads ``conf/controller/<name>.yaml`` (each sets ``kind`` and
parameters) into ``ControllerSpec``; everything below Hydra works with these
plain objects, so a notebook can build the same controllers without Hydra.

Kind ``oracle`` is the former name of ``latent_threshold`` (a threshold on
the latent pain drive, not an upper bound): accepted for one more release,
with a ``FutureWarning`` naming the new kind.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from agents.baselines import Continuous, Cycling, LatentThreshold, Off, RandomOnOff, Threshold
from agents.clinic import ClinicSettings, DetectorSettings
from agents.config_policy import ConfigPolicy
from agents.planner import Planner
from agents.policy import BasePolicy
from simenv.errors import PainloopError

KINDS: dict[str, tuple[type[BasePolicy], tuple[str, ...]]] = {
    "off": (Off, ()),
    "continuous": (Continuous, ()),
    "cycling": (Cycling, ("on_s", "off_s")),
    "random": (RandomOnOff, ("duty", "mean_on_s", "match")),
    "latent_threshold": (LatentThreshold, ("target_duty",)),
    "oracle": (LatentThreshold, ("target_duty",)),  # deprecated alias of latent_threshold (DEPRECATED_KINDS)
    "threshold": (Threshold, ()),
    "planner": (Planner, ("lookahead_min", "replan_min", "patterns_min", "clairvoyant", "price_tolerance")),
    "dual_threshold": (Threshold, ()),
    "run": (BasePolicy, ("path", "which")),  # a training run folder (agents.rl_policy)
    "policy": (BasePolicy, ()),  # an in-memory policy object, given as ``factory``
    "config": (ConfigPolicy, ("path",)),  # a folder of exported device configs (agents.config_policy)
}
#: Former kind names still accepted, for one release, with a warning naming the new one.
DEPRECATED_KINDS: dict[str, str] = {"oracle": "latent_threshold"}
#: Kinds that read the clinic's calibration period (the latent drive's quantiles), not a detector.
_CALIBRATED_KINDS = ("latent_threshold", "oracle")
_DETECTOR_KEYS = tuple(f.name for f in fields(DetectorSettings))
_CLINIC_KEYS = tuple(f"calibration_{f.name}" for f in fields(ClinicSettings))


def allowed_params(kind: str) -> tuple[str, ...]:
    """Parameter names a controller kind accepts."""
    if kind in ("threshold", "dual_threshold"):
        return _DETECTOR_KEYS + _CLINIC_KEYS
    if kind in _CALIBRATED_KINDS:
        return KINDS[kind][1] + _CLINIC_KEYS
    return KINDS[kind][1]


def _refuse_wrong_types(method: Callable) -> Callable:
    """A parameter of the wrong type (``on_s: [60]``, ``target_duty: null`` in a controller file) that a
    constructor's comparisons trip over becomes ``PL-CONTROLLER-PARAM`` naming the entry's parameters."""

    @functools.wraps(method)
    def wrapper(self: ControllerSpec, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, PainloopError):
                raise
            raise PainloopError(
                "PL-CONTROLLER-PARAM",
                f"controller '{self.label}' ({self.kind}): parameters {self.params!r} are refused ({exc}); "
                f"allowed: {sorted(allowed_params(self.kind))} with numbers where numbers are meant.",
            ) from None

    return wrapper


@dataclass(frozen=True)
class ControllerSpec:
    """One entry of an evaluation: a unique label, a kind and parameters."""

    label: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    factory: Callable[[], BasePolicy] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "policy" and self.factory is None:
            raise PainloopError(
                "PL-CONTROLLER-PARAM", f"controller '{self.label}' of kind 'policy' needs a factory returning the policy."
            )
        if self.kind not in KINDS:
            raise PainloopError(
                "PL-CONTROLLER-UNKNOWN", f"controller kind '{self.kind}' does not exist; available kinds: {sorted(KINDS)}."
            )
        if self.kind in DEPRECATED_KINDS:
            new = DEPRECATED_KINDS[self.kind]
            warnings.warn(
                f"controller '{self.label}': kind '{self.kind}' is deprecated and will be removed in the next "
                f"release; use kind '{new}' (controller file {new}.yaml), the same controller under its name.",
                FutureWarning,
                stacklevel=3,
            )
        unknown = sorted(set(self.params) - set(allowed_params(self.kind)))
        if unknown:
            raise PainloopError(
                "PL-CONTROLLER-PARAM",
                f"controller '{self.label}' ({self.kind}): unknown parameter(s) {unknown}; "
                f"allowed: {sorted(allowed_params(self.kind))}.",
            )

    @property
    def needs_detector(self) -> bool:
        return self.kind in ("threshold", "dual_threshold")

    @property
    def needs_calibration(self) -> bool:
        """Does the controller read the clinic's calibration period (a detector or the latent drive's quantiles)?"""
        return self.needs_detector or self.kind in _CALIBRATED_KINDS

    @property
    def uses_latent(self) -> bool:
        return KINDS[self.kind][0].uses_latent

    @property
    def match(self) -> str | None:
        """Label of the controller whose duty and bursts a ``random`` entry copies."""
        return self.params.get("match") if self.kind == "random" else None

    @_refuse_wrong_types
    def clinic_settings(self) -> ClinicSettings:
        return ClinicSettings(
            **{k[len("calibration_") :]: v for k, v in self.params.items() if k.startswith("calibration_")}
        )

    @_refuse_wrong_types
    def detector_settings(self) -> DetectorSettings:
        values = {k: v for k, v in self.params.items() if k in _DETECTOR_KEYS}
        if self.kind == "dual_threshold":
            values["dual_threshold"] = True
        return DetectorSettings(**values)

    @_refuse_wrong_types
    def build(self, dt_s: float, seed: int) -> BasePolicy:
        """A fresh policy object for this entry."""
        klass = KINDS[self.kind][0]
        p = dict(self.params)
        if self.factory is not None:
            return self.factory()
        if self.kind == "run":
            from agents.rl_policy import load_run_policy  # imports torch: only when asked for

            return load_run_policy(p["path"], which=p.get("which", "best"), label=self.label)
        if self.kind == "config":
            return ConfigPolicy.from_dir(p["path"], self.label, dt_s=dt_s)
        if self.kind == "cycling":
            return Cycling(self.label, dt_s=dt_s, **p)
        if self.kind == "random":
            p.pop("match", None)
            return RandomOnOff(self.label, dt_s=dt_s, seed=seed, **p)
        if self.kind in _CALIBRATED_KINDS:
            return LatentThreshold(self.label, **{k: v for k, v in p.items() if k in KINDS[self.kind][1]})
        if self.kind == "planner":
            return Planner(self.label, dt_s=dt_s, seed=seed, **p)
        if self.needs_detector:
            return Threshold(self.label, dt_s=dt_s)
        return klass(self.label)
