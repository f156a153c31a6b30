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
3. For Summit RC+S, when more bands are allowed than LD0's four: candidates
   with LD1 as well (``fit_two_detectors``), the inputs beyond LD0's four in
   LD1 and a 9-entry state table; the closed-loop selection judges them.

``DistillSettings`` (what the distillation may fit, and how it rolls out) is
defined here because the fit reads it; ``agents.distill`` runs the rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from agents.detector import MAX_INPUTS as MAX_LD_INPUTS
from agents.detector import DetectorConfig, DetectorEngine, silent_detector, to_fixed_point
from agents.device_limits import DEVICES
from simenv import layout as L
from simenv.errors import PainloopError

TARGET_TIMING = {
    # target: (fft_interval_ms, onset choices, termination choices); the Summit RC+S interval is the
    # longest of these that divides dt_s (``fft_interval_ms``)
    "summit_rcs": (500, (0, 1, 2, 4), (0, 1, 2, 4, 8)),
    "percept": (200, (0, 1), (0, 1, 2, 4, 8)),
}
#: Summit RC+S FFT intervals tried, longest first: blanking counts FFT intervals (at most 255), so a
#: 2-s interval lets it span 8.5 min, a 0.5-s one only 2 min (the detector updates once per dt_s either way).
_SUMMIT_FFT_MS = (2000, 1000, 500)
#: Blanking after a state change tried by the closed-loop timing search, in detector updates.
BLANK_UPDATES = (0, 1, 2, 4, 9)


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
    #: Days the source runs (not recorded) before the first round's recording; later rounds and the
    #: closed-loop selection start each patient at the tolerance the source had reached by then.
    warmup_days: float = 0.0
    #: Bands that stimulation moves by more than this (dB; the clinic on/off test,
    #: ``agents.stim_footprint``) are not used as detector inputs. None: every band may be.
    footprint_limit_db: float | None = 0.25
    #: The closed-loop selection also tries the best detector with other onset, termination and
    #: blanking counts (``timing_variants``).
    timing_search: bool = True
    #: Detectors update once per source decision (on the band power averaged over it) where the
    #: target can (``update_steps``); False: once per simulator step.
    update_per_decision: bool = True
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
        if not 0 <= self.warmup_days <= 3650:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.warmup_days={self.warmup_days!r}; allowed: 0 to 3650.")
        if self.footprint_limit_db is not None and not 0 < self.footprint_limit_db <= 30:
            raise PainloopError("PL-CONFIG-VALUE", f"distill.footprint_limit_db={self.footprint_limit_db!r}; "
                                "allowed: null (no band left out) or a value in (0, 30] dB.")


def fft_interval_ms(target: str, dt_s: float) -> int:
    """The FFT interval of a distilled config: Percept's fixed 200 ms; for Summit RC+S the longest that divides ``dt_s``."""
    if target != "summit_rcs":
        return TARGET_TIMING[target][0]
    for ms in _SUMMIT_FFT_MS:
        if abs(1000.0 * dt_s / ms - round(1000.0 * dt_s / ms)) < 1e-9:
            return ms
    return TARGET_TIMING[target][0]


def update_steps(target: str, dt_s: float, decision_every: int) -> int:
    """Simulator steps per detector update for a source deciding every ``decision_every`` steps.

    The source's own decision interval when the target can update that
    slowly (RC+S: up to 255 FFT intervals per update), so the device decides
    as often as the source, on the band power averaged over the interval;
    otherwise every step (Percept averages at most 30 s).
    """
    if decision_every <= 1 or target != "summit_rcs":
        return 1
    fft_ms = fft_interval_ms(target, dt_s)
    rate = 1000.0 * dt_s * decision_every / fft_ms
    return int(decision_every) if abs(rate - round(rate)) < 1e-9 and round(rate) <= 255 else 1


def timing_variants(detector: DetectorConfig, dt_s: float) -> list[DetectorConfig]:
    """``detector`` with other onset, termination and blanking counts (what the closed-loop search tries).

    Blanking after a state change is a minimum dwell: a source that decides
    every few minutes never switches twice within that time, which onset and
    termination counts (consecutive updates) express only in part. Counts the
    device cannot hold (blanking above 255 FFT intervals) are left out; the
    detector itself is not among the variants.
    """
    per_update = max(int(detector.update_rate_fft_intervals), 1)
    out = []
    seen = {(detector.onset_updates, detector.termination_updates, detector.blank_fft_intervals)}
    for blank in BLANK_UPDATES:
        intervals = blank * per_update
        if intervals > 255:
            continue
        for onset in sorted({0, detector.onset_updates}):
            for termination in sorted({0, 2, detector.termination_updates}):
                key = (onset, termination, intervals)
                if key in seen:
                    continue
                seen.add(key)
                out.append(replace(detector, onset_updates=onset, termination_updates=termination,
                                   blank_fft_intervals=intervals))
    return out


def _device_vectors(idx: Sequence[int], weights: Sequence[float], norm_mean_db: np.ndarray, norm_sd_db: np.ndarray,
                    F: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight, normalisation subtract and multiply vectors of the inputs ``idx``, on the fixed-point grid."""
    weight = np.array([to_fixed_point(w, F) for w in weights])
    subtract = np.array([to_fixed_point(norm_mean_db[j], F) for j in idx])
    multiply = np.array([to_fixed_point(1.0 / norm_sd_db[j], F) for j in idx])
    return weight, subtract, multiply


def _detector_fields(idx: Sequence[int], weight: np.ndarray, subtract: np.ndarray, multiply: np.ndarray) -> dict:
    """The ``DetectorConfig`` fields of those inputs and vectors."""
    return {"inputs": tuple(L.FEATURE_NAMES[j] for j in idx), "weight": tuple(weight.tolist()),
            "norm_subtract": tuple(subtract.tolist()), "norm_multiply": tuple(multiply.tolist())}


def _balanced_logistic(z: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=500).fit(z, y)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's ``balanced_accuracy_score``, without its overhead)."""
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
            trial.append((balanced_accuracy(y, model.predict(z[:, cols])), j))
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
    return DetectorEngine(configs, dt_s=dt_s, multi_step=True), configs


def _update_reads(X: np.ndarray, bounds: Sequence[int], steps_per_update: int) -> np.ndarray:
    """Per row, the band powers an update ending at that row reads: the row itself, or the mean of the
    ``steps_per_update`` rows ending there within its episode (NaN where the episode has fewer).

    Summed oldest first from zero and divided by the count, as the device engine sums
    (``agents.config_policy.ConfigEngine.step``), so a replay reads what the device would.
    """
    k = max(int(steps_per_update), 1)
    if k == 1:
        return X
    out = np.full_like(X, np.nan)
    edges = sorted(set(bounds) | {0}) + [X.shape[0]]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b - a < k:
            continue
        total = np.zeros((b - a - k + 1, X.shape[1]))
        for i in range(k):
            total += X[a + i : b - k + 1 + i]
        out[a + k - 1 : b] = total / k
    return out


def _replay_states(engine: DetectorEngine, reads: np.ndarray, bounds: Sequence[int], steps_per_update: int):
    """Yield (row, engine state, whether the engine restarted) for every row, as the device runs.

    Every slot reads the same band powers; the engine restarts at each episode
    start (``bounds``) and updates at every ``steps_per_update``-th row of the
    episode, on that row's ``reads`` (``_update_reads``: the mean of the rows
    since the previous update).
    """
    full = np.zeros((engine.n, L.N_FEATURES))
    starts = set(bounds)
    since = 0
    state = np.zeros(engine.n, dtype=np.int64)
    for t in range(reads.shape[0]):
        restart = t in starts
        if restart:
            engine.reset()
            state = engine.state.copy()
            since = 0
        since += 1
        if since == steps_per_update:
            full[:] = reads[t]
            state = engine.update(full)
            since = 0
        yield t, state, restart


def _replay_binary(engine: DetectorEngine, reads: np.ndarray, cls: np.ndarray, bounds: Sequence[int],
                   steps_per_update: int = 1) -> np.ndarray:
    """Balanced accuracy of every engine slot's on/off decisions (dual: middle state holds) against ``cls``."""
    S = engine.n
    on_state = np.zeros(S, dtype=bool)
    tp = np.zeros(S)
    tn = np.zeros(S)
    for t, state, restart in _replay_states(engine, reads, bounds, steps_per_update):
        if restart:
            on_state[:] = False
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
    fft_ms = fft_interval_ms(target, dt_s)
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
    excluded_inputs: Sequence[int] = (),
    decision_every: int = 1,
    steps_per_update: int = 1,
) -> list[tuple[DetectorConfig, list, dict]]:
    """The ``top_k`` best (detector, states, fit info) for one patient, best first (open-loop balanced accuracy).

    ``features_db`` (T, N_FEATURES) are the band powers read at each decision,
    ``amplitudes_ma`` (T,) the source's commands; the first decision of each
    episode (``episode_starts``: no band power measured yet) is left out, and
    the replayed detectors restart at each episode (as the device does at
    start-up, holdoff included). ``excluded_inputs`` (band indices) are never
    inputs (the bands stimulation itself moves); if they leave the target no
    band, its own bands are used and the fit info says so
    (``footprint_fallback``). A source that decides every ``decision_every``
    steps (and holds its command in between) is fitted, for the choice of
    inputs and weights, on the rows where it decided: the rows in between
    hold a command chosen on band powers minutes old, which says nothing
    about the band powers of that row. The detectors update every
    ``steps_per_update`` steps on the band power averaged over them
    (``update_steps``).
    """
    F = settings.fractional_fixed_point
    _, onsets, terminations = TARGET_TIMING[target]
    fft_ms = fft_interval_ms(target, dt_s)
    update_rate = int(round(1000.0 * dt_s * steps_per_update / fft_ms))
    keep = np.ones(features_db.shape[0], dtype=bool)
    keep[list(episode_starts)] = False
    decided = np.zeros(features_db.shape[0], dtype=bool)
    for s0, s1 in zip(episode_starts, list(episode_starts[1:]) + [features_db.shape[0]], strict=True):
        decided[s0:s1:max(int(decision_every), 1)] = True
    decided = decided[keep]
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
        own = [j for j, name in enumerate(L.FEATURE_NAMES) if name.split("_", 1)[1] in ("alpha", "beta")]
        max_inputs = 1
    else:
        own = list(range(L.N_FEATURES))
        max_inputs = settings.max_inputs
    allowed = [j for j in own if j not in set(excluded_inputs)]
    info["inputs_excluded"] = [L.FEATURE_NAMES[j] for j in sorted(set(excluded_inputs))]
    info["footprint_fallback"] = not allowed
    if not allowed:
        allowed = own
    # What each row's update would read: the row's band powers, or with updates every k rows their
    # mean over the k rows ending there (NaN where an episode has fewer rows yet).
    reads = _update_reads(X, bounds, steps_per_update)
    z = (reads - norm_mean_db) / norm_sd_db
    # Binary target for the input selection: above vs at-or-below the median amplitude class.
    cut = levels[np.searchsorted(levels, np.median(amps), side="left")]
    ybin = amps > cut if np.any(amps > cut) else amps >= cut
    valid = np.all(np.isfinite(z), axis=1)
    decided &= valid
    rows = np.flatnonzero(decided) if np.unique(ybin[decided]).size == 2 else np.flatnonzero(valid)
    rows = rows[:: max(1, rows.size // 6000)]  # the selection needs no more rows than that
    chosen, coef = select_inputs(z[rows], ybin[rows].astype(int), allowed, max_inputs)
    info["fit_rows"] = "decisions" if rows.size and decided[rows].all() and decision_every > 1 else "all"
    if target == "percept":
        weight = np.array([1.0 if coef[0] >= 0 else -1.0])
        subtract = np.zeros(1)
        multiply = np.ones(1)
    else:
        weight, subtract, multiply = _device_vectors(chosen, coef / max(np.max(np.abs(coef)), 1e-12), norm_mean_db,
                                                     norm_sd_db, F)
    score = (reads[valid][:, chosen] - subtract) @ (weight * multiply)
    base: dict[str, Any] = _detector_fields(chosen, weight, subtract, multiply) | timing
    q1 = np.unique([to_fixed_point(v, F) for v in np.quantile(score, np.linspace(0.02, 0.98, settings.n_thresholds))])
    q2 = np.unique([to_fixed_point(v, F) for v in np.quantile(score, np.linspace(0.05, 0.95, settings.n_dual_thresholds))])
    candidates = []
    binary = levels.size == 2
    # Timing: onset x termination counts without blanking and, for a source that holds each command
    # for decision_every steps, blanking for the rest of its hold (a minimum dwell) with no counts.
    timings = [(on, off, 0) for on in onsets for off in terminations]
    if steps_per_update == 1 and decision_every > 1 and (decision_every - 1) * update_rate <= 255:
        timings.append((0, 0, (decision_every - 1) * update_rate))
    for on, off, blank in timings:
        common = {"onset_updates": on, "termination_updates": off, "holdoff_updates": 0, "blank_fft_intervals": blank}
        if binary:
            for b in q1:
                candidates.append({"threshold_low": float(b), "threshold_high": float(b), "dual_threshold": False} | common)
        for a in range(len(q2)):
            for b in range(a + 1, len(q2)):
                candidates.append({"threshold_low": float(q2[a]), "threshold_high": float(q2[b]),
                                   "dual_threshold": True} | common)
    engine, configs = _replay(base, candidates, fft_ms, dt_s)
    S = len(candidates)
    cls = np.searchsorted(levels, amps)  # class index per decision
    K = levels.size
    if binary:
        bacc = _replay_binary(engine, reads, cls, bounds, steps_per_update)
        # Ties go to the shorter timing counts.
        order = np.argsort(-(bacc - 1e-6 * np.array([c["onset_updates"] + c["termination_updates"]
                                                      + c["blank_fft_intervals"] for c in candidates])),
                           kind="stable")
        best = int(order[0])
        ranked = [(configs[k], float(bacc[k])) for k in order[:top_k]]
        # Second stage: a holdoff after start-up (a source that waits before it first stimulates).
        holdoffs = [0, 5, 10, 20, 40, 80, 160]
        hold_cands = [dict(candidates[best], holdoff_updates=h) for h in holdoffs]
        engine2, configs2 = _replay(base | {"holdoff_updates": 0}, hold_cands, fft_ms, dt_s)
        bacc2 = _replay_binary(engine2, reads, cls, bounds, steps_per_update)
        if bacc2.max() > bacc[best] + 1e-9:
            ranked = [(configs2[int(np.argmax(bacc2))], float(bacc2.max()))] + ranked[: top_k - 1]
        low, high = float(levels[0]), float(levels[1])

        def table(d: DetectorConfig) -> list:
            return ([low, "HOLD", high] if d.dual_threshold else [low, high, None]) + [None] * 6

        ranked_states = [(d, table(d), b) for d, b in ranked]
    else:
        counts = np.zeros((S, 3, K))
        slots = np.arange(S)
        for t, state, _ in _replay_states(engine, reads, bounds, steps_per_update):
            counts[slots, state, cls[t]] += 1
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
    out = [(d, st, info | {"balanced_accuracy_fit": b, "open_loop_rank": r}) for r, (d, st, b) in enumerate(ranked_states)]
    if target == "summit_rcs" and top_k > 1:
        two = fit_two_detectors(reads, valid, z, rows, cls, levels, allowed, norm_mean_db, norm_sd_db, timing, fft_ms,
                                dt_s, bounds, steps_per_update, F, top_k=min(4, top_k))
        out += [(d, st, info | {"inputs_selected": list(d[0].inputs) + list(d[1].inputs), "ld1": True,
                                "balanced_accuracy_fit": b, "open_loop_rank": len(out) + r})
                for r, (d, st, b) in enumerate(two)]
    return out


def fit_two_detectors(reads, valid, z, rows, cls, levels, allowed, norm_mean_db, norm_sd_db, timing, fft_ms, dt_s,
                      bounds, steps_per_update, F, top_k=3, n_quantiles=7) -> list:
    """LD0 and LD1 with dual thresholds and a 9-entry state table; ``[]`` when LD1 would have no input.

    The score direction is a class-balanced logistic read-out of the source's decisions (on/off) or a
    least-squares fit of its amplitude class (more levels) on every allowed input; LD0 takes the four
    inputs of largest weight, LD1 the next (at most four: RC+S senses 8 bands). Each pair of dual
    thresholds (quantiles of each detector's output) is replayed, and each of the 9 combined states
    takes the source's amplitude class that adds most to the balanced accuracy; in half of the
    candidates a state may instead HOLD where keeping the previous command does better (judged on the
    source's own previous command, which flatters it). Returns up to ``top_k`` ((ld0, ld1), states,
    balanced accuracy of the replay), the tables without HOLD first.
    """
    K = levels.size
    if len(allowed) <= MAX_LD_INPUTS or rows.size < 10:
        return []
    zr = z[rows][:, allowed]
    y = cls[rows]
    if K == 2:
        coef = _balanced_logistic(zr, y).coef_[0]
    else:
        A = np.column_stack([zr, np.ones(len(y))])
        coef = np.linalg.lstsq(A, y.astype(float), rcond=None)[0][:-1]
    order = np.argsort(-np.abs(coef), kind="stable")
    scale = max(float(np.max(np.abs(coef))), 1e-12)
    # RC+S senses 2 bands on each of 2 channels per site: at most 4 bands of a site in LD0 and LD1 together.
    per_site = DEVICES["summit_rcs"].max_bands_per_channel * 2
    picks: list[tuple[int, float]] = []
    used: dict[str, int] = {}
    for j in order:
        site = L.FEATURE_NAMES[allowed[j]].split("_", 1)[0]
        if abs(coef[j]) / scale > 1e-3 and used.get(site, 0) < per_site:
            picks.append((allowed[j], coef[j] / scale))
            used[site] = used.get(site, 0) + 1
    groups = [picks[:MAX_LD_INPUTS], picks[MAX_LD_INPUTS:2 * MAX_LD_INPUTS]]
    if not groups[1]:
        return []
    bases, grids = [], []
    for group in groups:
        group = sorted(group)
        idx = [j for j, _ in group]
        weight, subtract, multiply = _device_vectors(idx, [w for _, w in group], norm_mean_db, norm_sd_db, F)
        out = (reads[valid][:, idx] - subtract) @ (weight * multiply)
        q = np.unique([to_fixed_point(v, F) for v in np.quantile(out, np.linspace(0.1, 0.9, n_quantiles))])
        bases.append(_detector_fields(idx, weight, subtract, multiply) | timing
                     | {"onset_updates": 0, "termination_updates": 0, "holdoff_updates": 0, "dual_threshold": True})
        grids.append([(float(q[a]), float(q[b])) for a in range(len(q)) for b in range(a + 1, len(q))])
    combos = [(p0, p1) for p0 in grids[0] for p1 in grids[1]]
    if not combos:
        return []
    engines, configs = [], []
    for g in range(2):
        eng, cfgs = _replay(bases[g], [{"threshold_low": c[g][0], "threshold_high": c[g][1]} for c in combos],
                            fft_ms, dt_s)
        engines.append(eng)
        configs.append(cfgs)
    S = len(combos)
    slots = np.arange(S)
    counts = np.zeros((S, 9, K))
    held = np.zeros((S, 9, K))  # rows where the source kept its previous command, per state and class
    for (t, st0, restart), (_, st1, _) in zip(_replay_states(engines[0], reads, bounds, steps_per_update),
                                               _replay_states(engines[1], reads, bounds, steps_per_update),
                                               strict=True):
        combined = st0 + 3 * st1
        counts[slots, combined, cls[t]] += 1
        if not restart and t > 0 and cls[t] == cls[t - 1]:
            held[slots, combined, cls[t]] += 1
    totals = np.maximum(np.bincount(cls, minlength=K).astype(float), 1.0)
    present = np.bincount(cls, minlength=K) > 0
    gain_class = counts / totals  # (S, 9, K): recall each class would add if a state commanded it
    gain_hold = (held / totals).sum(axis=2)  # (S, 9)
    best_class = np.argmax(gain_class, axis=2)
    best_gain = np.max(gain_class, axis=2)
    overall = int(np.argmax(np.bincount(cls, minlength=K)))
    ranked = []
    # With HOLD where it adds more (judged on the source's own previous command, so it can flatter) and
    # without: the closed-loop selection tells which holds up once errors carry over.
    for hold in (False, True):
        use_hold = (gain_hold > best_gain + 1e-12) & hold
        bacc = np.where(use_hold, gain_hold, best_gain).sum(axis=1) / max(int(present.sum()), 1)
        for k in np.argsort(-bacc, kind="stable")[: max(1, top_k // 2) if not hold else top_k - max(1, top_k // 2)]:
            states: list = []
            for c in range(9):
                if counts[k, c].sum() == 0:
                    states.append(float(levels[overall]))
                elif use_hold[k, c]:
                    states.append("HOLD")
                else:
                    states.append(float(levels[best_class[k, c]]))
            ranked.append(((configs[0][k], configs[1][k]), states, float(bacc[k])))
    return ranked
