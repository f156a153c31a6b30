"""The long-term frame: an unscored warm-up, then a scored window that is the tail of one long run.

Small cohort, 10-minute steps: 35 days of warm-up (a full 30-day block and a
5-day one) and 10 scored days. Controllers wrapped in ``Recording`` keep what
they read from ``info`` at every decision, which is each decision's outcome
one decision late; a run one step longer than warm-up + window therefore
yields every decision's outcome, against which the engine's running sums are
recomputed here in the engine's order of addition (bit for bit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.baselines import Continuous, Cycling, Off, RandomOnOff
from agents.controllers import ControllerSpec
from agents.evaluation import METRICS, evaluate
from agents.evaluation_window import check_warmup_days, run_window
from agents.monthly_means import MONTHLY_METRICS, MonthBlock
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.errors import PainloopError

PATIENTS = load_preset("test").sample(3)
DT_S = 600.0
PER_DAY = 144  # decisions (= steps) per day at DT_S
WARMUP_DAYS = 35.0
HORIZON_DAYS = 10.0
SETTINGS = EnvSettings(dt_s=DT_S, horizon_days=HORIZON_DAYS)
SEED = 2
WARM = int(WARMUP_DAYS * PER_DAY)
TOTAL = WARM + int(HORIZON_DAYS * PER_DAY)
STATE_KEYS = ("elapsed_s", "on_time_total_s", "stim_energy_total_j", "battery_drawn_total_j", "mild_events_total",
              "seizure_events_total", "switches_total")
OUTCOME_KEYS = ("pain_nrs", "pain_drive_nrs", "relief_lost_nrs", "efficacy", "self_report")


class Recording:
    """A controller that acts as ``inner`` and keeps, per decision, the ``info`` values it was given."""

    reads_observations = False

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen: dict[str, list[np.ndarray]] = {k: [] for k in STATE_KEYS + OUTCOME_KEYS}

    def reset(self, patients) -> None:
        self.inner.reset(patients)

    def act(self, observations, info):
        for key, values in self.seen.items():
            values.append(np.array(info[key], dtype=float) if key in info else np.full(len(observations), np.nan))
        return self.inner.act(observations, info)

    def history(self) -> dict[str, np.ndarray]:
        """key -> (n_patients, n_acts): column k is the state after decision k - 1 (column 0: after the reset)."""
        return {k: np.stack(v, axis=1) for k, v in self.seen.items()}


def recorded(label: str, make, store: dict) -> ControllerSpec:
    def factory():
        store[label] = Recording(make())
        return store[label]

    return ControllerSpec(label, "policy", factory=factory)


def base_specs(store: dict) -> list[ControllerSpec]:
    return [
        recorded("off", lambda: Off("off"), store),
        recorded("continuous", lambda: Continuous("continuous"), store),
        recorded("cycling", lambda: Cycling("cycling", on_s=1200.0, off_s=1800.0, dt_s=DT_S), store),
        ControllerSpec("threshold", "threshold"),
        ControllerSpec("random", "random", {"match": "threshold", "mean_on_s": 1200.0}),
    ]


def grown(h: dict[str, np.ndarray], key: str) -> np.ndarray:
    """How much a cumulative counter grew over the scored window of a recorded long run."""
    return h[key][:, TOTAL] - h[key][:, WARM]


def in_order_sum(values: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as the engine's running sums are (``np.sum`` adds pairwise)."""
    total = np.zeros(values.shape[0])
    for k in range(values.shape[1]):
        total = total + values[:, k]
    return total


@pytest.fixture(scope="module")
def long_term():
    store: dict = {}
    matched: list[dict] = []
    original = RandomOnOff.match

    def spy(self, duty_by_uid, mean_on_s_by_uid):
        matched.append(dict(duty_by_uid))
        original(self, duty_by_uid, mean_on_s_by_uid)

    RandomOnOff.match = spy  # type: ignore[method-assign]
    try:
        result = evaluate(base_specs(store), PATIENTS, SETTINGS, seed=SEED, warmup_days=WARMUP_DAYS, trace_patient=2,
                          record_actions=True)
    finally:
        RandomOnOff.match = original  # type: ignore[method-assign]
    return result, store, matched


@pytest.fixture(scope="module")
def one_long_run():
    """The same controllers from the same start, one run of warm-up + window + one step, scored from the start."""
    store: dict = {}
    long = EnvSettings(dt_s=DT_S, horizon_days=(TOTAL + 1) / PER_DAY)
    result = evaluate(base_specs(store)[:4], PATIENTS, long, seed=SEED, record_actions=True)
    return result, {label: rec.history() for label, rec in store.items()}


@pytest.fixture(scope="module")
def naive_start():
    return evaluate(base_specs({}), PATIENTS, SETTINGS, seed=SEED, trace_patient=2, record_actions=True)


def test_the_warm_up_is_not_scored(long_term, naive_start):
    result, _, _ = long_term
    assert result.warmup_days == WARMUP_DAYS and result.horizon_days == HORIZON_DAYS
    after, naive = result.per_patient["continuous"], naive_start.per_patient["continuous"]
    # Tolerance built over 35 days of continuous stimulation costs relief a naive start does not lose yet.
    assert np.all(after["relief_lost_nrs"] > naive["relief_lost_nrs"] + 0.05)
    # Rates are per scored day (the window's energy over the window's days, not the whole run's).
    np.testing.assert_allclose(after["stim_energy_j_per_day"], naive["stim_energy_j_per_day"], rtol=1e-3)
    assert np.all(after["duty_cycle"] == 1.0) and np.all(result.per_patient["off"]["stim_energy_j_per_day"] == 0.0)
    assert result.actions["cycling"].shape == (len(PATIENTS), HORIZON_DAYS * PER_DAY)


def test_the_scored_window_is_the_tail_of_one_long_run_bit_for_bit(long_term, one_long_run):
    result, _, _ = long_term
    long_result, seen = one_long_run
    for label in ("continuous", "cycling"):
        h = seen[label]
        assert h["elapsed_s"].shape[1] == TOTAL + 1  # after the reset, then after each decision of warm-up + window
        tail = slice(WARM + 1, TOTAL + 1)  # the outcomes of decisions WARM .. TOTAL - 1

        n = TOTAL - WARM
        elapsed = grown(h, "elapsed_s")
        days = elapsed / 86400.0
        pain = h["pain_nrs"][:, tail]
        expected = {
            "mean_pain_nrs": in_order_sum(pain) / n,
            "high_pain_fraction": in_order_sum((pain >= 7.0).astype(float)) / n,
            "relief_lost_nrs": in_order_sum(h["relief_lost_nrs"][:, tail]) / n,
            "duty_cycle": grown(h, "on_time_total_s") / elapsed,
            "stim_energy_j_per_day": grown(h, "stim_energy_total_j") / days,
            "battery_draw_j_per_day": grown(h, "battery_drawn_total_j") / days,
            "mild_events_per_day": grown(h, "mild_events_total") / days,
            "seizure_events": grown(h, "seizure_events_total"),
            "switches_per_hour": grown(h, "switches_total") / (elapsed / 3600.0),
        }
        for metric, values in expected.items():
            np.testing.assert_array_equal(result.per_patient[label][metric], values, err_msg=f"{label} {metric}")
        assert np.all(elapsed == HORIZON_DAYS * 86400.0)
    # Closed loop too: the threshold controller's commands in the window are the long run's last ones.
    for label in ("continuous", "cycling", "threshold"):
        np.testing.assert_array_equal(result.actions[label], long_result.actions[label][:, WARM:TOTAL], err_msg=label)


def test_the_trace_shows_the_first_scored_day_of_the_long_run(long_term, one_long_run):
    result, _, _ = long_term
    h = one_long_run[1]["cycling"]
    tr = result.traces["cycling"]
    day = slice(WARM + 1, WARM + 1 + PER_DAY)
    np.testing.assert_array_equal(tr["pain_nrs"], h["pain_nrs"][2, day])
    np.testing.assert_array_equal(tr["elapsed_s"], h["elapsed_s"][2, day] - h["elapsed_s"][2, WARM])
    np.testing.assert_array_equal(tr["stim_energy_total_j"], h["stim_energy_total_j"][2, day] - h["stim_energy_total_j"][2, WARM])
    assert tr["elapsed_s"][0] == DT_S and tr["elapsed_s"][-1] == 86400.0


def test_monthly_means_cover_the_whole_run_in_labelled_blocks(long_term, one_long_run):
    result, _, _ = long_term
    monthly = result.monthly
    assert monthly.blocks == [MonthBlock(0.0, 30.0, False), MonthBlock(30.0, 5.0, False), MonthBlock(35.0, 10.0, True)]
    assert [b.phase for b in monthly.blocks] == ["warm-up", "warm-up", "scored"]
    assert list(monthly.values) == result.labels
    bounds = [(0, 30 * PER_DAY), (30 * PER_DAY, WARM), (WARM, TOTAL)]
    for label in ("continuous", "cycling"):
        h = one_long_run[1][label]
        for b, (a, z) in enumerate(bounds):
            outcomes = slice(a + 1, z + 1)
            elapsed = h["elapsed_s"][:, z] - h["elapsed_s"][:, a]
            expected = {
                "pain_nrs": in_order_sum(h["pain_nrs"][:, outcomes]) / (z - a),
                "efficacy": in_order_sum(h["efficacy"][:, outcomes]) / (z - a),
                "stim_energy_j_per_day": (h["stim_energy_total_j"][:, z] - h["stim_energy_total_j"][:, a]) / (elapsed / 86400.0),
                "duty_cycle": (h["on_time_total_s"][:, z] - h["on_time_total_s"][:, a]) / elapsed,
            }
            assert list(expected) == list(MONTHLY_METRICS)
            for metric, values in expected.items():
                np.testing.assert_array_equal(monthly.values[label][metric][:, b], values, err_msg=f"{label} {metric} {b}")
        # The scored block's means are the scored window's.
        np.testing.assert_array_equal(monthly.values[label]["pain_nrs"][:, 2], result.per_patient[label]["mean_pain_nrs"])
    # Tolerance: continuous stimulation loses efficacy month by month; off keeps all of it.
    eff = monthly.values["continuous"]["efficacy"]
    assert np.all(np.diff(eff, axis=1) < 0)
    assert np.all(monthly.values["off"]["efficacy"] == 1.0)


def test_common_random_numbers_hold_across_controllers_through_the_warm_up(long_term):
    result, store, _ = long_term
    seen = {label: rec.history() for label, rec in store.items()}
    drive = seen["off"]["pain_drive_nrs"][:, 1:]
    assert drive.shape[1] == TOTAL - 1  # every decision's outcome but the last
    reports = np.isnan(seen["off"]["self_report"][:, 1:])
    for label in ("continuous", "cycling"):
        np.testing.assert_array_equal(seen[label]["pain_drive_nrs"][:, 1:], drive, err_msg=label)
        np.testing.assert_array_equal(np.isnan(seen[label]["self_report"][:, 1:]), reports, err_msg=label)
        assert not np.array_equal(seen[label]["pain_nrs"], seen["off"]["pain_nrs"], equal_nan=True)
    for label in result.labels:  # the traced patient's first scored day, every controller
        np.testing.assert_array_equal(result.traces[label]["pain_drive_nrs"], result.traces["off"]["pain_drive_nrs"])


def test_dependencies_use_the_scored_window(long_term):
    result, _, matched = long_term
    # The matched random controller copies the threshold controller's scored-window duty.
    assert len(matched) == 1
    assert [matched[0][p.uid] for p in PATIENTS] == list(result.per_patient["threshold"]["duty_cycle"])
    off_pain = result.per_patient["off"]["mean_pain_nrs"]
    for label in result.labels:
        relief = 1.0 - result.per_patient[label]["mean_pain_nrs"] / off_pain
        np.testing.assert_array_equal(result.per_patient[label]["responder_30"], (relief >= 0.30).astype(float))


def test_two_processes_give_the_one_process_result_with_a_warm_up():
    specs = [ControllerSpec("off", "off"), ControllerSpec("cycling", "cycling", {"on_s": 1200.0, "off_s": 1800.0}),
             ControllerSpec("threshold", "threshold"),
             ControllerSpec("random", "random", {"match": "threshold", "mean_on_s": 1200.0})]
    settings = EnvSettings(dt_s=DT_S, horizon_days=1.0)
    kwargs = {"seed": 5, "warmup_days": 5.0, "trace_patient": 2, "record_actions": True}
    one = evaluate(specs, PATIENTS, settings, **kwargs)
    two = evaluate(specs, PATIENTS, settings, jobs=2, **kwargs)
    assert two.warmup_days == one.warmup_days == 5.0
    assert two.monthly.blocks == one.monthly.blocks == [MonthBlock(0.0, 5.0, False), MonthBlock(5.0, 1.0, True)]
    for label in one.labels:
        for metric, values in one.per_patient[label].items():
            np.testing.assert_array_equal(two.per_patient[label][metric], values, err_msg=f"{label} {metric}")
        for metric, values in one.monthly.values[label].items():
            assert values.shape == (len(PATIENTS), 2)
            np.testing.assert_array_equal(two.monthly.values[label][metric], values, err_msg=f"monthly {label} {metric}")
        np.testing.assert_array_equal(two.actions[label], one.actions[label])
        for key, values in one.traces[label].items():
            np.testing.assert_array_equal(two.traces[label][key], values, err_msg=f"trace {label} {key}")


def test_no_warm_up_gives_the_result_of_a_call_without_the_argument():
    specs = [ControllerSpec("off", "off"), ControllerSpec("continuous", "continuous"),
             ControllerSpec("threshold", "threshold"), ControllerSpec("random", "random", {"match": "threshold"})]
    settings = EnvSettings(horizon_days=0.2, decision_interval_s=90.0)
    plain = evaluate(specs, PATIENTS, settings, seed=1, trace_patient=1, record_actions=True)
    for warmup in (0, 0.0, 1e-6):  # 1e-6 days rounds to no decision
        same = evaluate(specs, PATIENTS, settings, seed=1, trace_patient=1, record_actions=True, warmup_days=warmup)
        assert same.warmup_days == plain.warmup_days == 0.0
        assert same.monthly.blocks == plain.monthly.blocks == [MonthBlock(0.0, 0.2, True)]
        for label in plain.labels:
            for metric in METRICS:
                np.testing.assert_array_equal(same.per_patient[label][metric], plain.per_patient[label][metric])
            for metric, values in plain.monthly.values[label].items():
                np.testing.assert_array_equal(same.monthly.values[label][metric], values)
            np.testing.assert_array_equal(same.actions[label], plain.actions[label])
            for key, values in plain.traces[label].items():
                np.testing.assert_array_equal(same.traces[label][key], values)


def test_a_warm_up_is_rounded_to_whole_decisions():
    settings = EnvSettings(dt_s=30.0, horizon_days=1.0, decision_interval_s=420.0)
    window = run_window(settings, 90.0)
    assert window.warmup_decisions == round(90 * 86400 / 420)
    assert window.run_settings.horizon_steps == window.warmup_steps + settings.horizon_steps
    assert math.isclose(window.warmup_days, 90.0, abs_tol=420.0 / 86400)


@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.nan, math.inf, -math.inf, "90", True, None, [90]])
def test_bad_warm_ups_are_refused_with_what_is_allowed(bad):
    with pytest.raises(PainloopError, match="allowed: a finite number of days >= 0") as err:
        check_warmup_days(bad)
    assert err.value.code == "PL-EVAL-WARMUP"


def test_a_bad_warm_up_stops_an_evaluation_before_any_work():
    specs = [ControllerSpec("off", "off")]
    for jobs in (1, 2):
        with pytest.raises(PainloopError) as err:
            evaluate(specs, PATIENTS, SETTINGS, warmup_days=math.nan, jobs=jobs)
        assert err.value.code == "PL-EVAL-WARMUP"
    with pytest.raises(PainloopError, match="at most 3650 days") as err:
        evaluate(specs, PATIENTS, SETTINGS, warmup_days=3645.0)
    assert err.value.code == "PL-EVAL-WARMUP"
