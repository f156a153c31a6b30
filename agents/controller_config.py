"""The rules of a ``painloop.controller/v1`` config: its JSON Schema, device ranges, encodings and safety.

``validate_config`` checks the JSON Schema (draft 2020-12, shipped as
``agents/schemas/controller_v1.schema.json``) and then every semantic and
safety rule, and returns *all* violations, each naming its field;
``check_config`` raises them together as one ``ConfigError``. The format is
built by ``agents.config_format``, its integers by ``agents.config_encoding``,
the ranges are ``agents.device_limits``; files are read by
``agents.config_files``. docs/export.md describes every field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from agents.config_encoding import (
    HOLD,
    HOLD_TENTHS_MA,
    INT32_MAX,
    INT32_MIN,
    RAMP_SCALE,
    amplitude_tenths,
    fixed_point_int,
    on_grid,
)
from agents.config_format import reachable_states
from agents.device_limits import (
    DEVICES,
    MAX_DENSITY_LIMIT_UC_PER_CM2,
    MAX_SHANNON_K,
    PERCEPT_BAND_HZ,
    PERCEPT_MAX_ONSET_S,
    PERCEPT_RAMP_S,
)
from simenv import layout as L
from simenv.errors import PainloopError, UnsafeStimulationError
from simenv.safety import check_stimulation_safe


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field (JSON path), a code and a message naming what is allowed."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.code}]"


class ConfigError(PainloopError):
    """A controller config is refused; ``violations`` lists every broken rule."""

    def __init__(self, code: str, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(code, message)
        self.violations = list(violations)


# -- schema --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def schema() -> dict:
    """The shipped JSON Schema (draft 2020-12) of ``painloop.controller/v1``."""
    text = resources.files("agents").joinpath("schemas/controller_v1.schema.json").read_text()
    return json.loads(text)


def _json_path(parts: Sequence[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def schema_violations(data: Any) -> list[Violation]:
    """Every JSON Schema error, as violations whose field is the JSON path ($.a.b[2])."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [Violation(_json_path(e.absolute_path), "PL-CONFIG-SCHEMA", e.message) for e in errors]


# -- validation ----------------------------------------------------------------------------------
def validate_config(data: Any, dt_s: float | None = None) -> list[Violation]:
    """Every violation of the schema, the device's ranges and the safety limits (empty if valid).

    ``dt_s`` is the simulator step the config must run at (one step per
    detector update); default: the config's ``provenance.dt_s``. Schema errors
    are returned alone (the semantic rules need a well-formed config).
    """
    found = schema_violations(data)
    if found:
        return found
    v: list[Violation] = []

    def bad(field: str, message: str, code: str = "PL-CONFIG-INVALID") -> None:
        v.append(Violation(field, code, message))

    target = data["target"]
    dev = DEVICES[target]
    dt = float(dt_s if dt_s is not None else data["provenance"]["dt_s"])
    sensing = data["sensing"]
    fft = sensing["fft_interval_ms"]
    lo, hi = dev.fft_interval_ms
    if not lo <= fft <= hi:
        bad("$.sensing.fft_interval_ms", f"{fft} ms; allowed on {target}: {lo} to {hi} ms.")

    # Power bands: simulator features, channel-to-site mapping, per-channel and total counts.
    bands = sensing["power_bands"]
    names = [b["name"] for b in bands]
    if len(bands) > dev.max_power_bands:
        bad("$.sensing.power_bands", f"{len(bands)} bands; allowed on {target}: at most {dev.max_power_bands}.")
    if len(set(names)) != len(names):
        bad("$.sensing.power_bands", f"band names {names} repeat; allowed: unique names.")
    per_channel: dict[int, int] = {}
    for i, b in enumerate(bands):
        f = f"$.sensing.power_bands[{i}]"
        per_channel[b["channel"]] = per_channel.get(b["channel"], 0) + 1
        if b["name"] not in L.FEATURE_NAMES:
            bad(f"{f}.name", f"'{b['name']}' is not a simulated band power; allowed: {list(L.FEATURE_NAMES)}.")
            continue
        site, band = b["name"].split("_", 1)
        if b["site"] != site:
            bad(f"{f}.site", f"'{b['site']}' but band '{b['name']}' is recorded at site '{site}'.")
        if b["channel"] // 2 != L.SITES.index(site):
            s = L.SITES.index(site)
            bad(f"{f}.channel", f"{b['channel']} does not record site {site}; allowed: {2 * s} or {2 * s + 1}.")
        if (b["low_hz"], b["high_hz"]) != tuple(L.BAND_EDGES_HZ[band]):
            bad(f"{f}.low_hz", f"edges {b['low_hz']}-{b['high_hz']} Hz; the simulator computes {band} as "
                f"{L.BAND_EDGES_HZ[band][0]}-{L.BAND_EDGES_HZ[band][1]} Hz.")
        if target == "percept" and not (PERCEPT_BAND_HZ[0] <= b["low_hz"] and b["high_hz"] <= PERCEPT_BAND_HZ[1]):
            bad(f"{f}.name", f"band {b['low_hz']}-{b['high_hz']} Hz; Percept's control band lies within "
                f"{PERCEPT_BAND_HZ[0]:g}-{PERCEPT_BAND_HZ[1]:g} Hz (simulated: alpha or beta).")
    for ch, count in sorted(per_channel.items()):
        if count > dev.max_bands_per_channel:
            bad("$.sensing.power_bands", f"{count} bands on channel {ch}; allowed on {target}: "
                f"{dev.max_bands_per_channel} per channel.")

    # Detectors.
    dets = data["detectors"]
    if dets.get("LD1") and not dev.allows_ld1:
        bad("$.detectors.LD1", f"{target} runs one detector; allowed: LD1 null.")
    enc = data["device_encoding"]
    periods: list[float] = []  # update period of each detector present, ms
    for key in ("LD0", "LD1"):
        d = dets.get(key)
        if not d:
            if enc.get(key):
                bad(f"$.device_encoding.{key}", f"encodes a detector but detectors.{key} is absent.")
            continue
        f = f"$.detectors.{key}"
        n = len(d["inputs"])
        if n > dev.max_inputs:
            bad(f"{f}.inputs", f"{n} inputs; allowed on {target}: at most {dev.max_inputs}.")
        for name in d["inputs"]:
            if name not in names:
                bad(f"{f}.inputs", f"'{name}' is not among sensing.power_bands {names}.")
        for vec in ("weight", "norm_subtract", "norm_multiply"):
            if len(d[vec]) != n:
                bad(f"{f}.{vec}", f"{len(d[vec])} entries; allowed: {n}, one per input.")
        if d["dual_threshold"] and d["threshold_high"] < d["threshold_low"]:
            bad(f"{f}.threshold_high", f"{d['threshold_high']:g} < threshold_low {d['threshold_low']:g}; "
                "allowed: high >= low.")
        ur = d["update_rate_fft_intervals"]
        lo, hi = dev.update_rate_fft_intervals
        if not lo <= ur <= hi:
            bad(f"{f}.update_rate_fft_intervals", f"{ur}; allowed on {target}: {lo} to {hi}.")
        steps = fft * ur / (1000.0 * dt)
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            bad(f"{f}.update_rate_fft_intervals", f"fft_interval_ms * update_rate_fft_intervals = {fft * ur} ms "
                f"but one simulator step is dt_s = {dt:g} s; allowed: a whole number of steps (one detector update "
                "every k steps, k >= 1).")
        periods.append(fft * ur)
        for name in ("onset_updates", "termination_updates", "holdoff_updates"):
            if d[name] > dev.max_count_updates:
                bad(f"{f}.{name}", f"{d[name]}; allowed on {target}: 0 to {dev.max_count_updates}.")
        if d["blank_fft_intervals"] > dev.max_blank_fft_intervals:
            bad(f"{f}.blank_fft_intervals", f"{d['blank_fft_intervals']}; allowed on {target}: 0 to "
                f"{dev.max_blank_fft_intervals}.")
        if target == "percept":
            if d["onset_updates"] * fft * ur / 1000.0 > PERCEPT_MAX_ONSET_S:
                bad(f"{f}.onset_updates", f"{d['onset_updates']} updates of {fft * ur / 1000.0:g} s; Percept's onset "
                    "is 0-30 s.")
            if d["update_rate_fft_intervals"] * fft > 30_000:
                bad(f"{f}.update_rate_fft_intervals", "Percept averages over at most 30 s.")
            if [abs(w) for w in d["weight"]] != [1.0] * n or d["norm_subtract"] != [0.0] * n or d["norm_multiply"] != [1.0] * n:
                bad(f"{f}.weight", "Percept thresholds one band's power: allowed weight +1 or -1, norm_subtract 0, "
                    "norm_multiply 1.")
        F = d["fractional_fixed_point"]
        flo, fhi = dev.fractional_fixed_point
        if not flo <= F <= fhi:
            bad(f"{f}.fractional_fixed_point", f"{F}; allowed: {flo} to {fhi}.")
        e = enc.get(key) or {}
        for name in ("weight", "norm_subtract", "norm_multiply", "threshold_low", "threshold_high"):
            values = d[name] if isinstance(d[name], list) else [d[name]]
            for i, value in enumerate(values):
                field = f"{f}.{name}" + (f"[{i}]" if isinstance(d[name], list) else "")
                scaled = value * 2.0**F
                if not INT32_MIN <= scaled <= INT32_MAX:
                    bad(field, f"{value:g} x 2^{F} = {scaled:.6g} overflows the device's signed 32-bit fixed point "
                        f"(allowed |value| <= {INT32_MAX / 2.0**F:.6g} at fractional_fixed_point {F}).")
                    continue
                if not on_grid(value, F):
                    bad(field, f"{value!r} is not on the fixed-point grid; allowed: a multiple of 2^-{F}.")
                code = e.get(name)
                code = code[i] if isinstance(code, list) and i < len(code) else (None if isinstance(code, list) else code)
                if code != fixed_point_int(value, F):
                    bad(f"$.device_encoding.{key}.{name}", f"{code!r} does not encode {value!r} (expected "
                        f"{fixed_point_int(value, F)} = round(value x 2^{F})).")

    if len(set(periods)) > 1:
        bad("$.detectors.LD1.update_rate_fft_intervals", f"LD0 updates every {periods[0]:g} ms and LD1 every "
            f"{periods[1]:g} ms; allowed: the same update period (the state table combines their states).")

    # States, amplitudes and safety.
    states = data["states"]
    amp_lo, amp_hi = data["amplitude_limits_ma"]
    pw = data["pulse_width_us"]
    safety = data["safety"]
    if amp_lo > amp_hi:
        bad("$.amplitude_limits_ma", f"[{amp_lo:g}, {amp_hi:g}]; allowed: low <= high.")
    if amp_hi >= dev.amplitude_max_ma:
        bad("$.amplitude_limits_ma[1]", f"{amp_hi:g} mA; allowed on {target}: below {dev.amplitude_max_ma:g} mA "
            "(25.5 is the HOLD code).")
    if safety["charge_density_limit_uc_per_cm2"] > MAX_DENSITY_LIMIT_UC_PER_CM2:
        bad("$.safety.charge_density_limit_uc_per_cm2", f"{safety['charge_density_limit_uc_per_cm2']:g}; allowed: "
            f"at most {MAX_DENSITY_LIMIT_UC_PER_CM2:g} uC/cm^2/phase.")
    if safety["shannon_k_limit"] > MAX_SHANNON_K:
        bad("$.safety.shannon_k_limit", f"{safety['shannon_k_limit']:g}; allowed: at most {MAX_SHANNON_K:g}.")
    reachable = reachable_states(data)
    for i, s in enumerate(states):
        f = f"$.states[{i}]"
        if s is None:
            if i in reachable:
                bad(f, f"null (invalid) but the detectors can reach state {i} (reachable: {reachable}); allowed: "
                    "an amplitude in mA or \"HOLD\".")
            continue
        if target == "percept" and i > 2:
            bad(f, "Percept has states 0-2 only; allowed: null.")
        if s == HOLD:
            continue
        if not amp_lo <= s <= amp_hi:
            bad(f, f"{s:g} mA is outside amplitude_limits_ma [{amp_lo:g}, {amp_hi:g}].")
        if s >= dev.amplitude_max_ma:
            bad(f, f"{s:g} mA; allowed on {target}: below {dev.amplitude_max_ma:g} mA.")
        if abs(s * 10 - round(s * 10)) > 1e-9:
            bad(f, f"{s!r} mA is not a multiple of the device's 0.1 mA step.")
    if target == "percept" and dets["LD0"]["dual_threshold"] and states[1] != HOLD:
        bad("$.states[1]", "Percept's dual threshold holds the amplitude between thresholds; allowed: \"HOLD\".")
    for field, amp in [("$.amplitude_limits_ma[1]", amp_hi)] + [
        (f"$.states[{i}]", s) for i, s in enumerate(states) if s is not None and s != HOLD
    ]:
        try:
            check_stimulation_safe(amp, pw, safety["contact_area_cm2"], safety["charge_density_limit_uc_per_cm2"],
                                   safety["shannon_k_limit"], field=field)
        except UnsafeStimulationError as exc:
            bad(field, exc.detail, exc.code)
    codes = enc["states_tenths_ma"]
    expected = [amplitude_tenths(s) for s in states]
    if codes != expected:
        bad("$.device_encoding.states_tenths_ma", f"{codes} does not encode states {states} (expected {expected}: "
            f"tenths of a mA, HOLD = {HOLD_TENTHS_MA}, null for unused states).")

    # Timing of stimulation: pulse, rate, ramps.
    for name, (low, high) in (("pulse_width_us", dev.pulse_width_us), ("rate_hz", dev.rate_hz)):
        if not low <= data[name] <= high:
            bad(f"$.{name}", f"{data[name]:g}; allowed on {target}: {low:g} to {high:g}.")
    top = max([s for s in states if s is not None and s != HOLD] or [0.0])
    for name, code_name in (("ramp_up_ma_per_s", "ramp_up"), ("ramp_down_ma_per_s", "ramp_down")):
        r = data[name]
        low, high = dev.ramp_ma_per_s
        if not low <= r <= high:
            bad(f"$.{name}", f"{r:g} mA/s; allowed on {target}: {low:.3g} to {high:g} mA/s.")
        if target == "percept" and top > 0 and not PERCEPT_RAMP_S[0] <= top / r <= PERCEPT_RAMP_S[1]:
            bad(f"$.{name}", f"a ramp over {top / r:.3g} s (to {top:g} mA); Percept ramps over "
                f"{PERCEPT_RAMP_S[0]:g} s to {PERCEPT_RAMP_S[1] / 60:g} min.")
        if r * RAMP_SCALE != round(r * RAMP_SCALE):
            bad(f"$.{name}", f"{r!r} mA/s is not on the device grid; allowed: a multiple of 1/{RAMP_SCALE} mA/s.")
        code = enc[code_name]
        if code != int(round(r * RAMP_SCALE)):
            bad(f"$.device_encoding.{code_name}", f"{code} does not encode {r!r} mA/s (expected "
                f"{int(round(r * RAMP_SCALE))} = mA/s x {RAMP_SCALE}).")
        if not INT32_MIN <= code <= INT32_MAX:
            bad(f"$.device_encoding.{code_name}", f"{code} overflows a signed 32-bit integer.")
    return v


def format_violations(violations: Sequence[Violation], where: str = "") -> str:
    head = f"config {where}: " if where else ""
    items = "; ".join(f"({i + 1}) {x}" for i, x in enumerate(violations))
    return f"{head}{len(violations)} violation(s): {items}"


def check_config(data: Any, dt_s: float | None = None, where: str = "") -> dict:
    """Raise ``ConfigError`` listing every violation; returns ``data`` when valid.

    Code ``PL-CONFIG-SCHEMA`` when the JSON Schema fails, else
    ``PL-CONFIG-INVALID`` (device ranges, encodings, safety).
    """
    violations = validate_config(data, dt_s)
    if violations:
        code = "PL-CONFIG-SCHEMA" if all(x.code == "PL-CONFIG-SCHEMA" for x in violations) else "PL-CONFIG-INVALID"
        raise ConfigError(code, format_violations(violations, where), violations)
    return data
