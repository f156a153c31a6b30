"""Complete training configs in Python: the values ``python -m experiments.train`` composes, without Hydra.

The command line takes its values from ``conf/train.yaml``, ``conf/agent/<name>.yaml``,
``conf/env/train.yaml``, ``conf/cohort/train.yaml`` and ``conf/reward/default.yaml``
(Hydra composes them). A Python caller cannot compose YAML, so this module
holds the same values as instances of the schema dataclasses
(``experiments.config.train_schema``: the keys and types stay there, in one
place); ``tests/test_training_library.py`` composes every agent with Hydra and
checks that ``default_config`` gives exactly the same config, so the two
cannot drift. Typical use::

    from experiments.training.defaults import default_config
    from experiments.training.runner import train

    config = default_config("ppo")
    config.total_timesteps = 100_000
    config.cohort.n_patients = 20
    result = train(config, run_dir="outputs/notebook/ppo")

``n_envs`` and ``env.action_mode`` follow the agent as train.yaml's
``${agent.n_envs}`` and ``${agent.action_mode}`` do, at the time
``default_config`` is called (change them together with the agent).
Named experiments (``conf/experiment/``) are not here: set their keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from experiments.config.schema import RewardConfig
from experiments.config.train_schema import (
    A2CAgentConfig,
    A2CParams,
    AgentConfig,
    DQNAgentConfig,
    DQNParams,
    EnvConfig,
    PolicyNetConfig,
    PPOAgentConfig,
    PPOParams,
    RecurrentPolicyNetConfig,
    RecurrentPPOAgentConfig,
    SACAgentConfig,
    SACParams,
    TrainCohortConfig,
    TrainConfig,
    ValidationConfig,
)
from simenv.errors import PainloopError
from simenv.reward import RewardWeights

#: ``conf/agent/<name>.yaml`` as schema instances (a new instance per call).
AGENTS: dict[str, Callable[[], AgentConfig]] = {
    "ppo": lambda: PPOAgentConfig(
        name="ppo", algo="PPO", policy="MlpPolicy", action_mode="on_off", n_envs=32,
        hyperparams=PPOParams(learning_rate=3.0e-4, n_steps=256, batch_size=1024, n_epochs=5, gamma=0.99,
                              gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                              normalize_advantage=True, target_kl=None),
        policy_kwargs=PolicyNetConfig(net_arch=[64, 64], activation_fn="tanh"),
    ),
    "a2c": lambda: A2CAgentConfig(
        name="a2c", algo="A2C", policy="MlpPolicy", action_mode="on_off", n_envs=32,
        hyperparams=A2CParams(learning_rate=7.0e-4, n_steps=16, gamma=0.99, gae_lambda=0.95, ent_coef=0.01,
                              vf_coef=0.5, max_grad_norm=0.5, use_rms_prop=True, normalize_advantage=False),
        policy_kwargs=PolicyNetConfig(net_arch=[64, 64], activation_fn="tanh"),
    ),
    "dqn": lambda: DQNAgentConfig(
        name="dqn", algo="DQN", policy="MlpPolicy", action_mode="on_off", n_envs=8,
        hyperparams=DQNParams(learning_rate=5.0e-4, buffer_size=200000, learning_starts=10000, batch_size=256,
                              tau=1.0, gamma=0.99, train_freq=4, gradient_steps=2, target_update_interval=10000,
                              exploration_fraction=0.2, exploration_initial_eps=1.0, exploration_final_eps=0.05,
                              max_grad_norm=10.0),
        policy_kwargs=PolicyNetConfig(net_arch=[64, 64], activation_fn="relu"),
    ),
    "recurrent_ppo": lambda: RecurrentPPOAgentConfig(
        name="recurrent_ppo", algo="RecurrentPPO", policy="MlpLstmPolicy", action_mode="on_off", n_envs=32,
        hyperparams=PPOParams(learning_rate=3.0e-4, n_steps=128, batch_size=1024, n_epochs=5, gamma=0.99,
                              gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                              normalize_advantage=True, target_kl=None),
        policy_kwargs=RecurrentPolicyNetConfig(net_arch=[64], activation_fn="tanh", lstm_hidden_size=64,
                                               n_lstm_layers=1, enable_critic_lstm=True, shared_lstm=False),
    ),
    "sac": lambda: SACAgentConfig(
        name="sac", algo="SAC", policy="MlpPolicy", action_mode="continuous", n_envs=8,
        hyperparams=SACParams(learning_rate=3.0e-4, buffer_size=200000, learning_starts=5000, batch_size=256,
                              tau=0.005, gamma=0.99, train_freq=8, gradient_steps=4, ent_coef="auto",
                              target_update_interval=1, use_sde=False),
        policy_kwargs=PolicyNetConfig(net_arch=[64, 64], activation_fn="relu"),
    ),
}


def default_config(agent: str = "ppo") -> TrainConfig:
    """The config ``python -m experiments.train agent=<agent>`` composes, as a ``TrainConfig`` to edit."""
    if agent not in AGENTS:
        raise PainloopError("PL-AGENT-UNKNOWN", f"agent={agent!r}; allowed: {sorted(AGENTS)}.")
    agent_cfg = AGENTS[agent]()
    env = EnvConfig(  # conf/env/train.yaml
        action_mode=agent_cfg.action_mode, dt_s=30.0, horizon_days=1.0, decision_interval_s=60.0,
        initial_state="randomized", n_levels=6, feature_history=0, include_self_report=False,
        calibration_days=7.0, start_hour=0.0, debug_checks=False, observation="full",
    )
    return TrainConfig(  # conf/train.yaml
        agent=agent_cfg,
        env=env,
        cohort=TrainCohortConfig(name="train", n_patients=200),
        validation=ValidationConfig(cohort="validation", n_patients=10, horizon_days=1.0,
                                    initial_state="randomized", seed=0, trace_patient=0),
        reward=RewardConfig(**dataclasses.asdict(RewardWeights())),  # conf/reward/default.yaml equals these
        seed=0,
        total_timesteps=2048000,
        n_envs=agent_cfg.n_envs,
        eval_freq=204800,
        checkpoint_freq=204800,
    )
