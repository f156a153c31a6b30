"""Paired evaluation: every controller on the same patients and the same noise.

All controllers run in *one* batched core: slot ``c * N + i`` holds patient
``i`` under controller ``c``, every slot seeded alike, so each controller's
copy of a patient sees identical exogenous noise (common random numbers) and
differences between controllers are paired by construction.

Metrics are accumulated with constant work per step (running sums), never
recomputed over the history. Two-phase runs handle dependencies: ``off``
(for responder rates) and any controller a ``random`` entry is matched to
run first, hidden if they were not asked for.

With ``warmup_days`` > 0 (the long-term frame, ``agents.evaluation_window``)
every run goes on through an unscored warm-up before the scored window; all
per-patient metrics, the traces and the recorded actions belong to the scored
window. Dependencies use the scored window too: responders compare with
``off``'s scored mean pain, and a matched ``random`` entry copies its target's
scored-window duty and mean on-burst, which it then keeps for its whole run
(warm-up included: a stationary process cannot follow the target's early
weeks). Monthly means cover the whole run (``agents.monthly_means``).

Over 400 lines: the engine's loop and the two views of ``info`` it hands
to policies stay together; the window's arithmetic and the monthly
bookkeeping live in their own modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numba
import numpy as np

from agents.action_check import checked_action
from agents.clinic import ClinicRecord, fit_detector, record_calibration_period
from agents.controllers import ControllerSpec
from agents.evaluation_pool import evaluate_in_processes, resolve_jobs

# The result type and its statistics live in agents.evaluation_result; importable from here too.
from agents.evaluation_result import EvaluationResult as EvaluationResult
from agents.evaluation_result import paired_differences as paired_differences
from agents.evaluation_result import summarise as summarise
from agents.evaluation_window import RunWindow, run_window, window_metrics
from agents.monthly_means import MonthlyAccumulator, MonthlyMeans
from agents.policy import PatientContext
from simenv import layout as L
from simenv.batch import PainStimBatch
from simenv.cohort import Patient
from simenv.decision import discrete_amplitudes
from simenv.errors import PainloopError
from simenv.info_layout import STEP_INFO
from simenv.numba_cache import forget_when_changed
from simenv.params import SECONDS_PER_DAY
from simenv.reward import TERMS, RewardWeights
from simenv.settings import EnvSettings

#: Per-patient metrics, in table order, with units and meaning.
METRICS: dict[str, str] = {
    "mean_pain_nrs": "mean pain, NRS 0-10",
    "high_pain_fraction": "fraction of time with pain >= 7 NRS",
    "responder_30": "1 if mean pain >= 30% lower than under off (same patient and noise)",
    "responder_50": "1 if mean pain >= 50% lower than under off",
    "duty_cycle": "fraction of time with amplitude > 0 (ramps count as on)",
    "stim_energy_j_per_day": "stimulation energy delivered (TEED), J/day",
    "battery_draw_j_per_day": "energy drawn from the battery (therapy / efficiency + overhead), J/day",
    "battery_life_years": "projected life of a full battery at this draw, years",
    "mild_events_per_day": "mild side-effect events per day",
    "seizure_events": "after-discharge (seizure) events over the horizon",
    "switches_per_hour": "commanded amplitude changes per hour",
    "relief_lost_nrs": "mean relief lost to tolerance, NRS",
    "reward_per_day": "reward summed over each day, mean over days",
} | {f"term_{t}": f"reward term '{t}', mean per decision" for t in TERMS}

_COL = {name: i for i, name in enumerate(STEP_INFO)}


class _SlicedInfo(dict):
    """A view of a batched info dict restricted to one controller's slots (sliced on access).

    The engine makes one view per controller and phase and points it at the
    current info with ``rebind``: making a view per controller at every
    decision was a measurable share of a long run.
    """

    def __init__(self, info: dict, sl: slice) -> None:
        super().__init__()
        self._info = info
        self._sl = sl

    def rebind(self, info: dict) -> None:
        """Read ``info`` from now on."""
        self._info = info

    def __getitem__(self, key: str):
        value = self._info[key]
        if isinstance(value, dict):
            return {k: v[self._sl] for k, v in value.items()}
        return value[self._sl]

    def get(self, key: str, default=None):
        return self[key] if key in self._info else default

    def __contains__(self, key: object) -> bool:
        return key in self._info


class _LazyStepInfo(dict):
    """The batch's info of the last decision (``PainStimBatch.step_info()``), each entry made when read.

    Policies read two or three entries; building all of them at every
    decision was a noticeable share of an evaluation. Packed columns are
    views of ``last_info`` and band powers a view of the core's, valid until
    the next step; anything else builds the full dict once per decision.
    One object serves a whole phase: ``refresh`` after each step.
    """

    def __init__(self, batch: PainStimBatch) -> None:
        super().__init__()
        self._batch = batch
        self._full: dict | None = None

    def refresh(self) -> None:
        """The batch has stepped: forget the full dict of the previous decision."""
        self._full = None

    def _all(self) -> dict:
        if self._full is None:
            self._full = self._batch.step_info()
        return self._full

    def __getitem__(self, key: str):
        col = _COL.get(key)
        if col is not None:
            return self._batch.last_info[:, col]
        if key == "features_raw":
            return self._batch.core.features_db
        return self._all()[key]

    def __contains__(self, key: object) -> bool:
        return key in _COL or key in self._all()


@numba.njit(cache=True)
def _accumulate(sums, term_sums, bursts, was_on, month_sums, terms, packed, relief_lost_col, efficacy_col, reward,
                state, scored) -> None:
    """Running sums of one decision, slot by slot: the month's pain and efficacy; if ``scored``, pain,
    high pain, relief lost, reward, terms and on-bursts (a burst under way as the window opens counts)."""
    for p in range(sums.shape[0]):
        month_sums[p, 0] += terms[p, 0]
        month_sums[p, 1] += packed[p, efficacy_col]
        if not scored:
            continue
        sums[p, 0] += terms[p, 0]
        sums[p, 1] += terms[p, 1]
        sums[p, 2] += packed[p, relief_lost_col]
        sums[p, 3] += reward[p]
        for i in range(terms.shape[1]):
            term_sums[p, i] += terms[p, i]
        on = state[p, L.S_AMPLITUDE_MA] > 0
        if on and not was_on[p]:
            bursts[p] += 1.0
        was_on[p] = on


forget_when_changed(__name__, depends_on=("simenv.layout",))


def _check_specs(specs: Sequence[ControllerSpec]) -> None:
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise PainloopError("PL-CONTROLLER-LABEL", f"controller labels {dupes} appear twice; labels must be unique.")


def evaluate(
    specs: Sequence[ControllerSpec],
    patients: Sequence[Patient],
    settings: EnvSettings,
    reward: RewardWeights | None = None,
    seed: int = 0,
    trace_patient: int = 0,
    trace_days: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    extra_specs: Sequence[ControllerSpec] = (),
    record_actions: bool = False,
    jobs: int = 1,
    warmup_days: float = 0.0,
) -> EvaluationResult:
    """Run ``specs`` on ``patients`` for ``settings.horizon_days`` with common random numbers.

    ``extra_specs`` are controllers available for matching (e.g. the one a
    ``random`` entry copies) but not reported unless also in ``specs``.
    ``progress(done_steps, total_steps)`` is called now and then.
    ``record_actions`` keeps every commanded amplitude (``result.actions``).
    A policy whose ``action_mode`` is ``"amplitude_ma"`` returns amplitudes in
    mA, used as they are; one with a ``configure_core(core, slots)`` method is
    given the simulator core after its reset (device configs set ramp rates).
    ``jobs`` > 1 (or -1: every usable core) splits the patients over that many
    worker processes (``agents.evaluation_pool``), with results identical to
    one process; 1, the default, runs here.
    ``warmup_days`` (a finite number >= 0, rounded to whole decisions; else
    ``PL-EVAL-WARMUP``) are simulated from ``settings.initial_state`` before the
    scored window and not scored; the traces show the scored window's first
    ``trace_days``, with time and cumulative energy counted from its start.
    """
    window = run_window(settings, warmup_days)
    wanted, hidden, off_label = _controllers_to_run(specs, extra_specs)
    n_jobs = resolve_jobs(jobs, len(patients))
    if n_jobs > 1:
        return evaluate_in_processes(
            evaluate,
            n_jobs,
            patients,
            trace_patient,
            progress,
            {
                "specs": specs,
                "settings": settings,
                "reward": reward,
                "seed": seed,
                "trace_days": trace_days,
                "extra_specs": extra_specs,
                "record_actions": record_actions,
                "warmup_days": warmup_days,
            },
        )
    phase1 = [s for s in wanted.values() if s.match is None] + [s for s in hidden.values() if s.label not in wanted]
    phase2 = [s for s in wanted.values() if s.match is not None]

    clinic = _clinic_records(list(wanted.values()) + list(hidden.values()), patients, settings.dt_s, seed)
    detectors = {
        s.label: [fit_detector(r, s.detector_settings(), settings.dt_s) for r in clinic[s.clinic_settings()]]
        for s in list(wanted.values()) + list(hidden.values())
        if s.needs_detector
    }
    total_steps = window.total_steps * (len(phase1) + len(phase2))
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total_steps)

    per_patient: dict[str, dict[str, np.ndarray]] = {}
    traces: dict[str, dict[str, np.ndarray]] = {}
    extra: dict[str, dict[str, np.ndarray]] = {}
    actions: dict[str, np.ndarray] = {}
    monthly = MonthlyMeans()
    for phase in (phase1, phase2):
        if not phase:
            continue
        policies = []
        for s in phase:
            pol = s.build(settings.dt_s, seed)
            if s.match is not None:
                ref = extra[s.match]
                pol.match(
                    {p.uid: float(d) for p, d in zip(patients, ref["duty_cycle"], strict=True)},
                    {p.uid: float(b) for p, b in zip(patients, ref["mean_on_burst_s"], strict=True)},
                )
            check = getattr(pol, "check_settings", None)
            if check is not None:
                check(settings)
            policies.append(pol)
        metrics, more, trace, months = _run_phase(
            phase, policies, patients, window, reward, seed, clinic, detectors, trace_patient, trace_days, tick,
            actions if record_actions else None,
        )
        monthly.blocks = months.blocks
        monthly.values.update(months.per_label([s.label for s in phase], _slices(len(patients), len(phase))))
        per_patient.update(metrics)
        extra.update(more)
        traces.update(trace)
    off_pain = per_patient[off_label]["mean_pain_nrs"]
    for metrics in per_patient.values():
        relief = 1.0 - metrics["mean_pain_nrs"] / np.maximum(off_pain, 1e-9)
        metrics["responder_30"] = (relief >= 0.30).astype(float)
        metrics["responder_50"] = (relief >= 0.50).astype(float)
    ordered = {label: {m: per_patient[label][m] for m in METRICS} for label in wanted}
    return EvaluationResult(
        labels=list(wanted),
        patients=list(patients),
        per_patient=ordered,
        uses_latent={label: s.uses_latent for label, s in wanted.items()},
        horizon_days=settings.horizon_days,
        seed=seed,
        traces={k: v for k, v in traces.items() if k in wanted},
        detectors={k: v for k, v in detectors.items() if k in wanted},
        actions={k: v for k, v in actions.items() if k in wanted},
        warmup_days=window.warmup_days,
        monthly=MonthlyMeans(monthly.blocks, {k: monthly.values[k] for k in wanted}),
    )


def _controllers_to_run(
    specs: Sequence[ControllerSpec], extra_specs: Sequence[ControllerSpec]
) -> tuple[dict[str, ControllerSpec], dict[str, ControllerSpec], str]:
    """The asked-for controllers by label, the hidden ones they need (``off``, matched ones), and ``off``'s label.

    Checked before any work starts (and before any worker process is asked to), so bad entries fail at once.
    """
    _check_specs(specs)
    wanted = {s.label: s for s in specs}
    pool = {s.label: s for s in extra_specs} | wanted
    hidden: dict[str, ControllerSpec] = {}
    offs = [s.label for s in wanted.values() if s.kind == "off"]
    off_label = offs[0] if offs else "__off__"  # responders need the off run
    if not offs:
        hidden[off_label] = ControllerSpec(off_label, "off")
    for s in wanted.values():
        m = s.match
        if m is not None and m not in wanted:
            if m not in pool:
                raise PainloopError(
                    "PL-CONTROLLER-MATCH",
                    f"controller '{s.label}' matches '{m}', which is not a controller entry; available: {sorted(pool)}.",
                )
            hidden[m] = pool[m]
    return wanted, hidden, off_label


def _clinic_records(specs, patients, dt_s, seed) -> dict:
    """One clinic calibration period per distinct setting, shared by the controllers that use it."""
    needed = {s.clinic_settings() for s in specs if s.needs_calibration}
    return {cs: record_calibration_period(patients, dt_s, seed, cs) for cs in needed}


def _slices(n_pat: int, n_ctl: int) -> list[slice]:
    """Each controller's slots in a phase's batch (slot ``c * n_pat + i``: patient ``i`` under controller ``c``)."""
    return [slice(c * n_pat, (c + 1) * n_pat) for c in range(n_ctl)]


def _run_phase(
    specs, policies, patients, window: RunWindow, reward, seed, clinic, detectors, trace_patient, trace_days, tick,
    actions=None,
):
    settings = window.run_settings
    warm = window.warmup_decisions
    n_pat = len(patients)
    n_ctl = len(specs)
    # Outputs reused from step to step: everything below reads a decision's results before the next step.
    batch = PainStimBatch(list(patients) * n_ctl, settings, reward, reuse_outputs=True)
    obs, info = batch.reset(seed=seed)
    slices = _slices(n_pat, n_ctl)
    for spec, pol in zip(specs, policies, strict=True):
        records: list[ClinicRecord | None] = (
            clinic[spec.clinic_settings()] if spec.needs_calibration else [None] * n_pat
        )
        dets = detectors.get(spec.label, [None] * n_pat)
        pol.reset(
            [
                PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p], detector=d, calibration=r)
                for p, d, r in zip(patients, dets, records, strict=True)
            ]
        )
        configure_reward = getattr(pol, "configure_reward", None)
        if configure_reward is not None:  # a planner scores its look-ahead by the evaluation's reward
            configure_reward(batch.reward_weights)
        configure = getattr(pol, "configure_core", None)
        if configure is not None:
            configure(batch.core, slices[specs.index(spec)])
    n_slots = n_pat * n_ctl
    sums = np.zeros((n_slots, 4))  # pain, high pain, relief lost, reward
    term_sums = np.zeros((n_slots, len(TERMS)))
    bursts = np.zeros(n_slots)
    was_on = np.zeros(n_slots, dtype=bool)
    decisions = 0
    trace_idx = [c * n_pat + trace_patient for c in range(n_ctl)] if 0 <= trace_patient < n_pat else []
    trace_steps = int(round(trace_days * SECONDS_PER_DAY / (settings.steps_per_decision * settings.dt_s))) if trace_idx else 0
    trace_keys = ("pain_nrs", "pain_drive_nrs", "self_report", "amplitude_ma", "stim_energy_total_j")
    trace_buf = np.full((len(trace_keys) + 3, n_ctl, trace_steps), np.nan)
    amplitudes = np.zeros(n_slots)
    modes = [(getattr(pol, "action_mode", "on_off"), getattr(pol, "n_levels", None)) for pol in policies]
    n_decisions = window.scored_decisions
    record = np.zeros((n_slots, n_decisions)) if actions is not None else None
    months = MonthlyAccumulator(window, n_slots)
    months.start(batch.core.state)
    start = batch.core.state.copy() if warm == 0 else None  # the state as the scored window opens
    # Discrete controllers map through their slots' action table (constant until a reset) in one compiled
    # pass that also checks every action; anything else, or an invalid action, takes the general path,
    # which accepts and refuses exactly the same actions (and names the controller when it refuses).
    tables = [batch.discrete_table(m, slices[c], k) if m in ("on_off", "levels") else None for c, (m, k) in enumerate(modes)]
    observe = any(getattr(pol, "reads_observations", True) for pol in policies)
    # Made once, not at every decision: each controller's views of the info, its amplitudes and the observation.
    views = [_SlicedInfo(info, sl) for sl in slices]
    step_info = _LazyStepInfo(batch)
    amplitude_views = [amplitudes[sl] for sl in slices]
    obs_views: list[np.ndarray] = []
    viewed_obs = None
    relief_lost_col, efficacy_col = _COL["relief_lost_nrs"], _COL["efficacy"]
    chunk = 0
    while True:
        if obs is not viewed_obs:  # a new observation (not observing, every step returns the same array)
            obs_views = [obs[sl] for sl in slices]
            viewed_obs = obs
        for c, pol in enumerate(policies):
            action = pol.act(obs_views[c], views[c])
            table = tables[c]
            if (
                table is not None
                and type(action) is np.ndarray
                and action.shape == (n_pat,)
                and action.dtype.kind in "iuf"
                and discrete_amplitudes(action, table, amplitude_views[c]) < 0
            ):
                continue
            sl = slices[c]
            action = checked_action(specs[c].label, action, modes[c][0], modes[c][1] or settings.n_levels, n_pat, batch.core.amplitude_max_ma[sl])
            if modes[c][0] == "amplitude_ma":  # device configs command amplitudes in mA directly
                amplitudes[sl] = np.asarray(action, dtype=np.float64).reshape(-1)
            else:
                amplitudes[sl] = batch.amplitudes_for(action, modes[c][0], sl, modes[c][1])
        scored = decisions - warm  # the decision's index in the scored window (< 0 in the warm-up)
        if record is not None and 0 <= scored < n_decisions:
            record[:, scored] = amplitudes
        obs, rew, _, truncated = batch.step_arrays(None, amplitudes, observe=observe)
        packed = batch.last_info
        _accumulate(sums, term_sums, bursts, was_on, months.sums, batch.last_terms, packed, relief_lost_col,
                    efficacy_col, rew, batch.core.state, scored >= 0)
        if 0 <= scored < trace_steps:
            for k, key in enumerate(trace_keys):
                trace_buf[k, :, scored] = packed[trace_idx, _COL[key]]
            trace_buf[len(trace_keys), :, scored] = packed[trace_idx, _COL["elapsed_s"]]
            for c, pol in enumerate(policies):
                engine = getattr(pol, "engine", None)
                if engine is not None:
                    trace_buf[len(trace_keys) + 1, c, scored] = engine.last_score[trace_patient]
                    trace_buf[len(trace_keys) + 2, c, scored] = engine.b0[trace_patient]
        decisions += 1
        months.end_of_decision(decisions, batch.core.state)
        if decisions == warm:
            start = batch.core.state.copy()
        step_info.refresh()
        if info is not step_info:  # after the first step: the lazy info, from then on
            info = step_info
            for view in views:
                view.rebind(info)
        chunk += 1
        if chunk == 256:
            tick(chunk * settings.steps_per_decision * n_ctl)
            chunk = 0
        if truncated[0] and truncated.all():  # slots run in step: ask all() once the first slot is done
            break
    tick(chunk * settings.steps_per_decision * n_ctl)
    assert start is not None  # the warm-up is shorter than the run
    st = batch.core.state
    cap = np.array([p.params.battery.capacity_j for p in batch.slot_patients])
    metrics_all = window_metrics(st, start, sums, term_sums, decisions - warm, cap)
    mean_burst = (st[:, L.S_ON_TIME_S] - start[:, L.S_ON_TIME_S]) / np.maximum(bursts, 1.0)
    if trace_steps:  # time and cumulative energy from the scored window's start
        trace_buf[trace_keys.index("stim_energy_total_j")] -= start[trace_idx, L.S_ENERGY_STIM_J][:, None]
        trace_buf[len(trace_keys)] -= start[trace_idx, L.S_TIME_S][:, None]
    out, more, traces = {}, {}, {}
    for c, spec in enumerate(specs):
        sl = slices[c]
        out[spec.label] = {k: v[sl].copy() for k, v in metrics_all.items()}
        more[spec.label] = {"duty_cycle": metrics_all["duty_cycle"][sl].copy(), "mean_on_burst_s": mean_burst[sl].copy()}
        if record is not None:
            actions[spec.label] = record[sl].copy()
        if trace_steps:
            tr = {key: trace_buf[k, c].copy() for k, key in enumerate(trace_keys)}
            tr["elapsed_s"] = trace_buf[len(trace_keys), c].copy()
            tr["detector_score"] = trace_buf[len(trace_keys) + 1, c].copy()
            tr["detector_threshold"] = trace_buf[len(trace_keys) + 2, c].copy()
            traces[spec.label] = tr
    return out, more, traces, months
