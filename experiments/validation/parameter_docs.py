"""docs/model.md's parameter, cohort-preset and derived-value tables, generated from the code.

The parameter table comes from ``simenv.params.iter_parameter_metadata()``
(field, default, allowed range, meaning and source live in the dataclass
field metadata); the preset table from ``simenv.cohort.load_preset`` for
every shipped preset. Both sit between marker comments in docs/model.md, so
a test can regenerate them and fail when the document has drifted.

Regenerate with ``python -m experiments.parameter_docs`` (or
``python -m experiments.validate_model --write-docs-table``); both call
``write_tables``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.atomic_io import write_text_atomic
from simenv import layout as L
from simenv.cohort import Patient, available_presets, load_preset
from simenv.core import BatchedCore, tolerance_equilibrium
from simenv.kernel import dose_response
from simenv.params import (
    GROUPS,
    SECONDS_PER_DAY,
    SECONDS_PER_YEAR,
    PatientParams,
    iter_parameter_metadata,
)
from simenv.safety import (
    charge_density_uc_per_cm2,
    charge_per_phase_uc,
    max_safe_amplitude_ma,
    shannon_k,
)

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "model.md"
PARAMS_BEGIN = "<!-- params:begin -->"
PARAMS_END = "<!-- params:end -->"
PRESETS_BEGIN = "<!-- presets:begin -->"
PRESETS_END = "<!-- presets:end -->"
DERIVED_BEGIN = "<!-- derived:begin -->"
DERIVED_END = "<!-- derived:end -->"

#: Unit of a field from its name's suffix (longest suffix wins).
UNIT_SUFFIXES: dict[str, str] = {
    "_uc_per_cm2": "uC/cm^2",
    "_ma_per_s": "mA/s",
    "_per_week": "1/week",
    "_per_day": "1/day",
    "_nrs": "NRS",
    "_hour": "h (clock)",
    "_days": "d",
    "_min": "min",
    "_cm2": "cm^2",
    "_ohm": "ohm",
    "_uc": "uC",
    "_db": "dB",
    "_ma": "mA",
    "_us": "us",
    "_hz": "Hz",
    "_uw": "uW",
    "_h": "h",
    "_s": "s",
    "_j": "J",
}


def unit_of(field_name: str) -> str:
    """Unit read from the field name's suffix; ``1`` for dimensionless fields."""
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if field_name.endswith(suffix):
            return UNIT_SUFFIXES[suffix]
    return "1"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _range_text(meta: dict[str, Any]) -> str:
    left = "(" if meta["low_open"] else "["
    right = ")" if meta["high_open"] else "]"
    return f"{left}{meta['low']:g}, {meta['high']:g}{right}"


def render_parameter_table() -> str:
    """The parameter table (markdown) generated from the dataclass metadata."""
    lines = [
        "| group | field | unit | default | allowed range | meaning | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, name, default, meta in iter_parameter_metadata():
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    group,
                    f"`{name}`",
                    unit_of(name),
                    f"{default:g}",
                    _range_text(meta),
                    meta["doc"],
                    meta["source"],
                )
            )
            + " |"
        )
    return "\n".join(lines)


def distribution_text(spec: dict[str, Any]) -> str:
    """Human form of a preset distribution spec, e.g. ``lognormal(median 30, log-SD 1) in [5, 300]``."""
    if "constant" in spec:
        text = f"constant {float(spec['constant']):g}"
    elif "normal" in spec:
        mean, sd = spec["normal"]
        text = f"normal(mean {float(mean):g}, SD {float(sd):g})"
    elif "lognormal" in spec:
        median, log_sd = spec["lognormal"]
        text = f"lognormal(median {float(median):g}, log-SD {float(log_sd):g})"
    elif "uniform" in spec:
        low, high = spec["uniform"]
        text = f"uniform({float(low):g}, {float(high):g})"
    else:  # pragma: no cover - load_preset already refuses other kinds
        text = repr(dict(spec))
    if "clip" in spec:
        low, high = spec["clip"]
        text += f", clipped to [{float(low):g}, {float(high):g}]"
    return text


def render_preset_tables() -> str:
    """Population distributions of every shipped cohort preset (markdown)."""
    names = available_presets()
    presets = [load_preset(n) for n in names]
    lines = ["| preset | seed | default n_patients | description |", "|---|---|---|---|"]
    for p in presets:
        lines.append(f"| `{p.name}` | {p.seed} | {p.n_patients} | {_cell(p.description.strip())} |")
    lines += ["", "Distributions (a parameter not listed for a preset is fixed at the preset's base value):", ""]
    keys = sorted({k for p in presets for k, _ in p.distributions})
    lines.append("| parameter | " + " | ".join(f"`{n}`" for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for key in keys:
        cells = []
        for p in presets:
            spec = dict(p.distributions).get(key)
            if spec is None:
                group, name = key.split(".", 1)
                spec_text = f"fixed {getattr(getattr(p.base, group), name):g}"
            else:
                spec_text = distribution_text(dict(spec))
            cells.append(_cell(spec_text))
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    overrides = []
    defaults = {g: klass() for g, klass in GROUPS.items()}
    for p in presets:
        for group in GROUPS:
            base_group = getattr(p.base, group)
            for name, value in vars(base_group).items():
                if getattr(defaults[group], name) != value:
                    overrides.append(f"- `{p.name}`: `{group}.{name}` = {value:g}")
    lines += ["", "Base values that differ from the parameter defaults:", ""]
    lines += overrides or ["- none: every preset's base is the parameter defaults."]
    return "\n".join(lines)


def _held_amplitude_outputs(params: PatientParams, amplitude_ma: float, dt_s: float = 30.0) -> np.ndarray:
    """Outputs of one simulator step at a steady amplitude (the ramp done in earlier steps)."""
    core = BatchedCore(1, dt_s=dt_s)
    core.reset_slots([0], [Patient(uid=0, cohort="docs", index=0, params=params)], [0], [0])
    ramp_steps = int(np.ceil(amplitude_ma / params.stimulation.ramp_ma_per_s / dt_s)) + 1
    for _ in range(ramp_steps + 1):
        out = core.step(np.array([amplitude_ma]))
    return out[0].copy()


def derived_values(params: PatientParams | None = None) -> list[tuple[str, float, str, str]]:
    """Consequences of the default parameters: (quantity, value, unit, how it is obtained)."""
    p = params or PatientParams()
    st, r, pain, rep, se = p.stimulation, p.relief, p.pain, p.reports, p.side_effects
    q_on = charge_per_phase_uc(st.on_amplitude_ma, st.pulse_width_us)
    q_max = charge_per_phase_uc(st.amplitude_max_ma, st.pulse_width_us)
    effect_on = dose_response(q_on, r.half_effect_charge_uc, r.hill_coefficient)
    effect_max = dose_response(q_max, r.half_effect_charge_uc, r.hill_coefficient)
    excess = max(pain.baseline_nrs - r.floor_nrs, 0.0)
    tol_eq = tolerance_equilibrium(p)
    out = _held_amplitude_outputs(p, st.on_amplitude_ma)
    dt = 30.0
    stim_w = out[L.O_STIM_ENERGY_J] / dt
    drawn_w = out[L.O_DRAWN_ENERGY_J] / dt
    p_mild = out[L.O_SIDE_EFFECT_EXPECTED]  # no seizure hazard at a steady amplitude
    x = (st.ramp_ma_per_s / se.seizure_half_rate_ma_per_s) ** se.seizure_rate_exponent
    rate_h = pain.flare_rate_per_week / (7 * 24)
    mean_flare_h = pain.flare_median_duration_h * float(np.exp(0.5 * pain.flare_duration_log_sd**2))
    return [
        ("charge per phase at `on_amplitude_ma`", q_on, "uC", "`amplitude * pulse_width_us * 1e-3`"),
        ("`effect` at `on_amplitude_ma`", effect_on, "1", "`kernel.dose_response`"),
        ("`effect` at `amplitude_max_ma`", effect_max, "1", "`kernel.dose_response`"),
        ("relief at drive = `baseline_nrs`, on amplitude, no tolerance", max(0.0, r.max_relief_fraction * effect_on * excess), "NRS",
         "`max_relief_fraction * effect * (baseline_nrs - floor_nrs)`"),
        ("the same at saturating charge (DOMAIN.md's ~2.5 NRS)", r.max_relief_fraction * excess, "NRS",
         "`max_relief_fraction * (baseline_nrs - floor_nrs)`"),
        ("tolerance equilibrium under continuous on-amplitude stimulation", tol_eq, "1",
         "`core.tolerance_equilibrium`: `(1 - efficacy_floor) * effect`"),
        ("efficacy left at that equilibrium", 1.0 - tol_eq, "1", "`1 - tolerance`"),
        ("stimulation power (TEED) at the on amplitude", stim_w * 1e6, "uW", "one simulated step, `O_STIM_ENERGY_J / dt`"),
        ("stimulation energy per day, continuous", stim_w * SECONDS_PER_DAY, "J/day", "power x 86400 s"),
        ("battery draw, continuous", drawn_w * 1e6, "uW", "one simulated step, `O_DRAWN_ENERGY_J / dt`"),
        ("projected battery life, continuous", p.battery.capacity_j / drawn_w / SECONDS_PER_YEAR, "years",
         "`capacity_j / draw / (365.25 * 86400)`"),
        ("battery life with stimulation off (overhead only)", p.battery.capacity_j / (p.battery.overhead_uw * 1e-6) / SECONDS_PER_YEAR,
         "years", "`capacity_j / overhead`"),
        ("mild side effects, continuous at the on amplitude", -np.log1p(-p_mild) / dt * SECONDS_PER_DAY, "1/day",
         "one simulated step, `O_SIDE_EFFECT_EXPECTED`"),
        ("seizure hazard factor `h` of the default ramp", x / (1.0 + x), "1", "relative to an abrupt step"),
        ("charge density at `amplitude_max_ma`", charge_density_uc_per_cm2(st.amplitude_max_ma, st.pulse_width_us, st.contact_area_cm2),
         "uC/cm^2", "`safety.charge_density_uc_per_cm2`"),
        ("Shannon k at `amplitude_max_ma`", shannon_k(st.amplitude_max_ma, st.pulse_width_us, st.contact_area_cm2), "1",
         "`safety.shannon_k`"),
        ("largest safe amplitude at this pulse width and contact", max_safe_amplitude_ma(
            st.pulse_width_us, st.contact_area_cm2, st.charge_density_limit_uc_per_cm2, st.shannon_k_limit), "mA",
         "`safety.max_safe_amplitude_ma`"),
        ("time fraction in a flare (long run)", rate_h * mean_flare_h / (1.0 + rate_h * mean_flare_h), "1",
         "`lambda E[D] / (1 + lambda E[D])`"),
        ("answered self-reports per day", rep.reports_per_day * rep.adherence, "1/day", "`reports_per_day * adherence`"),
    ]


def render_derived_table() -> str:
    """Markdown table of ``derived_values()`` at the parameter defaults."""
    lines = ["| quantity at the defaults | value | unit | obtained from |", "|---|---|---|---|"]
    for name, value, unit, how in derived_values():
        lines.append(f"| {_cell(name)} | {value:.4g} | {unit} | {_cell(how)} |")
    return "\n".join(lines)


def _replace_between(text: str, begin: str, end: str, body: str) -> str:
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    return text[:start] + "\n" + body + "\n" + text[stop:]


def extract_between(text: str, begin: str, end: str) -> str:
    """The text between two marker comments, without surrounding newlines."""
    return text[text.index(begin) + len(begin) : text.index(end)].strip("\n")


def write_tables(path: Path = DOCS_PATH) -> Path:
    """Rewrite both generated tables of docs/model.md in place; returns the path."""
    text = path.read_text()
    text = _replace_between(text, PARAMS_BEGIN, PARAMS_END, render_parameter_table())
    text = _replace_between(text, PRESETS_BEGIN, PRESETS_END, render_preset_tables())
    text = _replace_between(text, DERIVED_BEGIN, DERIVED_END, render_derived_table())
    write_text_atomic(path, text)
    return path
