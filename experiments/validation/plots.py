"""Figures of ``experiments.validate_model`` (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agents.atomic_io import save_figure_atomic  # noqa: E402
from experiments.validation import statistics as vs  # noqa: E402
from experiments.validation.simulations import CarryOverRun, ContinuousRun  # noqa: E402
from simenv.cohort import Patient  # noqa: E402
from simenv.params import SECONDS_PER_DAY, SECONDS_PER_HOUR  # noqa: E402

N_EXAMPLE_PATIENTS = 3


def plot_pain_week(patients: list[Patient], run: ContinuousRun, path: Path) -> Path:
    """Pain drive (= pain without stimulation) and pain under continuous stimulation, first week."""
    k = min(N_EXAMPLE_PATIENTS, len(patients))
    steps = min(run.pain.shape[1], int(7 * SECONDS_PER_DAY / run.dt_s))
    t_d = (np.arange(steps) + 1) * run.dt_s / SECONDS_PER_DAY
    fig, axes = plt.subplots(k, 1, figsize=(10, 2.4 * k), sharex=True, squeeze=False)
    for i in range(k):
        ax = axes[i, 0]
        ax.plot(t_d, np.clip(run.drive[i, :steps], 0, 10), lw=0.7, color="tab:red", label="pain drive (stim off)")
        ax.plot(t_d, run.pain[i, :steps], lw=0.7, color="tab:blue", label="pain, continuous stimulation")
        rep = run.report[i, :steps]
        has = ~np.isnan(rep)
        ax.plot(t_d[has], rep[has], "k.", ms=4, label="self-reports (stimulated)")
        ax.axhline(7.0, color="grey", lw=0.5, ls=":")
        ax.set_ylim(0, 10)
        ax.set_ylabel("NRS")
        ax.set_title(f"patient {patients[i].index} (uid {patients[i].uid})", fontsize=9)
    axes[0, 0].legend(loc="lower right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("days")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_autocorrelation(m: dict[str, Any], path: Path) -> Path:
    """Per-patient autocorrelation of stim-off pain with the fitted fast model; fitted vs configured tau."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    acf = m["acf"]
    if acf.shape[1] > 1:
        lag_h = np.arange(acf.shape[1]) * m["dt_s"] / SECONDS_PER_HOUR
        for i in range(acf.shape[0]):
            ax.plot(lag_h, acf[i], lw=0.5, color="tab:blue", alpha=0.4)
        ax.plot(lag_h, np.nanmedian(acf, axis=0), lw=2, color="k", label="cohort median")
        params = m["fast_fit_params"]
        i = int(np.nanargmin(np.abs(m["fast_tau_h"] - np.nanmedian(m["fast_tau_h"]))))
        if params is not None and np.all(np.isfinite(params[i])):
            ax.plot(lag_h, vs.fast_model_curve(params[i], lag_h), "r--",
                    label=f"fit, patient {i}: tau = {params[i][1]:.2f} h")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "record too short", ha="center", transform=ax.transAxes)
    ax.set_xlabel("lag (h)")
    ax.set_ylabel("autocorrelation of pain (stim off)")
    conf = m["configured"]["fast_tau_h"]
    ax2.plot(conf, m["fast_tau_h"], "o")
    hi = float(np.nanmax(np.concatenate([conf, m["fast_tau_h"]]))) if np.any(np.isfinite(m["fast_tau_h"])) else 6.0
    ax2.plot([0, hi], [0, hi], "k:", lw=1)
    ax2.set_xlabel("configured fast tau (h)")
    ax2.set_ylabel("fitted fast tau (h)")
    ax2.set_title("fast time constant", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_auc(m: dict[str, Any], path: Path) -> Path:
    """Held-out LDA AUC against each patient's configured AUC, with the +-0.05 band."""
    fig, ax = plt.subplots(figsize=(5, 5))
    conf = m["configured"]["auc"]
    x = np.linspace(0.55, 0.9, 2)
    ax.fill_between(x, x - 0.05, x + 0.05, color="tab:green", alpha=0.2, label="configured +- 0.05")
    ax.plot(x, x, "k:", lw=1)
    ax.plot(conf, m["auc_measured"], "o", label="patients")
    ax.set_xlim(0.55, 0.9)
    ax.set_ylim(0.5, 0.95)
    ax.set_xlabel("configured AUC")
    ax.set_ylabel("measured AUC (shrinkage LDA, held-out half)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_carryover(m: dict[str, Any], run: CarryOverRun, path: Path) -> Path:
    """Relief fraction after switching off (log scale) and fitted vs configured time constants."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    start = run.switch_off_step
    r = run.relief_fraction
    t_h = (np.arange(r.shape[1]) - start) * run.dt_s / SECONDS_PER_HOUR
    for i in range(r.shape[0]):
        v0 = r[i, start]
        if v0 > 0:
            ax.semilogy(t_h, np.maximum(r[i] / v0, 1e-6), lw=0.8)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_ylim(1e-3, 2)
    ax.set_xlabel("hours after switching off")
    ax.set_ylabel("relief fraction / value at switch-off")
    conf = m["configured"]["carryover_tau_min"]
    ax2.loglog(conf, m["carry_tau_min"], "o")
    lo, hi = 1.0, 2000.0
    ax2.plot([lo, hi], [lo, hi], "k:", lw=1)
    ax2.set_xlabel("configured carry-over tau (min)")
    ax2.set_ylabel("fitted tau (min)")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_flares(m: dict[str, Any], path: Path) -> Path:
    """Histograms of flare duration and size over the cohort."""
    fl = m["flares"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    dur = fl["duration_h"][~fl["censored"]]
    if dur.size:
        ax.hist(dur, bins=np.logspace(-1, 2.5, 25))
        ax.set_xscale("log")
        ax.axvline(np.median(dur), color="k", ls="--", label=f"median {np.median(dur):.1f} h")
        ax.legend(fontsize=8)
    ax.set_xlabel("flare duration (h)")
    ax.set_ylabel("flares")
    if fl["size_nrs"].size:
        ax2.hist(fl["size_nrs"], bins=15)
    ax2.set_xlabel("flare size (NRS)")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def draw_all(
    out: Path, patients: list[Patient], m: dict[str, Any], continuous: ContinuousRun, carry: CarryOverRun
) -> list[Path]:
    """Write every figure into ``out``; returns their paths."""
    return [
        plot_pain_week(patients, continuous, out / "pain_week.png"),
        plot_autocorrelation(m, out / "autocorrelation.png"),
        plot_auc(m, out / "auc.png"),
        plot_carryover(m, carry, out / "carryover.png"),
        plot_flares(m, out / "flares.png"),
    ]
