"""The benchmark's training section: PPO throughput on painloop's SB3 adapter beside CartPole.

Figures, all measured in one process and interleaved repeat by repeat:

- ``rollout``: PPO's rollout collection alone (``collect_rollouts``: the
  simulator plus the policy's forward pass, no update), steps/s, at each
  ``n_envs`` of ``sizes``, for ``PainStimSB3VecEnv`` (the shipped training
  env settings and pool) and for CartPole-v1 in a ``DummyVecEnv``, both
  wrapped in ``VecMonitor`` and driven by the same PPO policy settings;
- ``end_to_end``: ``model.learn`` frames/s with the shipped default training
  config (agent, env, n_envs; ``VecMonitor`` + ``VecNormalize`` as
  ``experiments.train`` builds them), and CartPole at identical settings;
- ``cartpole_ppo_defaults_8``: PPO with SB3's default settings on CartPole,
  8 envs in a ``DummyVecEnv``: the yardstick of an out-of-the-box run.

torch runs on ``torch_threads`` threads (default 1; STACK.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.benchmarks.targets import check
from experiments.benchmarks.timing import paired_ratio, summarize

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
DEFAULT_SIZES = (8, 64, 256)
QUICK_SIZES = (2, 4)
ROLLOUT_STEPS = 16_384  # env steps per timed rollout (n_steps = this // n_envs)
#: Hydra overrides that shrink the default config to a plumbing check.
QUICK_OVERRIDES = (
    "cohort.n_patients=4",
    "validation.n_patients=1",
    "agent.n_envs=4",
    "agent.hyperparams.n_steps=16",
    "agent.hyperparams.batch_size=32",
    "agent.hyperparams.n_epochs=1",
    "env.calibration_days=0.5",
)


@dataclass
class TrainingOptions:
    sizes: Sequence[int] = DEFAULT_SIZES
    repeats: int = 5
    rollout_steps: int = ROLLOUT_STEPS
    end_to_end_rollouts: int = 3  # rollouts per timed learn() call
    default_cartpole_rollouts: int = 1
    torch_threads: int = 1
    overrides: Sequence[str] = field(default_factory=tuple)
    quick: bool = False


def default_train_config(overrides: Sequence[str] = ()) -> dict:
    """The shipped ``python -m experiments.train`` config (``conf/train.yaml``), resolved."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.config.train_schema import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def _collect_rate(model, callback) -> float:
    """Steps/s of one ``collect_rollouts`` call (no update)."""
    t0 = time.perf_counter()
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    return model.n_steps * model.n_envs / (time.perf_counter() - t0)


def _rollout_model(venv, n_steps: int, agent_cfg: dict, seed: int = 0):
    """A PPO model set up for repeated ``collect_rollouts`` on ``venv`` (the agent's network)."""
    from stable_baselines3 import PPO

    from experiments.training.agents import policy_kwargs

    hp = agent_cfg["hyperparams"]
    model = PPO(
        agent_cfg["policy"], venv, n_steps=n_steps, batch_size=min(hp["batch_size"], n_steps * venv.num_envs),
        gamma=hp["gamma"], gae_lambda=hp["gae_lambda"], policy_kwargs=policy_kwargs(agent_cfg, "ppo"),
        device="cpu", seed=seed, verbose=0,
    )
    _, callback = model._setup_learn(total_timesteps=10**12, callback=None)
    callback.on_training_start(locals(), globals())
    return model, callback


def run_training(opts: TrainingOptions, log: Callable[[str], None]) -> dict:
    import statistics

    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    from agents.sb3_vec_env import PainStimSB3VecEnv
    from experiments.train import make_plan
    from experiments.training.agents import build_model, policy_kwargs, sb3_hyperparams

    torch.set_num_threads(int(opts.torch_threads))
    overrides = list(QUICK_OVERRIDES if opts.quick else ()) + list(opts.overrides)
    log("training: composing the default training config and its patient pool (calibration not timed)")
    t0 = time.perf_counter()
    plan = make_plan(default_train_config(overrides))
    agent_cfg = plan.agent_cfg
    if plan.algo.algo_class != "PPO":
        raise ValueError(f"the default training agent is {plan.algo.algo_class}; this section measures PPO")
    setup_s = time.perf_counter() - t0

    def painloop_venv(n_envs: int):
        return PainStimSB3VecEnv(patient_pool=plan.train_patients, n_envs=n_envs, settings=plan.settings,
                                 reward=plan.reward)

    def cartpole_venv(n_envs: int):
        return DummyVecEnv([lambda: gym.make("CartPole-v1")] * n_envs)

    # --- rollout collection alone ------------------------------------------------------------
    rollout: dict[str, dict] = {}
    for n in opts.sizes:
        n_steps = max(8, opts.rollout_steps // n)
        for name, make in (("painloop", painloop_venv), ("cartpole", cartpole_venv)):
            env = make(n)
            if name == "painloop":
                env.seed(plan.seed)
            model, callback = _rollout_model(VecMonitor(env), n_steps, agent_cfg)
            _collect_rate(model, callback)  # warm-up: first reset, first forward pass
            rollout[f"{name}_{n}"] = {"model": model, "callback": callback, "rates": [], "n_envs": n,
                                      "n_steps": n_steps}

    # --- end to end ---------------------------------------------------------------------------
    hp = sb3_hyperparams(agent_cfg, plan.agent)
    gamma = hp["gamma"]
    e2e_steps = plan.rollout * opts.end_to_end_rollouts
    pl_env = painloop_venv(plan.n_envs)
    pl_env.seed(plan.seed)
    pl_model = build_model(plan.algo, agent_cfg, plan.agent, VecNormalize(VecMonitor(pl_env), gamma=gamma,
                                                                          norm_obs=True, norm_reward=True,
                                                                          clip_obs=10.0), plan.seed)
    cp_model = PPO(agent_cfg["policy"], VecNormalize(VecMonitor(cartpole_venv(plan.n_envs)), gamma=gamma,
                                                     norm_obs=True, norm_reward=True, clip_obs=10.0),
                   seed=plan.seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs(agent_cfg, plan.agent), **hp)
    # SB3's defaults (n_steps 2048, batch 64, 10 epochs); a quick run shrinks them to a plumbing check.
    shrink = {"n_steps": 16, "batch_size": 32, "n_epochs": 1} if opts.quick else {}
    default_model = PPO("MlpPolicy", VecMonitor(cartpole_venv(8)), seed=0, device="cpu", verbose=0, **shrink)
    default_steps = default_model.n_steps * 8 * opts.default_cartpole_rollouts
    e2e = {"painloop": (pl_model, e2e_steps, []), "cartpole": (cp_model, e2e_steps, []),
           "cartpole_ppo_defaults_8": (default_model, default_steps, [])}
    for model, steps, _ in e2e.values():  # warm-up
        model.learn(total_timesteps=min(steps, model.n_steps * model.n_envs))

    for r in range(opts.repeats):
        log(f"training repeat {r + 1}/{opts.repeats}")
        for fig in rollout.values():
            fig["rates"].append(_collect_rate(fig["model"], fig["callback"]))
        for model, steps, rates in e2e.values():
            t0 = time.perf_counter()
            model.learn(total_timesteps=steps)
            rates.append(steps / (time.perf_counter() - t0))

    results: dict = {"rollout": {}, "end_to_end": {}}
    for n in opts.sizes:
        pl, cp = rollout[f"painloop_{n}"], rollout[f"cartpole_{n}"]
        results["rollout"][str(n)] = {
            "what": f"PPO collect_rollouts (policy forward + env, no update), n_envs {n}, n_steps {pl['n_steps']}, "
            "VecMonitor; painloop: PainStimSB3VecEnv with the default training env and pool; "
            "cartpole: DummyVecEnv of CartPole-v1",
            "n_envs": n,
            "n_steps": pl["n_steps"],
            "painloop": summarize(pl["rates"], "steps/s"),
            "cartpole": summarize(cp["rates"], "steps/s"),
            "ratio_to_cartpole": statistics.median(pl["rates"]) / statistics.median(cp["rates"]),
            "ratio_to_cartpole_paired": paired_ratio(pl["rates"], cp["rates"]),
        }
    pl_rates, cp_rates, d_rates = (e2e[k][2] for k in ("painloop", "cartpole", "cartpole_ppo_defaults_8"))
    results["end_to_end"] = {
        "what": f"PPO.learn frames/s, {opts.end_to_end_rollouts} rollouts of {plan.rollout} steps per repeat, shipped "
        f"default config (n_envs {plan.n_envs}, {dict(hp)}), VecMonitor + VecNormalize; cartpole at identical settings",
        "n_envs": plan.n_envs,
        "hyperparams": dict(hp),
        "steps_per_repeat": e2e_steps,
        "painloop": summarize(pl_rates, "frames/s"),
        "cartpole": summarize(cp_rates, "frames/s"),
        "ratio_to_cartpole": statistics.median(pl_rates) / statistics.median(cp_rates),
        "ratio_to_cartpole_paired": paired_ratio(pl_rates, cp_rates),
    }
    results["cartpole_ppo_defaults_8"] = {
        "what": "PPO('MlpPolicy') with SB3's default settings on CartPole-v1, 8 envs in a DummyVecEnv + VecMonitor",
        "n_envs": 8,
        "steps_per_repeat": default_steps,
        **summarize(d_rates, "frames/s"),
    }
    results["end_to_end"]["ratio_to_cartpole_ppo_defaults_8"] = statistics.median(pl_rates) / statistics.median(d_rates)
    results["end_to_end"]["ratio_to_cartpole_ppo_defaults_8_paired"] = paired_ratio(pl_rates, d_rates)
    results["torch_threads"] = torch.get_num_threads()
    results["setup_s"] = setup_s
    results["overrides"] = overrides
    return results


def render_training(results: dict) -> str:
    lines = ["training (steps/s; medians over repeats; ratio = painloop / CartPole in the same run):"]
    for n, fig in results["rollout"].items():
        lines.append(
            f"  rollout collection, n_envs {n:>4}: painloop {fig['painloop']['median']:>10,.0f}  "
            f"CartPole DummyVecEnv {fig['cartpole']['median']:>10,.0f}  ratio {fig['ratio_to_cartpole']:.2f}"
        )
    e = results["end_to_end"]
    lines.append(
        f"  end-to-end PPO, default config (n_envs {e['n_envs']}): painloop {e['painloop']['median']:,.0f} fps, "
        f"CartPole same settings {e['cartpole']['median']:,.0f} fps, ratio {e['ratio_to_cartpole']:.2f}"
    )
    d = results["cartpole_ppo_defaults_8"]
    lines.append(
        f"  CartPole PPO default settings, 8 envs: {d['median']:,.0f} fps; painloop default config / it: "
        f"{e['ratio_to_cartpole_ppo_defaults_8']:.2f}"
    )
    lines.append(f"  torch threads {results['torch_threads']}")
    return "\n".join(lines)


TARGETS = (
    ("rollout_64_ratio", "rollout collection at n_envs 64 >= 2x CartPole DummyVecEnv", ("rollout", "64", "ratio_to_cartpole"), 2.0),
    ("end_to_end_ratio", "end-to-end PPO default config >= 0.9x CartPole at identical settings", ("end_to_end", "ratio_to_cartpole"), 0.9),
    ("end_to_end_vs_defaults", "end-to-end PPO default config >= 4x CartPole PPO defaults at 8 envs",
     ("end_to_end", "ratio_to_cartpole_ppo_defaults_8"), 4.0),
)


def check_training(results: dict) -> list[dict]:
    """The section's targets of the speed issue, checked."""
    return check(results, TARGETS, "issue 7")
