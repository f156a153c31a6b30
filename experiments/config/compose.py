"""A command's complete config from its YAML files, composed as Hydra composes it, without Hydra.

The values of a command live in one place, the YAML files under ``conf/``;
the keys and types live in the schema dataclasses. ``compose`` reads the
primary file (``conf/<name>.yaml``), walks its ``defaults`` list in order and
merges with OmegaConf what each entry names, as Hydra does:

- a schema name (``- train_schema``): the schema dataclass, at the root;
- ``_self_``: the file's own keys (appended last when the list omits it);
- ``group: option``: ``conf/<group>/<option>.yaml`` under the key ``group``,
  or at the root when its first line is ``# @package _global_``; the group
  file may have its own defaults list, whose bare names are schemas of that
  group (``- ppo_schema`` in ``conf/agent/ppo.yaml`` is ``agent/ppo_schema``)
  and whose ``override /group: option`` entries change another group's
  choice (``conf/experiment/continuous_sac.yaml``); a bare name that is
  another option of the same group includes that file first
  (``- long_term`` in ``conf/experiment/budget_sweep.yaml``), with its own
  defaults list and overrides.

The caller's group choices win over the files' ``override`` entries (as
Hydra's command line does), and the caller's values are merged last, like
command-line ``key=value`` overrides. Hydra's own keys and groups
(``hydra:``, ``override /hydra/launcher``) are left out, as
``hydra.compose`` leaves them out of the job's config. Interpolations
(``${agent.n_envs}``) resolve when the typed object is built.

Files are read with OmegaConf's YAML loader (a safe loader; Hydra reads
them with it too). Hydra itself is never imported, so a notebook or script
composes a config in one call; tests compare the result with Hydra's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.config.schema import CONF_DIR, group_options
from simenv.errors import PainloopError

SELF = "_self_"
_OVERRIDE = re.compile(r"^override\s+(?P<group>\S+)$")
_HEADER = re.compile(r"^\s*#\s*@")


def _package_header(text: str) -> str | None:
    """The ``# @package`` of a file's header (its leading ``# @key value`` lines), as Hydra reads it."""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not _HEADER.match(line):
            break
        parts = line.lstrip("#").strip().split()
        if len(parts) == 2 and parts[0] == "@package":
            return parts[1]
    return None


def read_config(path: Path) -> tuple[str | None, dict[str, Any]]:
    """A config file's ``# @package`` header (None without one) and its content as plain values.

    Raises ``PainloopError`` (``PL-CONFIG-VALUE``) for a file that cannot be
    read or parsed, or that does not hold a mapping.
    """
    try:
        text = path.read_text()
        node = OmegaConf.create(text)
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PainloopError("PL-CONFIG-VALUE", f"config file '{path}' cannot be read: {first}.") from None
    if not isinstance(node, DictConfig):
        raise PainloopError("PL-CONFIG-VALUE", f"config file '{path}' cannot be read: it holds no mapping.")
    return _package_header(text), OmegaConf.to_container(node)  # type: ignore[return-value]


def _nest(package: str, content: Any) -> Any:
    """``content`` under the dotted ``package`` (the root for ``''``)."""
    for key in reversed(package.split(".") if package else []):
        content = {key: content}
    return content


def _package(header: str | None, group: str) -> str:
    """Where a group file's keys go: its group's key, or the header's package (``_global_``: the root)."""
    if header is None:
        return group.replace("/", ".")
    parts = [p for p in header.split(".") if p != "_global_"]
    return ".".join(group.replace("/", ".") if p == "_group_" else p for p in parts)


class _Composer:
    """One composition: the files read so far, the group choices, and the config being merged."""

    def __init__(self, config_name: str, schemas: Mapping[str, type], groups: Mapping[str, str],
                 conf_dir: Path, group_codes: Mapping[str, str]) -> None:
        self.config_name = config_name
        self.schemas = schemas
        self.groups = groups
        self.conf_dir = conf_dir
        self.group_codes = group_codes
        self.files: dict[Path, tuple[str | None, dict[str, Any]]] = {}

    def read(self, path: Path) -> tuple[str | None, list[Any], dict[str, Any]]:
        """A file's header, defaults list and own keys (without Hydra's ``hydra`` key)."""
        if path not in self.files:
            self.files[path] = read_config(path)
        header, content = self.files[path]
        body = dict(content)
        defaults = body.pop("defaults", None) or []
        return header, list(defaults), body

    def group_file(self, group: str, option: Any) -> Path:
        """``conf/<group>/<option>.yaml``; an option that does not exist raises the group's code."""
        options = group_options(self.groups[group], self.conf_dir)
        if not isinstance(option, str) or option not in options:
            code = self.group_codes.get(group, "PL-CONFIG-KEY")
            raise PainloopError(code, f"{group}={option!r} does not exist; available {group} options: {options}.")
        return self.conf_dir / self.groups[group] / f"{option}.yaml"

    def refused(self, path: Path, item: Any, group: str) -> PainloopError:
        """The error for a defaults entry this composer does not read, listing the ones it reads."""
        prefix = f"{group}/" if group else ""
        names = [n[len(prefix):] for n in self.schemas if n.startswith(prefix) and "/" not in n[len(prefix):]]
        return PainloopError("PL-CONFIG-VALUE", f"{path}: defaults entry {item!r} cannot be read without Hydra; "
                                                f"allowed: {', '.join(names)}, {SELF}, {list(self.groups)}.")

    def override_entry(self, item: Any, group: str) -> str | None:
        """The group an ``override <group>: option`` entry names (absolute, or relative to ``group``)."""
        if not (isinstance(item, Mapping) and len(item) == 1):
            return None
        m = _OVERRIDE.match(str(next(iter(item))))
        if m is None:
            return None
        name = m.group("group")
        return name[1:] if name.startswith("/") else f"{group}/{name}" if group else name

    def included(self, item: Any, group: str) -> Path | None:
        """The file a bare defaults name includes when it is another option of ``group`` (else None)."""
        if not (isinstance(item, str) and group in self.groups):
            return None
        return self.group_file(group, item) if item in group_options(self.groups[group], self.conf_dir) else None

    def tree_overrides(self, path: Path, group: str, seen: tuple[Path, ...] = ()) -> list[tuple[str, Any]]:
        """The ``override`` entries of a group file and of the files it includes, in merge order."""
        if path in seen:
            raise PainloopError("PL-CONFIG-VALUE", f"{path} includes itself: {[str(p) for p in seen]}.")
        defaults = self.read(path)[1]
        pairs: list[tuple[str, Any]] = []
        for item in defaults:
            nested = self.included(item, group)
            if nested is not None:
                pairs += self.tree_overrides(nested, group, (*seen, path))
        return pairs + self.overrides(defaults, group)

    def overrides(self, items: list[Any], group: str) -> list[tuple[str, Any]]:
        """A defaults list's ``override`` entries as ``(group, option)`` (Hydra's own groups left out)."""
        pairs = []
        for item in items:
            target = self.override_entry(item, group)
            if target is not None and target != "hydra" and not target.startswith("hydra/"):
                pairs.append((target, next(iter(item.values()))))
        return pairs

    def choose(self, path: Path, defaults: list[Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Every group's option: the primary's, changed by the chosen files' overrides, then the caller's.

        An override may select a file with overrides of its own, so the
        choices are recomputed from the chosen files until they settle.
        """
        listed = {g: o for item in defaults if isinstance(item, Mapping) and len(item) == 1
                  for g, o in item.items() if g in self.groups}
        unknown = [g for g in given if g not in listed]
        if unknown:
            raise PainloopError("PL-CONFIG-KEY", f"{self.config_name}.yaml's defaults list has no group "
                                                 f"{unknown}; groups: {list(listed)}.")
        choices = listed | dict(given)
        for _ in range(len(listed) + 1):
            sources = [(path, self.overrides(defaults, ""))]
            for group, option in choices.items():
                if (option is None and group not in given) or isinstance(option, Mapping):
                    continue
                file = self.group_file(group, option)
                sources.append((file, self.tree_overrides(file, group)))
            settled = dict(listed)
            for file, pairs in sources:
                for target, option in pairs:
                    if target not in listed:
                        raise PainloopError("PL-CONFIG-KEY", f"{file} overrides {target!r}, which "
                                                             f"no defaults list names; groups: {list(listed)}.")
                    settled[target] = option
            settled |= given
            if settled == choices:
                return choices
            choices = settled
        raise PainloopError("PL-CONFIG-VALUE", f"the overrides in {path}'s defaults tree do not settle: {choices}.")

    def merge_file(self, cfg: DictConfig, path: Path, group: str) -> DictConfig:
        """Merge a group file's defaults list and own keys in order (``_self_`` last when not listed)."""
        header, defaults, body = self.read(path)
        package = _package(header, group)
        if not package:
            body.pop("hydra", None)
        if SELF not in defaults:
            defaults.append(SELF)
        for item in defaults:
            if item == SELF:
                cfg = OmegaConf.merge(cfg, _nest(package, body))  # type: ignore[assignment]
            elif isinstance(item, str) and f"{group}/{item}" in self.schemas:
                cfg = OmegaConf.merge(cfg, _nest(package, OmegaConf.structured(self.schemas[f"{group}/{item}"])))  # type: ignore[assignment]
            elif (nested := self.included(item, group)) is not None:  # cycles refused by tree_overrides
                cfg = self.merge_file(cfg, nested, group)
            elif self.override_entry(item, group) is None:
                raise self.refused(path, item, group)
        return cfg

    def compose(self, choices: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
        """The primary file's defaults list merged in order, then ``values``; the typed object."""
        path = self.conf_dir / f"{self.config_name}.yaml"
        _, defaults, body = self.read(path)
        body.pop("hydra", None)
        roots = [item for item in defaults if isinstance(item, str) and item in self.schemas]
        if len(roots) != 1:
            raise PainloopError("PL-CONFIG-VALUE", f"{path}: the defaults list names {len(roots)} schemas; "
                                                   f"allowed: one of {[n for n in self.schemas if '/' not in n]}.")
        chosen = self.choose(path, defaults, choices)
        if SELF not in defaults:
            defaults.append(SELF)
        cfg = OmegaConf.structured(self.schemas[roots[0]])
        for item in defaults:  # the defaults list, in its order, as Hydra composes it
            if item == SELF:
                cfg = OmegaConf.merge(cfg, body)
            elif isinstance(item, Mapping) and len(item) == 1 and next(iter(item)) in self.groups:
                group = next(iter(item))
                option = chosen[group]
                if isinstance(option, Mapping):  # the group's keys given as is
                    cfg = OmegaConf.merge(cfg, {group: dict(option)})
                elif option is not None:
                    cfg = self.merge_file(cfg, self.group_file(group, option), group)
            elif item not in roots and self.override_entry(item, "") is None:
                raise self.refused(path, item, "")
        cfg = OmegaConf.merge(cfg, values)
        return OmegaConf.to_object(cfg)


def compose(
    config_name: str,
    schemas: Mapping[str, type],
    groups: Mapping[str, str],
    *,
    conf_dir: Path = CONF_DIR,
    choices: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    group_codes: Mapping[str, str] | None = None,
    what: str = "",
) -> Any:
    """``conf_dir/<config_name>.yaml`` composed as Hydra composes it, as the typed schema object.

    ``schemas`` are the ConfigStore's entries by name: the primary's schema
    (``"evaluate_schema"``) and a group's ones (``"agent/ppo_schema"``).
    ``groups`` maps a group's key to its folder under ``conf_dir``.
    ``choices`` select group options (``{"cohort": "test"}``, or a mapping
    of the group's keys given as is) over the files' choices; ``values``
    (nested keys, ``{"seed": 1}``) are merged last. Raises ``PainloopError``:
    the code in ``group_codes`` (default ``PL-CONFIG-KEY``) for an option that
    does not exist, ``PL-CONFIG-VALUE`` for a file that cannot be read, a
    defaults entry this composer does not read, or a value of the wrong type
    ("the <what> config does not compose").
    """
    composer = _Composer(config_name, schemas, groups, Path(conf_dir), group_codes or {})
    try:
        return composer.compose(choices or {}, values or {})
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        raise PainloopError("PL-CONFIG-VALUE", f"the {what} config does not compose: {first}.") from None
