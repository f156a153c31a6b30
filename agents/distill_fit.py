"""Fit one patient's device detector and state table to a source's recorded decisions (open loop).

1. Select at most ``max_inputs`` band-power inputs by greedy forward
   selection with class-balanced logistic regression (standardised with the
   patient's calibration normalisation, i.e. the device's subtract and
   multiply vectors), and take the weights from the final fit (largest
   weight 1, on the fixed-point grid).
2. Replay the recorded band powers through ``DetectorEngine`` for a grid of
   thresholds (single and dual) and onset/termination counts, all candidates
   at once (one engine slot per candidate), and keep the candidates whose
   decisions have the best balanced accuracy against the source's; then try
   holdoff counts (a source that waits after start-up before it first
   stimulates). The replayed detectors restart at every episode.
   With two amplitudes, state 0 is the lower one and the top state the
   higher one; a dual threshold's middle state is HOLD. With more (``levels``
   or ``continuous`` sources) LD0 is dual and each of its 3 states gets the
   source's most frequent amplitude in that state.

``DistillSettings`` (what the distillation may fit, and how it rolls out) is
defined here because the fit reads it; ``agents.distill`` runs the rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.detector import DetectorConfig, DetectorEngine, silent_detector, to_fixed_point
from simenv import layout as L
from simenv.errors import PainloopError

TARGET_TIMING = {
    # target: (fft_interval_ms, onset choices, termination choices)
    "summit_rcs": (500, (0, 1, 2, 4), (0, 1, 2, 4, 8)),
    "percept": (200, (0, 1), (0, 1, 2, 4, 8)),
}


@dataclass(frozen=True)
class DistillSettings:
    """How the distillation rolls out and what it may fit."""

    days: float = 3.0
    seed: int = 1000
    max_inputs: int = 4
    n_thresholds: int = 25
    n_dual_thresholds: int = 11
    fractional_fixed_point: int = 8
    dagger_rounds: int = 2
    #: Closed-loop selection: the open-loop fit's best ``select_top_k`` detectors and a constant
    #: state table each run closed loop (fresh noise, source in shadow); the best agreement wins.
    #: 0 keeps the open-loop choice.
    select_top_k: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.select_top_k <= 50:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.select_top_k={self.select_top_k!r}; allowed: 0 to 50.")
        if not 0.1 <= self.days <= 60:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.days={self.days!r}; allowed: 0.1 to 60.")
        if not 0 <= self.dagger_rounds <= 10:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.dagger_rounds={self.dagger_rounds!r}; allowed: 0 to 10.")
        if not 1 <= self.max_inputs <= 4:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.max_inputs={self.max_inputs!r}; allowed: 1 to 4.")


def _balanced_logistic(z: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=500).fit(z, y)


def _bacc(y: np.ndarray, pred: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def select_inputs(z: np.ndarray, y: np.ndarray, allowed: Sequence[int], max_inputs: int) -> tuple[list[int], np.ndarray]:
    """Greedy forward selection of inputs (balanced accuracy of a balanced logistic fit); returns (indices, coef)."""
    chosen: list[int] = []
    best_score = -1.0
    for _ in range(max_inputs):
        trial = []
        for j in allowed:
            if j in chosen:
                continue
            cols = sorted(chosen + [j])
            model = _balanced_logistic(z[:, cols], y)
            trial.append((_bacc(y, model.predict(z[:, cols])), j))
        if not trial:
            break
        score, j = max(trial)
        if chosen and score <= best_score + 1e-3:
            break
        chosen = sorted(chosen + [j])
        best_score = score
    model = _balanced_logistic(z[:, chosen], y)
    return chosen, model.coef_[0]


def _replay(base: dict, candidates: list[dict], fft_ms: int, dt_s: float) -> tuple[DetectorEngine, list[DetectorConfig]]:
    configs = [DetectorConfig(**(base | c), fft_interval_ms=fft_ms) for c in candidates]
    return DetectorEngine(configs, dt_s=dt_s), configs


def _replay_binary(engine: DetectorEngine, X: np.ndarray, cls: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """Balanced accuracy of every engine slot's on/off decisions (dual: middle state holds) against ``cls``."""
    S = engine.n
    full = np.zeros((S, L.N_FEATURES))
    on_state = np.zeros(S, dtype=bool)
    tp = np.zeros(S)
    tn = np.zeros(S)
    starts = set(bounds)
    for t in range(X.shape[0]):
        if t in starts:
            engine.reset()
            on_state[:] = False
        full[:] = X[t]
        state = engine.update(full)
        on_state = np.where(engine.dual & (state == 1), on_state, state >= 1)
        if cls[t] == 1:
            tp += on_state
        else:
            tn += ~on_state
    n_pos = max(int(np.sum(cls == 1)), 1)
    n_neg = max(int(np.sum(cls == 0)), 1)
    return 0.5 * (tp / n_pos + tn / n_neg)


def fit_patient(
    features_db: np.ndarray,
    amplitudes_ma: np.ndarray,
    norm_mean_db: np.ndarray,
    norm_sd_db: np.ndarray,
    target: str,
    dt_s: float,
    settings: DistillSettings,
    episode_starts: Sequence[int] = (0,),
) -> tuple[DetectorConfig, list, dict]:
    """Fit one patient's LD0 and state table to its source decisions; returns (detector, states, fit info).

    The best of ``fit_candidates`` by balanced accuracy on the recorded decisions (open loop).
    """
    return fit_candidates(features_db, amplitudes_ma, norm_mean_db, norm_sd_db, target, dt_s, settings,
                          episode_starts, top_k=1)[0]


def constant_candidate(amplitude_ma: float, target: str, dt_s: float, fractional_fixed_point: int) -> tuple:
    """A detector that never leaves state 0 and a state table that always commands ``amplitude_ma``."""
    fft_ms = TARGET_TIMING[target][0]
    det = silent_detector(fft_ms, int(round(1000.0 * dt_s / fft_ms)), fractional_fixed_point)
    return det, [float(amplitude_ma), float(amplitude_ma), None] + [None] * 6


def fit_candidates(
    features_db: np.ndarray,
    amplitudes_ma: np.ndarray,
    norm_mean_db: np.ndarray,
    norm_sd_db: np.ndarray,
    target: str,
    dt_s: float,
    settings: DistillSettings,
    episode_starts: Sequence[int] = (0,),
    top_k: int = 1,
) -> list[tuple[DetectorConfig, list, dict]]:
    """The ``top_k`` best (detector, states, fit info) for one patient, best first (open-loop balanced accuracy).

    ``features_db`` (T, N_FEATURES) are the band powers read at each decision,
    ``amplitudes_ma`` (T,) the source's commands; the first decision of each
    episode (``episode_starts``: no band power measured yet) is left out, and
    the replayed detectors restart at each episode (as the device does at
    start-up, holdoff included).
    """
    F = settings.fractional_fixed_point
    fft_ms, onsets, terminations = TARGET_TIMING[target]
    update_rate = int(round(1000.0 * dt_s / fft_ms))
    keep = np.ones(features_db.shape[0], dtype=bool)
    keep[list(episode_starts)] = False
    X = features_db[keep]
    amps = np.round(amplitudes_ma[keep] * 10.0) / 10.0
    # Episode boundaries in the kept rows: the engine is reset there.
    bounds = sorted({int(np.sum(keep[:s0])) for s0 in episode_starts})
    levels = np.unique(amps)
    info: dict = {"method": "distillation", "n_decisions": int(X.shape[0]), "source_levels_ma": levels.tolist()}
    timing = {"update_rate_fft_intervals": update_rate, "blank_fft_intervals": 0, "fractional_fixed_point": F}
    if levels.size == 1:  # the source never changes: a constant state table
        det, states = constant_candidate(float(levels[0]), target, dt_s, F)
        info |= {"status": "constant source", "balanced_accuracy_fit": 1.0}
        return [(det, states, info)]
    if target == "percept":
        allowed = [j for j, name in enumerate(L.FEATURE_NAMES) if name.split("_", 1)[1] in ("alpha", "beta")]
        max_inputs = 1
    else:
        allowed = list(range(L.N_FEATURES))
        max_inputs = settings.max_inputs
    z = (X - norm_mean_db) / norm_sd_db
    # Binary target for the input selection: above vs at-or-below the median amplitude class.
    cut = levels[np.searchsorted(levels, np.median(amps), side="left")]
    ybin = amps > cut if np.any(amps > cut) else amps >= cut
    stride = max(1, z.shape[0] // 6000)  # the selection needs no more rows than that
    chosen, coef = select_inputs(z[::stride], ybin[::stride].astype(int), allowed, max_inputs)
    if target == "percept":
        weight = np.array([1.0 if coef[0] >= 0 else -1.0])
        subtract = np.zeros(1)
        multiply = np.ones(1)
    else:
        coef = coef / max(np.max(np.abs(coef)), 1e-12)
        weight = np.array([to_fixed_point(w, F) for w in coef])
        subtract = np.array([to_fixed_point(norm_mean_db[j], F) for j in chosen])
        multiply = np.array([to_fixed_point(1.0 / norm_sd_db[j], F) for j in chosen])
    score = (X[:, chosen] - subtract) @ (weight * multiply)
    base: dict[str, Any] = {
        "inputs": tuple(L.FEATURE_NAMES[j] for j in chosen),
        "weight": tuple(weight.tolist()),
        "norm_subtract": tuple(subtract.tolist()),
        "norm_multiply": tuple(multiply.tolist()),
    } | timing
    q1 = np.unique([to_fixed_point(v, F) for v in np.quantile(score, np.linspace(0.02, 0.98, settings.n_thresholds))])
    q2 = np.unique([to_fixed_point(v, F) for v in np.quantile(score, np.linspace(0.05, 0.95, settings.n_dual_thresholds))])
    candidates = []
    binary = levels.size == 2
    for on in onsets:
        for off in terminations:
            if binary:
                for b in q1:
                    candidates.append({"threshold_low": float(b), "threshold_high": float(b), "dual_threshold": False,
                                       "onset_updates": on, "termination_updates": off, "holdoff_updates": 0})
            for a in range(len(q2)):
                for b in range(a + 1, len(q2)):
                    candidates.append({"threshold_low": float(q2[a]), "threshold_high": float(q2[b]),
                                       "dual_threshold": True, "onset_updates": on, "termination_updates": off,
                                       "holdoff_updates": 0})
    engine, configs = _replay(base, candidates, fft_ms, dt_s)
    S = len(candidates)
    full = np.zeros((S, L.N_FEATURES))
    cls = np.searchsorted(levels, amps)  # class index per decision
    K = levels.size
    if binary:
        bacc = _replay_binary(engine, X, cls, bounds)
        # Ties go to the shorter timing counts.
        order = np.argsort(-(bacc - 1e-6 * np.array([c["onset_updates"] + c["termination_updates"] for c in candidates])),
                           kind="stable")
        best = int(order[0])
        ranked = [(configs[k], float(bacc[k])) for k in order[:top_k]]
        # Second stage: a holdoff after start-up (a source that waits before it first stimulates).
        holdoffs = [0, 5, 10, 20, 40, 80, 160]
        hold_cands = [dict(candidates[best], holdoff_updates=h) for h in holdoffs]
        engine2, configs2 = _replay(base | {"holdoff_updates": 0}, hold_cands, fft_ms, dt_s)
        bacc2 = _replay_binary(engine2, X, cls, bounds)
        if bacc2.max() > bacc[best] + 1e-9:
            ranked = [(configs2[int(np.argmax(bacc2))], float(bacc2.max()))] + ranked[: top_k - 1]
        low, high = float(levels[0]), float(levels[1])

        def table(d: DetectorConfig) -> list:
            return ([low, "HOLD", high] if d.dual_threshold else [low, high, None]) + [None] * 6

        ranked_states = [(d, table(d), b) for d, b in ranked]
    else:
        counts = np.zeros((S, 3, K))
        rows = np.arange(S)
        for t in range(X.shape[0]):
            if t in bounds:
                engine.reset()
            full[:] = X[t]
            state = engine.update(full)
            counts[rows, state, cls[t]] += 1
        pred = np.argmax(counts, axis=2)  # (S, 3): amplitude class of each state
        present = counts.sum(axis=(0, 1)) > 0
        correct = np.zeros((S, K))
        for s in range(3):
            hit = pred[:, s][:, None] == np.arange(K)[None, :]
            correct += np.where(hit, counts[:, s, :], 0.0)
        totals = np.bincount(cls, minlength=K).astype(float)
        bacc = (correct[:, present] / totals[present]).mean(axis=1)
        # A state the replay never visited keeps the most frequent amplitude overall.
        overall = int(np.argmax(totals))
        ranked_states = []
        for k in np.argsort(-bacc, kind="stable")[:top_k]:
            states = [float(levels[pred[k, s]]) if counts[k, s].sum() > 0 else float(levels[overall]) for s in range(3)]
            if not configs[k].dual_threshold:
                states[2] = None
            ranked_states.append((configs[k], states + [None] * 6, float(bacc[k])))
    info |= {"status": "ok", "inputs_selected": list(base["inputs"]), "candidates": S}
    return [(d, st, info | {"balanced_accuracy_fit": b, "open_loop_rank": r}) for r, (d, st, b) in enumerate(ranked_states)]
