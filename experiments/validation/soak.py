"""The long-horizon soak: many patients for a simulated year, checked against closed forms and rates.

The library of ``python -m experiments.soak`` (``soak(...)`` returns the
report; the command writes it and sets the exit code).

Two parts, each on the ``default`` cohort at ``dt_s`` = 30 s:

``baselines``
    every baseline of ``conf/controller/`` through the paired evaluation
    engine (``agents.evaluation.evaluate``, the code every table uses). The
    simulator checks its state for NaN/inf at the end of the episode; on top:
    every per-patient metric is finite, battery life projections are finite
    and positive, battery draw equals energy / efficiency + overhead x time
    for every controller, stimulation energy is zero under ``off`` and equals
    the closed form under ``continuous`` (a ramp from 0 at the patient's ramp
    rate to its on-amplitude, then constant: E = P A^2 (T - 2 A / (3 r)),
    with P the power per mA^2; exact in the kernel's piecewise integration).
``processes``
    the bare simulator core with stimulation off, step by step, counting
    flare onsets and self-reports. Each step outside a flare starts one with
    the patient's per-step probability, and each awake step brings a report
    with probability prompt x adherence; so, given the steps at risk, the
    counts are sums of independent Bernoulli trials. The cohort totals must
    lie within the 99% bound (|observed - expected| <= 2.576 SD).

Tolerances: float64 sums over a year of 30 s steps agree with the closed
forms to about 1e-12 relative; the checks allow ``RTOL`` = 1e-9.

Each part records its wall time. docs/reliability.md lists the figures of
the full run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from simenv import layout as L
from simenv.params import SECONDS_PER_DAY

BASELINES = ("off", "continuous", "cycling", "threshold", "dual_threshold", "latent_threshold", "random")
PARTS = ("baselines", "processes")
Z99 = 2.5758293035489004  # two-sided 99% normal quantile
RTOL = 1e-9
DT_S = 30.0


def _patients(n_patients: int, cohort: str):
    from simenv.cohort import resolve_patients

    return resolve_patients(cohort, n_patients=n_patients)


def _rows(patients) -> np.ndarray:
    from simenv.core import param_row

    return np.array([param_row(p.params, DT_S, 0.0) for p in patients])


def _close(a: np.ndarray, b: np.ndarray, atol: float = 0.0) -> tuple[bool, float]:
    """(all close, worst relative error)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    err = np.abs(a - b)
    scale = np.maximum(np.abs(b), 1e-300)
    ok = bool(np.all(err <= RTOL * np.abs(b) + atol))
    return ok, float(np.max(np.where(np.abs(b) > 0, err / scale, err))) if a.size else 0.0


def continuous_energy_j(patients, horizon_s: float) -> np.ndarray:
    """Closed-form stimulation energy of constant stimulation at the on-amplitude from 0 mA."""
    rows = _rows(patients)
    amp = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
    ramp = rows[:, L.P_RAMP_MA_PER_S]
    power = rows[:, L.P_POWER_W_PER_MA2]
    ramp_s = amp / ramp
    if np.any(ramp_s > horizon_s):
        raise ValueError("the horizon is shorter than a ramp; the closed form assumes the ramp ends")
    return power * amp**2 * (horizon_s - 2.0 * ramp_s / 3.0)


def check_baselines(patients, days: float, controllers: Sequence[str], seed: int) -> dict:
    """Every controller on ``patients`` for ``days``: finiteness, battery identity, closed-form energy."""
    from agents.evaluation import evaluate
    from experiments.common.controller_entries import load_controller
    from simenv.batch import EnvSettings

    specs = [load_controller(name, name) for name in controllers]
    settings = EnvSettings(action_mode="on_off", dt_s=DT_S, horizon_days=float(days), initial_state="naive")
    t0 = time.perf_counter()
    result = evaluate(specs, patients, settings, seed=seed, trace_patient=-1)
    wall = time.perf_counter() - t0
    rows = _rows(patients)
    horizon_s = settings.horizon_steps * DT_S
    eff, overhead_w = rows[:, L.P_EFFICIENCY], rows[:, L.P_OVERHEAD_W]
    out: dict = {"wall_s": wall, "patient_steps": len(patients) * settings.horizon_steps * len(specs),
                 "controllers": {}}
    for label in result.labels:
        m = result.per_patient[label]
        energy = m["stim_energy_j_per_day"] * horizon_s / SECONDS_PER_DAY
        drawn = m["battery_draw_j_per_day"] * horizon_s / SECONDS_PER_DAY
        nonfinite = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
        life = m["battery_life_years"]
        draw_ok, draw_err = _close(drawn, energy / eff + overhead_w * horizon_s)
        rec: dict = {
            "nonfinite_metrics": nonfinite,
            "battery_life_years_min": float(np.min(life)),
            "battery_life_years_max": float(np.max(life)),
            "battery_life_finite": bool(np.all(np.isfinite(life)) and np.all(life > 0)),
            "battery_identity_ok": draw_ok,
            "battery_identity_max_rel_err": draw_err,
            "stim_energy_j_mean": float(np.mean(energy)),
        }
        kind = next(s.kind for s in specs if s.label == label)
        if kind == "continuous":
            ok, err = _close(energy, continuous_energy_j(patients, horizon_s))
            rec |= {"closed_form_energy_ok": ok, "closed_form_max_rel_err": err}
        elif kind == "off":
            rec |= {"closed_form_energy_ok": bool(np.all(energy == 0.0)), "closed_form_max_rel_err": 0.0}
        rec["ok"] = bool(not nonfinite and rec["battery_life_finite"] and draw_ok
                         and rec.get("closed_form_energy_ok", True))
        out["controllers"][label] = rec
    out["ok"] = all(r["ok"] for r in out["controllers"].values())
    return out


def _bound(name: str, observed: float, expected: float, variance: float) -> dict:
    sd = math.sqrt(variance)
    z = (observed - expected) / sd if sd > 0 else (0.0 if observed == expected else math.inf)
    return {"what": name, "observed": observed, "expected": expected, "sd": sd, "z": z,
            "bound_99": Z99 * sd, "ok": abs(z) <= Z99}


def check_processes(patients, days: float, seed: int) -> dict:
    """Flare onsets and self-reports under ``off`` against their configured rates (99% bounds)."""
    from simenv.batch import EnvSettings, PainStimBatch

    settings = EnvSettings(action_mode="on_off", dt_s=DT_S, horizon_days=float(days), initial_state="naive")
    t0 = time.perf_counter()
    batch = PainStimBatch(list(patients), settings)
    batch.reset(seed=seed)
    core = batch.core
    n = len(patients)
    zeros = np.zeros(n)
    at_risk = np.zeros(n)
    onsets = np.zeros(n)
    awake = np.zeros(n)
    reports = np.zeros(n)
    flare_left = core.state[:, L.S_FLARE_LEFT_S]  # a view: rows are updated in place
    steps = settings.horizon_steps
    for _ in range(steps):
        eligible = flare_left <= 0.0
        out = core.step(zeros)
        at_risk += eligible
        onsets += eligible & (flare_left > 0.0)
        awake += out[:, L.O_ASLEEP] == 0.0
        reports += ~np.isnan(out[:, L.O_REPORT_NRS])
    core.check_finite(range(n), when="end of soak")
    wall = time.perf_counter() - t0
    rows = _rows(patients)
    p_flare = rows[:, L.P_FLARE_ONSET_PROB]
    p_report = rows[:, L.P_REPORT_PROB] * rows[:, L.P_ADHERENCE]
    rate_per_week = np.array([p.params.pain.flare_rate_per_week for p in patients])
    reports_per_day = np.array([p.params.reports.reports_per_day * p.params.reports.adherence for p in patients])
    flares = _bound("flare onsets", float(onsets.sum()), float((at_risk * p_flare).sum()),
                    float((at_risk * p_flare * (1 - p_flare)).sum()))
    flares["configured_rate_x_time_outside_flares"] = float((rate_per_week * at_risk * DT_S / (7 * SECONDS_PER_DAY)).sum())
    flares["fraction_of_time_in_flares"] = float(1.0 - at_risk.sum() / (n * steps))
    rep = _bound("self-reports", float(reports.sum()), float((awake * p_report).sum()),
                 float((awake * p_report * (1 - p_report)).sum()))
    rep["configured_rate_x_days"] = float((reports_per_day * steps * DT_S / SECONDS_PER_DAY).sum())
    return {"wall_s": wall, "patient_steps": n * steps, "flares": flares, "reports": rep,
            "ok": bool(flares["ok"] and rep["ok"])}


def soak(n_patients: int = 1000, days: float = 365.0, controllers: Sequence[str] = BASELINES,
         parts: Sequence[str] = PARTS, seed: int = 0, cohort: str = "default",
         on_part: Callable[[dict], None] | None = None) -> dict:
    """Run the soak; returns the report (``report["ok"]`` is the verdict).

    ``on_part(report)`` is called after each part (the command writes the
    partial report then, so a long run that is stopped keeps what finished).
    """
    patients = _patients(n_patients, cohort)
    report: dict = {"patients": n_patients, "days": days, "dt_s": DT_S, "cohort": cohort, "seed": seed,
                    "parts": list(parts)}
    for part in PARTS:
        if part not in parts:
            continue
        if part == "processes":
            report[part] = check_processes(patients, days, seed)
        else:
            report[part] = check_baselines(patients, days, controllers, seed)
        report["ok"] = all(report[p]["ok"] for p in parts if p in report)
        report["complete"] = all(p in report for p in parts)
        if on_part is not None:
            on_part(report)
    return report


def render_summary(report: dict) -> str:
    """The report as printed: each check, its figures and its verdict."""
    lines = [f"soak: {report['patients']} patients x {report['days']:g} days, dt_s {report['dt_s']:g}"]
    if "processes" in report:
        pr = report["processes"]
        for key in ("flares", "reports"):
            r = pr[key]
            lines.append(f"  {r['what']}: observed {r['observed']:.0f}, expected {r['expected']:.1f} "
                         f"(99% bound +-{r['bound_99']:.1f}, z = {r['z']:+.2f}) {'ok' if r['ok'] else 'FAIL'}")
        lines.append(f"  processes: {pr['patient_steps']:,} patient-steps in {pr['wall_s']:.0f} s")
    if "baselines" in report:
        b = report["baselines"]
        for label, r in b["controllers"].items():
            extra = (f", closed-form energy rel. err {r['closed_form_max_rel_err']:.1e}"
                     if "closed_form_energy_ok" in r else "")
            lines.append(f"  {label}: battery life {r['battery_life_years_min']:.2f}-{r['battery_life_years_max']:.2f} y, "
                         f"draw identity rel. err {r['battery_identity_max_rel_err']:.1e}{extra}, "
                         f"non-finite {r['nonfinite_metrics'] or 'none'} {'ok' if r['ok'] else 'FAIL'}")
        lines.append(f"  baselines: {b['patient_steps']:,} patient-steps in {b['wall_s']:.0f} s")
    lines.append("soak: " + ("all checks hold" if report["ok"] else "CHECKS FAILED"))
    return "\n".join(lines)
