"""The fidelity report: the source and its exported configs side by side on held-out days, in a frame.

Closed loop, the source, the exported configs and ``off`` run paired on the
same patients and noise (``agents.evaluation.evaluate``); in shadow, the
exported configs decide on the source's own trajectory without acting. Both
are judged in the plan's frame (``agents.evaluation_frames``; by default
``long_term``): each run goes through the unscored warm-up first and only
the scored window after it counts. Per patient and pooled: decision
agreement (balanced accuracy, Cohen's kappa, raw agreement), the clinical
metrics of each, the share of the source's reward gain over ``off`` the
export keeps, and the paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from agents.config_policy import ConfigPolicy
from agents.controllers import ControllerSpec
from agents.evaluation import METRICS, evaluate, paired_differences, summarise
from agents.export import decision_agreement
from agents.rollout import Rollout, rollout
from experiments.exporting.plan import Plan, patient_file_stem


def shadow_decisions(shadow: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """The source's and the shadow's amplitudes (n, decisions) that the shadow agreement counts.

    Only the recorded (scored) window; without a warm-up its first decision
    is left out, since at the start of a run a detector update has no
    measured step to read.
    """
    first = 0 if shadow.warmup_decisions else 1
    assert shadow.shadow_ma is not None  # a rollout with a shadow policy
    return shadow.amplitudes_ma[:, first:], shadow.shadow_ma[:, first:]


def fidelity_report(plan: Plan, configs: Sequence[dict]) -> dict:
    """Source vs exported on held-out days, after the frame's warm-up: decision agreement and paired clinical
    metrics of the scored window."""
    dt = plan.settings.dt_s
    by_uid = {int(p.uid): c for p, c in zip(plan.patients, configs, strict=True)}
    source_spec = ControllerSpec("source", plan.spec.kind, plan.spec.params)
    specs = [
        ControllerSpec("off", "off"),
        source_spec,
        ControllerSpec("exported", "policy", factory=lambda: ConfigPolicy("exported", by_uid, dt)),
    ]
    res = evaluate(specs, plan.patients, plan.settings, reward=plan.reward, seed=plan.seed, record_actions=True,
                   warmup_days=plan.warmup_days)
    # Shadow: the exported controller's decisions on the source's own held-out trajectory, after the same warm-up.
    detectors = res.detectors.get("source")
    extra = (lambda i: {"detector": detectors[i]}) if detectors else None
    shadow = rollout(source_spec.build(dt, plan.seed), plan.patients, plan.settings, plan.seed, extra,
                     shadow=ConfigPolicy("exported", by_uid, dt), warmup_days=plan.warmup_days, record_features=False)
    source_ma, shadow_ma = shadow_decisions(shadow)
    rows = []
    for i, p in enumerate(plan.patients):
        closed = decision_agreement(res.actions["source"][i], res.actions["exported"][i])
        open_ = decision_agreement(source_ma[i], shadow_ma[i])
        row = {"patient": patient_file_stem(p), "uid": int(p.uid), "index": int(p.index)}
        row |= {f"closed_loop_{k}": v for k, v in closed.items()}
        row |= {f"shadow_{k}": v for k, v in open_.items()}
        for label in ("off", "source", "exported"):
            for m in ("reward_per_day", "mean_pain_nrs", "high_pain_fraction", "duty_cycle", "battery_life_years"):
                row[f"{label}_{m}"] = float(res.per_patient[label][m][i])
        rows.append(row)
    pooled_closed = decision_agreement(res.actions["source"].ravel(), res.actions["exported"].ravel())
    pooled_shadow = decision_agreement(source_ma.ravel(), shadow_ma.ravel())
    r = {k: float(np.mean(res.per_patient[k]["reward_per_day"])) for k in ("off", "source", "exported")}
    gain = r["source"] - r["off"]
    retention = (r["exported"] - r["off"]) / gain if abs(gain) > 1e-12 else math.nan
    summary = summarise(res)
    paired = paired_differences(res, "source")

    def mean_ci(key: str) -> dict:
        values = np.array([row[key] for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        n = values.size
        if n == 0:
            return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
        mean = float(values.mean())
        half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(n)}

    agreement = {
        f"{mode}_{k}": mean_ci(f"{mode}_{k}")
        for mode in ("closed_loop", "shadow")
        for k in ("balanced_accuracy", "cohen_kappa", "raw_agreement")
    }
    return {
        "held_out": {"seed": plan.seed, "days": plan.settings.horizon_days, "initial_state": plan.settings.initial_state,
                     "frame": plan.frame, "frame_text": plan.frame_text, "warmup_days": plan.warmup_days,
                     "note": "noise seed differs from the distillation's (distill.seed); threshold sources are "
                             "mapped directly and compared on the same days"},
        "agreement_per_patient_mean": agreement,
        "agreement_pooled": {"closed_loop": pooled_closed, "shadow": pooled_shadow},
        "reward_per_day_mean": r,
        "reward_gain_retention": retention,
        "exact_decisions": bool(all(np.array_equal(res.actions["source"][i], res.actions["exported"][i])
                                    for i in range(len(plan.patients)))),
        "per_patient": rows,
        "metrics": [s for s in summary],
        "paired_vs_source": [p for p in paired if p["controller"] == "exported"],
        "metric_names": list(METRICS),
    }
