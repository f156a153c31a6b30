"""Bad-input suite: random and malformed values for every external input end in a coded error.

Property (hypothesis): whatever a user hands painloop (a patient YAML file, a
cohort preset, a controller file, a device controller config, Hydra
overrides of ``evaluate`` and ``train``, a damaged run folder for ``run:``,
``resume`` and ``finetune_from``), the outcome is either a valid object or a
``PainloopError`` whose code is listed in docs/errors.md: never a traceback
from deep inside. ``tests/data/broken/`` holds one deliberately broken file
per error that comes from a file; the command lines refuse them with exit
code 2 and write no result.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simenv.errors import PainloopError

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "tests" / "data" / "broken"
CONF = ROOT / "conf"
DOCUMENTED = set(re.findall(r"^\|\s*`(PL-[A-Z0-9-]+)`\s*\|", (ROOT / "docs" / "errors.md").read_text(), re.MULTILINE))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def coded(fn, *args, **kwargs):
    """Call ``fn``; a ``PainloopError`` must carry a documented code (returned); anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except PainloopError as exc:
        assert exc.code in DOCUMENTED, f"{exc.code} is not in docs/errors.md: {exc}"
        assert str(exc).startswith(f"{exc.code}: ") and len(exc.detail) > 10
        return exc


# -- value strategies ---------------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _groups() -> dict[str, list[str]]:
    from simenv.params import GROUPS

    return {g: list(k.__dataclass_fields__) for g, k in GROUPS.items()}


GROUP_FIELDS = _groups()
group_names = st.one_of(st.sampled_from(sorted(GROUP_FIELDS)), st.text(max_size=10))


@st.composite
def patient_mappings(draw):
    out = {}
    for group in draw(st.lists(group_names, max_size=3)):
        fields = GROUP_FIELDS.get(group, ["x"])
        names = draw(st.lists(st.one_of(st.sampled_from(fields), st.text(max_size=8)), max_size=3))
        out[group] = {n: draw(values) for n in names} if draw(st.booleans()) else draw(values)
    return out


def _tmpfile(name: str, data: str | bytes) -> tuple[tempfile.TemporaryDirectory, Path]:
    d = tempfile.TemporaryDirectory()
    path = Path(d.name) / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return d, path


# -- patient YAML -------------------------------------------------------------------------------------------------
@FAST
@given(st.one_of(patient_mappings().map(lambda m: yaml.safe_dump(m, allow_unicode=True)), st.text(max_size=80),
                 st.binary(max_size=40)))
def test_patient_yaml_is_loaded_or_refused_with_a_code(text):
    from simenv.cohort import Patient, load_patient_yaml

    d, path = _tmpfile("patient.yaml", text)
    with d:
        out = coded(load_patient_yaml, path)
    assert isinstance(out, (Patient, PainloopError))


# -- cohort presets -----------------------------------------------------------------------------------------------
dist_specs = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={"normal": st.lists(scalars, max_size=3), "lognormal": values,
                                        "uniform": st.lists(scalars, max_size=3), "constant": scalars,
                                        "clip": st.lists(scalars, max_size=3)}),
)
dist_keys = st.one_of(st.sampled_from([f"{g}.{f}" for g, fs in GROUP_FIELDS.items() for f in fs]), st.text(max_size=10))


@FAST
@given(st.fixed_dictionaries(
    {"name": st.text(max_size=6), "seed": st.integers(0, 10**6)},
    optional={"n_patients": scalars, "distributions": st.dictionaries(dist_keys, dist_specs, max_size=3),
              "base": patient_mappings(), "extra": values},
))
def test_cohort_preset_is_built_or_refused_with_a_code(mapping):
    from simenv.cohort import preset_from_mapping

    preset = coded(preset_from_mapping, mapping, "preset 'random'")
    if not isinstance(preset, PainloopError):
        coded(preset.sample, 3)


# -- controller files (conf/controller/) -----------------------------------------------------------------------
controller_keys = st.sampled_from(["on_s", "off_s", "duty", "mean_on_s", "match", "target_duty", "threshold_method",
                                   "target_duty", "onset_updates", "termination_updates", "calibration_schedule",
                                   "calibration_days", "max_inputs", "x"])


@FAST
@given(st.one_of(
    st.fixed_dictionaries({"kind": st.one_of(st.sampled_from(["off", "continuous", "cycling", "random", "latent_threshold",
                                                              "threshold", "dual_threshold", "pid"]), values)},
                          optional={k: values for k in ("on_s", "off_s", "duty", "target_duty")})
    .flatmap(lambda m: st.dictionaries(controller_keys, values, max_size=2).map(lambda extra: extra | m)),
    values,
))
def test_controller_file_is_loaded_or_refused_with_a_code(mapping):
    from experiments.common.controller_entries import load_controller

    d = tempfile.TemporaryDirectory()
    with d:
        (Path(d.name) / "mine.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True))
        spec = coded(load_controller, "mine", "mine", Path(d.name))
        if isinstance(spec, PainloopError):
            return
        if coded(spec.build, 30.0, 0) is not None and spec.needs_detector:
            coded(spec.detector_settings)
        if spec.needs_detector or spec.needs_calibration:
            coded(spec.clinic_settings)


# -- controller configs for the engine (schema and device limits) ----------------------------------------------
@pytest.fixture(scope="module")
def valid_config() -> dict:
    from test_export import hand_config

    from agents.controller_config import check_config

    return check_config(hand_config())


def _leaves(data, path=()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, i))
    yield path


@SLOW
@given(data=st.data())
def test_mutated_controller_config_is_accepted_or_refused_with_a_code(valid_config, data):
    from agents.controller_config import check_config

    config = copy.deepcopy(valid_config)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _leaves(config) if p]
        path = data.draw(st.sampled_from(paths))
        parent = config
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
    out = coded(check_config, config, 30.0)
    if isinstance(out, PainloopError):
        assert out.code in {"PL-CONFIG-SCHEMA", "PL-CONFIG-INVALID"}


@FAST
@given(st.one_of(st.binary(max_size=60), values.map(json.dumps)))
def test_controller_config_file_of_any_content_is_refused_with_a_code(content):
    from agents.config_files import load_config

    d, path = _tmpfile("config.json", content)
    with d:
        out = coded(load_config, path, 30.0)
    assert isinstance(out, PainloopError) and out.code in {"PL-CONFIG-SCHEMA", "PL-CONFIG-INVALID"}


# -- Hydra overrides ---------------------------------------------------------------------------------------------
EVALUATE_KEYS = ["horizon_days", "seed", "dt_s", "initial_state", "trace_patient", "reference", "controllers",
                 "cohort", "cohort.n_patients", "reward", "reward.pain", "reward.energy", "horizon_day", "+foo"]
TRAIN_KEYS = ["total_timesteps", "seed", "n_envs", "eval_freq", "checkpoint_freq", "agent", "env.dt_s",
              "env.action_mode", "cohort.n_patients", "validation.n_patients", "reward.energy", "agent.hyperparams.gamma",
              "agent.hyperparams.n_steps", "progress_bar", "resume", "finetune_from", "totl_timesteps"]
override_values = st.one_of(st.sampled_from(["0", "-1", "1e9", "nan", "inf", "abc", "[]", "[a,b", "null", "true",
                                             "[off,continuous]", "'x y'", "tests/data/broken/run_physics",
                                             "tests/data/broken/run_bad_train_config", "/nonexistent"]),
                            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8))


def overrides(keys):
    return st.lists(st.tuples(st.sampled_from(keys), override_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
                    min_size=1, max_size=3)


@SLOW
@given(overrides(EVALUATE_KEYS))
def test_evaluate_overrides_are_accepted_or_refused_with_a_code(argv):
    from test_evaluate import compose

    from experiments.evaluate import precheck
    from experiments.evaluation.plan import make_plan

    argv = [*argv, "cohort.n_patients=3"] if not any(a.startswith("cohort") for a in argv) else argv
    checked = coded(precheck, argv)
    if isinstance(checked, PainloopError):
        return
    try:
        cfg = compose(*checked)
    except Exception:  # noqa: BLE001 - a sweep or a shape precheck leaves to Hydra; it is not ours to compose here
        return
    coded(make_plan, cfg)


@SLOW
@given(overrides(TRAIN_KEYS))
def test_train_overrides_are_accepted_or_refused_with_a_code(argv):
    from test_train import compose

    from experiments.train import make_plan, precheck

    cwd = os.getcwd()
    os.chdir(ROOT)  # relative run folders in the values are relative to the project
    try:
        checked = coded(precheck, argv)
        if isinstance(checked, PainloopError) or checked[1] is not None:
            return
        try:
            cfg = compose(*checked[0])
        except Exception:  # noqa: BLE001 - see the evaluate case
            return
        from omegaconf import OmegaConf

        coded(make_plan, OmegaConf.to_container(cfg, resolve=True))
    finally:
        os.chdir(cwd)


# -- run folders: run:<dir>, resume, finetune_from -----------------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("suite") / "run"
    args = ["n_envs=4", "cohort.n_patients=4", "validation.n_patients=2", "validation.horizon_days=0.1",
            "progress_bar=false", "agent=ppo", "agent.hyperparams.n_steps=128", "agent.hyperparams.batch_size=128",
            "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=512", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"OPENBLAS_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


RUN_FILES = ["train_config.json", "model.zip", "best_model.zip", "vecnormalize.json", "best_vecnormalize.json",
             "status.json", "checkpoints/ckpt_512_steps.zip", "checkpoints/ckpt_512_steps_vecnormalize.json"]
damage = st.tuples(st.sampled_from(RUN_FILES), st.sampled_from(["delete", "truncate", "garbage", "json"]), values)


def _damaged_copy(src: Path, dest: Path, damages) -> Path:
    shutil.copytree(src, dest)
    for name, how, value in damages:
        path = dest / name
        if how == "delete":
            path.unlink(missing_ok=True)
        elif how == "truncate" and path.is_file():
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
        elif how == "garbage":
            path.write_bytes(os.urandom(64))
        else:
            path.write_text(json.dumps(value))
    return dest


@SLOW
@given(st.lists(damage, min_size=1, max_size=3))
def test_damaged_run_folder_loads_or_is_refused_with_a_code(small_run, damages):
    from agents.rl_policy import load_run_policy
    from experiments.train import precheck

    d = tempfile.TemporaryDirectory()
    with d:
        run = _damaged_copy(small_run, Path(d.name) / "run", damages)
        for which in ("best", "final"):
            coded(load_run_policy, run, which=which)  # run:<dir>
        coded(precheck, [f"resume={run}"])
        coded(precheck, [f"finetune_from={run}", "total_timesteps=512"])


# -- tests/data/broken: one file per error that comes from a file -------------------------------------------------
def _patient(path):
    from simenv.cohort import load_patient_yaml

    return load_patient_yaml(path)


def _preset(path):
    from simenv.cohort import preset_from_mapping

    return preset_from_mapping(yaml.safe_load(path.read_text()), where=str(path)).sample(2)


def _controller(path):
    from experiments.common.controller_entries import load_controller

    spec = load_controller(path.stem, "x", path.parent)
    spec.build(30.0, 0)
    if spec.needs_detector:
        spec.detector_settings()
        spec.clinic_settings()
    return spec


def _config(path):
    from agents.config_files import load_config

    return load_config(path, 30.0)


def _config_dir(path):
    from agents.config_files import load_config_dir

    return load_config_dir(path, 30.0)


def _run(path):
    from agents.rl_policy import load_run_policy

    return load_run_policy(path)


#: file or folder in tests/data/broken -> (loader, code)
BROKEN_FILES = {
    "patient_yaml_syntax.yaml": (_patient, "PL-PATIENT-YAML"),
    "patient_unknown_group.yaml": (_patient, "PL-PARAM-UNKNOWN"),
    "patient_out_of_range.yaml": (_patient, "PL-PARAM-RANGE"),
    "patient_not_a_number.yaml": (_patient, "PL-PARAM-TYPE"),
    "patient_charge_density.yaml": (_patient, "PL-SAFETY-CHARGE-DENSITY"),
    "patient_shannon.yaml": (_patient, "PL-SAFETY-SHANNON"),
    "cohort_preset_spec.yaml": (_preset, "PL-COHORT-SPEC"),
    "cohort_preset_unknown_key.yaml": (_preset, "PL-COHORT-SPEC"),
    "controller_file_syntax.yaml": (_controller, "PL-CONTROLLER-FILE"),
    "controller_unknown_kind.yaml": (_controller, "PL-CONTROLLER-UNKNOWN"),
    "controller_param.yaml": (_controller, "PL-CONTROLLER-PARAM"),
    "controller_calibration.yaml": (_controller, "PL-CALIBRATION"),
    "config_truncated.json": (_config, "PL-CONFIG-SCHEMA"),
    "config_schema.json": (_config, "PL-CONFIG-SCHEMA"),
    "config_invalid.json": (_config, "PL-CONFIG-INVALID"),
    "config_folder_empty": (_config_dir, "PL-CONFIG-MISSING"),
    "run_no_train_config": (_run, "PL-RUN-FOLDER"),
    "run_bad_train_config": (_run, "PL-RUN-FOLDER"),
    "run_physics": (_run, "PL-RUN-PHYSICS"),
}
#: Every documented code that a file (rather than a command-line value or an API call) can cause.
FILE_CODES = {"PL-PATIENT-YAML", "PL-PARAM-UNKNOWN", "PL-PARAM-RANGE", "PL-PARAM-TYPE", "PL-SAFETY-CHARGE-DENSITY",
              "PL-SAFETY-SHANNON", "PL-COHORT-SPEC", "PL-CONTROLLER-FILE", "PL-CONTROLLER-UNKNOWN",
              "PL-CONTROLLER-PARAM", "PL-CALIBRATION", "PL-CONFIG-SCHEMA", "PL-CONFIG-INVALID", "PL-CONFIG-MISSING",
              "PL-RUN-FOLDER", "PL-RUN-PHYSICS"}


def test_every_broken_file_is_listed_and_every_file_error_has_one():
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(BROKEN_FILES)
    assert {code for _, code in BROKEN_FILES.values()} == FILE_CODES
    assert FILE_CODES <= DOCUMENTED


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_each_broken_file_is_refused_with_its_code(name):
    loader, code = BROKEN_FILES[name]
    with pytest.raises(PainloopError) as err:
        loader(BROKEN / name)
    assert err.value.code == code, str(err.value)


# -- the command lines: exit 2, no result written, the input left as it was ---------------------------------------
CLI = {
    "train patient file": (["experiments.train", "cohort.patient_file=tests/data/broken/patient_out_of_range.yaml",
                            "total_timesteps=512", "progress_bar=false"], "PL-PARAM-RANGE"),
    "train resume": (["experiments.train", "resume=tests/data/broken/run_bad_train_config"], "PL-RUN-FOLDER"),
    "train finetune_from": (["experiments.train", "finetune_from=tests/data/broken/run_physics",
                             "total_timesteps=512", "progress_bar=false"], "PL-RUN-PHYSICS"),
    "evaluate run:": (["experiments.evaluate", "controllers=[off,continuous,x=run:tests/data/broken/run_physics]",
                       "cohort.n_patients=2", "horizon_days=0.1"], "PL-RUN-PHYSICS"),
    "evaluate config:": (["experiments.evaluate",
                          "controllers=[off,continuous,x=config:tests/data/broken/config_folder_empty]",
                          "cohort.n_patients=2", "horizon_days=0.1"], "PL-CONFIG-MISSING"),
    "export run:": (["experiments.export", "source=run:tests/data/broken/run_no_train_config", "target=onnx"],
                    "PL-RUN-FOLDER"),
}
ALLOWED_LEFT = {".hydra", "status.json", "train.log", "evaluate.log", "export.log"}


@pytest.mark.slow
def test_command_lines_refuse_broken_files_with_exit_2_and_write_no_result(tmp_path):
    before = {p: p.read_bytes() for p in BROKEN.rglob("*") if p.is_file()}
    procs = {}
    for name, (args, _) in CLI.items():
        run_dir = tmp_path / name.replace(" ", "_").replace(":", "")
        extra = [] if any(a.startswith("resume=") for a in args) else [f"hydra.run.dir={run_dir}"]
        procs[name] = (subprocess.Popen([sys.executable, "-m", *args, *extra], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env=os.environ | {"OPENBLAS_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}),
                       run_dir)
    for name, (proc, run_dir) in procs.items():
        _, stderr = proc.communicate(timeout=300)
        code = CLI[name][1]
        assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{stderr[-1500:]}"
        assert code in stderr, f"{name}: {code} not in\n{stderr[-1500:]}"
        left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
        assert left <= ALLOWED_LEFT, f"{name}: {left}"
        if "status.json" in left:
            assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"
    after = {p: p.read_bytes() for p in BROKEN.rglob("*") if p.is_file()}
    assert after == before, "a command changed or added files in tests/data/broken"
