"""The RL algorithms the training command knows: which action modes each handles, how its
rollout is sized, and how an agent config becomes a stable-baselines3 / sb3-contrib model.

Loading a saved model by ``algo_class`` uses ``agents.model_zip.ALGORITHMS``
(the same table the ``run:<dir>`` policy loader uses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.model_zip import ACTIVATIONS, activation_class
from simenv.errors import PainloopError

AGENT_DIR = Path(__file__).resolve().parents[2] / "conf" / "agent"


@dataclass(frozen=True)
class Algorithm:
    """What the training loop needs to know about one algorithm."""

    algo_class: str
    action_modes: tuple[str, ...]
    off_policy: bool
    recurrent: bool = False

    def rollout_steps(self, hyperparams: dict[str, Any], n_envs: int) -> int:
        """Env steps (summed over slots) between two updates: checkpoints and the budget align to it."""
        per_slot = hyperparams["train_freq"] if self.off_policy else hyperparams["n_steps"]
        return int(per_slot) * int(n_envs)

    def load_class(self) -> type:
        from agents.model_zip import ALGORITHMS

        module, cls = ALGORITHMS[self.algo_class]
        return getattr(__import__(module, fromlist=[cls]), cls)


ALGORITHMS: dict[str, Algorithm] = {
    "PPO": Algorithm("PPO", ("on_off", "levels", "continuous"), off_policy=False),
    "A2C": Algorithm("A2C", ("on_off", "levels", "continuous"), off_policy=False),
    "DQN": Algorithm("DQN", ("on_off", "levels"), off_policy=True),
    "RecurrentPPO": Algorithm("RecurrentPPO", ("on_off", "levels", "continuous"), off_policy=False, recurrent=True),
    "SAC": Algorithm("SAC", ("continuous",), off_policy=True),
}


def available_agents(agent_dir: Path = AGENT_DIR) -> list[str]:
    """Agent names: the files in ``conf/agent/``."""
    return sorted(p.stem for p in Path(agent_dir).glob("*.yaml"))


def agent_algo(name: str, agent_dir: Path = AGENT_DIR) -> str | None:
    """The ``algo`` an agent file names (None if the file has none)."""
    import yaml

    try:
        data = yaml.safe_load((Path(agent_dir) / f"{name}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return str(data.get("algo")) if isinstance(data, dict) and data.get("algo") else None


def algorithm(algo: str, agent: str) -> Algorithm:
    """The algorithm an agent uses; an unknown one lists the supported ones."""
    if algo not in ALGORITHMS:
        raise PainloopError(
            "PL-AGENT-UNKNOWN",
            f"agent '{agent}' uses algo '{algo}', which the training command does not support; "
            f"supported algorithms: {sorted(ALGORITHMS)} (agents: {available_agents()}).",
        )
    return ALGORITHMS[algo]


def check_action_mode(agent: str, algo: str, action_mode: str, agent_dir: Path = AGENT_DIR) -> None:
    """Refuse an agent that cannot act in ``action_mode``, naming the agents that can."""
    alg = algorithm(algo, agent)
    if action_mode in alg.action_modes:
        return
    able = [
        name
        for name in available_agents(agent_dir)
        if (a := agent_algo(name, agent_dir)) in ALGORITHMS and action_mode in ALGORITHMS[a].action_modes
    ]
    raise PainloopError(
        "PL-AGENT-ACTION-MODE",
        f"agent '{agent}' ({algo}) cannot act in env.action_mode='{action_mode}': it handles "
        f"{list(alg.action_modes)}; agents that can train with action_mode='{action_mode}': {able}.",
    )


def round_budget(total_timesteps: int, rollout: int) -> int:
    """The budget rounded up to whole rollouts, so training ends exactly on it."""
    return int(math.ceil(total_timesteps / rollout)) * rollout


def policy_kwargs(agent_cfg: dict[str, Any], agent: str) -> dict[str, Any]:
    """``agent.policy_kwargs`` as SB3 takes them (activation names -> torch modules)."""
    kwargs = dict(agent_cfg.get("policy_kwargs") or {})
    act = kwargs.pop("activation_fn", "tanh")
    module = activation_class(act)
    if module is None:
        raise PainloopError(
            "PL-AGENT-PARAM",
            f"agent '{agent}': policy_kwargs.activation_fn='{act}'; allowed: {list(ACTIVATIONS)}.",
        )
    net = kwargs.get("net_arch")
    if not isinstance(net, list) or not net or not all(isinstance(n, int) and n > 0 for n in net):
        raise PainloopError(
            "PL-AGENT-PARAM",
            f"agent '{agent}': policy_kwargs.net_arch={net!r}; allowed: a list of layer sizes >= 1, e.g. [64, 64].",
        )
    kwargs["activation_fn"] = module
    return kwargs


def sb3_hyperparams(agent_cfg: dict[str, Any], agent: str) -> dict[str, Any]:
    """``agent.hyperparams`` as SB3 keyword arguments, with the ranges SB3 does not check itself."""
    hp = dict(agent_cfg["hyperparams"])
    gamma = hp.get("gamma")
    if not isinstance(gamma, (int, float)) or not 0.0 < gamma <= 1.0:
        raise PainloopError("PL-AGENT-PARAM", f"agent '{agent}': hyperparams.gamma={gamma!r}; allowed: (0, 1].")
    lr = hp.get("learning_rate")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise PainloopError(
            "PL-AGENT-PARAM", f"agent '{agent}': hyperparams.learning_rate={lr!r}; allowed: a finite number >= 0."
        )
    for key in ("n_steps", "batch_size", "n_epochs", "buffer_size", "train_freq", "gradient_steps"):
        if key in hp and (not isinstance(hp[key], int) or hp[key] < 1):
            raise PainloopError(
                "PL-AGENT-PARAM", f"agent '{agent}': hyperparams.{key}={hp[key]!r}; allowed: a whole number >= 1."
            )
    if "ent_coef" in hp and isinstance(hp["ent_coef"], str) and not hp["ent_coef"].startswith("auto"):
        try:
            hp["ent_coef"] = float(hp["ent_coef"])
        except ValueError:
            raise PainloopError(
                "PL-AGENT-PARAM",
                f"agent '{agent}': hyperparams.ent_coef={hp['ent_coef']!r}; allowed: 'auto', 'auto_<init>' or a number.",
            ) from None
    return hp


def build_model(algo: Algorithm, agent_cfg: dict[str, Any], agent: str, env: Any, seed: int) -> Any:
    """A new model on ``env``; SB3's own refusals (e.g. a batch of 1) become ``PL-AGENT-PARAM``."""
    cls = algo.load_class()
    try:
        return cls(
            agent_cfg["policy"],
            env,
            seed=seed,
            device="cpu",
            verbose=0,
            policy_kwargs=policy_kwargs(agent_cfg, agent),
            **sb3_hyperparams(agent_cfg, agent),
        )
    except PainloopError:
        raise
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        raise PainloopError(
            "PL-AGENT-PARAM", f"agent '{agent}' ({algo.algo_class}) refuses its settings: {exc or type(exc).__name__}."
        ) from None


def load_model(algo: Algorithm, path: Path, env: Any, overrides: dict[str, Any] | None = None,
               run_dir: Path | None = None, train_config: dict[str, Any] | None = None, statistics: Any = None) -> Any:
    """A saved model on ``env`` (``overrides``: hyper-parameters to change, e.g. for fine-tuning).

    Read without unpickling anything, checked against the run folder's manifest (``agents.run_files``).
    """
    from agents import run_files

    return run_files.load_model(run_dir if run_dir is not None else run_files.run_dir_of(path), path,
                                train_config or {"algo_class": algo.algo_class}, env=env, overrides=overrides,
                                statistics=statistics)
