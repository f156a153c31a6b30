"""The long-horizon soak (``experiments.soak``) at a reduced size, and that its checks can fail.

The full size (1,000 patients x 365 days, every baseline) runs through
``python -m experiments.soak``; docs/reliability.md has its figures.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.validation import soak

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_reduced_soak_every_baseline_holds_every_check(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "experiments.soak", "--patients", "40", "--days", "20",
                           "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["complete"] and sorted(p.name for p in tmp_path.iterdir()) == ["soak.json"]
    ctl = report["baselines"]["controllers"]
    assert sorted(ctl) == sorted(soak.BASELINES)
    assert ctl["continuous"]["closed_form_energy_ok"] and ctl["off"]["closed_form_energy_ok"]
    assert ctl["off"]["stim_energy_j_mean"] == 0.0 < ctl["continuous"]["stim_energy_j_mean"]
    for rec in ctl.values():
        assert rec["battery_identity_max_rel_err"] < soak.RTOL and rec["battery_life_finite"]
        assert 0 < rec["battery_life_years_min"] <= rec["battery_life_years_max"] < math.inf
    pr = report["processes"]
    for key in ("flares", "reports"):
        assert pr[key]["ok"] and pr[key]["observed"] > 0 and abs(pr[key]["z"]) <= soak.Z99
    # The configured rate over the time outside flares is the expected count (p = 1 - exp(-rate dt) ~ rate dt).
    assert pr["flares"]["configured_rate_x_time_outside_flares"] == pytest.approx(pr["flares"]["expected"], rel=1e-3)
    assert "all checks hold" in proc.stdout


def test_the_checks_fail_on_a_wrong_count_or_energy():
    good = soak._bound("x", observed=1000.0, expected=1000.0, variance=900.0)
    bad = soak._bound("x", observed=1100.0, expected=1000.0, variance=900.0)  # 3.3 SD off
    assert good["ok"] and not bad["ok"] and bad["z"] == pytest.approx(100 / 30)
    ok, err = soak._close(np.array([1.0, 2.0]), np.array([1.0, 2.0 * (1 + 1e-6)]))
    assert not ok and err == pytest.approx(1e-6, rel=1e-3)
    assert soak._close(np.array([1.0, 2.0]), np.array([1.0, 2.0]))[0]


def test_continuous_closed_form_matches_a_direct_core_run():
    """The closed form the soak uses, against the simulator for a day (ramp included)."""
    from simenv.batch import EnvSettings, PainStimBatch
    from simenv.cohort import resolve_patients

    patients = resolve_patients("default", n_patients=4)
    settings = EnvSettings(dt_s=soak.DT_S, horizon_days=1.0, calibration_days=0.5)
    batch = PainStimBatch(patients, settings)
    batch.reset(seed=1)
    amp = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
    for _ in range(settings.horizon_steps):
        batch.core.step(amp)
    from simenv import layout as L

    energy = batch.core.state[:, L.S_ENERGY_STIM_J]
    np.testing.assert_allclose(energy, soak.continuous_energy_j(patients, settings.horizon_steps * soak.DT_S),
                               rtol=1e-9)
    with pytest.raises(ValueError):
        soak.continuous_energy_j(patients, 1.0)  # shorter than a ramp
