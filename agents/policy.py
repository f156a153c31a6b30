"""The policy protocol every controller follows, baselines and RL models alike.

A controller is batched: ``reset(patients)`` receives one ``PatientContext``
per slot (identity, parameters, the simulator's normalisation and, where a
clinic calibration ran, the fitted detector), and ``act(observations, info)``
returns one action per slot in the environment's action mode. A single
environment is the N = 1 case.

A controller that reads anything from ``info`` beyond what a device could
sense (the oracle reads the latent pain drive) sets ``uses_latent = True``,
and every table and plot marks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from simenv.calibration import Normalisation
from simenv.params import PatientParams


@dataclass(frozen=True)
class PatientContext:
    """What a controller may know about the patient in a slot when an episode starts.

    ``detector`` is the clinic-calibrated detector (``agents.detector.DetectorConfig``)
    when the controller asked for one (``needs_detector``), else None.
    ``calibration`` holds clinic-period statistics some controllers use
    (e.g. the latent drive quantiles for the oracle), else None.
    """

    uid: int
    cohort: str
    index: int
    params: PatientParams
    normalisation: Normalisation
    detector: Any = None
    calibration: Any = None


@runtime_checkable
class Policy(Protocol):
    """A batched controller: one action per patient slot per decision."""

    name: str
    uses_latent: bool
    action_mode: str

    def reset(self, patients: list[PatientContext]) -> None:
        """Start episodes for these slots (one context per slot)."""

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        """Actions for every slot, shape (n_slots,) (or (n_slots, 1) for continuous)."""


class BasePolicy:
    """Shared plumbing for the built-in controllers (on_off action mode)."""

    uses_latent: ClassVar[bool] = False
    needs_detector: ClassVar[bool] = False
    action_mode: str = "on_off"  # an instance may set its own (RLPolicy)
    #: False for controllers that decide from ``info`` alone: an evaluation of
    #: only such controllers skips assembling observations.
    reads_observations: ClassVar[bool] = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.n = 0
        self.patients: list[PatientContext] = []

    def reset(self, patients: list[PatientContext]) -> None:
        self.patients = list(patients)
        self.n = len(patients)

    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
