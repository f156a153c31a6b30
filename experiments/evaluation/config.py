"""The evaluate command's config from plain Python: ``EvaluateConfig`` filled as the command line fills it.

Keys and types are Hydra's schema, ``experiments.config.schema.EvaluateConfig``
(the one source of keys); the values are the ones ``python -m
experiments.evaluate`` composes with no override: ``conf/evaluate.yaml``
and the ``cohort`` and ``reward`` options its ``defaults`` list names,
composed by ``experiments.config.compose`` as Hydra composes them (OmegaConf
merges and type-checks, so ``horizon_days=2`` becomes ``2.0`` here as on the
command line). Hydra itself is never imported: a notebook builds a config
in one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.config.compose import compose
from experiments.config.schema import CONF_DIR, GROUPS, EvaluateConfig, schema_keys
from simenv.errors import PainloopError

CONFIG_NAME = "evaluate"
#: The schema's entry in ``conf/evaluate.yaml``'s defaults list (Hydra's ConfigStore name).
SCHEMA_NAME = "evaluate_schema"


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
    valid = [k for k in schema_keys(EvaluateConfig) if "." not in k]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise PainloopError("PL-CONFIG-KEY", f"unknown config keys {unknown}; valid keys: {', '.join(valid)} "
                            "(and n_patients for cohort.n_patients).")
    choices = {g: keys.pop(g) for g in GROUPS if g in keys}
    if n_patients is not None:
        keys["cohort"] = {"n_patients": n_patients}
    return compose(CONFIG_NAME, {SCHEMA_NAME: EvaluateConfig}, GROUPS, conf_dir=Path(conf_dir), choices=choices,
                   values=keys, group_codes={"cohort": "PL-COHORT-UNKNOWN"}, what="evaluation")


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
