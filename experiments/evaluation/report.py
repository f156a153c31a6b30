"""Evaluation tables: metrics, per-patient rows, paired differences and detectors as CSV, JSON and console text.

Every table is built from ``agents.evaluation``'s ``EvaluationResult``,
``summarise`` and ``paired_differences``; nothing is recomputed here but the
layout. Controllers that read latent quantities (``uses_latent``) carry a
``uses_latent`` column in the files and a ``(latent)`` mark on the console.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.atomic_io import open_atomic
from agents.evaluation import METRICS, EvaluationResult
from agents.monthly_means import MONTHLY_METRICS
from experiments.common.run_folder import write_json_atomic

METRICS_FORMAT = "painloop.evaluation.metrics/v1"
PAIRED_FORMAT = "painloop.evaluation.paired/v1"
DETECTORS_FORMAT = "painloop.evaluation.detectors/v1"

#: Console columns: metric, header, format of the mean, format of the interval's half-width.
CONSOLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mean_pain_nrs", "pain NRS", "{:.2f}"),
    ("high_pain_fraction", "pain>=7", "{:.1%}"),
    ("responder_30", "resp30", "{:.0%}"),
    ("duty_cycle", "duty", "{:.0%}"),
    ("stim_energy_j_per_day", "stim J/day", "{:.2f}"),
    ("battery_life_years", "battery y", "{:.1f}"),
    ("mild_events_per_day", "mild/day", "{:.2f}"),
    ("switches_per_hour", "switch/h", "{:.2f}"),
    ("reward_per_day", "reward/day", "{:.0f}"),
)
#: Paired columns on the console (difference to the reference).
CONSOLE_PAIRED: tuple[tuple[str, str, str], ...] = (
    ("mean_pain_nrs", "d pain NRS", "{:+.2f}"),
    ("high_pain_fraction", "d pain>=7", "{:+.1%}"),
    ("stim_energy_j_per_day", "d stim J/day", "{:+.2f}"),
    ("reward_per_day", "d reward/day", "{:+.0f}"),
)


def display_label(label: str, uses_latent: bool) -> str:
    """The label as tables and plots show it: latent-reading controllers are marked."""
    return f"{label} (latent)" if uses_latent else label


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    columns = list(rows[0]) if rows else []
    with open_atomic(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def per_patient_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per controller x patient: label, patient index and uid, then every metric."""
    rows = []
    for label in result.labels:
        metrics = result.per_patient[label]
        for i, patient in enumerate(result.patients):
            row: dict[str, Any] = {
                "controller": label,
                "uses_latent": result.uses_latent[label],
                "cohort": patient.cohort,
                "patient_index": patient.index,
                "patient_uid": patient.uid,
            }
            row |= {m: float(metrics[m][i]) for m in METRICS}
            rows.append(row)
    return rows


def monthly_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per controller x patient x 30-day block of the whole run (warm-up included, labelled)."""
    monthly = result.monthly
    rows = []
    for label in result.labels:
        values = monthly.values.get(label, {})
        for i, patient in enumerate(result.patients):
            for b, block in enumerate(monthly.blocks):
                row: dict[str, Any] = {
                    "controller": label,
                    "uses_latent": result.uses_latent[label],
                    "patient_index": patient.index,
                    "patient_uid": patient.uid,
                    "start_day": block.start_day,
                    "length_days": block.length_days,
                    "phase": block.phase,
                }
                row |= {m: float(values[m][i, b]) for m in MONTHLY_METRICS}
                rows.append(row)
    return rows


def detector_rows(result: EvaluationResult) -> dict[str, list[dict[str, Any]]]:
    """Per threshold-kind controller: one fitted ``DetectorConfig`` (``to_dict``) per patient."""
    return {
        label: [
            {"patient_index": p.index, "patient_uid": p.uid, "detector": det.to_dict()}
            for p, det in zip(result.patients, detectors, strict=True)
        ]
        for label, detectors in result.detectors.items()
    }


def write_tables(
    folder: Path,
    result: EvaluationResult,
    summary: list[dict[str, Any]],
    paired: list[dict[str, Any]],
    reference: str,
    meta: dict[str, Any],
) -> list[Path]:
    """metrics.csv/json, per_patient.csv, monthly.csv, paired.csv/json and detectors.json in ``folder``."""
    folder = Path(folder)
    written = [_write_csv(folder / "metrics.csv", summary)]
    written.append(
        write_json_atomic(
            folder / "metrics.json",
            {"format": METRICS_FORMAT, **meta, "metrics": METRICS, "interval": "95% t-interval across patients",
             "controllers": summary},
        )
    )
    written.append(_write_csv(folder / "per_patient.csv", per_patient_rows(result)))
    if result.monthly.blocks:
        written.append(_write_csv(folder / "monthly.csv", monthly_rows(result)))
    written.append(_write_csv(folder / "paired.csv", paired))
    written.append(
        write_json_atomic(
            folder / "paired.json",
            {"format": PAIRED_FORMAT, **meta, "reference": reference,
             "interval": "paired 95% t-interval of (controller - reference) across patients",
             "controllers": paired},
        )
    )
    written.append(
        write_json_atomic(
            folder / "detectors.json",
            {"format": DETECTORS_FORMAT, **meta, "controllers": detector_rows(result)},
        )
    )
    return written


def _half(row: dict[str, Any], key: str) -> float:
    lo, hi = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan
    return (hi - lo) / 2.0


def _cell(fmt: str, mean: float, half: float) -> str:
    text = fmt.format(mean)
    if math.isfinite(half):
        # The interval's half-width in the mean's own format, without the sign.
        text += " ±" + fmt.replace("+", "").format(half)
    return text


def _render(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def console_table(summary: list[dict[str, Any]]) -> str:
    """Key metrics per controller: mean ± half-width of the 95% interval across patients."""
    headers = ["controller"] + [h for _, h, _ in CONSOLE_COLUMNS]
    rows = [
        [display_label(r["controller"], r["uses_latent"])]
        + [_cell(fmt, r[m], _half(r, m)) for m, _, fmt in CONSOLE_COLUMNS]
        for r in summary
    ]
    return _render(headers, rows)


def console_paired(paired: list[dict[str, Any]], reference: str) -> str:
    """Key paired differences (controller - reference): mean ± half-width of the paired 95% interval."""
    headers = [f"vs {reference}"] + [h for _, h, _ in CONSOLE_PAIRED]
    rows = [
        [display_label(r["controller"], r["uses_latent"])]
        + [_cell(fmt, r[f"{m}_diff"], _half(r, f"{m}_diff")) for m, _, fmt in CONSOLE_PAIRED]
        for r in paired
        if r["controller"] != reference
    ]
    return _render(headers, rows)


def write_headroom(folder: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """headroom.csv: each controller's share of the headroom (``agents.headroom``)."""
    return _write_csv(folder / "headroom.csv", rows)


def console_headroom(rows: Sequence[dict[str, Any]], n_patients: int | None = None) -> str:
    """Share of headroom closed per controller, with the headroom itself (paired intervals).

    ``n_patients``: the evaluation's, to say when the headroom was measured on fewer of them.
    """
    first = rows[0]
    lo, hi = first["headroom_ci_low"], first["headroom_ci_high"]
    note = "" if lo > 0 else "; its interval reaches 0, so the shares below are ratios of noise"
    on = first.get("n_patients")
    where = f" on the first {on} of {n_patients} patients" if on and n_patients and on < n_patients else ""
    head = (f"share of headroom closed{where}: 0 = best non-privileged baseline '{first['baseline']}', 1 = bound "
            f"'{first['bound']}' (headroom {first['headroom_reward_per_day']:+,.0f} reward/day [{lo:+,.0f}, {hi:+,.0f}], "
            f"{first['headroom_pain_nrs']:+.3f} NRS of pain [{first['headroom_pain_ci_low']:+.3f}, "
            f"{first['headroom_pain_ci_high']:+.3f}]{note}); paired bootstrap 95% intervals")
    matched = first.get("headroom_matched_pain_nrs", math.nan)
    if math.isfinite(matched):
        head += (f"\npain at matched energy: 0 = the baselines' front at the controller's energy, 1 = the bound's "
                 f"lead over it at its own ({matched:+.3f} NRS [{first['headroom_matched_pain_ci_low']:+.3f}, "
                 f"{first['headroom_matched_pain_ci_high']:+.3f}])")

    def cell(r: dict[str, Any], key: str) -> str:
        v, a, b = r.get(key, math.nan), r.get(f"{key}_ci_low", math.nan), r.get(f"{key}_ci_high", math.nan)
        return "-" if not math.isfinite(v) else f"{v:+.2f} [{a:+.2f}, {b:+.2f}]" if math.isfinite(a) else f"{v:+.2f}"

    table = [[display_label(r["controller"], r["uses_latent"]), cell(r, "reward_share"), cell(r, "pain_share"),
              cell(r, "matched_pain_share")] for r in rows]
    return head + "\n" + _render(["controller", "reward share", "pain share", "pain share, matched energy"], table)
