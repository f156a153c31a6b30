"""A paired evaluation split over worker processes gives the one-process result, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.controller_config import ConfigError
from agents.controllers import ControllerSpec
from agents.evaluation import evaluate
from agents.evaluation_pool import patient_groups, resolve_jobs, usable_cores
from experiments.sweeps.rerun import comparable
from simenv.batch import EnvSettings
from simenv.cohort import load_preset
from simenv.errors import PainloopError, UnsafeStimulationError

PATIENTS = load_preset("test").sample(5)
SHORT = EnvSettings(horizon_days=0.25)
SPECS = [
    ControllerSpec("off", "off"),
    ControllerSpec("cycling", "cycling"),
    ControllerSpec("threshold", "threshold"),
    ControllerSpec("dual_threshold", "dual_threshold"),
    ControllerSpec("latent_threshold", "latent_threshold"),
    ControllerSpec("random", "random", {"match": "threshold"}),
]


@pytest.fixture(scope="module")
def one_and_two_processes():
    kwargs = {"seed": 4, "trace_patient": 3, "record_actions": True}  # the trace patient is in the second group
    one = evaluate(SPECS, PATIENTS, SHORT, **kwargs)
    calls: list[tuple[int, int]] = []
    two = evaluate(SPECS, PATIENTS, SHORT, jobs=2, progress=lambda d, t: calls.append((d, t)), **kwargs)
    return one, two, calls


def test_two_processes_give_the_one_process_result_bit_for_bit(one_and_two_processes):
    one, two, _ = one_and_two_processes
    assert two.labels == one.labels and [p.uid for p in two.patients] == [p.uid for p in one.patients]
    for label in one.labels:
        for metric, values in one.per_patient[label].items():
            np.testing.assert_array_equal(two.per_patient[label][metric], values, err_msg=f"{label} {metric}")
        np.testing.assert_array_equal(two.actions[label], one.actions[label])
        assert two.traces[label].keys() == one.traces[label].keys()
        for key, values in one.traces[label].items():
            np.testing.assert_array_equal(two.traces[label][key], values, err_msg=f"trace {label} {key}")
    for label in ("threshold", "dual_threshold"):
        assert two.detectors[label] == one.detectors[label]


def test_progress_is_summed_over_the_workers_and_ends_complete(one_and_two_processes):
    _, _, calls = one_and_two_processes
    assert calls, "no progress reported"
    done = [d for d, _ in calls]
    assert done == sorted(done)
    total = SHORT.horizon_steps * (len(SPECS)) * 2  # every controller's steps, once per worker's group
    assert calls[-1] == (total, total)


def test_an_error_in_a_worker_reaches_the_caller_and_the_next_call_works(tmp_path):
    bad = [ControllerSpec("off", "off"), ControllerSpec("exported", "config", {"path": str(tmp_path / "none")})]
    with pytest.raises(PainloopError) as err:
        evaluate(bad, PATIENTS[:2], SHORT, jobs=2)
    assert err.value.code == "PL-CONFIG-MISSING"
    again = evaluate(SPECS[:2], PATIENTS[:2], SHORT, seed=1, jobs=2)
    alone = evaluate(SPECS[:2], PATIENTS[:2], SHORT, seed=1)
    np.testing.assert_array_equal(again.per_patient["cycling"]["reward_per_day"], alone.per_patient["cycling"]["reward_per_day"])


def test_bad_entries_fail_before_any_worker_starts():
    with pytest.raises(PainloopError, match="PL-CONTROLLER-MATCH"):
        evaluate([ControllerSpec("random", "random", {"match": "nothere"})], PATIENTS, SHORT, jobs=2)


@pytest.mark.parametrize("jobs", [0, -2, 1.5, True, "2", None])
def test_bad_job_counts_are_refused_with_what_is_allowed(jobs):
    with pytest.raises(PainloopError, match="-1 for every usable core") as err:
        resolve_jobs(jobs, 10)
    assert err.value.code == "PL-EVAL-JOBS"


def test_job_counts_are_capped_by_patients_and_minus_one_means_every_core():
    assert resolve_jobs(1, 10) == 1
    assert resolve_jobs(8, 3) == 3
    assert resolve_jobs(-1, 1000) == usable_cores()


@given(n=st.integers(1, 500), k=st.integers(1, 64))
def test_groups_are_contiguous_ordered_and_balanced(n, k):
    groups = patient_groups(n, min(k, n))
    assert [i for g in groups for i in g] == list(range(n))
    sizes = [len(g) for g in groups]
    assert len(groups) == min(k, n) and max(sizes) - min(sizes) <= 1


def test_painloop_errors_survive_pickling_with_code_message_and_attributes():
    for error in (
        PainloopError("PL-X", "bad x"),
        UnsafeStimulationError("PL-SAFETY-AMPLITUDE", "too much"),
        ConfigError("PL-CONFIG-INVALID", "two problems", ["a", "b"]),
    ):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and back.code == error.code and str(back) == str(error)
        assert back.__dict__ == error.__dict__


def test_jobs_is_a_how_to_run_key_ignored_when_a_rerun_checks_for_a_finished_run():
    assert comparable({"seed": 1, "jobs": 2}) == comparable({"seed": 1}) == comparable({"seed": 1, "jobs": 1})


def test_a_controller_that_cannot_reach_a_worker_is_refused_before_any_work():
    from agents.baselines import Continuous

    local = ControllerSpec("mine", "policy", factory=lambda: Continuous("mine"))
    with pytest.raises(PainloopError, match="jobs=1 for any Python object") as err:
        evaluate([ControllerSpec("off", "off"), local], PATIENTS[:2], SHORT, jobs=2)
    assert err.value.code == "PL-EVAL-JOBS"
