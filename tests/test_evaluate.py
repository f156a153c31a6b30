"""``python -m experiments.evaluate``: files, plots, determinism, paired zeros, labels and bad input.

One real command-line run (subprocess, 8 entries x 3 patients x 6 h) feeds
most checks; some bad-input command lines run as subprocesses, concurrently
(each exits before the simulation), the rest in-process; determinism,
failures and interruption run in-process through ``experiments.evaluation.run.run``
with a composed config.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import struct
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
SMALL = ["cohort=test", "cohort.n_patients=3", "horizon_days=0.25"]
#: The unquoted DESIGN.md label syntax, as typed on the command line.
ENTRIES = "controllers=[off,continuous,cycling,thr=threshold,dual_threshold,latent_threshold,random,c2=continuous]"
LABELS = ["off", "continuous", "cycling", "thr", "dual_threshold", "latent_threshold", "random", "c2"]
RESULT_FILES = {"metrics.csv", "metrics.json", "per_patient.csv", "monthly.csv", "paired.csv", "paired.json",
                "detectors.json", "run.json", "bars.png", "pareto.png", "monthly.png"}
#: What bad input may leave behind: Hydra's own record and log, and status.json (failed).
ALLOWED_AFTER_BAD_INPUT = {".hydra", "evaluate.log", "status.json"}


def week(args) -> list[str]:
    """The 7-day frame unless the test names a frame: these tests are about the command, not the frame."""
    return list(args) if any(str(a).startswith(("frame=", "warmup_days=")) for a in args) else ["frame=week", *args]


def cli(*args: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.evaluate", *week(args), f"hydra.run.dir={run_dir}"]


def env() -> dict[str, str]:
    return os.environ | {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    proc = subprocess.run(cli(ENTRIES, *SMALL, run_dir=run_dir), cwd=ROOT, capture_output=True, text=True,
                          env=env(), timeout=300)
    return proc, run_dir


def compose(*overrides: str, as_typed: bool = False):
    """Hydra's config for ``overrides``; in the 7-day frame unless ``as_typed`` (then exactly as given)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import experiments.evaluate  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return hydra_compose(config_name="evaluate", overrides=list(overrides) if as_typed else week(overrides))


def run_in_process(run_dir: Path, *overrides: str, **kwargs):
    from experiments.evaluation.run import run

    out = io.StringIO()
    with redirect_stdout(out):
        value = run(compose(*overrides), run_dir, show_progress=False, **kwargs)
    return value, out.getvalue()


# -- the command line writes every file ------------------------------------------------------------
def test_cli_runs_and_writes_every_file(cli_run):
    proc, run_dir = cli_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {p.name for p in run_dir.iterdir()}
    traces = {f"trace_{label}.png" for label in LABELS}
    assert RESULT_FILES | traces | {"status.json", ".hydra"} <= names
    assert {"config.yaml", "overrides.yaml", "hydra.yaml"} <= {p.name for p in (run_dir / ".hydra").iterdir()}
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert status["result"]["objective"] == metrics["controllers"][0]["reward_per_day"]  # first entry: off
    run_info = json.loads((run_dir / "run.json").read_text())
    assert run_info["seeds"]["seed"] == 0 and len(run_info["seeds"]["patient_uids"]) == 3
    assert ENTRIES in run_info["argv"]  # the command line as typed
    # Console: the compact table, latent controllers marked.
    assert "latent_threshold (latent)" in proc.stdout and "vs continuous" in proc.stdout


def test_metrics_table_has_every_controller_metric_and_interval(cli_run):
    from agents.evaluation import METRICS

    _, run_dir = cli_run
    rows = read_csv(run_dir / "metrics.csv")
    assert [r["controller"] for r in rows] == LABELS
    assert {r["controller"]: r["uses_latent"] for r in rows}["latent_threshold"] == "True"
    for r in rows:
        for m in METRICS:
            lo, mean, hi = (float(r[f"{m}{s}"]) for s in ("_ci_low", "", "_ci_high"))
            assert lo <= mean <= hi, (r["controller"], m)
    by = {r["controller"]: r for r in rows}
    assert float(by["continuous"]["duty_cycle"]) == 1.0 and float(by["off"]["duty_cycle"]) == 0.0
    assert float(by["off"]["stim_energy_j_per_day"]) == 0.0


def test_per_patient_rows_and_same_controller_twice_gives_zero_differences(cli_run):
    from agents.evaluation import METRICS
    from simenv.cohort import load_preset

    _, run_dir = cli_run
    rows = read_csv(run_dir / "per_patient.csv")
    assert len(rows) == len(LABELS) * 3
    uids = [str(p.uid) for p in load_preset("test").sample(3)]
    for label in LABELS:
        mine = [r for r in rows if r["controller"] == label]
        assert [r["patient_uid"] for r in mine] == uids and [r["patient_index"] for r in mine] == ["0", "1", "2"]
    strip = [m for m in METRICS]
    cont = [[r[m] for m in strip] for r in rows if r["controller"] == "continuous"]
    c2 = [[r[m] for m in strip] for r in rows if r["controller"] == "c2"]
    thr = [[r[m] for m in strip] for r in rows if r["controller"] == "thr"]
    assert cont == c2  # identical per-patient rows
    assert cont != thr  # ... and the comparison can tell controllers apart
    paired = {r["controller"]: r for r in read_csv(run_dir / "paired.csv")}
    for m in METRICS:
        for suffix in ("_diff", "_diff_ci_low", "_diff_ci_high"):
            assert float(paired["c2"][f"{m}{suffix}"]) == 0.0, m
    assert float(paired["off"]["stim_energy_j_per_day_diff"]) < 0.0
    doc = json.loads((run_dir / "paired.json").read_text())
    assert doc["reference"] == "continuous" and [r["controller"] for r in doc["controllers"]] == LABELS


def test_detectors_json_holds_each_threshold_controllers_fitted_configs(cli_run):
    _, run_dir = cli_run
    doc = json.loads((run_dir / "detectors.json").read_text())
    # Threshold kinds only; the threshold the random entry matches runs hidden and is not reported.
    assert set(doc["controllers"]) == {"thr", "dual_threshold"}
    for label, entries in doc["controllers"].items():
        assert [e["patient_index"] for e in entries] == [0, 1, 2]
        for e in entries:
            det = e["detector"]
            assert {"inputs", "weight", "norm_subtract", "norm_multiply", "threshold_low", "threshold_high"} <= set(det)
            assert det["dual_threshold"] is (label == "dual_threshold")


def test_pngs_are_valid_images_of_the_expected_size(cli_run):
    import numpy as np
    from PIL import Image

    from experiments.evaluation.plots import SIZES_PX

    _, run_dir = cli_run
    expected = {f"trace_{label}.png": SIZES_PX["trace"] for label in LABELS}
    expected |= {"bars.png": SIZES_PX["bars"], "pareto.png": SIZES_PX["pareto"], "monthly.png": SIZES_PX["monthly"]}
    assert SIZES_PX == {"trace": (1100, 900), "bars": (1600, 1200), "pareto": (1500, 700), "monthly": (1500, 560)}
    for name, size in expected.items():
        assert png_size(run_dir / name) == size, name
        with Image.open(run_dir / name) as im:
            im.verify()
        with Image.open(run_dir / name) as im:
            pixels = np.asarray(im.convert("L"))
        assert pixels.shape == (size[1], size[0])
        assert (pixels < 128).mean() > 0.005, f"{name} is (nearly) blank"


# -- frames ---------------------------------------------------------------------------------------
def test_the_long_term_frame_is_the_default_and_the_week_frame_stays_available():
    from experiments.evaluation.plan import make_plan

    base = ("controllers=[off,continuous]", "cohort.n_patients=2")
    default = make_plan(compose(*base, as_typed=True))
    assert (default.frame, default.warmup_days, default.settings.horizon_days) == ("long_term", 90.0, 28.0)
    assert default.frame_text.startswith("frame long_term: 90 days of warm-up from a naive start")
    week_plan = make_plan(compose(*base, "frame=week", as_typed=True))
    assert (week_plan.frame, week_plan.warmup_days, week_plan.settings.horizon_days) == ("week", 0.0, 7.0)
    assert week_plan.frame_text == "frame week: 7 scored days from a naive start, no warm-up"
    # Either number alone overrides the frame's; the table then says the frame is custom.
    custom = make_plan(compose(*base, "warmup_days=30", as_typed=True))
    assert (custom.warmup_days, custom.settings.horizon_days) == (30.0, 28.0)
    assert custom.frame_text.startswith("frame custom: 30 days of warm-up")
    assert make_plan(compose(*base, "frame=week", "horizon_days=3", as_typed=True)).settings.horizon_days == 3.0


def test_every_output_names_its_frame(cli_run):
    proc, run_dir = cli_run
    frame_line = "frame custom: 0.25 scored days from a naive start, no warm-up"
    assert frame_line in proc.stdout
    for name in ("metrics.json", "paired.json"):
        meta = json.loads((run_dir / name).read_text())
        assert (meta["frame"], meta["warmup_days"], meta["frame_text"]) == ("week", 0.0, frame_line), name
    monthly = read_csv(run_dir / "monthly.csv")
    assert len(monthly) == len(LABELS) * 3  # one 0.25-day block per controller and patient
    assert {r["phase"] for r in monthly} == {"scored"}


# -- label syntax ---------------------------------------------------------------------------------
def test_label_syntax_parses_unquoted_and_quoted():
    from experiments.common.controller_entries import resolve_controllers
    from experiments.evaluate import precheck

    typed = "controllers=[continuous,threshold,thr2=threshold_duty20]"
    fixed = precheck([typed, "cohort.n_patients=2"])
    assert fixed[0] == "controllers=[continuous,threshold,'thr2=threshold_duty20']"
    quoted = 'controllers=[continuous,threshold,"thr2=threshold_duty20"]'
    assert precheck([quoted]) == [quoted]
    for override in (fixed[0], quoted):
        cfg = compose(override)
        assert list(cfg.controllers) == ["continuous", "threshold", "thr2=threshold_duty20"]
        specs, extra = resolve_controllers(list(cfg.controllers))
        assert [(s.label, s.kind, s.params.get("target_duty")) for s in specs] == [
            ("continuous", "continuous", None), ("threshold", "threshold", 0.5), ("thr2", "threshold", 0.2)
        ]
        assert extra == []


def test_random_entry_matches_a_hidden_controller_when_its_label_is_absent():
    from experiments.common.controller_entries import resolve_controllers

    specs, extra = resolve_controllers(["continuous", "random"])
    assert [s.label for s in specs] == ["continuous", "random"]
    assert [(s.label, s.kind) for s in extra] == [("threshold", "threshold")]
    specs, extra = resolve_controllers(["threshold", "random"])
    assert extra == []


def test_controller_files_hold_the_documented_settings():
    from experiments.common.controller_entries import available_controllers, load_controller

    names = available_controllers()
    assert {"off", "continuous", "cycling", "cycling_5min", "threshold", "threshold_duty20", "threshold_youden",
            "dual_threshold", "latent_threshold", "random"} <= set(names)
    spec = {n: load_controller(n, n) for n in names}
    assert spec["off"].kind == "off"  # quoted in YAML: a bare off would be False
    assert spec["cycling"].params == {"on_s": 60, "off_s": 60}
    assert spec["cycling_5min"].params == {"on_s": 300, "off_s": 300}
    assert spec["threshold"].params["target_duty"] == 0.5
    assert spec["threshold_duty20"].params["target_duty"] == 0.2
    assert spec["threshold_youden"].params["threshold_method"] == "youden"
    assert spec["random"].params == {"match": "threshold"}
    assert spec["latent_threshold"].uses_latent and not spec["threshold"].uses_latent


def test_cohort_group_matches_the_shipped_presets():
    import yaml

    from simenv.cohort import available_presets, load_preset

    files = sorted(p.stem for p in (CONF / "cohort").glob("*.yaml"))
    assert files == available_presets()
    for name in files:
        data = yaml.safe_load((CONF / "cohort" / f"{name}.yaml").read_text())
        assert data == {"name": name, "n_patients": load_preset(name).n_patients}


# -- determinism, objective -----------------------------------------------------------------------
def test_same_seed_gives_identical_tables_and_another_seed_does_not(tmp_path):
    args = ("controllers=[continuous,threshold,random]", *SMALL)
    a, _ = run_in_process(tmp_path / "a", *args)
    b, _ = run_in_process(tmp_path / "b", *args)
    c, _ = run_in_process(tmp_path / "c", *args, "seed=1")
    for name in ("metrics.csv", "per_patient.csv", "paired.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "metrics.csv").read_bytes() != (tmp_path / "c" / "metrics.csv").read_bytes()
    assert a == b != c
    first = read_csv(tmp_path / "a" / "metrics.csv")[0]
    assert first["controller"] == "continuous" and a == float(first["reward_per_day"])


# -- bad input ------------------------------------------------------------------------------------
BAD_CLI = {
    # name: (overrides, code, fragments of the message)
    "unknown_controller": (["controllers=[continuous,thresh]"], "PL-CONTROLLER-UNKNOWN",
                           ["'thresh'", "threshold_duty20", "cycling_5min"]),
    "unknown_cohort_group": (["cohort=tset"], "PL-COHORT-UNKNOWN", ["default", "scs", "train", "validation"]),
    "unknown_cohort_name": (["cohort.name=nope"], "PL-COHORT-UNKNOWN", ["'nope'", "validation"]),
    "horizon_zero": (["horizon_days=0"], "PL-ENV-ARG", ["horizon_days=0", "(0, 3650]"]),
    "horizon_negative": (["horizon_days=-2"], "PL-ENV-ARG", ["horizon_days=-2"]),
    "cohort_size_zero": (["cohort.n_patients=0"], "PL-COHORT-SIZE", ["n_patients=0", ">= 1"]),
    "cohort_size_negative": (["cohort.n_patients=-3"], "PL-COHORT-SIZE", ["n_patients=-3"]),
    "misspelled_key": (["horizon_day=3"], "PL-CONFIG-KEY", ["'horizon_day'", "did you mean 'horizon_days'",
                                                            "trace_patient", "cohort.n_patients"]),
    "misspelled_nested_key": (["cohort.n_patient=3"], "PL-CONFIG-KEY", ["cohort.name, cohort.n_patients"]),
    "added_key": (["+foo=1"], "PL-CONFIG-KEY", ["'foo'", "controllers"]),
    "run_entry": (["controllers=[continuous,run:outputs/x]"], "PL-RUN-FOLDER", ["outputs/x", "does not exist"]),
    "config_entry": (["controllers=[continuous,'exp=config:exports/x']"], "PL-CONFIG-MISSING",
                     ["exports/x", "does not exist"]),
    "duplicate_label": (["controllers=[continuous,continuous]"], "PL-CONTROLLER-LABEL", ["unique"]),
    "unknown_reference": (["reference=nope"], "PL-REFERENCE-UNKNOWN", ["'nope'", "continuous"]),
    "wrong_type": (["seed=abc"], "PL-CONFIG-VALUE", ["seed=abc", "Integer"]),
    "syntax": (["controllers=[continuous,threshold"], "PL-CONFIG-SYNTAX", ["quote"]),
    "trace_patient_out_of_range": (["cohort.n_patients=2", "trace_patient=5"], "PL-CONFIG-VALUE",
                                   ["trace_patient=5", "0 to 1"]),
    "bad_label": (["controllers=[continuous,'a/b=threshold']"], "PL-CONTROLLER-LABEL", ["'a/b'"]),
    "warmup_negative": (["warmup_days=-1"], "PL-EVAL-WARMUP", ["warmup_days=-1", ">= 0"]),
    "warmup_nan": (["warmup_days=nan"], "PL-EVAL-WARMUP", ["warmup_days=nan", "finite"]),
    "warmup_infinite": (["warmup_days=inf"], "PL-EVAL-WARMUP", ["warmup_days=inf", "finite"]),
    "warmup_too_long": (["warmup_days=4000"], "PL-EVAL-WARMUP", ["warmup_days=4000", "3650"]),
    "unknown_frame": (["frame=month"], "PL-CONFIG-VALUE", ["frame='month'", "long_term", "week"]),
}


#: Cases run as real command lines (concurrently); the others run in-process through the same
#: functions (``main``'s pre-Hydra check, then ``run``), which is faster.
CLI_CASES = ("unknown_controller", "unknown_cohort_group", "horizon_zero", "cohort_size_zero", "misspelled_key",
             "run_entry", "wrong_type", "warmup_negative", "unknown_frame")


@pytest.fixture(scope="module")
def bad_cli_runs(tmp_path_factory):
    """The command-line cases, launched together (each exits before any simulation)."""
    base = tmp_path_factory.mktemp("bad")
    procs = {
        name: (subprocess.Popen(cli(*BAD_CLI[name][0], run_dir=base / name), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env()), base / name)
        for name in CLI_CASES
    }
    out = {}
    for name, (proc, run_dir) in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (proc.returncode, stdout, stderr, run_dir)
    return out


def bad_in_process(args: list[str], run_dir: Path, capsys) -> tuple[int, str, str]:
    from experiments.evaluate import main, precheck
    from experiments.evaluation.run import run
    from simenv.errors import PainloopError

    with pytest.raises(SystemExit) as info:
        try:
            fixed = precheck(args)
        except PainloopError:
            main(args)  # the console entry refuses before Hydra starts
        else:
            with redirect_stdout(io.StringIO()):
                run(compose(*fixed), run_dir, show_progress=False)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize("name", sorted(BAD_CLI))
def test_bad_input_exits_2_before_any_result_file(bad_cli_runs, name, tmp_path, capsys):
    args, code, fragments = BAD_CLI[name]
    if name in CLI_CASES:
        rc, stdout, stderr, run_dir = bad_cli_runs[name]
    else:
        run_dir = tmp_path / "run"
        rc, stdout, stderr = bad_in_process(args, run_dir, capsys)
    assert rc == 2, (stdout, stderr)
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {code}: "), stderr
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= ALLOWED_AFTER_BAD_INPUT, left
    if "status.json" in left:
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "failed" and status["error"]["code"] == code and status["exit_code"] == 2


def test_bad_controller_files_are_refused_with_their_codes(tmp_path):
    from experiments.common.controller_entries import resolve_controllers
    from experiments.evaluation.plan import make_plan
    from simenv.errors import PainloopError

    (tmp_path / "broken.yaml").write_text("kind: [threshold\n")
    (tmp_path / "nokind.yaml").write_text("on_s: 60\n")
    (tmp_path / "badkind.yaml").write_text("kind: pid\n")
    (tmp_path / "badparam.yaml").write_text("kind: cycling\non_s: 60\nof_s: 60\n")
    (tmp_path / "short.yaml").write_text("kind: cycling\non_s: 10\noff_s: 60\n")
    (tmp_path / "lost.yaml").write_text("kind: random\nmatch: nowhere\n")
    (tmp_path / "cyc.yaml").write_text("kind: cycling\non_s: 60\noff_s: 60\n")
    (tmp_path / "rnd.yaml").write_text("kind: random\nmatch: cyc\n")
    (tmp_path / "chain.yaml").write_text("kind: random\nmatch: rnd\n")
    cases = {
        "broken": "PL-CONTROLLER-FILE",
        "nokind": "PL-CONTROLLER-FILE",
        "badkind": "PL-CONTROLLER-UNKNOWN",
        "badparam": "PL-CONTROLLER-PARAM",
        "lost": "PL-CONTROLLER-MATCH",
    }
    for name, code in cases.items():
        with pytest.raises(PainloopError) as info:
            resolve_controllers([name], tmp_path)
        assert info.value.code == code, name
    with pytest.raises(PainloopError) as info:
        resolve_controllers(["rnd", "chain"], tmp_path)
    assert info.value.code == "PL-CONTROLLER-MATCH" and "itself matched" in str(info.value)
    specs, extra = resolve_controllers(["rnd"], tmp_path)  # the matched file runs hidden
    assert [s.label for s in extra] == ["cyc"]
    # Ranges a kind checks when its policy is built are refused before any work too.
    with pytest.raises(PainloopError) as info:
        make_plan(compose("controllers=[short]", "reference=short", *SMALL), conf_dir=tmp_path)
    assert info.value.code == "PL-CONTROLLER-PARAM" and "on_s" in str(info.value)


def test_bad_input_in_process_exits_2_and_writes_only_a_failed_status(tmp_path, capsys):
    from experiments.evaluation.run import run

    with pytest.raises(SystemExit) as info:
        run(compose("controllers=[continuous]", "reference=threshold", *SMALL), tmp_path, show_progress=False)
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: PL-REFERENCE-UNKNOWN: ")
    assert {p.name for p in tmp_path.iterdir()} == {"status.json"}
    # Under --multirun a job records its error and returns NaN (fault isolation for sweeps).
    value = run(compose("controllers=[]", *SMALL), tmp_path / "m", exit_on_error=False, show_progress=False)
    assert math.isnan(value)
    assert json.loads((tmp_path / "m" / "status.json").read_text())["error"]["code"] == "PL-CONFIG-VALUE"


# -- failures after the work started --------------------------------------------------------------
def test_failure_after_work_started_records_failed_and_exits_1(tmp_path, monkeypatch, capsys):
    import agents.evaluation
    from simenv.errors import NonFiniteStateError

    def broken(*args, **kwargs):
        raise NonFiniteStateError("PL-STATE-NONFINITE", "slot 0 step 5: pain_nrs is nan.")

    monkeypatch.setattr(agents.evaluation, "evaluate", broken)
    with pytest.raises(SystemExit) as info:
        run_in_process(tmp_path, "controllers=[continuous]", *SMALL)
    assert info.value.code == 1
    assert "error: PL-STATE-NONFINITE: slot 0" in capsys.readouterr().err
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert status["error"]["code"] == "PL-STATE-NONFINITE"
    assert (tmp_path / "run.json").exists() and not (tmp_path / "metrics.csv").exists()

    def bug(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(agents.evaluation, "evaluate", bug)
    with pytest.raises(ZeroDivisionError):  # unexpected errors keep their traceback (Hydra prints it, exit 1)
        run_in_process(tmp_path / "b", "controllers=[continuous]", *SMALL)
    status = json.loads((tmp_path / "b" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"]["code"] is None
    assert status["error"]["type"] == "ZeroDivisionError"
    # In a sweep (exit_on_error=False) the job records the failure and returns NaN.
    value, _ = run_in_process(tmp_path / "c", "controllers=[continuous]", *SMALL, exit_on_error=False)
    assert math.isnan(value)
    assert json.loads((tmp_path / "c" / "status.json").read_text())["error"]["type"] == "ZeroDivisionError"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_run_records_interrupted(tmp_path, monkeypatch, signum):
    import agents.evaluation

    seen = {}

    def interrupted(*args, progress=None, **kwargs):
        seen["status"] = json.loads((tmp_path / "status.json").read_text())["state"]
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal handler should have stopped the run")

    monkeypatch.setattr(agents.evaluation, "evaluate", interrupted)
    with pytest.raises(SystemExit) as info:
        run_in_process(tmp_path, "controllers=[continuous]", *SMALL)
    assert info.value.code == 128 + signum
    assert seen["status"] == "running"
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "interrupted" and status["signal"] == signal.Signals(signum).name
    assert not (tmp_path / "metrics.csv").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


# -- documentation ------------------------------------------------------------------------------
def test_docs_cover_every_metric_controller_and_output():
    from agents.evaluation import METRICS
    from experiments.common.controller_entries import available_controllers

    text = (ROOT / "docs" / "evaluation.md").read_text()
    missing = [m for m in METRICS if f"`{m}`" not in text]
    missing += [n for n in available_controllers() if f"`{n}`" not in text]
    missing += [f for f in sorted(RESULT_FILES | {"status.json", "trace_<label>.png"}) if f"`{f}`" not in text]
    assert missing == []
    assert "controllers=[continuous,threshold,thr2=threshold_duty20]" in text
