"""`python -m experiments.validate_model` on a tiny cohort: table, files, figures, bad input."""

from __future__ import annotations

import csv
import json
import math

import matplotlib.image as mpimg
import pytest

from experiments import validate_model
from experiments.validation.table import COLUMNS, ROW_KEYS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STATUSES = {"within", "outside", "not estimated", "info"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    code = validate_model.main(
        ["--n-patients", "3", "--days", "3", "--seed", "1", "--out", str(out), "--no-progress"]
    )
    return code, out


def test_runs_and_writes_every_file(report):
    code, out = report
    assert code == 0
    for name in ("validation.csv", "validation.json", "pain_week.png", "autocorrelation.png",
                 "auc.png", "carryover.png", "flares.png"):
        assert (out / name).is_file(), name


def test_csv_has_every_row_and_column(report):
    _, out = report
    with (out / "validation.csv").open() as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    assert [r["key"] for r in rows] == list(ROW_KEYS)
    for r in rows:
        assert r["status"] in STATUSES, r
        if r["status"] in ("within", "outside"):
            assert math.isfinite(float(r["value"])), r
            assert r["target"], r


def test_json_matches_csv_and_holds_patients(report):
    _, out = report
    doc = json.loads((out / "validation.json").read_text())
    assert [r["key"] for r in doc["rows"]] == list(ROW_KEYS)
    assert doc["meta"]["n_patients"] == 3 and doc["meta"]["days"] == 3.0
    assert len(doc["patients"]) == 3
    measured = doc["patients"][0]["measured"]
    assert 0.0 <= measured["pain_mean"] <= 10.0
    assert 0.5 < measured["auc_measured"] < 1.0
    # The carry-over fit recovers the configured time constant (exponential decay of relief).
    for p in doc["patients"]:
        assert p["measured"]["carry_tau_min"] == pytest.approx(p["configured"]["carryover_tau_min"], rel=1e-6)


def test_row_statuses_follow_their_targets(report):
    _, out = report
    rows = {r["key"]: r for r in json.loads((out / "validation.json").read_text())["rows"]}
    assert rows["slow_tau"]["status"] == "not estimated"  # 3 days cannot show a 25-day time scale
    assert "--days" in rows["slow_tau"]["note"]
    energy = rows["energy_per_day"]
    assert energy["status"] == "within"  # the simulated TEED equals its closed form
    assert rows["carryover_fit"]["status"] == "within"
    for r in rows.values():
        if r["status"] in ("within", "outside"):
            low = -math.inf if r["target_low"] is None else r["target_low"]
            high = math.inf if r["target_high"] is None else r["target_high"]
            assert (r["status"] == "within") == (low <= r["value"] <= high), r


def test_pngs_are_valid_images(report):
    _, out = report
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path


def test_table_is_printed(tmp_path, capsys):
    assert validate_model.main(["--n-patients", "1", "--days", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "statistic" in printed and "target" in printed and "status" in printed
    assert "mean pain" in printed and "battery life" in printed
    assert str(tmp_path / "validation.csv") in printed and "runtime" in printed


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--cohort", "no-such-cohort"], "PL-COHORT-UNKNOWN"),
        (["--n-patients", "0"], "PL-COHORT-SIZE"),
        (["--days", "0"], "PL-ENV-ARG"),
        (["--days", "-2"], "PL-ENV-ARG"),
        (["--dt-s", "1"], "PL-ENV-ARG"),
        (["--seed", "-1"], "PL-ENV-ARG"),
    ],
)
def test_bad_input_exits_2_with_the_error_code_and_writes_nothing(tmp_path, capsys, args, code):
    out = tmp_path / "report"
    assert validate_model.main([*args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and code in err
    assert not out.exists()


def test_unparseable_number_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        validate_model.main(["--n-patients", "two", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("x")
    assert validate_model.main(["--n-patients", "1", "--days", "1", "--out", str(path), "--no-progress"]) == 2
    code = "PL-OUTPUT-PATH"
    assert capsys.readouterr().err.startswith(f"error: {code}: ")
    assert path.read_text() == "x"  # untouched
