"""The evaluate command's config from plain Python: ``EvaluateConfig`` filled as the command line fills it.

Keys and types are Hydra's schema, ``experiments.config.schema.EvaluateConfig``
(the one source of keys); the values are the ones ``python -m
experiments.evaluate`` composes with no override: ``conf/evaluate.yaml``
and the ``cohort`` and ``reward`` options its ``defaults`` list names.
OmegaConf (not Hydra) merges and type-checks them as Hydra would, so
``horizon_days=2`` becomes ``2.0`` here as on the command line. Hydra
itself is never imported: a notebook builds a config in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.config.schema import CONF_DIR, GROUPS, EvaluateConfig, group_options, schema_keys
from simenv.errors import PainloopError

CONFIG_NAME = "evaluate"
#: The schema's entry in ``conf/evaluate.yaml``'s defaults list (Hydra's ConfigStore name).
SCHEMA_NAME = "evaluate_schema"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PainloopError("PL-CONFIG-VALUE", f"config file '{path}' cannot be read: {first}.") from None


def _group_node(group: str, option: Any, conf_dir: Path) -> Any:
    """A group's option (``conf/<group>/<option>.yaml``), or a mapping given as is."""
    if isinstance(option, Mapping):
        return dict(option)
    options = group_options(GROUPS[group], conf_dir)
    if not isinstance(option, str) or option not in options:
        code = "PL-COHORT-UNKNOWN" if group == "cohort" else "PL-CONFIG-KEY"
        raise PainloopError(code, f"{group}={option!r} does not exist; available {group} options: {options}.")
    return _read_yaml(conf_dir / GROUPS[group] / f"{option}.yaml")


def evaluate_config(*, conf_dir: Path = CONF_DIR, n_patients: int | None = None, **keys: Any) -> EvaluateConfig:
    """``EvaluateConfig`` with ``conf/evaluate.yaml``'s values, then ``keys`` (any key of the schema).

    ``cohort`` and ``reward`` name a group option (``cohort="test"``,
    ``reward="default"``) or give the group's mapping; ``n_patients`` is
    ``cohort.n_patients`` (default: the preset's size). Raises
    ``PainloopError``: ``PL-CONFIG-KEY`` for a key the schema does not have,
    ``PL-COHORT-UNKNOWN`` for a cohort option that does not exist,
    ``PL-CONFIG-VALUE`` for a value of the wrong type. ``conf_dir`` is the
    folder of ``evaluate.yaml`` and its groups (default: the project's ``conf/``).
    """
    conf_dir = Path(conf_dir)
    valid = [k for k in schema_keys(EvaluateConfig) if "." not in k]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise PainloopError("PL-CONFIG-KEY", f"unknown config keys {unknown}; valid keys: {', '.join(valid)} "
                            "(and n_patients for cohort.n_patients).")
    primary = _read_yaml(conf_dir / f"{CONFIG_NAME}.yaml")
    defaults = primary.pop("defaults", [])
    primary.pop("hydra", None)
    groups = {g: keys.pop(g) for g in GROUPS if g in keys}
    try:
        cfg = OmegaConf.structured(EvaluateConfig)
        for item in defaults:  # the defaults list, in its order, as Hydra composes it
            if item == "_self_":
                cfg = OmegaConf.merge(cfg, primary)
            elif isinstance(item, Mapping) and len(item) == 1 and next(iter(item)) in GROUPS:
                group, option = next(iter(item.items()))
                cfg = OmegaConf.merge(cfg, {group: _group_node(group, groups.get(group, option), conf_dir)})
            elif item != SCHEMA_NAME:
                raise PainloopError("PL-CONFIG-VALUE", f"{conf_dir / CONFIG_NAME}.yaml: defaults entry {item!r} "
                                    f"cannot be read without Hydra; allowed: {SCHEMA_NAME}, _self_, {list(GROUPS)}.")
        cfg = OmegaConf.merge(cfg, keys)
        if n_patients is not None:
            cfg.cohort.n_patients = n_patients
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        raise PainloopError("PL-CONFIG-VALUE", f"the evaluation config does not compose: {first}.") from None


def as_dictconfig(cfg: EvaluateConfig | DictConfig) -> DictConfig:
    """The config as OmegaConf's ``DictConfig`` (what Hydra hands the command), typed by the schema.

    A ``DictConfig`` is returned as is; an ``EvaluateConfig`` with a key
    left without a value raises ``PL-CONFIG-VALUE`` naming the keys.
    """
    if isinstance(cfg, DictConfig):
        return cfg
    node = OmegaConf.structured(cfg)
    missing = sorted(OmegaConf.missing_keys(node))
    if missing:
        raise PainloopError("PL-CONFIG-VALUE", f"the evaluation config has no value for {missing}; "
                            "build it with experiments.evaluation.evaluate_config(...) to start from the defaults.")
    return node
