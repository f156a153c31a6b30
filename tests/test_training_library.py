"""Training from plain Python, without Hydra: ``experiments.training.runner.train`` and ``default_config``.

A tiny PPO run (4 slots, 4 training patients, 2 validation patients for
2.4 h, 4 rollouts of 512 steps) is trained from a Python script in a
subprocess and killed right after its checkpoint at 1,024 steps (the test
hook ``PAINLOOP_FAULT``, docs/reliability.md); a second script resumes it
with ``train(resume=True)`` to its budget. Neither script may import Hydra.
``default_config`` must give exactly what Hydra composes for every agent and
for the named experiments.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
BUDGET = 2048  # 4 rollouts of 4 slots x 128 steps
CHECKPOINT_FREQ = 1024

#: A script: a tiny training into sys.argv[1] (or its resume with sys.argv[2] == 'resume'), then a JSON line.
SCRIPT = textwrap.dedent(f"""
    import json, sys
    from pathlib import Path

    from experiments.training.defaults import default_config
    from experiments.training.runner import train

    run_dir = Path(sys.argv[1])
    if sys.argv[2] == "resume":
        result = train(run_dir=run_dir, resume=True, show_progress=False)
    else:
        config = default_config("ppo")
        config.agent.hyperparams.n_steps = 128
        config.agent.hyperparams.batch_size = 128
        config.n_envs = 4
        config.cohort.n_patients = 4
        config.validation.n_patients = 2
        config.validation.horizon_days = 0.1
        config.total_timesteps = {BUDGET}
        config.eval_freq = 1024
        config.checkpoint_freq = {CHECKPOINT_FREQ}
        result = train(config, run_dir, show_progress=False)
    print(json.dumps({{"state": result.state, "timesteps": result.timesteps, "objective": result.objective,
                      "hydra": sorted(m for m in sys.modules if m == "hydra" or m.startswith("hydra."))}}))
""")


def _python(run_dir: Path, mode: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PAINLOOP_FAULT"} | {"OPENBLAS_NUM_THREADS": "1"}
    if fault:
        env["PAINLOOP_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), mode], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)


def _checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("ckpt_*_steps.zip"))


def test_train_from_python_checkpoints_and_resumes_to_the_budget_without_hydra(tmp_path):
    run_dir = tmp_path / "nb" / "run1"
    # Killed at the third rollout boundary (1,024 steps), right after that checkpoint.
    killed = _python(run_dir, "new", fault="rollout-boundary@3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _checkpoints(run_dir) == [CHECKPOINT_FREQ]
    assert not (run_dir / "model.zip").exists()
    config = json.loads((run_dir / "train_config.json").read_text())
    assert config["total_timesteps"] == BUDGET and config["config"]["n_envs"] == 4

    resumed = _python(run_dir, "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert out["hydra"] == []  # the library never imports Hydra
    assert out["state"] == "finished" and out["timesteps"] == BUDGET
    assert f"resuming at {CHECKPOINT_FREQ:,} steps" in resumed.stdout
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["result"]["timesteps"] == BUDGET
    run_info = json.loads((run_dir / "run.json").read_text())
    assert [r["timesteps"] for r in run_info["resumes"]] == [CHECKPOINT_FREQ]
    assert (run_dir / "model.zip").is_file() and (run_dir / "vecnormalize.json").is_file()


#: (agent, experiment) pairs checked against Hydra beyond every agent with the default experiment
#: (None: the experiment's own agent, else train.yaml's).
EXPERIMENT_CASES = [(None, "smoke"), (None, "continuous_sac"), (None, "memory"), (None, "energy_aware"),
                    (None, "exportable"), (None, "pareto"), ("ppo", "continuous_sac"), ("dqn", "smoke"),
                    (None, "long_term"), (None, "budget_sweep")]


@pytest.fixture(scope="module")
def composed():
    """What Hydra composes for ``agent=<name>`` (every agent) and for ``EXPERIMENT_CASES``, as plain values."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import experiments.train  # noqa: F401  (registers the schemas)
    from experiments.training.agents import available_agents

    cases = [(name, "default") for name in available_agents()] + EXPERIMENT_CASES
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return {(agent, experiment): OmegaConf.to_container(compose(
                    config_name="train",
                    overrides=[f"experiment={experiment}"] + ([f"agent={agent}"] if agent else [])), resolve=True)
                for agent, experiment in cases}


def test_default_config_equals_what_hydra_composes_for_every_agent(composed):
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict

    agents = {agent: expected for (agent, experiment), expected in composed.items() if experiment == "default"}
    for name, expected in agents.items():
        got = config_dict(default_config(name))
        assert json.dumps(got) == json.dumps(expected), name  # same keys, order, values and types
        assert dataclasses.asdict(default_config(name)) == got
    assert json.dumps(config_dict(default_config())) == json.dumps(agents["ppo"])  # train.yaml's agent


def test_default_config_equals_what_hydra_composes_for_named_experiments(composed):
    from experiments.training.defaults import default_config
    from experiments.training.runner import config_dict
    from simenv.errors import PainloopError

    for agent, experiment in EXPERIMENT_CASES:
        got = config_dict(default_config(agent, experiment=experiment))
        assert json.dumps(got) == json.dumps(composed[agent, experiment]), (agent, experiment)
    smoke = default_config(experiment="smoke")  # conf/experiment/smoke.yaml's keys at the root
    assert (smoke.total_timesteps, smoke.n_envs, smoke.cohort.n_patients, smoke.validation.n_patients) == (
        65536, 16, 20, 3)
    sac = default_config(experiment="continuous_sac")  # its override /agent: sac, and env.action_mode follows
    assert (sac.agent.name, sac.env.action_mode, sac.n_envs) == ("sac", "continuous", 8)
    ppo = default_config("ppo", experiment="continuous_sac")  # the caller's agent wins, as on the command line
    assert (ppo.agent.name, ppo.total_timesteps) == ("ppo", 500000)
    assert default_config(experiment="energy_aware").reward.energy == 1.0
    with pytest.raises(PainloopError) as info:
        default_config(experiment="nope")
    assert info.value.code == "PL-CONFIG-KEY" and "available experiment options" in str(info.value)


def test_train_refuses_arguments_that_do_not_fit_together(tmp_path):
    from experiments.config.train_schema import TrainConfig
    from experiments.training.defaults import default_config
    from experiments.training.runner import train
    from simenv.errors import PainloopError

    cases = [
        ({"config": TrainConfig(), "run_dir": tmp_path}, "have no value"),
        ({"config": default_config()}, "needs config and run_dir"),
        ({"config": default_config(), "run_dir": tmp_path, "resume": True}, "its own config"),
        ({"resume": True}, "resume=True"),
        ({"run_dir": tmp_path / "a", "resume": tmp_path / "b"}, "its own folder"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(PainloopError) as info:
            train(**kwargs)
        assert info.value.code == "PL-CONFIG-VALUE" and fragment in str(info.value), (kwargs, info.value)
    with pytest.raises(PainloopError) as info:
        default_config("ppo2")
    assert info.value.code == "PL-AGENT-UNKNOWN"
    assert not any(tmp_path.iterdir())  # nothing written


def _conf_copy(tmp_path: Path, files: dict[str, str]) -> Path:
    import shutil

    from experiments.config.schema import CONF_DIR

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    for name, text in files.items():
        (conf / "experiment" / f"{name}.yaml").write_text(text)
    return conf


def test_an_experiment_that_includes_another_takes_its_keys_and_overrides(tmp_path):
    """``- <other>`` in an experiment's defaults merges that experiment first, its agent override included."""
    from experiments.config.compose import compose
    from experiments.config.train_schema import GROUP_CODES, GROUPS
    from experiments.training.defaults import CONFIG_NAME, SCHEMAS

    conf = _conf_copy(tmp_path, {
        "inner": "# @package _global_\ndefaults:\n  - override /agent: a2c\nseed: 7\neval_freq: 1000\n",
        "outer": "# @package _global_\ndefaults:\n  - inner\neval_freq: 2000\n",
    })
    cfg = compose(CONFIG_NAME, SCHEMAS, GROUPS, conf_dir=conf, choices={"experiment": "outer"}, group_codes=GROUP_CODES)
    assert (cfg.seed, cfg.eval_freq, cfg.agent.name) == (7, 2000, "a2c")  # inner's keys, outer's own last


def test_an_experiment_that_includes_itself_is_refused(tmp_path):
    from experiments.config.compose import compose
    from experiments.config.train_schema import GROUP_CODES, GROUPS
    from experiments.training.defaults import CONFIG_NAME, SCHEMAS
    from simenv.errors import PainloopError

    conf = _conf_copy(tmp_path, {"a": "# @package _global_\ndefaults:\n  - b\n",
                                 "b": "# @package _global_\ndefaults:\n  - a\n"})
    with pytest.raises(PainloopError, match="includes itself") as err:
        compose(CONFIG_NAME, SCHEMAS, GROUPS, conf_dir=conf, choices={"experiment": "a"}, group_codes=GROUP_CODES)
    assert err.value.code == "PL-CONFIG-VALUE"
