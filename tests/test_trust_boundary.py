"""Trust boundary: loading a run folder (``run:``, ``resume=``, ``finetune_from=``) never executes code from it.

A crafted pickle (one that would create a marker file) is planted in every
place a run folder can hold one: the final and best statistics, a
checkpoint's statistics, the pickled entries of a model zip and its weights.
Each command exits 2 before any work with an error naming the file, writes
nothing, and the marker never appears. A folder written before the
manifest is refused with the conversion command, which converts it once
asked. A source scan keeps unpickling, unsafe YAML, ``eval``/``exec`` and
``shell=True`` out of the package. New-format folders resume and fine-tune
exactly as the old pickled path did.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import test_evaluate as tev  # noqa: E402  (tests/ is on sys.path)
import test_train as ttr  # noqa: E402

from agents import json_data, model_zip, run_files, run_manifest, run_statistics
from simenv.errors import PainloopError

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [*ttr.SMALL, *ttr.PPO_SMALL, "total_timesteps=1024", "eval_freq=512", "checkpoint_freq=512"]


class _Marker:
    """Unpickling this creates the file ``path`` (what a crafted pickle would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted(marker: Path) -> bytes:
    return pickle.dumps(_Marker(marker))


def crafted_zip(original: bytes, marker: Path, keys=("policy_class", "ep_info_buffer", "observation_space"),
                extra_key: str | None = "painloop_extra", pth: bool = False) -> bytes:
    """The model zip with its pickled ``data`` entries (and optionally ``policy.pth``) replaced by the crafted pickle."""
    src = zipfile.ZipFile(io.BytesIO(original))
    data = json.loads(src.read("data"))
    payload = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(crafted(marker)).decode()}
    for key in keys:
        data[key] = payload
    if extra_key:
        data[extra_key] = payload
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name == "data":
                dst.writestr(name, json.dumps(data))
            elif name == "policy.pth" and pth:
                dst.writestr(name, crafted(marker))
            else:
                dst.writestr(name, src.read(name))
    return out.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trust") / "run"
    ttr.train_in_process(run_dir, *TRAIN)
    return run_dir


def interrupted_copy(src: Path, dst: Path, keep_final: bool = True) -> Path:
    shutil.copytree(src, dst)
    st = json.loads((dst / "status.json").read_text())
    st["state"] = "interrupted"
    st["pid"] = 0
    (dst / "status.json").write_text(json.dumps(st))
    if not keep_final:
        for name in ("model.zip", "vecnormalize.json"):
            (dst / name).unlink()
    return dst


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def newest_checkpoint(run: Path) -> dict[str, Path]:
    from experiments.training import folder as tf

    return tf.checkpoint_paths(run, tf.checkpoint_steps(run)[-1])


def plant(run: Path, rel: str, data: bytes, update_manifest: bool) -> Path:
    path = run / rel
    path.write_bytes(data)
    if update_manifest:  # an author who also rewrote run.json: the data formats alone must hold
        run_manifest.record_files(run, [rel])
    return path


def refused(command: str, run: Path, tmp_path: Path, capsys, extra: tuple[str, ...] = ()) -> tuple[int, str, Path]:
    """Run ``command`` on ``run`` in-process; returns (exit code, last stderr line, the new run folder)."""
    out_dir = tmp_path / f"out_{command}"
    if command == "run":
        rc, _, err = tev.bad_in_process([f"controllers=[off,x=run:{run}]", "cohort.n_patients=2", "horizon_days=0.1",
                                         "reference=off", *extra], out_dir, capsys)
    elif command == "resume":
        rc, _, err = ttr.bad_in_process([f"resume={run}", *extra], out_dir, capsys)
    else:
        rc, _, err = ttr.bad_in_process([*ttr.SMALL, f"finetune_from={run}", "total_timesteps=512", *extra], out_dir,
                                        capsys)
    return rc, err.strip().splitlines()[-1], out_dir


def check_refused(command, run, tmp_path, capsys, code, name, marker, extra=(), allowed=None):
    before = snapshot(run)
    rc, err, out_dir = refused(command, run, tmp_path, capsys, extra)
    assert rc == 2 and err.startswith(f"error: {code}: "), (command, err)
    assert name in err, (name, err)
    assert not marker.exists(), "the crafted pickle ran"
    assert snapshot(run) == before  # the folder is left exactly as it was
    if out_dir.exists() and command != "resume":
        left = {p.name for p in out_dir.iterdir()}
        allowed = allowed or (tev.ALLOWED_AFTER_BAD_INPUT if command == "run" else ttr.ALLOWED_AFTER_BAD_INPUT)
        assert left <= allowed, left


# -- every place a run folder can hold a pickle, every command that loads one -----------------------------
#: (file, commands that read it, extra overrides)
PLACES = {
    "vecnormalize.json": [("finetune", ("finetune_model=final",))],
    "best_vecnormalize.json": [("run", ()), ("finetune", ())],
    "checkpoint_stats": [("resume", ())],
    "model.zip": [("finetune", ("finetune_model=final",))],
    "best_model.zip": [("run", ()), ("finetune", ())],
    "checkpoint_zip": [("resume", ())],
}


def _rel(run: Path, place: str) -> str:
    if place == "checkpoint_stats":
        return str(newest_checkpoint(run)["vecnormalize"].relative_to(run))
    if place == "checkpoint_zip":
        return str(newest_checkpoint(run)["model"].relative_to(run))
    return place


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("update_manifest", [False, True], ids=["manifest-kept", "manifest-rewritten"])
def test_a_crafted_pickle_in_a_run_folder_never_runs(trained, tmp_path, capsys, place, update_manifest):
    marker = tmp_path / "marker"
    for command, extra in PLACES[place]:
        run = interrupted_copy(trained, tmp_path / f"{command}_{len(extra)}", keep_final=True)
        rel = _rel(run, place)
        is_zip = rel.endswith(".zip")
        data = crafted_zip((run / rel).read_bytes(), marker) if is_zip else crafted(marker)
        plant(run, rel, data, update_manifest)
        if not update_manifest:
            code = "PL-RUN-MANIFEST"
        else:
            code = "PL-RUN-UNSAFE" if is_zip else "PL-RUN-FOLDER"
        check_refused(command, run, tmp_path / command, capsys, code, Path(rel).name, marker, extra)


def test_crafted_weights_are_refused_by_the_weights_only_loader(trained, tmp_path):
    marker = tmp_path / "marker"
    run = interrupted_copy(trained, tmp_path / "run")
    plant(run, "best_model.zip", crafted_zip((run / "best_model.zip").read_bytes(), marker, keys=(), extra_key=None,
                                             pth=True), update_manifest=True)
    from agents.rl_policy import load_run_policy

    with pytest.raises(PainloopError) as err:
        load_run_policy(run)
    assert err.value.code == "PL-RUN-UNSAFE" and "policy.pth" in str(err.value) and "best_model.zip" in str(err.value)
    assert not marker.exists()


def test_pickled_entries_painloop_supplies_are_never_unpickled(trained, tmp_path):
    """Crafted policy class, spaces and episode buffer: replaced from train_config.json, the model still loads."""
    marker = tmp_path / "marker"
    run = interrupted_copy(trained, tmp_path / "run")
    clean = run_files.load_model(run, run / "best_model.zip", json.loads((run / "train_config.json").read_text()))
    plant(run, "best_model.zip", crafted_zip((run / "best_model.zip").read_bytes(), marker, extra_key=None),
          update_manifest=True)
    from agents.rl_policy import load_run_policy

    policy = load_run_policy(run)
    assert not marker.exists()
    assert ttr.same_params(policy.model.policy.state_dict(), clean.policy.state_dict())


def test_a_planted_pickle_under_an_old_name_is_never_read(trained, tmp_path):
    marker = tmp_path / "marker"
    run = interrupted_copy(trained, tmp_path / "run")
    for name in ("vecnormalize.pkl", "best_vecnormalize.pkl"):
        (run / name).write_bytes(crafted(marker))
    from agents.rl_policy import load_run_policy

    load_run_policy(run)
    load_run_policy(run, which="final")
    assert not marker.exists()


# -- replay buffers -----------------------------------------------------------------------------------------
def test_a_replay_buffer_needs_trust_run_folder(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text("{}")
    run_manifest.record_files(run, ["train_config.json"])
    plant(run, "buffer.pkl", crafted(marker), update_manifest=True)
    with pytest.raises(PainloopError) as err:
        run_files.load_replay_buffer(run, run / "buffer.pkl", trusted=False)
    assert err.value.code == "PL-RUN-TRUST" and "trust_run_folder=true" in str(err.value)
    assert not marker.exists()
    run_files.load_replay_buffer(run, run / "buffer.pkl", trusted=True)  # the documented, explicit path
    assert marker.exists()


def test_resume_of_an_off_policy_run_asks_for_trust(tmp_path, capsys):
    run = tmp_path / "dqn"
    args = [*ttr.SMALL, "agent=dqn", "agent.hyperparams.learning_starts=64", "total_timesteps=1024",
            "eval_freq=512", "checkpoint_freq=512"]
    ttr.train_in_process(run, *args)
    interrupted = interrupted_copy(run, tmp_path / "again", keep_final=False)
    buffer = newest_checkpoint(interrupted)["replay_buffer"]
    assert buffer.is_file()
    marker = tmp_path / "marker"
    check_refused("resume", interrupted, tmp_path, capsys, "PL-RUN-TRUST", buffer.name, marker)
    from experiments.train import main

    main([f"resume={interrupted}", "trust_run_folder=true"])  # the console entry, as typed
    steps = int(buffer.name.split("_")[1])
    assert f"resuming at {steps:,} steps" in capsys.readouterr().out
    assert json.loads((interrupted / "status.json").read_text())["state"] == "finished"


# -- folders written before the manifest ---------------------------------------------------------------------
def make_legacy(src: Path, dst: Path, marker: Path | None = None) -> Path:
    """``src`` as the previous version wrote it: pickled statistics, no manifest (a crafted pickle if ``marker``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    run = interrupted_copy(src, dst)
    info = json.loads((run / "run.json").read_text())
    del info["manifest"]
    (run / "run.json").write_text(json.dumps(info))
    train_config = json.loads((run / "train_config.json").read_text())
    obs_space, act_space = model_zip.spaces_for(train_config["env_settings"])
    for path in run_files.loaded_files(run):
        if path.name.endswith("vecnormalize.json"):
            if marker is not None:
                data = crafted(marker)
            else:
                stats = run_statistics.read_statistics(path.read_bytes(), str(path))
                shell = DummyVecEnv([lambda: _space_env(obs_space, act_space)])
                venv = run_statistics.vecnormalize_from(stats, shell)
                data = pickle.dumps(venv)
            path.with_suffix(".pkl").write_bytes(data)
            path.unlink()
    return run


def _space_env(obs_space, act_space):
    """The least gymnasium env a ``DummyVecEnv`` needs to hold two spaces (never stepped)."""
    import gymnasium

    class SpaceEnv(gymnasium.Env):
        def __init__(self) -> None:
            self.observation_space, self.action_space = obs_space, act_space

        def reset(self, *, seed=None, options=None):
            return obs_space.sample(), {}

    return SpaceEnv()


@pytest.mark.parametrize("command", ["run", "resume", "finetune"])
def test_a_folder_written_before_the_manifest_is_refused_with_the_conversion_command(trained, tmp_path, capsys,
                                                                                   command):
    marker = tmp_path / "marker"
    run = make_legacy(trained, tmp_path / "legacy", marker)
    check_refused(command, run, tmp_path, capsys, "PL-RUN-LEGACY", "python -m experiments.convert_run", marker)
    assert not marker.exists()


def test_convert_run_asks_then_converts_and_the_folder_loads(trained, tmp_path, monkeypatch, capsys):
    from agents.rl_policy import load_run_policy
    from experiments import convert_run

    run = make_legacy(trained, tmp_path / "legacy")
    before = snapshot(run)
    monkeypatch.setattr("builtins.input", lambda _prompt: "no")
    assert convert_run.main([str(run)]) == convert_run.EXIT_DECLINED
    assert snapshot(run) == before
    assert convert_run.main([str(tmp_path / "nowhere")]) == convert_run.EXIT_BAD_INPUT
    monkeypatch.setattr("builtins.input", lambda _prompt: "yes")
    assert convert_run.main([str(run)]) == 0
    assert not run_files.legacy_statistics(run)
    converted = load_run_policy(run)
    original = load_run_policy(trained)
    assert ttr.same_params(converted.model.policy.state_dict(), original.model.policy.state_dict())
    assert (converted.obs_mean == original.obs_mean).all() and (converted.obs_scale == original.obs_scale).all()
    assert convert_run.main([str(run), "--yes"]) == 0  # nothing left to do
    assert "nothing to do" in capsys.readouterr().out


# -- old path and new path give the same results -------------------------------------------------------------
def _stash_pickles(monkeypatch) -> None:
    """Training also writes each statistics object as the old code pickled it (``<stats>.pkl``)."""
    real = run_files.save_model_files

    def save(model, vecnormalize, model_path, stats_path, fault=None):
        real(model, vecnormalize, model_path, stats_path, fault)
        (Path(stats_path).with_suffix(".pkl")).write_bytes(pickle.dumps(vecnormalize))

    monkeypatch.setattr(run_files, "save_model_files", save)


def _old_loaders(monkeypatch) -> list[str]:
    """The loading code before the trust boundary: unpickled statistics and SB3's own ``load``; returns the calls."""
    from experiments.training import agents as training_agents

    calls: list[str] = []

    def load_statistics(run_dir, path, files=None):
        calls.append(Path(path).name)
        return pickle.loads(Path(path).with_suffix(".pkl").read_bytes())

    def vecnormalize_from(stats, venv, where="", training=True):
        stats.set_venv(venv)
        stats.training = True
        return stats

    def load_model(algo, path, env, overrides=None, run_dir=None, train_config=None, statistics=None):
        calls.append(Path(path).name)
        return algo.load_class().load(str(path), env=env, device="cpu", **(overrides or {}))

    monkeypatch.setattr(run_statistics, "load_statistics", load_statistics)
    monkeypatch.setattr(run_statistics, "vecnormalize_from", vecnormalize_from)
    monkeypatch.setattr(training_agents, "load_model", load_model)
    return calls


def _results(run: Path) -> tuple[dict, list[dict]]:
    import torch

    with zipfile.ZipFile(run / "model.zip") as z:
        params = {n: torch.load(io.BytesIO(z.read(n)), weights_only=True) for n in z.namelist() if n.endswith(".pth")}
    rows = [{k: v for k, v in r.items() if k not in ("wall_time_s", "fps", "validation_s")} for r in ttr.read_csv(run / "metrics.csv")]
    return params, rows


def _same(a, b) -> bool:
    import torch

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_resume_and_finetune_give_the_results_of_the_old_pickled_path(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _stash_pickles(m)
        source = tmp_path / "source"
        ttr.train_in_process(source, *ttr.SMALL, *ttr.PPO_SMALL, "total_timesteps=1536", "eval_freq=512",
                             "checkpoint_freq=512")
    # Resume from the checkpoint at 1024 steps, once through each path.
    runs = {}
    for path in ("new", "old"):
        run = interrupted_copy(source, tmp_path / f"resume_{path}", keep_final=False)
        for p in run_files_of_checkpoint(run, 1536):
            p.unlink(missing_ok=True)
        with monkeypatch.context() as m:
            calls = _old_loaders(m) if path == "old" else []
            ttr.train_in_process(run, f"resume={run}")
        assert calls == ([] if path == "new" else ["ckpt_1024_steps_vecnormalize.json", "ckpt_1024_steps.zip"])
        runs[path] = _results(run)
    assert _same(runs["new"][0], runs["old"][0]) and runs["new"][1] == runs["old"][1]
    # Fine-tune from the source's best model, once through each path.
    tuned = {}
    for path in ("new", "old"):
        with monkeypatch.context() as m:
            calls = _old_loaders(m) if path == "old" else []
            ttr.train_in_process(tmp_path / f"tuned_{path}", *ttr.SMALL, f"finetune_from={source}",
                                 "cohort.n_patients=1", "agent.hyperparams.n_steps=128",
                                 "agent.hyperparams.batch_size=128", "total_timesteps=512", "eval_freq=512",
                                 "checkpoint_freq=512")
        assert calls == ([] if path == "new" else ["best_vecnormalize.json", "best_model.zip"])
        tuned[path] = _results(tmp_path / f"tuned_{path}")
    assert _same(tuned["new"][0], tuned["old"][0]) and tuned["new"][1] == tuned["old"][1]


def run_files_of_checkpoint(run: Path, steps: int) -> list[Path]:
    from experiments.training import folder as tf

    paths = list(tf.checkpoint_paths(run, steps).values())
    return paths + [p.with_suffix(".pkl") for p in paths if p.suffix == ".json"]


def test_statistics_round_trip_exactly(trained):
    """JSON statistics rebuild the VecNormalize the pickle held, bit for bit."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = json.loads((trained / "train_config.json").read_text())
    obs_space, act_space = model_zip.spaces_for(config["env_settings"])
    stats = run_statistics.load_statistics(trained, "vecnormalize.json")
    venv = run_statistics.vecnormalize_from(stats, DummyVecEnv([lambda: _space_env(obs_space, act_space)]))
    again = run_statistics.read_statistics(run_statistics.statistics_bytes(venv), "again")
    for field in ("obs_mean", "obs_var", "ret_mean", "ret_var"):
        assert getattr(again, field).tobytes() == getattr(stats, field).tobytes()
    assert (again.obs_count, again.ret_count, again.clip_obs, again.gamma) == (stats.obs_count, stats.ret_count,
                                                                             stats.clip_obs, stats.gamma)


# -- other files painloop reads ---------------------------------------------------------------------------------
def test_controller_configs_refuse_nan_infinity_and_huge_files(tmp_path):
    from agents.config_files import load_config

    for text in ('{"format": NaN}', '{"format": Infinity}', '{"format": -Infinity}'):
        path = tmp_path / "c.json"
        path.write_text(text)
        with pytest.raises(PainloopError) as err:
            load_config(path)
        assert err.value.code == "PL-CONFIG-SCHEMA" and "not allowed" in str(err.value)
    path.write_text(" " * (json_data.MAX_CONFIG_BYTES + 1) + "{}")
    with pytest.raises(PainloopError) as err:
        load_config(path)
    assert err.value.code == "PL-CONFIG-SCHEMA" and "bytes" in str(err.value)


def test_statistics_refuse_nan_and_foreign_content(tmp_path):
    with pytest.raises(PainloopError) as err:
        run_statistics.read_statistics(b'{"format": "painloop.vecnormalize/v1", "clip_obs": NaN}', "s.json")
    assert err.value.code == "PL-RUN-FOLDER" and "s.json" in str(err.value)
    with pytest.raises(PainloopError) as err:
        run_statistics.read_statistics(b"\x80\x04K\x01.", "p.json")  # a pickle
    assert err.value.code == "PL-RUN-FOLDER"


def test_a_broken_manifest_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"manifest": {"format": "other", "files": []}}))
    with pytest.raises(PainloopError) as err:
        run_manifest.require_manifest(run)
    assert err.value.code == "PL-RUN-MANIFEST"


# -- a source scan ------------------------------------------------------------------------------------------------
#: What may never appear in the package (each pattern, and why).
FORBIDDEN = {
    r"\bpickle\.loads?\(|\bcloudpickle\.loads?\(|\bdill\.loads?\(|\bjoblib\.load\(|\bshelve\.open\(": "unpickling",
    r"\b(torch|th)\.load\((?!.*weights_only=True)": "torch.load without weights_only=True",
    r"\byaml\.(load|load_all|unsafe_load|full_load)\(|yaml\.(Unsafe|Full)?Loader\b": "YAML without the safe loader",
    r"(?<![\w.])(eval|exec)\(": "eval / exec",
    r"shell\s*=\s*True": "a shell",
    r"\b(np|numpy)\.load\((?!.*allow_pickle=False)": "np.load that may unpickle",
    r"\b[A-Z][A-Za-z0-9]*\.load\(|\b(cls|klass)\.load\(|\bload_from_zip_file\(|\bjson_to_data\(": "SB3's unpickling load",
    r"\.load_replay_buffer\(\s*(?!run_dir)": "SB3's replay-buffer unpickling",
}
#: The documented exceptions: the replay buffer (trust_run_folder=true) and converting one's own old folder.
ALLOWED = {("agents/run_files.py", "# trust: the documented replay-buffer path (trust_run_folder=true)"),
           ("agents/run_files.py", "# trust: conversion of the user's own folder (confirmed)")}


def test_no_code_from_data_is_ever_executed_source_scan():
    found = []
    for package in ("simenv", "agents", "experiments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0] if not line.lstrip().startswith(("'", '"')) else line
                for pattern, why in FORBIDDEN.items():
                    if re.search(pattern, code) and not any(rel == f and marker in line for f, marker in ALLOWED):
                        found.append(f"{rel}:{number}: {why}: {line.strip()}")
    assert found == [], "\n".join(found)
    # The documented exceptions are where the docs say, once each.
    text = (ROOT / "agents" / "run_files.py").read_text()
    assert all(text.count(marker) == 1 for _, marker in ALLOWED)


def test_the_scan_catches_what_it_forbids():
    samples = ["pickle.load(fh)", "x = torch.load(p)", "yaml.load(text)", "eval(s)", "run(cmd, shell=True)",
               "np.load(path)", "PPO.load(path)", "model.load_replay_buffer(path)"]
    for sample in samples:
        assert any(re.search(p, sample) for p in FORBIDDEN), sample
    for fine in ["torch.load(f, map_location='cpu', weights_only=True)", "yaml.safe_load(t)", "module.eval()",
                 "np.load(p, allow_pickle=False)", "run_files.load_replay_buffer(run_dir, p, True)"]:
        assert not any(re.search(p, fine) for p in FORBIDDEN), fine


def test_the_command_lines_refuse_a_crafted_folder(trained, tmp_path):
    """The three commands as typed (subprocesses, launched together): exit 2, the file named, no marker."""
    import subprocess
    import sys

    marker = tmp_path / "marker"
    cases = {}
    run = interrupted_copy(trained, tmp_path / "eval_src")
    plant(run, "best_vecnormalize.json", crafted(marker), update_manifest=False)
    cases["evaluate"] = (run, ["experiments.evaluate", f"controllers=[off,x=run:{run}]", "reference=off",
                               "cohort.n_patients=2", "horizon_days=0.1"], "PL-RUN-MANIFEST", "best_vecnormalize.json")
    run = interrupted_copy(trained, tmp_path / "resume_src", keep_final=False)
    rel = _rel(run, "checkpoint_stats")
    plant(run, rel, crafted(marker), update_manifest=True)
    cases["resume"] = (run, ["experiments.train", f"resume={run}"], "PL-RUN-FOLDER", Path(rel).name)
    run = interrupted_copy(trained, tmp_path / "finetune_src")
    plant(run, "best_model.zip", crafted_zip((run / "best_model.zip").read_bytes(), marker), update_manifest=True)
    cases["finetune"] = (run, ["experiments.train", *ttr.SMALL, f"finetune_from={run}", "total_timesteps=512"],
                         "PL-RUN-UNSAFE", "best_model.zip")
    before = {name: snapshot(run) for name, (run, *_rest) in cases.items()}
    procs = {}
    for name, (_run, args, _code, _file) in cases.items():
        out = tmp_path / f"out_{name}"
        procs[name] = (subprocess.Popen([sys.executable, "-m", *args, f"hydra.run.dir={out}"], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ttr.env()), out)
    for name, (proc, out) in procs.items():
        _, stderr = proc.communicate(timeout=300)
        run, _args, code, file = cases[name]
        assert proc.returncode == 2, (name, stderr[-2000:])
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {code}: ") and file in last, (name, last)
        assert snapshot(run) == before[name]
        if out.exists():
            allowed = tev.ALLOWED_AFTER_BAD_INPUT if name == "evaluate" else ttr.ALLOWED_AFTER_BAD_INPUT
            assert {p.name for p in out.iterdir()} <= allowed
    assert not marker.exists()
