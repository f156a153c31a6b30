"""Virtual patients: cohort presets, the population sampler, and YAML patients.

A cohort preset is a generator, not a list: population distributions plus a
seed. Patient ``i`` is drawn from its own stream ``SeedSequence([seed, i])``,
so any ``n_patients`` works and the first n patients of a larger draw equal
the n-patient cohort. ``patient_uid`` is a stable hash of (preset name,
preset seed, index), or of the file's content for a YAML patient; the
``train``, ``validation`` and ``test`` presets never share a uid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simenv.errors import PainloopError
from simenv.params import GROUPS, PatientParams


@dataclass(frozen=True)
class Patient:
    """One virtual patient: identity and parameters.

    ``uid`` keys every random stream of the patient (noise, biomarker layout,
    calibration); ``cohort`` and ``index`` say where it came from.
    """

    uid: int
    cohort: str
    index: int
    params: PatientParams


def stable_uid(*parts: Any) -> int:
    """A 63-bit integer hash that is the same on every machine and Python run."""
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


_DIST_KINDS = ("constant", "normal", "lognormal", "uniform")


def _draw(spec: dict[str, Any], key: str, rng: np.random.Generator, where: str) -> float:
    """Draw one value from a distribution spec such as ``{lognormal: [30, 1.0], clip: [5, 300]}``."""
    kinds = [k for k in spec if k in _DIST_KINDS]
    extra = sorted(set(spec) - set(_DIST_KINDS) - {"clip"})
    if len(kinds) != 1 or extra:
        raise PainloopError(
            "PL-COHORT-SPEC",
            f"{where}: distribution of '{key}' is {spec!r}; allowed: exactly one of {list(_DIST_KINDS)} "
            "and an optional clip: [low, high].",
        )
    kind = kinds[0]
    arg = spec[kind]
    try:
        if kind == "constant":
            value = float(arg)
        elif kind == "normal":
            mean, sd = (float(x) for x in arg)
            value = mean + sd * rng.standard_normal()
        elif kind == "lognormal":
            median, log_sd = (float(x) for x in arg)
            value = median * float(np.exp(log_sd * rng.standard_normal()))
        else:
            low, high = (float(x) for x in arg)
            value = low + (high - low) * rng.random()
        if "clip" in spec:
            lo, hi = (float(x) for x in spec["clip"])
            value = min(max(value, lo), hi)
    except (TypeError, ValueError) as exc:
        raise PainloopError(
            "PL-COHORT-SPEC",
            f"{where}: distribution of '{key}' is {spec!r}; '{kind}' takes "
            f"{'a number' if kind == 'constant' else 'a list of two numbers'} ({exc}).",
        ) from None
    return value


@dataclass(frozen=True)
class CohortPreset:
    """Population distributions plus a seed; ``sample(n)`` draws the first n patients."""

    name: str
    seed: int
    n_patients: int
    description: str
    distributions: tuple[tuple[str, Any], ...]
    base: PatientParams

    def patient(self, index: int) -> Patient:
        """Patient ``index`` of this preset (independent of how many others are drawn)."""
        return _cached_patient(self, int(index))

    def sample(self, n_patients: int | None = None) -> list[Patient]:
        """The first ``n_patients`` patients (default: the preset's size)."""
        n = self.n_patients if n_patients is None else n_patients
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise PainloopError(
                "PL-COHORT-SIZE", f"cohort.n_patients={n!r}; allowed: a whole number >= 1."
            )
        return [self.patient(i) for i in range(int(n))]


@lru_cache(maxsize=65_536)
def _cached_patient(preset: CohortPreset, index: int) -> Patient:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([preset.seed, index])))
    data = preset.base.to_dict()
    for key, spec in preset.distributions:  # sorted: the draw order is part of the contract
        group, name = key.split(".", 1)
        data[group][name] = _draw(spec, key, rng, f"cohort preset '{preset.name}'")
    params = PatientParams.from_dict(data, where=f"cohort '{preset.name}' patient {index}")
    return Patient(uid=stable_uid(preset.name, preset.seed, index), cohort=preset.name, index=index, params=params)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _FrozenSpec(dict):
    """A dict that hashes by content, so presets can key caches."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(_freeze(dict(self)))


def available_presets() -> list[str]:
    """Names of the presets shipped in ``simenv/presets``."""
    folder = resources.files("simenv") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_from_mapping(data: dict[str, Any], where: str) -> CohortPreset:
    """Build a preset from its YAML mapping, checking every key."""
    if not isinstance(data, dict):
        raise PainloopError("PL-COHORT-SPEC", f"{where}: expected a mapping, got {type(data).__name__}.")
    allowed = {"name", "seed", "n_patients", "description", "distributions", "base"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PainloopError("PL-COHORT-SPEC", f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")
    dists = data.get("distributions") or {}
    if not isinstance(dists, dict) or not all(isinstance(v, dict) for v in dists.values()):
        raise PainloopError(
            "PL-COHORT-SPEC",
            f"{where}: distributions={dists!r}; allowed: a mapping of 'group.field' to a distribution mapping, "
            "e.g. 'pain.baseline_nrs: {normal: [6, 1]}'.",
        )
    for key, allowed_type, low in (("seed", int, 0), ("n_patients", int, 1)):
        value = data.get(key, 20 if key == "n_patients" else None)
        if isinstance(value, bool) or not isinstance(value, allowed_type) or value < low:
            raise PainloopError("PL-COHORT-SPEC", f"{where}: {key}={value!r}; allowed: a whole number >= {low}.")
    valid_keys = {f"{g}.{f}" for g, klass in GROUPS.items() for f in klass.__dataclass_fields__}
    for key in dists:
        if key not in valid_keys:
            raise PainloopError(
                "PL-COHORT-SPEC",
                f"{where}: distribution key '{key}' is not a parameter; allowed: group.field, e.g. "
                "'pain.baseline_nrs' (see docs/model.md).",
            )
    base = PatientParams.from_dict(data.get("base") or {}, where=f"{where} base")
    return CohortPreset(
        name=str(data["name"]),
        seed=int(data["seed"]),
        n_patients=int(data.get("n_patients", 20)),
        description=str(data.get("description", "")),
        distributions=tuple(sorted((k, _FrozenSpec(v)) for k, v in dists.items())),
        base=base,
    )


@lru_cache(maxsize=64)
def load_preset(name: str) -> CohortPreset:
    """A shipped cohort preset by name; an unknown name lists the available ones."""
    names = available_presets()
    if name not in names:
        raise PainloopError(
            "PL-COHORT-UNKNOWN", f"cohort preset '{name}' does not exist; available presets: {names}."
        )
    text = (resources.files("simenv") / "presets" / f"{name}.yaml").read_text()
    return preset_from_mapping(yaml.safe_load(text), where=f"preset '{name}'")


def load_patient_yaml(path: str | Path) -> Patient:
    """A custom patient from a YAML file of parameter groups (unset fields keep defaults).

    The file holds ``{group: {field: value}}``, e.g. ``relief: {carryover_tau_min: 90}``;
    its uid is a hash of the file's content, so the same file is the same patient.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PainloopError("PL-PATIENT-YAML", f"patient file '{path}' cannot be read: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise PainloopError("PL-PATIENT-YAML", f"patient file '{path}' is not UTF-8 text: {exc.reason}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PainloopError(
            "PL-PATIENT-YAML", f"patient file '{path}' is not valid YAML: {str(exc).splitlines()[0]}."
        ) from None
    if data is None:
        data = {}
    params = PatientParams.from_dict(data, where=f"patient file '{path}'")
    return Patient(uid=stable_uid("yaml", text), cohort=f"file:{path.name}", index=0, params=params)


def with_overrides(patients: list[Patient], overrides: dict[str, float] | None) -> list[Patient]:
    """The same patients (same uid, so the same noise) with some parameters set for all.

    ``overrides`` maps ``group.field`` to a value, e.g. ``{"biomarker.auc": 0.6}``:
    the paired way to ask how one property changes an outcome.
    """
    if not overrides:
        return list(patients)
    changes: dict[str, dict[str, float]] = {}
    for key, value in overrides.items():
        group, _, name = str(key).partition(".")
        if group not in GROUPS or name not in GROUPS[group].__dataclass_fields__:
            raise PainloopError(
                "PL-PARAM-UNKNOWN", f"override '{key}' is not a parameter; allowed: group.field, e.g. 'biomarker.auc'."
            )
        changes.setdefault(group, {})[name] = value
    return [
        Patient(uid=p.uid, cohort=p.cohort, index=p.index, params=p.params.replace(**changes)) for p in patients
    ]


def resolve_patients(
    cohort: str | CohortPreset = "default",
    n_patients: int | None = None,
    patient_indices: list[int] | None = None,
    patients: list[Patient] | None = None,
) -> list[Patient]:
    """The patients an environment runs: explicit list, or indices or the first n of a preset."""
    if patients is not None:
        if not patients:
            raise PainloopError("PL-COHORT-SIZE", "patients=[] is empty; allowed: at least one patient.")
        return list(patients)
    preset = cohort if isinstance(cohort, CohortPreset) else load_preset(str(cohort))
    if patient_indices is not None:
        bad = [i for i in patient_indices if isinstance(i, bool) or int(i) != i or i < 0]
        if bad:
            raise PainloopError(
                "PL-COHORT-SIZE", f"patient indices {bad} are invalid; allowed: whole numbers >= 0."
            )
        return [preset.patient(int(i)) for i in patient_indices]
    return preset.sample(n_patients)
