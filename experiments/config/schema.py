"""Typed Hydra schemas (dataclasses in the ConfigStore) and the checks Hydra does not make itself.

The schema makes a misspelled key fail at once; ``check_overrides`` runs
*before* Hydra composes anything and turns the usual mistakes into one
``error: <CODE>: ...`` line that names what was wrong and lists what is
allowed (Hydra's own unknown-key message lists nothing):

- an override Hydra's grammar cannot parse (``PL-CONFIG-SYNTAX``, with a
  hint about quoting);
- an unknown or misspelled key (``PL-CONFIG-KEY``, with the valid keys and
  the closest match);
- a config group option that does not exist, e.g. ``cohort=tset``
  (``PL-COHORT-UNKNOWN`` listing the presets, or ``PL-CONFIG-KEY``).

``quote_labelled_entries`` lets the DESIGN.md entry syntax ``label=entry``
be written unquoted inside a list (``controllers=[a,b=c]``), which Hydra's
grammar would otherwise reject.

Only ``experiments`` imports Hydra; ``simenv`` and ``agents`` never do.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import MISSING as DC_MISSING
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from simenv.errors import PainloopError
from simenv.reward import TERMS

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class CohortConfig:
    """``conf/cohort/<preset>.yaml``: which shipped preset, and how many of its patients."""

    name: str = MISSING
    n_patients: int = MISSING


#: ``conf/reward/<name>.yaml``: one weight per reward term (built from ``simenv.reward.TERMS``
#: so the schema can never drift from the simulator's terms).
RewardConfig = make_dataclass(
    "RewardConfig", [(term, float, field(default=MISSING)) for term in TERMS], namespace={"__module__": __name__}
)


@dataclass
class HeadroomConfig:
    """``headroom`` of ``conf/evaluate.yaml``: a bound to measure every controller's share of the headroom against."""

    bound: Optional[str] = None  # noqa: UP045 (a planner entry of conf/controller/); None: a planner among the controllers
    patients: Optional[int] = None  # noqa: UP045 (the cohort's first N patients); None: all of them


@dataclass
class EvaluateConfig:
    """``conf/evaluate.yaml``: the values live in the YAML, the schema gives types and keys."""

    controllers: list[str] = MISSING
    reference: str = MISSING
    cohort: CohortConfig = field(default_factory=CohortConfig)
    frame: str = MISSING  # long_term | week (agents.evaluation_frames): fills warmup_days and horizon_days
    warmup_days: Optional[float] = None  # noqa: UP045 (OmegaConf reads Optional); None: the frame's
    horizon_days: Optional[float] = None  # noqa: UP045 (scored days); None: the frame's
    seed: int = MISSING
    dt_s: float = MISSING
    initial_state: str = MISSING
    reward: RewardConfig = field(default_factory=RewardConfig)  # type: ignore[valid-type]
    trace_patient: int = MISSING
    jobs: int = 1  # worker processes (patients split between them; identical results); -1 = every usable core
    headroom: HeadroomConfig = field(default_factory=HeadroomConfig)
    redo: bool = False  # evaluate again into a folder that holds a finished run (experiments.sweeps.rerun)

#: Config groups of the evaluate command: key -> folder of options.
GROUPS: dict[str, str] = {"cohort": "cohort", "reward": "reward"}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="evaluate_schema", node=EvaluateConfig)


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    """Every key of a schema dataclass, nested ones dotted: ``['cohort', 'cohort.name', ...]``."""
    keys = []
    for f in fields(schema):
        key = f"{prefix}{f.name}"
        keys.append(key)
        sub = f.type if is_dataclass(f.type) else None
        if sub is None and f.default_factory is not DC_MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
            sub = type(value) if is_dataclass(value) else None
        if sub is not None:
            keys.extend(schema_keys(sub, key + "."))
    return keys


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """Option names of a config group folder (``conf/<group>/*.yaml``)."""
    folder = conf_dir / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _closest(word: str, choices: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


_LIST_OVERRIDE = re.compile(r"^(?P<key>[+~]?[A-Za-z_][\w.]*)(?P<eq>\+?=)\[(?P<body>.*)\]$", re.DOTALL)
_PLAIN_ELEMENT = re.compile(r"^[^'\"\[\]{}(),\s]+$")


def quote_labelled_entries(override: str) -> str:
    """``key=[a,b=c]`` -> ``key=[a,'b=c']`` when Hydra's grammar rejects the unquoted ``=``.

    Only a single bracketed list whose elements are plain words is rewritten;
    anything else is returned unchanged (Hydra then reports its own error).
    """
    m = _LIST_OVERRIDE.match(override)
    if m is None or "=" not in m.group("body"):
        return override
    parts = [p.strip() for p in m.group("body").split(",")]
    if not all(_PLAIN_ELEMENT.match(p) for p in parts):
        return override
    body = ",".join(f"'{p}'" if "=" in p else p for p in parts)
    return f"{m.group('key')}{m.group('eq')}[{body}]"


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hydra's command line split into (flags, overrides), using Hydra's own argument parser."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(list(argv))
    overrides = list(args.overrides or [])
    flags = [a for a in argv if a not in overrides]
    return flags, overrides


def check_overrides(
    overrides: Sequence[str],
    schema: type,
    groups: dict[str, str],
    conf_dir: Path = CONF_DIR,
    group_codes: dict[str, str] | None = None,
    skip_prefixes: Sequence[str] = (),
    valid_keys: Sequence[str] | None = None,
    config_name: str | None = None,
) -> list[str]:
    """Parse the overrides and check every key and group option; return them (labels quoted).

    Raises ``PainloopError`` with ``PL-CONFIG-SYNTAX``, ``PL-CONFIG-KEY`` or
    the group's code in ``group_codes`` (default: ``PL-COHORT-UNKNOWN`` for
    ``cohort``) for an option that does not exist. Keys under ``hydra`` are
    Hydra's own and pass; keys starting with one of ``skip_prefixes`` are left
    for a later check. ``valid_keys`` replaces the schema's keys when given
    (e.g. keys that depend on a group's choice). Hydra's own groups
    (``hydra/launcher=...``) are checked against the options Hydra sees
    (``experiments.config.groups``) in the primary config ``config_name``
    (default: the schema's name without ``Config``, lower case).
    """
    codes = {"cohort": "PL-COHORT-UNKNOWN"} if group_codes is None else group_codes
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    fixed = [quote_labelled_entries(o) for o in overrides]
    keys = list(valid_keys) if valid_keys is not None else schema_keys(schema)
    hydra_groups: list[tuple[str, list]] = []
    for text in fixed:
        try:
            ov = parser.parse_overrides([text])[0]
        except OverrideParseException as exc:
            first = str(exc).splitlines()[0]
            raise PainloopError(
                "PL-CONFIG-SYNTAX",
                f"cannot parse the override {text!r} ({first}); allowed: key=value, key=[a,b,label=c]; "
                "quote values holding spaces, brackets or '=' (e.g. 'controllers=[a,\"lbl=b\"]').",
            ) from None
        key = ov.key_or_group
        if key.startswith("hydra/") and not ov.is_delete():  # Hydra's groups: launcher, sweeper, ...
            values = ov.value()
            values = list(values.list) if ov.is_sweep_override() and hasattr(values, "list") else [values]
            hydra_groups.append((key, values))
            continue
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if skip_prefixes and key.startswith(tuple(skip_prefixes)):
            continue
        if key in groups and not ov.is_delete():
            options = group_options(groups[key], conf_dir)
            values = ov.value()
            values = list(values.list) if ov.is_sweep_override() and hasattr(values, "list") else [values]
            for v in values:
                if not isinstance(v, str) or v not in options:  # cohort=0 or reward=[a] is no option either
                    code = codes.get(key, "PL-CONFIG-KEY")
                    raise PainloopError(
                        code,
                        f"Could not find '{groups[key]}/{v}': {key}={v!r} does not exist; available {key} options: "
                        f"{options}{_closest(str(v), options)}.",
                    )
            continue
        if key not in keys:
            scope = key.rsplit(".", 1)[0] + "." if "." in key else ""
            candidates = [k for k in keys if k.startswith(scope)] if scope and any(
                k.startswith(scope) for k in keys
            ) else keys
            raise PainloopError(
                "PL-CONFIG-KEY",
                f"unknown config key '{key}'{_closest(key, candidates)}; valid keys: {', '.join(candidates)}.",
            )
    if hydra_groups:
        from experiments.config.groups import check_hydra_groups

        name = config_name or schema.__name__.removesuffix("Config").lower()
        check_hydra_groups(name, hydra_groups, conf_dir)
    return fixed


def splice_overrides(argv: Sequence[str], overrides: Sequence[str], fixed: Sequence[str]) -> list[str]:
    """``argv`` with each of ``overrides`` (in order) replaced by its checked form in ``fixed``."""
    out, it = [], iter(fixed)
    remaining = list(overrides)
    for arg in argv:
        if remaining and arg == remaining[0]:
            remaining.pop(0)
            out.append(next(it))
        else:
            out.append(arg)
    return out


def compose_check(config_name: str, overrides: Sequence[str], docs: str, conf_dir: Path = CONF_DIR):
    """Compose ``config_name`` as Hydra will (types, missing values); returns the config.

    Hydra's and OmegaConf's errors become one ``PL-CONFIG-VALUE`` naming the
    problem and pointing at ``docs``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            return compose(
                config_name=config_name,
                overrides=[o for o in overrides if not o.lstrip("+~").startswith("hydra")],
            )
    except (HydraException, OmegaConfBaseException) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        cause = exc.__cause__
        if cause is not None and str(cause).strip():
            lines.append(str(cause).strip().splitlines()[0])
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"the config does not compose: {' / '.join(lines[:3])}; see {docs} for the keys and types.",
        ) from None
