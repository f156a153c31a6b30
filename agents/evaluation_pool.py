"""A paired evaluation split over worker processes, each running every controller on a share of the patients.

Why the split is exact: a patient's trajectory depends only on the seed, the
patient's uid, the episode and its controller (batch size and slot order
never change it), and everything else an evaluation does is per patient too
(the clinic's calibration period, the detector fits, the normalisation, a
``random`` controller's match to another controller's duty). So contiguous
groups of patients evaluated in separate processes and concatenated in order
give the arrays of a single-process run, bit for bit
(``tests/test_evaluation_pool.py`` compares them).

Workers are started with ``spawn`` (no inherited threads or locks from torch
or BLAS) and kept for the next call with the same number of processes, so
only the first call pays their start-up (imports, the compiled kernel loaded
from numba's cache, each patient's normalisation period): a second or two
each. Progress reaches the caller through a queue; an error in any worker,
or an interrupt of the caller, stops the workers (the next call starts new
ones) and is raised here.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queue_module
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any

import numpy as np

from agents.monthly_means import concat_patients
from simenv.cores import usable_cores
from simenv.errors import PainloopError
from simenv.noise import NOISE_THREAD_ENV

#: The worker's progress queue, set by ``_init_worker`` (a queue can only reach a process when it starts).
_PROGRESS_QUEUE: Any = None
#: The caller's pool, kept between calls: (number of workers, executor, progress queue), or None.
_POOL: tuple[int, ProcessPoolExecutor, Any] | None = None
#: Tags each call's progress messages, so none from an earlier call is counted.
_CALLS = [0]


def resolve_jobs(jobs: int, n_patients: int) -> int:
    """Number of processes for ``jobs`` (a positive count, or -1 for every usable core), at most one per patient."""
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or not (jobs >= 1 or jobs == -1):
        raise PainloopError(
            "PL-EVAL-JOBS", f"jobs={jobs!r}; allowed: a whole number of processes >= 1, or -1 for every usable core."
        )
    wanted = usable_cores() if jobs == -1 else int(jobs)
    return max(1, min(wanted, n_patients))


def patient_groups(n_patients: int, n_groups: int) -> list[range]:
    """Contiguous index ranges of nearly equal size, in order, covering ``range(n_patients)``."""
    edges = np.linspace(0, n_patients, n_groups + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _init_worker(progress_queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    # The workers already fill the cores: no noise-drawing thread each, unless the caller asked for it.
    os.environ.setdefault(NOISE_THREAD_ENV, "0")


def _run_group(call: int, group: int, kwargs: dict):
    """One worker's share: ``agents.evaluation.evaluate`` on its patients, progress sent to the caller."""
    from agents.evaluation import evaluate

    def progress(done: int, total: int) -> None:
        _PROGRESS_QUEUE.put((call, group, done, total))

    return evaluate(**kwargs, progress=progress, jobs=1)


def evaluate_in_processes(
    n_jobs: int,
    patients: Sequence,
    trace_patient: int,
    progress: Callable[[int, int], None] | None,
    kwargs: dict,
):
    """Run ``evaluate(**kwargs)`` on ``n_jobs`` groups of ``patients`` in worker processes and merge the results.

    ``kwargs`` holds every other argument of ``evaluate`` (specs, settings,
    reward, seed, ...). ``trace_patient`` is an index into ``patients``; the
    group that holds it records the trace.
    """
    try:  # the workers get everything by pickle: a controller built from a local function cannot go
        pickle.dumps(kwargs)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PainloopError(
            "PL-EVAL-JOBS",
            f"jobs={n_jobs}: a controller cannot be sent to a worker process ({exc}); "
            "allowed: controllers given by name, run:<dir> or config:<dir>, or jobs=1 for any Python object.",
        ) from None
    groups = patient_groups(len(patients), n_jobs)
    executor, progress_queue = _pool(len(groups))
    _CALLS[0] += 1
    call = _CALLS[0]
    done = [0] * len(groups)
    totals = [0] * len(groups)

    def drain() -> None:
        moved = False
        while True:
            try:
                tag, group, n_done, total = progress_queue.get_nowait()
            except queue_module.Empty:
                break
            if tag != call:
                continue
            done[group], totals[group] = n_done, total
            moved = True
        if moved and progress is not None and all(totals):
            progress(sum(done), sum(totals))

    finished = False
    try:
        futures: list[Future] = []
        for g, members in enumerate(groups):
            local_trace = trace_patient - members.start if trace_patient in members else -1
            group_kwargs = kwargs | {"patients": [patients[i] for i in members], "trace_patient": local_trace}
            futures.append(executor.submit(_run_group, call, g, group_kwargs))
        pending = set(futures)
        while pending:
            completed, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            drain()
            for f in completed:
                f.result()  # re-raises a worker's error at once; the finally below stops the others
        drain()
        results = [f.result() for f in futures]
        finished = True
    finally:
        if not finished:  # an error or an interrupt: stop the workers now rather than let them run on
            shutdown_pool(terminate=True)
    return merge_results(results, list(patients))


def _pool(n_workers: int) -> tuple[ProcessPoolExecutor, Any]:
    """The kept pool of ``n_workers`` processes (a new one if none is kept, or of another size)."""
    global _POOL
    if _POOL is not None and _POOL[0] != n_workers:
        shutdown_pool()
    if _POOL is None:
        context = multiprocessing.get_context("spawn")
        progress_queue = context.Queue()
        executor = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=context, initializer=_init_worker, initargs=(progress_queue,)
        )
        _POOL = (n_workers, executor, progress_queue)
    return _POOL[1], _POOL[2]


def shutdown_pool(terminate: bool = False) -> None:
    """Stop the kept worker processes (``terminate``: at once, without waiting for running work)."""
    global _POOL
    if _POOL is None:
        return
    _, executor, progress_queue = _POOL
    _POOL = None
    if terminate:
        # concurrent.futures has no public way to stop a running task; its process table is stable API in practice.
        processes = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
    progress_queue.close()


def merge_results(results: Sequence, patients: list):
    """One ``EvaluationResult`` from the groups' results, patients in order."""
    from agents.evaluation import EvaluationResult

    first = results[0]
    per_patient = {
        label: {metric: np.concatenate([r.per_patient[label][metric] for r in results]) for metric in first.per_patient[label]}
        for label in first.labels
    }
    traces: dict[str, dict[str, np.ndarray]] = next((r.traces for r in results if r.traces), {})
    detectors = {label: [d for r in results for d in r.detectors[label]] for label in first.detectors}
    actions = {label: np.concatenate([r.actions[label] for r in results], axis=0) for label in first.actions}
    return EvaluationResult(
        labels=list(first.labels),
        patients=patients,
        per_patient=per_patient,
        uses_latent=dict(first.uses_latent),
        horizon_days=first.horizon_days,
        seed=first.seed,
        traces=traces,
        detectors=detectors,
        actions=actions,
        warmup_days=first.warmup_days,
        monthly=concat_patients([r.monthly for r in results]),
    )
