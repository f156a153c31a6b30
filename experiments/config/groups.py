"""Hydra's own config groups (``hydra/launcher``, ``hydra/sweeper``, ...) checked before any job starts.

Hydra itself reports ``hydra/launcher=nope`` only when it composes the
first job (exit 1, with a stack-trace hint); under ``--multirun`` a bad
launcher must fail before anything is launched, with exit code 2 like any
bad input. The options are the ones Hydra would see: ``conf/hydra/<group>/``,
the ConfigStore and the installed plugins (joblib, submitit, ray, optuna),
so painloop's own launcher configs and the plugins' are both listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simenv.errors import PainloopError


def _loader(conf_dir: Path):
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().config_loader()


def hydra_message(config_name: str, override: str, conf_dir: Path) -> str:
    """Hydra's own error for ``override`` (its "Could not find ..." text, without the search path)."""
    from hydra import compose
    from hydra.errors import HydraException

    try:
        compose(config_name=config_name, overrides=[override], return_hydra_config=True)
    except HydraException as exc:
        text = str(exc).split("Config search path:")[0].split("Available options")[0]
        return " ".join(line.strip() for line in text.splitlines() if line.strip())
    return ""


def check_hydra_groups(config_name: str, overrides: Sequence[tuple[str, list]], conf_dir: Path) -> None:
    """Check ``(group, values)`` pairs such as ``("hydra/launcher", ["painloop_joblib"])``.

    Raises ``PainloopError`` (``PL-CONFIG-KEY``) naming Hydra's message and
    the valid choices for an option that does not exist, or the existing
    groups for a group that does not exist.
    """
    if not overrides:
        return
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        loader = _loader(conf_dir)
        for group, values in overrides:
            if not loader.repository.group_exists(group):
                parent = group.rsplit("/", 1)[0]
                groups = sorted(f"{parent}/{g}" for g in loader.list_groups(parent))
                raise PainloopError(
                    "PL-CONFIG-KEY",
                    f"Could not find the config group '{group}'; valid groups under '{parent}': {groups}.",
                )
            options = loader.get_group_options(group)
            for value in values:
                if value is None or str(value) in options:
                    continue
                message = hydra_message(config_name, f"{group}={value}", conf_dir)
                raise PainloopError(
                    "PL-CONFIG-KEY",
                    f"{message or f'Could not find {group}/{value}'}; valid choices for {group}: {options}.",
                )
