"""Complete training configs in Python: the config ``python -m experiments.train`` composes, without Hydra.

The values live in the YAML files only (``conf/train.yaml``, ``conf/agent/<name>.yaml``,
``conf/env/train.yaml``, ``conf/cohort/train.yaml``, ``conf/reward/default.yaml``
and a named experiment in ``conf/experiment/``); ``experiments.config.compose``
composes them as Hydra does onto the schema dataclasses
(``experiments.config.train_schema``: the keys and types).
``tests/test_training_library.py`` checks the result against Hydra's
composition for every agent and named experiment. Typical use::

    from experiments.training.defaults import default_config
    from experiments.training.runner import train

    config = default_config("ppo")
    config.total_timesteps = 100_000
    config.cohort.n_patients = 20
    result = train(config, run_dir="outputs/notebook/ppo")

``n_envs`` and ``env.action_mode`` follow the agent as train.yaml's
``${agent.n_envs}`` and ``${agent.action_mode}`` do, at the time
``default_config`` is called (change them together with the agent).
"""

from __future__ import annotations

from experiments.config.compose import compose
from experiments.config.schema import CONF_DIR, group_options
from experiments.config.train_schema import AGENT_SCHEMAS, GROUP_CODES, GROUPS, TrainConfig
from simenv.errors import PainloopError

CONFIG_NAME = "train"
#: The ConfigStore's entries the train files name: the command's schema and each agent's.
SCHEMAS: dict[str, type] = {
    "train_schema": TrainConfig,
    **{f"{GROUPS['agent']}/{name}": schema for name, schema in AGENT_SCHEMAS.values()},
}


def default_config(agent: str | None = None, *, experiment: str = "default") -> TrainConfig:
    """The config ``python -m experiments.train [agent=<agent>] experiment=<experiment>`` composes.

    ``agent`` (a file of ``conf/agent/``) defaults to the experiment's agent,
    else train.yaml's (``ppo``); ``experiment`` names a file of
    ``conf/experiment/``. Raises ``PainloopError``: ``PL-AGENT-UNKNOWN`` for
    an agent, ``PL-CONFIG-KEY`` for an experiment that does not exist.
    """
    choices = {"experiment": experiment}
    if agent is not None:
        agents = group_options(GROUPS["agent"], CONF_DIR)
        if agent not in agents:
            raise PainloopError("PL-AGENT-UNKNOWN", f"agent={agent!r}; allowed: {agents}.")
        choices["agent"] = agent
    return compose(CONFIG_NAME, SCHEMAS, GROUPS, choices=choices, group_codes=GROUP_CODES, what="training")
