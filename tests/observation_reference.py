"""The saved full-observation reference: observations of fixed rollouts, recorded before the opt-in
``observation`` setting existed, so a test proves the default observation did not change bit for bit.

``python tests/observation_reference.py`` rewrites ``tests/data/observation_reference.npz``; do so
only on purpose (a deliberate change of the default observation), never to make a test pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simenv.batch import EnvSettings, PainStimBatch
from simenv.cohort import load_preset

REFERENCE = Path(__file__).parent / "data" / "observation_reference.npz"

#: name -> (EnvSettings keyword arguments, number of patients, noise seed); each case's rollout runs
#: past one horizon so a reset (``observe``) and decisions (``finish_decision``) are both recorded.
CASES: dict[str, tuple[dict, int, int]] = {
    "default": ({"horizon_days": 0.05}, 3, 3),
    "history_report_levels": (
        {"horizon_days": 0.1, "feature_history": 2, "include_self_report": True, "decision_interval_s": 60.0,
         "action_mode": "levels", "start_hour": 7.5, "initial_state": "randomized"},
        2,
        11,
    ),
}


def rollout_observations(settings: EnvSettings, n_patients: int, seed: int) -> np.ndarray:
    """Observations (n_decisions + 2, n_patients, obs_dim) of a rollout under seeded random actions.

    The rollout runs one horizon, resets (a new episode) and takes a few more decisions.
    """
    patients = load_preset("default").sample(n_patients)
    batch = PainStimBatch(patients, settings)
    actions = np.random.default_rng(seed)
    n_actions = 2 if settings.action_mode == "on_off" else settings.n_levels
    obs, _ = batch.reset(seed=seed)
    out = [obs.copy()]
    extra = 5
    while True:
        obs, _, _, truncated = batch.step_arrays(actions.integers(n_actions, size=n_patients))
        out.append(obs.copy())
        if truncated.all():
            obs, _ = batch.reset()
            out.append(obs.copy())
            break
    for _ in range(extra):
        obs, _, _, _ = batch.step_arrays(actions.integers(n_actions, size=n_patients))
        out.append(obs.copy())
    return np.stack(out)


def reference_observations() -> dict[str, np.ndarray]:
    """Every case's observations, by case name."""
    return {name: rollout_observations(EnvSettings(**kw), n, seed) for name, (kw, n, seed) in CASES.items()}


if __name__ == "__main__":
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **reference_observations())
    print(f"wrote {REFERENCE}")
