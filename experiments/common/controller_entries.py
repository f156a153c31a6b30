"""Controller entries: ``name``, ``run:<dir>``, ``config:<dir>``, each with an optional ``label=``.

Evaluation's ``controllers`` and export's ``source`` name controllers the same
way (DESIGN.md, "Controller entries"): a file of ``conf/controller/``, a
training run folder or a folder of exported device configs. This module
checks an entry and loads it as an ``agents.controllers.ControllerSpec``,
without Hydra, so both commands and plain Python share one reading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.config.schema import CONF_DIR
from simenv.errors import PainloopError

CONTROLLER_DIR = CONF_DIR / "controller"
#: Labels name files (trace_<label>.png): letters, digits, '_', '.', '+', '-'.
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def available_controllers(conf_dir: Path = CONTROLLER_DIR) -> list[str]:
    """Names of the controller files in ``conf/controller/``."""
    return sorted(p.stem for p in Path(conf_dir).glob("*.yaml"))


def parse_entry(entry: str, conf_dir: Path = CONTROLLER_DIR) -> tuple[str, str]:
    """``'label=name'`` or ``'name'`` -> (label, name), checking both."""
    text = str(entry).strip()
    label, sep, source = text.partition("=")
    if not sep:
        label, source = text, text
    label, source = label.strip(), source.strip()
    prefix, colon, rest = source.partition(":")
    if colon and prefix == "run":  # a training run folder, loaded by agents.rl_policy
        from agents.rl_policy import read_train_config

        read_train_config(Path(rest))  # bad input is refused here, before any work
        if not sep:
            label = "run-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(rest).resolve().name)
        if not LABEL_RE.match(label) or label.startswith("__"):
            raise PainloopError("PL-CONTROLLER-LABEL", f"label '{label}' (entry '{text}') is not allowed.")
        return label, source
    if colon and prefix == "config":  # a folder of exported per-patient device configs (agents.config_policy)
        from agents.config_files import load_config_dir

        load_config_dir(Path(rest))  # missing, empty or invalid folders are refused here, before any work
        if not sep:
            label = "config-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(rest).resolve().name)
        if not LABEL_RE.match(label) or label.startswith("__"):
            raise PainloopError("PL-CONTROLLER-LABEL", f"label '{label}' (entry '{text}') is not allowed.")
        return label, source
    names = available_controllers(conf_dir)
    if not NAME_RE.match(source) or source not in names:
        hint = " (a YAML file reads a bare off/on as a boolean: quote it, 'off')" if source in ("False", "True") else ""
        raise PainloopError(
            "PL-CONTROLLER-UNKNOWN",
            f"controller '{source}' (entry '{text}') does not exist; available controllers: {names} "
            f"(files in {conf_dir}); an entry may carry a label: label=name{hint}.",
        )
    if not LABEL_RE.match(label) or label.startswith("__"):
        raise PainloopError(
            "PL-CONTROLLER-LABEL",
            f"label '{label}' (entry '{text}') is not allowed; allowed: letters, digits and '_', '.', '+', '-', "
            "starting with a letter or digit.",
        )
    return label, source


def load_controller(name: str, label: str, conf_dir: Path = CONTROLLER_DIR):
    """``conf/controller/<name>.yaml`` as a ``ControllerSpec`` labelled ``label``."""
    from agents.controllers import ControllerSpec

    if name.startswith("run:"):
        return ControllerSpec(label, "run", {"path": name[len("run:") :]})
    if name.startswith("config:"):
        return ControllerSpec(label, "config", {"path": name[len("config:") :]})
    path = Path(conf_dir) / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PainloopError("PL-CONTROLLER-FILE", f"controller file '{path}' cannot be read: {first}.") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise PainloopError(
            "PL-CONTROLLER-FILE",
            f"controller file '{path}' holds {type(data).__name__} {data!r}; allowed: a mapping with 'kind' and "
            "the kind's parameters, e.g. 'kind: cycling', 'on_s: 60', 'off_s: 60'.",
        )
    params = dict(data)
    kind = str(params.pop("kind"))
    return ControllerSpec(label, kind, params)


def resolve_controllers(entries: Sequence[str], conf_dir: Path = CONTROLLER_DIR) -> tuple[list, list]:
    """Controller entries -> (specs in order, hidden specs that ``random`` entries match)."""
    if isinstance(entries, (str, bytes)) or not entries:
        raise PainloopError(
            "PL-CONFIG-VALUE",
            f"controllers={entries!r}; allowed: a non-empty list of entries, e.g. [continuous,threshold].",
        )
    parsed = [parse_entry(e, conf_dir) for e in entries]
    labels = [label for label, _ in parsed]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise PainloopError(
            "PL-CONTROLLER-LABEL",
            f"controller labels {dupes} appear more than once; labels must be unique: write label=name, "
            "e.g. 'controllers=[threshold,thr2=threshold]'.",
        )
    specs = [load_controller(name, label, conf_dir) for label, name in parsed]
    by_label = {s.label: s for s in specs}
    extra: dict[str, Any] = {}
    for s in specs:
        m = s.match
        if m is None or m in by_label or m in extra:
            continue
        if m not in available_controllers(conf_dir):
            raise PainloopError(
                "PL-CONTROLLER-MATCH",
                f"controller '{s.label}' matches '{m}', which is neither an entry label {labels} nor a controller "
                f"name {available_controllers(conf_dir)}.",
            )
        extra[m] = load_controller(m, m, conf_dir)
    for s in specs:
        target = by_label.get(s.match) or extra.get(s.match) if s.match is not None else None
        if target is not None and target.match is not None:
            raise PainloopError(
                "PL-CONTROLLER-MATCH",
                f"controller '{s.label}' matches '{target.label}', which is itself matched to another controller; "
                "allowed: a controller that runs on its own (e.g. threshold).",
            )
    return specs, list(extra.values())
