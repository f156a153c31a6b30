"""Shared fixtures for the simulator-core tests.

Long simulations go through ``BatchedCore`` directly (``run_core``): the
environment layers add nothing to the physics and cost Python time per step.
Output columns are the ``O_*`` constants of ``simenv.layout``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import simenv  # noqa: F401  (registers painloop/PainStim-v0)
from simenv import layout as L
from simenv.cohort import Patient, load_preset
from simenv.core import BatchedCore
from simenv.params import PatientParams

ENV_ID = "painloop/PainStim-v0"


def default_patients(n: int) -> list[Patient]:
    """The first ``n`` patients of the shipped ``default`` cohort preset."""
    return load_preset("default").sample(n)


def custom_patient(params: PatientParams | None = None, uid: int = 424242, index: int = 0) -> Patient:
    """A patient with explicit parameters (defaults: DOMAIN.md's table) and a fixed uid."""
    return Patient(uid=uid, cohort="tests", index=index, params=params or PatientParams())


def with_params(patient: Patient, **changes: dict[str, float]) -> Patient:
    """Same patient (same uid, so same noise), some parameters changed via ``PatientParams.replace``."""
    return dataclasses.replace(patient, params=patient.params.replace(**changes))


AmplitudeSpec = float | Sequence[float] | np.ndarray | Callable[[int], np.ndarray]


def run_core(
    patients: Sequence[Patient],
    amplitude_ma: AmplitudeSpec,
    days: float,
    dt_s: float = 30.0,
    seed: int = 0,
    episode: int = 0,
    initial_state: str = "naive",
    record_state: bool = True,
    record_features: bool = False,
) -> dict[str, Any]:
    """Run a ``BatchedCore`` for ``days`` under a commanded amplitude and collect its outputs.

    ``amplitude_ma`` is one value for all slots, one value per slot, or a
    function of the step index returning one value per slot. Returns a dict
    with ``outputs`` (T, N, N_OUTPUTS), ``state`` (T, N, N_STATE, state after
    each step) if ``record_state``, ``features`` (T, N, N_FEATURES) if
    ``record_features``, the ``core`` and ``dt_s``.
    """
    n = len(patients)
    core = BatchedCore(n, dt_s=dt_s)
    core.reset_slots(range(n), patients, [seed] * n, [episode] * n, initial_state)
    steps = int(round(days * 86_400.0 / dt_s))
    if callable(amplitude_ma):
        command = amplitude_ma
    else:
        fixed = np.broadcast_to(np.asarray(amplitude_ma, dtype=np.float64), (n,)).copy()

        def command(_t: int) -> np.ndarray:
            return fixed

    outputs = np.empty((steps, n, L.N_OUTPUTS))
    state = np.empty((steps, n, L.N_STATE)) if record_state else None
    features = np.empty((steps, n, L.N_FEATURES)) if record_features else None
    for t in range(steps):
        outputs[t] = core.step(command(t))
        if state is not None:
            state[t] = core.state
        if features is not None:
            features[t] = core.features_db
    return {"outputs": outputs, "state": state, "features": features, "core": core, "dt_s": dt_s}


@pytest.fixture
def patients3() -> list[Patient]:
    return default_patients(3)


@pytest.fixture(name="run_core")
def run_core_fixture() -> Callable[..., dict[str, Any]]:
    return run_core


# -- plugin tests: a skip is a failure on CI ---------------------------------------------------------
def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test marked ``plugin`` (it needs an optional plugin: joblib, submitit, Ray, Optuna) that skips
    fails instead when ``CI=true``: CI installs every extra, so a skip there hides a broken install."""
    import os

    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("plugin") is not None and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"plugin test skipped under CI=true (CI installs every extra): {_skip_reason(report)}"
