"""``python -m experiments.train``: train one RL agent on a training cohort, validated on held-out patients.

The agent (``conf/agent/<name>.yaml``: ppo, a2c, dqn, recurrent_ppo, sac)
trains on ``PainStimSB3VecEnv`` over the batched core, each slot drawing a
new patient of the training pool at every episode (domain randomisation),
with observation and reward normalisation (``VecNormalize``). Periodically,
at rollout boundaries, the current model plays the validation patients; the
run folder (Hydra's output directory) receives the files listed in
``experiments.training.folder``. docs/training.md is the user's guide.

This module is the Hydra layer only: it checks the command line before
Hydra composes anything (``precheck``), and hands the composed config, as
plain values, to ``experiments.training.runner.run``, which does the work
without Hydra (``experiments.training.runner.train`` is the same for Python).

Examples::

    python -m experiments.train agent=ppo
    python -m experiments.train agent=sac total_timesteps=500000
    python -m experiments.train resume=outputs/train/2025-01-01/12-00-00
    python -m experiments.train finetune_from=<run> cohort=test cohort.indices=[7] total_timesteps=100000

Bad input (unknown key or agent, an agent that cannot act in the action
mode, a missing or corrupt ``resume``/``finetune_from`` folder, ...) is
refused before training: ``error: <CODE>: message`` on stderr, exit code 2.
A failure after the start is recorded in ``status.json`` (``failed``) and
exits 1. SIGINT, SIGTERM and SIGUSR2 checkpoint at the next rollout
boundary, record ``interrupted`` with that checkpoint and exit with 128 +
the signal number; SIGUSR2 is then handed to submitit's handler when there
is one (the job is requeued and resumes by itself in the same folder).
The task function returns the best mean validation reward per day.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.common.run_folder import report_error  # noqa: E402
from experiments.config import schema as hydra_schema  # noqa: E402
from experiments.config import train_schema as training_schema  # noqa: E402
from experiments.sweeps import objective as sweep_objective  # noqa: E402
from experiments.training import runner  # noqa: E402
from experiments.training.agents import agent_algo, algorithm, available_agents  # noqa: E402
from experiments.training.plan import POLICY_SHAPING, make_plan, read_run_config  # noqa: E402
from experiments.training.runner import EXIT_BAD_INPUT  # noqa: E402
from simenv.errors import PainloopError  # noqa: E402

#: Names other modules and tests import from here (the library lives in experiments.training).
__all__ = ["main", "make_plan", "precheck", "read_run_config", "run"]

DOCS = "docs/training.md"

training_schema.register()
_TYPED_ARGV: list[str] | None = None


def run(
    cfg: DictConfig | Mapping[str, Any],
    run_dir: str | Path,
    argv: Sequence[str] | None = None,
    exit_on_error: bool = True,
    show_progress: bool | None = None,
) -> float:
    """``experiments.training.runner.run`` on a composed config (resolved to plain values first).

    ``argv`` (recorded in run.json) defaults to the command line as typed.
    """
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    if argv is None:
        argv = _TYPED_ARGV or sys.argv
    return runner.run(config, run_dir, argv=argv, exit_on_error=exit_on_error, show_progress=show_progress)


# -- the command line ----------------------------------------------------------------------------
@hydra.main(config_path="../conf", config_name="train", version_base=None)
def hydra_main(cfg: DictConfig) -> float | list[float]:
    """The Hydra task function (also what a sweeper or the submitit launcher calls); returns the objective(s)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    argv = _TYPED_ARGV if _TYPED_ARGV is not None else sys.argv
    objective = run(cfg, Path(hc.runtime.output_dir), argv=argv, exit_on_error=hc.mode != RunMode.MULTIRUN)
    return sweep_objective.task_value(cfg.get("objective"), Path(hc.runtime.output_dir), objective)


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def precheck(argv: Sequence[str]) -> tuple[list[str], Path | None, dict[str, Any]]:
    """Check the command line before Hydra runs.

    Returns (the command line to hand to Hydra, the folder ``resume`` names or
    None, the keys a resume takes from the command line: ``progress_bar`` and
    ``trust_run_folder``, parsed). With ``finetune_from``, the source
    run's agent and policy-shaping env settings are added unless given.
    Raises ``PainloopError``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    flags, overrides = hydra_schema.split_argv(argv)
    parser = OverridesParser.create()
    parsed = {}
    for text in overrides:
        try:
            ov = parser.parse_overrides([text])[0]
        except OverrideParseException:
            continue  # check_overrides reports it
        parsed[ov.key_or_group] = ov
    sweeping = any(o.is_sweep_override() for o in parsed.values()) or any(f in ("-m", "--multirun") for f in flags)
    kept: dict[str, Any] = {"progress_bar": parsed["progress_bar"].value() if "progress_bar" in parsed else None}
    resume = parsed.get("resume")
    if resume is not None and resume.value() is not None and not resume.is_sweep_override():
        others = sorted(k for k in parsed if k not in ("resume", "progress_bar", "trust_run_folder")
                        and not k.startswith("hydra"))
        if others or sweeping:
            raise PainloopError(
                "PL-CONFIG-VALUE",
                f"resume={resume.value()} continues that run with its own config; other keys are not allowed with it "
                f"({others or 'a sweep'}); allowed with resume: progress_bar, trust_run_folder.",
            )
        hydra_schema.check_overrides(overrides, training_schema.TrainConfig, training_schema.GROUPS)
        path = Path(str(resume.value()))
        read_run_config(path)
        trust = parsed["trust_run_folder"].value() if "trust_run_folder" in parsed else False
        if trust not in (True, False):  # also 1 and 0
            raise PainloopError("PL-CONFIG-VALUE", f"trust_run_folder={trust!r}; allowed: true or false.")
        kept["trust_run_folder"] = bool(trust)
        return list(argv), path, kept
    extra: list[str] = []
    finetune = parsed.get("finetune_from")
    if finetune is not None and finetune.value() is not None and not finetune.is_sweep_override():
        source = read_run_config(Path(str(finetune.value())))
        if "agent" not in parsed:
            if source["agent"] not in available_agents():
                raise PainloopError(
                    "PL-RUN-FOLDER",
                    f"finetune_from={finetune.value()}: its agent '{source['agent']}' is not in conf/agent/ "
                    f"{available_agents()}; allowed: name an agent with the same algo ({source['algo_class']}).",
                )
            extra.append(f"agent={source['agent']}")
        for key in POLICY_SHAPING:
            if f"env.{key}" not in parsed and key in source["env_settings"]:
                extra.append(f"env.{key}={_format_value(source['env_settings'][key])}")
    overrides = extra + list(overrides)
    argv = [*flags, *overrides] if extra else list(argv)
    fixed = hydra_schema.check_overrides(
        overrides, training_schema.TrainConfig, training_schema.GROUPS,
        group_codes=training_schema.GROUP_CODES, skip_prefixes=("agent.",),
    )
    agent_keys = [o for o in fixed if o.lstrip("+~").startswith("agent.")]
    if agent_keys:
        if sweeping:
            algos = {a for name in available_agents() if (a := agent_algo(name)) in training_schema.AGENT_SCHEMAS}
        else:
            groups = [o for o in fixed if o.split("=", 1)[0].lstrip("+~") in training_schema.GROUPS]
            cfg = hydra_schema.compose_check("train", groups, DOCS)
            algos = {str(cfg.agent.algo)}
            algorithm(str(cfg.agent.algo), str(cfg.agent.name))
        keys = sorted({k for a in algos if a in training_schema.AGENT_SCHEMAS
                       for k in hydra_schema.schema_keys(training_schema.schema_for_agent(a))})
        hydra_schema.check_overrides(agent_keys, training_schema.TrainConfig, training_schema.GROUPS,
                                     group_codes=training_schema.GROUP_CODES, valid_keys=keys)
    if not sweeping:
        hydra_schema.compose_check("train", fixed, DOCS)
    return hydra_schema.splice_overrides(argv, overrides, fixed), None, kept


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry: check the command line, then hand it to Hydra (or resume a folder directly)."""
    global _TYPED_ARGV
    args = list(sys.argv[1:] if argv is None else argv)
    _TYPED_ARGV = [sys.argv[0], *args]
    try:
        args, resume, kept = precheck(args)
    except PainloopError as exc:
        report_error(exc)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if resume is not None:  # the folder has its config and is its own run folder: no Hydra composition
        run({"resume": str(resume), **kept}, resume, argv=_TYPED_ARGV)
        return
    sys.argv = [sys.argv[0], *args]
    hydra_main()


if __name__ == "__main__":
    main()
