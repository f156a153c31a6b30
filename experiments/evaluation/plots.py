"""Figures of ``experiments.evaluate`` (matplotlib ``Figure`` objects on the Agg canvas, PNG files).

- ``trace_<label>.png``: the trace patient's first day under one controller:
  latent pain with the pain drive it would have without relief and the
  self-reports, the biomarker detector score with its threshold(s), the
  stimulation amplitude, and the cumulative stimulation energy;
- ``bars.png``: one panel per main metric, a bar per controller with its 95%
  interval across patients;
- ``pareto.png``: mean pain against stimulation energy per day, each
  controller's mean with its 95% interval on both axes (left), and the
  paired differences to the reference with paired 95% intervals (right);
- ``monthly.png``: monthly (30-day) means over the whole run, warm-up
  shaded: pain, efficacy (1 - tolerance) and stimulation energy per
  controller, mean across patients: how tolerance and energy separate
  controllers over months.

Controllers that read latent quantities are hatched (bars), drawn as hollow
stars (scatter) and labelled "(latent)". Sizes are fixed (no tight bounding
box), so every PNG has the pixel size given by ``SIZES_PX``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from agents.atomic_io import save_figure_atomic
from agents.evaluation import METRICS, EvaluationResult
from experiments.evaluation.report import display_label
from simenv.params import SECONDS_PER_HOUR

DPI = 100
#: Pixel size (width, height) of each figure kind.
SIZES_PX: dict[str, tuple[int, int]] = {
    "trace": (1100, 900), "bars": (1600, 1200), "pareto": (1500, 700), "monthly": (1500, 560),
}
#: Panels of the monthly figure: metric of ``agents.monthly_means.MONTHLY_METRICS`` and its axis label.
MONTHLY_PANELS: tuple[tuple[str, str], ...] = (
    ("pain_nrs", "mean pain (NRS)"),
    ("efficacy", "efficacy (1 - tolerance)"),
    ("stim_energy_j_per_day", "stimulation energy (J/day)"),
)
#: Metrics in the bar chart (the reward terms stay in the tables).
BAR_METRICS: tuple[str, ...] = tuple(m for m in METRICS if not m.startswith("term_"))
HIGH_PAIN_NRS = 7.0


def _figure(kind: str, **kwargs: Any) -> Figure:
    w, h = SIZES_PX[kind]
    return Figure(figsize=(w / DPI, h / DPI), dpi=DPI, **kwargs)


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def plot_trace(
    result: EvaluationResult,
    label: str,
    path: Path,
    trace_patient: int,
    color: Any = "tab:blue",
) -> Path:
    """The trace patient's first day under controller ``label`` (four panels sharing the time axis)."""
    tr = result.traces[label]
    kept = np.isfinite(tr["elapsed_s"])  # a horizon shorter than the trace leaves the tail unfilled
    tr = {k: v[kept] for k, v in tr.items()}
    patient = result.patients[trace_patient]
    hours = tr["elapsed_s"] / SECONDS_PER_HOUR
    fig = _figure("trace")
    ax_pain, ax_score, ax_amp, ax_energy = fig.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.2, 1.5]}
    )
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.06, hspace=0.12)
    name = display_label(label, result.uses_latent[label])
    fig.suptitle(
        f"{name}: patient {patient.index} of cohort '{patient.cohort}' (uid {patient.uid}), first "
        f"{hours[-1] / 24:.3g} day(s), seed {result.seed}",
        fontsize=11,
    )

    ax_pain.plot(hours, tr["pain_drive_nrs"], color="0.6", lw=0.8, ls="--", label="pain drive (no relief)")
    ax_pain.plot(hours, tr["pain_nrs"], color=color, lw=1.0, label="latent pain")
    rep = tr["self_report"]
    has = ~np.isnan(rep)
    ax_pain.plot(hours[has], rep[has], "o", color="k", ms=5, label=f"self-reports ({int(has.sum())})")
    ax_pain.axhline(HIGH_PAIN_NRS, color="0.2", lw=0.7, ls=":", label="high pain (7 NRS)")
    ax_pain.set_ylim(0, 10)
    ax_pain.set_ylabel("pain (NRS)")
    ax_pain.legend(loc="upper right", fontsize=8, ncol=4)

    score = tr["detector_score"]
    if np.isfinite(score).any():
        ax_score.plot(hours, score, color=color, lw=0.8, label="detector score (device arithmetic)")
        ax_score.step(hours, tr["detector_threshold"], where="post", color="k", lw=1.0, label="threshold (low, B0)")
        detectors = result.detectors.get(label)
        det = detectors[trace_patient] if detectors else None
        if det is not None and det.dual_threshold:
            ax_score.axhline(det.threshold_high, color="k", lw=1.0, ls="--", label="threshold (high, B1)")
        ax_score.legend(loc="upper right", fontsize=8, ncol=3)
    else:
        what = "reads the latent pain drive (top panel)" if result.uses_latent[label] else "open loop"
        ax_score.text(0.5, 0.5, f"no biomarker detector: {what}", ha="center", va="center",
                      transform=ax_score.transAxes, color="0.4")
        ax_score.set_yticks([])
    ax_score.set_ylabel("detector score")

    amp = tr["amplitude_ma"]
    ax_amp.fill_between(hours, 0.0, amp, step="pre", color=color, alpha=0.7, lw=0)
    duty = float(np.mean(amp > 0)) if len(amp) else math.nan
    ax_amp.set_ylabel("amplitude (mA)")
    ax_amp.set_ylim(0, max(float(np.nanmax(amp)) if len(amp) else 0.0, 1.0) * 1.15)
    ax_amp.text(0.995, 0.92, f"on {duty:.0%} of the time shown", ha="right", va="top", transform=ax_amp.transAxes,
                fontsize=8, bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0})

    ax_energy.plot(hours, tr["stim_energy_total_j"], color=color, lw=1.2)
    ax_energy.set_ylabel("cumulative\nstim energy (J)")
    ax_energy.set_xlabel("hours since the start of the scored window")
    ax_energy.set_xlim(0, max(float(hours[-1]), 1e-9) if len(hours) else 1.0)
    save_figure_atomic(fig, path, dpi=DPI)
    return path


def _bar_panel(ax: Any, summary: list[dict[str, Any]], metric: str, colors: dict[str, Any], reference: str) -> None:
    x = np.arange(len(summary))
    means = np.array([r[metric] for r in summary], dtype=float)
    lo = np.array([r[f"{metric}_ci_low"] for r in summary], dtype=float)
    hi = np.array([r[f"{metric}_ci_high"] for r in summary], dtype=float)
    err = np.vstack([means - lo, hi - means])
    err = np.where(np.isfinite(err), err, 0.0)
    for i, r in enumerate(summary):
        ax.bar(
            x[i],
            means[i],
            color=colors[r["controller"]],
            hatch="//" if r["uses_latent"] else None,
            edgecolor="k" if r["controller"] == reference else "none",
            linewidth=1.2,
        )
    ax.errorbar(x, means, yerr=err, fmt="none", ecolor="k", capsize=3, lw=1)
    ax.set_xticks(x, [display_label(r["controller"], r["uses_latent"]) for r in summary], rotation=35, ha="right",
                  fontsize=8)
    ax.set_title(f"{metric}\n{METRICS[metric]}", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.axhline(0, color="0.3", lw=0.5)


def plot_bars(summary: list[dict[str, Any]], path: Path, reference: str, title: str,
              metrics: Sequence[str] = BAR_METRICS) -> Path:
    """One panel per metric: each controller's mean with its 95% interval across patients."""
    colors = _colors([r["controller"] for r in summary])
    ncols = 4
    nrows = math.ceil(len(metrics) / ncols)
    fig = _figure("bars")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    fig.subplots_adjust(left=0.05, right=0.99, top=0.91, bottom=0.08, hspace=0.75, wspace=0.22)
    for ax, metric in zip(axes, metrics, strict=False):
        _bar_panel(ax, summary, metric, colors, reference)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\nbars: mean across patients, whiskers: 95% interval; outlined: reference "
                 f"'{reference}'; hatched: reads latent state", fontsize=10)
    save_figure_atomic(fig, path, dpi=DPI)
    return path


def _scatter(ax: Any, rows: list[dict[str, Any]], x_key: str, y_key: str, colors: dict[str, Any]) -> None:
    """Each row's (x, y) with its interval whiskers ('<key>_ci_low/high'); latent rows as hollow stars."""
    for r in rows:
        x, y = r[x_key], r[y_key]
        xerr = np.nan_to_num(np.array([[x - r[f"{x_key}_ci_low"]], [r[f"{x_key}_ci_high"] - x]], dtype=float))
        yerr = np.nan_to_num(np.array([[y - r[f"{y_key}_ci_low"]], [r[f"{y_key}_ci_high"] - y]], dtype=float))
        c = colors[r["controller"]]
        latent = r["uses_latent"]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=c, elinewidth=1, capsize=3, alpha=0.8)
        ax.plot(x, y, marker="*" if latent else "o", ms=14 if latent else 9, mfc="none" if latent else c,
                mec=c, mew=1.8, ls="none", label=display_label(r["controller"], latent))
        ax.annotate(r["controller"], (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7)
    ax.grid(alpha=0.3)


def plot_pareto(summary: list[dict[str, Any]], paired: list[dict[str, Any]], reference: str, path: Path,
                title: str, x_metric: str = "stim_energy_j_per_day", y_metric: str = "mean_pain_nrs") -> Path:
    """Mean pain against stimulation energy (left: means with 95% intervals across patients;
    right: paired differences to ``reference`` with paired 95% intervals, which are much narrower
    because every controller sees the same patients and noise)."""
    colors = _colors([r["controller"] for r in summary])
    fig = _figure("pareto")
    ax, ax_d = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.13, wspace=0.15)
    _scatter(ax, summary, x_metric, y_metric, colors)
    ax.set_xlabel(f"{x_metric}\n{METRICS[x_metric]}", fontsize=9)
    ax.set_ylabel(f"{y_metric}: {METRICS[y_metric]}", fontsize=9)
    ax.set_title("means, 95% intervals across patients", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    others = [r for r in paired if r["controller"] != reference]
    _scatter(ax_d, others, f"{x_metric}_diff", f"{y_metric}_diff", colors)
    ax_d.plot(0.0, 0.0, marker="o", ms=9, ls="none", color=colors.get(reference, "k"))
    ax_d.annotate(reference, (0.0, 0.0), xytext=(5, 5), textcoords="offset points", fontsize=7)
    ax_d.axhline(0, color="k", lw=0.8)
    ax_d.axvline(0, color="k", lw=0.8)
    ax_d.margins(x=0.1, y=0.1)
    ax_d.set_xlabel(f"{x_metric} - {reference}", fontsize=9)
    ax_d.set_ylabel(f"{y_metric} - {reference}", fontsize=9)
    ax_d.set_title(f"paired differences to '{reference}' (at 0, 0), paired 95% intervals", fontsize=9)
    fig.suptitle(f"{title}: pain against stimulation energy (lower-left is better; hollow stars read "
                 "latent state)", fontsize=10)
    save_figure_atomic(fig, path, dpi=DPI)
    return path


def plot_monthly(result: EvaluationResult, path: Path, title: str) -> Path:
    """Monthly means across patients of pain, efficacy and energy per controller; the warm-up shaded."""
    monthly = result.monthly
    colors = _colors(result.labels)
    fig = _figure("monthly")
    axes = fig.subplots(1, len(MONTHLY_PANELS))
    fig.subplots_adjust(left=0.05, right=0.86, top=0.80, bottom=0.12, wspace=0.28)
    mid = np.array([b.start_day + b.length_days / 2 for b in monthly.blocks])
    warm_end = max((b.start_day + b.length_days for b in monthly.blocks if not b.scored), default=0.0)
    for ax, (metric, ylabel) in zip(axes, MONTHLY_PANELS, strict=True):
        if warm_end > 0:
            ax.axvspan(0.0, warm_end, color="0.9", lw=0, label="warm-up (not scored)")
        for label in result.labels:
            values = monthly.values[label][metric]
            latent = result.uses_latent[label]
            ax.plot(mid, np.nanmean(values, axis=0), marker="*" if latent else "o", ms=5, lw=1.2,
                    ls="--" if latent else "-", color=colors[label], label=display_label(label, latent))
        ax.set_xlabel("days since the start of the run (block midpoints)")
        ax.set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"{title}\nmonthly (30-day) means across patients", fontsize=10)
    save_figure_atomic(fig, path, dpi=DPI)
    return path


def write_plots(
    folder: Path,
    result: EvaluationResult,
    summary: list[dict[str, Any]],
    paired: list[dict[str, Any]],
    reference: str,
    trace_patient: int,
    title: str,
) -> list[Path]:
    """Every figure of an evaluation into ``folder``; returns the paths written."""
    folder = Path(folder)
    colors = _colors(result.labels)
    written = [
        plot_trace(result, label, folder / f"trace_{label}.png", trace_patient, colors[label])
        for label in result.labels
        if label in result.traces
    ]
    written.append(plot_bars(summary, folder / "bars.png", reference, title))
    written.append(plot_pareto(summary, paired, reference, folder / "pareto.png", title))
    if result.monthly.blocks:
        written.append(plot_monthly(result, folder / "monthly.png", title))
    return written
