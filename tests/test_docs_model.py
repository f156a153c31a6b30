"""docs/model.md cannot drift from the code: its generated tables and its symbols are checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from experiments import parameter_docs as command
from experiments.validation import parameter_docs as pd
from simenv import layout as L
from simenv.cohort import available_presets
from simenv.params import iter_parameter_metadata
from simenv.reward import TERMS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "model.md"
REGENERATE = "run `python -m experiments.parameter_docs` and commit docs/model.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DOCS.read_text()


def test_parameter_table_matches_the_dataclasses(text):
    assert pd.extract_between(text, pd.PARAMS_BEGIN, pd.PARAMS_END) == pd.render_parameter_table(), REGENERATE


def test_preset_tables_match_the_shipped_presets(text):
    assert pd.extract_between(text, pd.PRESETS_BEGIN, pd.PRESETS_END) == pd.render_preset_tables(), REGENERATE


def test_derived_values_match_the_code(text):
    assert pd.extract_between(text, pd.DERIVED_BEGIN, pd.DERIVED_END) == pd.render_derived_table(), REGENERATE


def test_every_parameter_has_one_row_with_unit_range_and_source():
    rows = pd.render_parameter_table().splitlines()[2:]
    fields = list(iter_parameter_metadata())
    assert len(rows) == len(fields)
    for row, (group, name, default, _meta) in zip(rows, fields, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[0] == group and cells[1] == f"`{name}`"
        assert cells[2] == pd.unit_of(name)
        assert cells[3] == f"{default:g}"
        assert cells[5] and cells[6], f"{group}.{name} lacks a meaning or a source"


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("baseline_nrs", "NRS"),
        ("fast_tau_h", "h"),
        ("circadian_peak_hour", "h (clock)"),
        ("slow_tau_days", "d"),
        ("noise_tau_s", "s"),
        ("ramp_ma_per_s", "mA/s"),
        ("charge_density_limit_uc_per_cm2", "uC/cm^2"),
        ("contact_area_cm2", "cm^2"),
        ("half_effect_charge_uc", "uC"),
        ("flare_rate_per_week", "1/week"),
        ("mild_max_rate_per_day", "1/day"),
        ("overhead_uw", "uW"),
        ("capacity_j", "J"),
        ("auc", "1"),
    ],
)
def test_unit_comes_from_the_name_suffix(name, unit):
    assert pd.unit_of(name) == unit


def test_every_preset_is_listed(text):
    block = pd.extract_between(text, pd.PRESETS_BEGIN, pd.PRESETS_END)
    for name in available_presets():
        assert f"| `{name}` |" in block


def test_every_layout_symbol_is_documented(text):
    """Each state column, constant, noise index and output of simenv.layout appears in the equations."""
    names = [n for n in vars(L) if re.fullmatch(r"[SPONU]_[A-Z0-9_]+", n)]
    assert len(names) > 80
    missing = [n for n in names if f"`{n}" not in text and f" {n}" not in text]
    assert missing == [], f"docs/model.md does not mention {missing}"


def test_reward_terms_and_sources_are_documented(text):
    for term in TERMS:
        assert term in text
    for source in ("Shirvalkar", "Suri", "Koss", "Shannon", "EChO", "Farrar", "Butson", "Velisar", "*assumed*"):
        assert source in text, source


def test_write_tables_regenerates_a_stale_copy(tmp_path, text):
    stale = text.replace(pd.render_parameter_table(), "| stale |")
    path = tmp_path / "model.md"
    path.write_text(stale)
    assert command.main(["--docs", str(path)]) == 0
    assert path.read_text() == text
