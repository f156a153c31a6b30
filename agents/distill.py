"""Distil a policy into a device detector, patient by patient.

1. Roll the source policy out on the patient (``agents.rollout``), after
   ``warmup_days`` of it unrecorded (the long-term state it keeps a patient
   in): at each decision, the raw band powers a detector update would read
   and the amplitude the source commanded.
2. The clinic on/off test (``agents.stim_footprint``) at the source's on
   amplitude finds the bands stimulation itself moves; they are left out.
3. Fit the detector's inputs, weights, thresholds and counts, and the state
   table, to those decisions (``agents.distill_fit``, open loop).
4. DAgger (``distill``): further rounds run the current configs closed loop
   with the source in shadow, add the source's would-be decisions on those
   trajectories to the data, and refit. They, and step 5, start each patient
   at the tolerance the source had reached after its warm-up.
5. Closed-loop selection: the last round's best candidates, and the best one
   with other onset, termination and blanking counts, each run closed loop
   on fresh noise, and each patient keeps the one that agrees best.

The fidelity report then runs the exported configs closed loop on held-out days.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.config_policy import ConfigPolicy, SlotConfigPolicy
from agents.distill_fit import DistillSettings, fit_candidates, timing_variants, update_steps
from agents.export import decision_agreement
from agents.rollout import rollout
from agents.stim_footprint import measure_footprint
from simenv import layout as L
from simenv.batch import EnvSettings
from simenv.cohort import Patient


def distill(
    make_source,
    patients: Sequence[Patient],
    target: str,
    dt_s: float,
    settings: DistillSettings,
    make_config,
    contexts_extra=None,
    initial_state: str = "naive",
    progress=None,
) -> tuple[list[dict], list[dict]]:
    """Distil ``make_source()`` (a fresh policy) into one config per patient, with DAgger rounds.

    Round 0 rolls the source out and fits; each further round runs the
    current configs closed loop (new noise: seed + round) with the source in
    shadow, adds those band powers and the source's would-be decisions to the
    data, and refits. ``make_config(i, detector, states, fit, ld1=None)`` builds patient
    i's config dict. Returns (configs, fit infos).
    """
    env = EnvSettings(dt_s=dt_s, horizon_days=settings.days, initial_state=initial_state)
    data_x: list[list[np.ndarray]] = [[] for _ in patients]
    data_y: list[list[np.ndarray]] = [[] for _ in patients]
    configs: list[dict] = []
    infos: list[dict] = []
    tolerance = None
    source = make_source()  # round 0's; the later rounds' shadows are fresh ones
    # The source decides every this many steps (a run's decision interval) and holds its command between.
    decision_every = int(getattr(source, "steps_per_decision", 1))
    steps_per_update = update_steps(target, dt_s, decision_every) if settings.update_per_decision else 1
    excluded: list[list[int]] = [[] for _ in patients]
    footprint_info: list[dict] = [{} for _ in patients]
    for r in range(settings.dagger_rounds + 1):
        if r == 0:
            ro = rollout(source, patients, env, settings.seed, contexts_extra, warmup_days=settings.warmup_days)
            labels = ro.amplitudes_ma
            if settings.warmup_days > 0:
                tolerance = ro.window_tolerance
            if settings.footprint_limit_db is not None:
                excluded, footprint_info = _footprint(patients, labels, dt_s, settings)
        else:
            exported = ConfigPolicy("distilled", {int(p.uid): c for p, c in zip(patients, configs, strict=True)}, dt_s)
            ro = rollout(exported, patients, env, settings.seed + r, contexts_extra, shadow=make_source(),
                         start_tolerance=tolerance)
            assert ro.shadow_ma is not None  # a rollout with a shadow policy records its amplitudes
            labels = ro.shadow_ma
        last = r == settings.dagger_rounds
        top_k = settings.select_top_k if last and settings.select_top_k > 0 else 1
        configs, infos, options = [], [], []
        for i in range(len(patients)):
            data_x[i].append(ro.features_db[i])
            data_y[i].append(labels[i])
            starts = np.cumsum([0] + [len(x) for x in data_x[i][:-1]])
            y = np.concatenate(data_y[i])
            ranked = fit_candidates(
                np.concatenate(data_x[i]), y, ro.norm_mean_db[i], ro.norm_sd_db[i],
                target, dt_s, settings, episode_starts=starts.tolist(), top_k=top_k, excluded_inputs=excluded[i],
                decision_every=decision_every, steps_per_update=steps_per_update,
            )
            if top_k > 1 and ranked[0][2]["status"] != "constant source":
                # The best detector with one amplitude in every state it sets (HOLD kept, so Percept's
                # dual threshold stays valid): always the source's most frequent command when it acts
                # itself (round 0; a shadow's labels describe other trajectories).
                det0, states0, info0 = ranked[0]
                a = _most_frequent(data_y[i][0])
                constant = (det0, [v if v is None or v == "HOLD" else a for v in states0],
                            info0 | {"balanced_accuracy_fit": 0.5, "open_loop_rank": len(ranked),
                                     "constant_state_table": True})
                if settings.timing_search:
                    ranked += [(d, states0, info0 | {"open_loop_rank": 0, "timing_variant": True})
                               for d in timing_variants(det0, dt_s)]
                ranked.append(constant)
            for _, _, info in ranked:
                info |= footprint_info[i] | {"warmup_days": settings.warmup_days, "dagger_rounds": r}
            options.append([make_config(i, det[0], states, info, ld1=det[1]) if isinstance(det, tuple)
                            else make_config(i, det, states, info) for det, states, info in ranked])
            configs.append(options[-1][0])
            infos.append(ranked[0][2])
            if progress is not None:
                progress(r, i)
    if any(len(o) > 1 for o in options):
        configs, infos = _select_closed_loop(
            make_source, patients, options, env, settings.seed + settings.dagger_rounds + 1, contexts_extra, tolerance
        )
    return configs, infos


def _footprint(patients: Sequence[Patient], labels_ma: np.ndarray, dt_s: float,
               settings: DistillSettings) -> tuple[list[list[int]], list[dict]]:
    """The clinic on/off test at each patient's highest source command: bands left out, and what was measured."""
    on_ma = np.max(labels_ma, axis=1)
    fp = measure_footprint(patients, on_ma, dt_s, settings.seed)
    assert settings.footprint_limit_db is not None
    moved = fp.bands_moved(settings.footprint_limit_db)
    infos = [{"footprint": {"test_amplitude_ma": float(on_ma[i]), "hours": fp.hours,
                            "limit_db": settings.footprint_limit_db,
                            "shift_db": {L.FEATURE_NAMES[j]: round(float(fp.shift_db[i, j]), 3) for j in range(L.N_FEATURES)},
                            "bands_moved": [L.FEATURE_NAMES[j] for j in moved[i]]}}
             for i in range(len(patients))]
    return moved, infos


def _most_frequent(amplitudes_ma: np.ndarray) -> float:
    values, counts = np.unique(np.round(amplitudes_ma * 10.0) / 10.0, return_counts=True)
    return float(values[np.argmax(counts)])


def _select_closed_loop(make_source, patients, options, env: EnvSettings, seed: int, contexts_extra,
                        tolerance: np.ndarray | None = None):
    """Run every candidate config closed loop, the source in shadow, and keep each patient's best.

    Why: the open-loop fit replays band powers recorded under the *source's*
    stimulation, and stimulation shows in the band powers (suppression and
    artifact), so a detector can score well there by reading the source's
    own previous decision, a cue that vanishes once the detector drives the
    stimulation itself. Closed-loop agreement (balanced accuracy of the
    candidate's decisions against the source's would-be decisions on the
    candidate's own trajectory, Cohen's kappa breaking ties) is the quantity
    the fidelity report measures; it is measured here on noise (``seed``)
    that neither the fit nor the report uses. All candidates of a patient
    share that patient's noise streams (common random numbers).
    """
    owner = [i for i, opts in enumerate(options) for _ in opts]
    flat = [c for opts in options for c in opts]
    slot_patients = [patients[i] for i in owner]
    extra = (lambda s: contexts_extra(owner[s])) if contexts_extra is not None else None
    slot_tolerance = None if tolerance is None else np.asarray(tolerance)[owner]
    ro = rollout(SlotConfigPolicy("candidates", flat, env.dt_s), slot_patients, env, seed, extra, shadow=make_source(),
                 record_features=False, start_tolerance=slot_tolerance)
    scores = []
    assert ro.shadow_ma is not None  # a rollout with a shadow policy records its amplitudes
    for s in range(len(flat)):
        a = decision_agreement(ro.shadow_ma[s, 1:], ro.amplitudes_ma[s, 1:])
        bacc = a["balanced_accuracy"] if np.isfinite(a["balanced_accuracy"]) else 0.0
        kappa = a["cohen_kappa"] if np.isfinite(a["cohen_kappa"]) else 0.0
        scores.append((bacc, kappa, a))
    configs, infos = [], []
    start = 0
    for opts in options:
        block = scores[start : start + len(opts)]
        k = max(range(len(opts)), key=lambda j: (round(block[j][0], 6), round(block[j][1], 6), -j))
        chosen = opts[k]
        fit = chosen["provenance"]["fit"]
        fit["closed_loop_selection"] = {
            "candidates": len(opts),
            "chosen_open_loop_rank": k,
            "seed": seed,
            "days": env.horizon_days,
            "balanced_accuracy": [float(b[0]) for b in block],
            "cohen_kappa": [float(b[1]) for b in block],
        }
        configs.append(chosen)
        infos.append(fit)
        start += len(opts)
    return configs, infos
