"""The sweep report's Pareto figures: the sweep's runs and their front against the baseline fronts and baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.atomic_io import save_figure_atomic
from experiments.evaluation.front_math import front_curve, non_dominated

DPI = 110
LABELS = {
    "mean_pain_nrs": "mean pain (NRS 0-10)",
    "stim_energy_j_per_day": "stimulation energy (J/day)",
    "side_effect_events_per_day": "side-effect events per day (mild + seizure)",
}


#: How each baseline family is drawn: colour, marker, legend text.
FAMILY_STYLE = {
    "threshold": ("tab:orange", "^", "threshold, target duty swept"),
    "cycling": ("tab:green", "v", "cycling, periods x duties"),
    "dual_threshold": ("tab:purple", "D", "dual threshold, target duty swept"),
}


def plot_front(
    path: Path,
    sweep_points: Sequence[dict[str, Any]],
    family_points: Mapping[str, Sequence[dict[str, Any]]],
    baseline_points: Sequence[dict[str, Any]],
    x_key: str,
    y_key: str,
    title: str,
) -> Path:
    """One Pareto figure: x = ``x_key``, y = ``y_key`` (both lower is better).

    Each point is a dict with ``label``, ``x_key`` and ``y_key``. Sweep
    points on their non-dominated front are filled and joined; dominated
    ones are hollow. Each baseline family's settings (``family_points``:
    threshold, cycling, dual threshold) are drawn in its colour with its
    front (non-dominated settings, joined: in the pain-energy plane the
    envelope the fronts are read from) as a dashed line; the other
    baselines as labelled squares.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 6.0))
    ax = fig.subplots()
    if sweep_points:
        x = np.array([p[x_key] for p in sweep_points], dtype=float)
        y = np.array([p[y_key] for p in sweep_points], dtype=float)
        on = non_dominated(x, y)
        ax.plot(x[~on], y[~on], "o", mfc="none", mec="tab:blue", ms=8, label="sweep run (dominated)")
        ax.plot(x[on], y[on], "o", color="tab:blue", ms=9, label=f"sweep run, non-dominated ({int(on.sum())})")
        fx, fy = front_curve(x, y)
        ax.plot(fx, fy, "-", color="tab:blue", lw=1.5, alpha=0.7)
        for p, xi, yi in zip(sweep_points, x, y, strict=True):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(p["label"], (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7,
                            color="tab:blue")
    for family, points in family_points.items():
        if not points:
            continue
        colour, marker, text = FAMILY_STYLE.get(family, ("0.5", "o", family))
        tx = np.array([p[x_key] for p in points], dtype=float)
        ty = np.array([p[y_key] for p in points], dtype=float)
        ax.plot(tx, ty, marker, color=colour, ms=6, alpha=0.8, label=text)
        fx, fy = front_curve(tx, ty)
        ax.plot(fx, fy, "--", color=colour, lw=1.3, label=f"{family} front")
        if family == "threshold":
            for p, xi, yi in zip(points, tx, ty, strict=True):
                ax.annotate(p["label"].replace("threshold_", ""), (xi, yi), xytext=(4, -10),
                            textcoords="offset points", fontsize=6, color=colour)
    for p in baseline_points:
        marker = "*" if p.get("uses_latent") else "s"
        ax.plot(p[x_key], p[y_key], marker, color="0.3", ms=8, mfc="none" if p.get("uses_latent") else "0.3")
        ax.annotate(p["label"] + (" (latent)" if p.get("uses_latent") else ""), (p[x_key], p[y_key]),
                    xytext=(4, 4), textcoords="offset points", fontsize=7, color="0.3")
    if baseline_points:
        ax.plot([], [], "s", color="0.3", label="other baselines")
    ax.set_xlabel(LABELS.get(x_key, x_key))
    ax.set_ylabel(LABELS.get(y_key, y_key))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=DPI)
    return Path(path)
