"""The demo (`make demo`) runs and its table is sane, on a tiny size."""

from __future__ import annotations

import math

from experiments import demo


def test_demo_table_is_sane(capsys):
    results = demo.main(["--patients", "2", "--days", "1", "--seed", "3"])
    printed = capsys.readouterr().out
    assert set(results) == {"off", "continuous"}
    for name, row in results.items():
        assert {key for key, _, _ in demo.COLUMNS} <= set(row), name
        assert all(math.isfinite(v) for v in row.values()), (name, row)
        assert 0.0 <= row["mean_pain_nrs"] <= 10.0
        assert 0.0 <= row["high_pain_fraction"] <= 1.0
        assert 0.0 <= row["duty_cycle"] <= 1.0
        assert row["side_effects_per_day"] >= 0.0
        assert name in printed
    off, on = results["off"], results["continuous"]
    assert on["mean_pain_nrs"] < off["mean_pain_nrs"]
    assert on["high_pain_fraction"] <= off["high_pain_fraction"]
    assert off["stim_energy_j_per_day"] == 0.0
    assert off["duty_cycle"] == 0.0
    assert on["duty_cycle"] > 0.99
    assert on["stim_energy_j_per_day"] > 0.0
    # Off draws only the device overhead, so its battery lasts longer.
    assert off["battery_life_years"] > on["battery_life_years"] > 0.0
    assert "mean pain (NRS)" in printed
