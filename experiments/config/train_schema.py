"""Typed Hydra schemas of the training command (``conf/train.yaml``, ``conf/agent/*.yaml``).

Every key has a type and a place, so a misspelled one fails at once; the
checks Hydra does not make itself (unknown keys *with* the valid ones listed,
unknown agents) run before Hydra composes anything (``experiments.train.precheck``,
through ``experiments.config.schema``).

Each agent file selects the schema of its algorithm in its defaults list
(``- ppo_schema``), so ``agent.hyperparams.*`` holds exactly the
hyper-parameters of that algorithm. ``env`` mirrors
``simenv.batch.EnvSettings`` field for field (built from it, so it cannot
drift), and ``reward`` and ``cohort`` reuse the evaluate command's schemas.

The same dataclasses type a config built in Python without Hydra:
``experiments.training.defaults.default_config`` fills them with the values
the YAML files give (a test checks they agree).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from omegaconf import MISSING

from agents.slow_costs import SlowCostSettings
from experiments.config.schema import CohortConfig, RewardConfig
from simenv.batch import EnvSettings


def _optional(tp: Any) -> Any:
    """``float | None`` -> ``Optional[float]`` (the spelling OmegaConf reads)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return Optional[args[0]]  # noqa: UP045 (OmegaConf reads typing.Optional)
    return tp


#: ``env``: the training environment's settings, one key per ``EnvSettings`` field.
EnvConfig = make_dataclass(
    "EnvConfig",
    [
        (f.name, _optional(t), field(default=MISSING))
        for f, t in zip(
            dataclasses.fields(EnvSettings), typing.get_type_hints(EnvSettings).values(), strict=True
        )
    ],
    namespace={"__module__": __name__},
)


#: ``slow_costs``: training that sees the long-run cost of tolerance (``agents.slow_costs``), one key per
#: ``SlowCostSettings`` field with its default (all off: training as before).
SlowCostsConfig = make_dataclass(
    "SlowCostsConfig",
    [(f.name, t, field(default=f.default)) for f, t in zip(
        dataclasses.fields(SlowCostSettings), typing.get_type_hints(SlowCostSettings).values(), strict=True)],
    namespace={"__module__": __name__},
)


@dataclass
class TrainCohortConfig(CohortConfig):
    """``cohort``: the training pool, a preset's first ``n_patients`` (or ``indices``), or one YAML patient."""

    indices: Optional[list[int]] = None  # noqa: UP045
    patient_file: Optional[str] = None  # noqa: UP045


@dataclass
class ValidationConfig:
    """``validation``: the patients every periodic validation runs (same noise each time)."""

    cohort: str = MISSING
    n_patients: int = MISSING
    horizon_days: float = MISSING
    initial_state: str = MISSING
    seed: int = MISSING
    trace_patient: int = MISSING


@dataclass
class BudgetConfig:
    """``budget``: a constrained training, the energy weight adapted until an energy budget holds.

    At most one of ``energy_j_per_day`` and ``battery_life_years`` (both null:
    no budget, the reward's own ``reward.energy``). The multiplier replaces
    ``reward.energy`` in the training reward only, so that key must stay at its
    default; ``experiments.training.budget`` checks and converts,
    ``experiments.training.budget_multiplier`` adapts.
    """

    energy_j_per_day: Optional[float] = None  # noqa: UP045
    battery_life_years: Optional[float] = None  # noqa: UP045
    initial_multiplier: float = 0.2
    multiplier_lr: float = 0.05
    update_freq: int = 8192


# -- agents --------------------------------------------------------------------------------------
@dataclass
class PolicyNetConfig:
    """``agent.policy_kwargs`` of MLP policies."""

    net_arch: list[int] = MISSING
    activation_fn: str = MISSING


@dataclass
class RecurrentPolicyNetConfig(PolicyNetConfig):
    """``agent.policy_kwargs`` of sb3-contrib's ``MlpLstmPolicy``."""

    lstm_hidden_size: int = MISSING
    n_lstm_layers: int = MISSING
    enable_critic_lstm: bool = MISSING
    shared_lstm: bool = False


@dataclass
class PPOParams:
    learning_rate: float = MISSING
    n_steps: int = MISSING
    batch_size: int = MISSING
    n_epochs: int = MISSING
    gamma: float = MISSING
    gae_lambda: float = MISSING
    clip_range: float = MISSING
    ent_coef: float = MISSING
    vf_coef: float = MISSING
    max_grad_norm: float = MISSING
    normalize_advantage: bool = True
    target_kl: Optional[float] = None  # noqa: UP045


@dataclass
class A2CParams:
    learning_rate: float = MISSING
    n_steps: int = MISSING
    gamma: float = MISSING
    gae_lambda: float = MISSING
    ent_coef: float = MISSING
    vf_coef: float = MISSING
    max_grad_norm: float = MISSING
    use_rms_prop: bool = MISSING
    normalize_advantage: bool = False


@dataclass
class OffPolicyParams:
    """The hyper-parameters DQN and SAC share (replay buffer and update cadence), in their files' order."""

    learning_rate: float = MISSING
    buffer_size: int = MISSING
    learning_starts: int = MISSING
    batch_size: int = MISSING
    tau: float = MISSING
    gamma: float = MISSING
    train_freq: int = MISSING
    gradient_steps: int = MISSING


@dataclass
class DQNParams(OffPolicyParams):
    target_update_interval: int = MISSING
    exploration_fraction: float = MISSING
    exploration_initial_eps: float = MISSING
    exploration_final_eps: float = MISSING
    max_grad_norm: float = MISSING


@dataclass
class SACParams(OffPolicyParams):
    ent_coef: str = MISSING  # 'auto', 'auto_0.1' or a number
    target_update_interval: int = 1
    use_sde: bool = False


@dataclass
class AgentConfig:
    """Keys every agent file has; ``hyperparams`` and ``policy_kwargs`` depend on the algorithm."""

    name: str = MISSING
    algo: str = MISSING
    policy: str = MISSING
    action_mode: str = MISSING  # the action mode this agent trains in unless env.action_mode says otherwise
    n_envs: int = MISSING


@dataclass
class PPOAgentConfig(AgentConfig):
    hyperparams: PPOParams = field(default_factory=PPOParams)
    policy_kwargs: PolicyNetConfig = field(default_factory=PolicyNetConfig)


@dataclass
class A2CAgentConfig(AgentConfig):
    hyperparams: A2CParams = field(default_factory=A2CParams)
    policy_kwargs: PolicyNetConfig = field(default_factory=PolicyNetConfig)


@dataclass
class DQNAgentConfig(AgentConfig):
    hyperparams: DQNParams = field(default_factory=DQNParams)
    policy_kwargs: PolicyNetConfig = field(default_factory=PolicyNetConfig)


@dataclass
class RecurrentPPOAgentConfig(AgentConfig):
    hyperparams: PPOParams = field(default_factory=PPOParams)
    policy_kwargs: RecurrentPolicyNetConfig = field(default_factory=RecurrentPolicyNetConfig)


@dataclass
class SACAgentConfig(AgentConfig):
    hyperparams: SACParams = field(default_factory=SACParams)
    policy_kwargs: PolicyNetConfig = field(default_factory=PolicyNetConfig)


#: algo (``agent.algo``) -> (schema name in the ConfigStore's ``agent`` group, schema).
AGENT_SCHEMAS: dict[str, tuple[str, type]] = {
    "PPO": ("ppo_schema", PPOAgentConfig),
    "A2C": ("a2c_schema", A2CAgentConfig),
    "DQN": ("dqn_schema", DQNAgentConfig),
    "RecurrentPPO": ("recurrent_ppo_schema", RecurrentPPOAgentConfig),
    "SAC": ("sac_schema", SACAgentConfig),
}


@dataclass
class TrainConfig:
    """``conf/train.yaml``: the values live in the YAML files, the schema gives types and keys."""

    agent: Any = MISSING
    env: EnvConfig = field(default_factory=EnvConfig)  # type: ignore[valid-type]
    cohort: TrainCohortConfig = field(default_factory=TrainCohortConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)  # type: ignore[valid-type]
    seed: int = MISSING
    total_timesteps: int = MISSING
    n_envs: int = MISSING
    eval_freq: int = MISSING
    checkpoint_freq: int = MISSING
    resume: Optional[str] = None  # noqa: UP045
    finetune_from: Optional[str] = None  # noqa: UP045
    finetune_model: str = "best"
    allow_physics_mismatch: bool = False
    trust_run_folder: bool = False
    progress_bar: Optional[bool] = None  # noqa: UP045
    torch_threads: int = 1
    objective: str = "reward"  # what a sweeper gets back: reward | pain_energy (experiments.sweeps.objective)
    redo: bool = False  # train again a run folder that holds a finished run (experiments.sweeps.rerun)
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # no budget unless set (experiments.training.budget)
    slow_costs: SlowCostsConfig = field(default_factory=SlowCostsConfig)  # type: ignore[valid-type]


#: Top-level keys added after run folders were first recorded, with the value a run without them had
#: (``experiments.sweeps.rerun.comparable``: an older recorded config still compares equal).
KEYS_ADDED_LATER: dict[str, Any] = {
    "budget": dataclasses.asdict(BudgetConfig()),
    "slow_costs": dataclasses.asdict(SlowCostsConfig()),  # all off: agents.slow_costs.SLOW_COSTS_OFF
}


#: Config groups of the train command: key -> folder of options under conf/.
GROUPS: dict[str, str] = {
    "agent": "agent",
    "cohort": "cohort",
    "reward": "reward",
    "env": "env",
    "experiment": "experiment",
}
#: Error code for an option that does not exist, per group (others: PL-CONFIG-KEY).
GROUP_CODES: dict[str, str] = {"agent": "PL-AGENT-UNKNOWN", "cohort": "PL-COHORT-UNKNOWN"}


def schema_for_agent(algo: str) -> type:
    """``TrainConfig`` with ``agent`` typed by ``algo``'s schema (for listing the valid keys)."""
    agent_schema = AGENT_SCHEMAS[algo][1]
    return make_dataclass(
        f"TrainConfig{algo}",
        [("agent", agent_schema, field(default_factory=agent_schema))],
        bases=(TrainConfig,),
        namespace={"__module__": __name__},
    )


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, schema in AGENT_SCHEMAS.values():
        cs.store(group="agent", name=name, node=schema)
