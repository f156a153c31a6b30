"""Per-patient exogenous noise, drawn ahead in chunks (common random numbers).

The noise of patient ``uid`` in episode ``k`` under seed ``s`` comes from
``numpy.random.SeedSequence([s, uid, k])`` and nothing else, so batch size
and slot order never change a trajectory, and two controllers run on the
same (seed, patient, episode) see identical drift, flares, report times and
side-effect draws: every random draw is independent of the actions.

Normals and uniforms come from two child streams of that sequence. Each
stream yields the same numbers however it is cut into chunks, so the chunk
length can follow the batch size (to bound memory) without changing any
value; a test checks this.

Drawing is most of the batched core's time at large batches (NumPy's
generators, one pair per patient). When the process may use two cores,
batches of ``PREFETCH_MIN_SLOTS`` or more draw each slot's next chunk on a
worker thread while the kernel steps through the current one (NumPy's
generators and the kernel both run without the GIL); the chunk is then
taken by switching the slot's buffer row, with no copy. Each generator is
used by one thread at a time, in the same order, so the values are the ones
drawn without the thread. ``PAINLOOP_NOISE_THREAD`` = ``auto`` (default),
``1`` or ``0`` chooses.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from simenv import layout as L
from simenv.cores import usable_cores
from simenv.errors import PainloopError

#: Number of values per patient drawn for the initial state, before step 0.
N_INITIAL_NORMALS = L.N_NORMALS
N_INITIAL_UNIFORMS = L.N_UNIFORMS
#: Upper bound on buffered patient-steps (memory: 8 B * 24 values each, ~100 MB), both buffers together.
_BUFFER_PATIENT_STEPS = 1 << 19
#: Smallest batch whose next chunks are drawn on the worker thread (``auto``): below it the
#: drawing is a small share of a step and the thread's hand-overs would cost more than it saves.
PREFETCH_MIN_SLOTS = 64
#: The environment variable that chooses the worker thread: auto, 1 (always) or 0 (never).
NOISE_THREAD_ENV = "PAINLOOP_NOISE_THREAD"
_EXECUTOR: ThreadPoolExecutor | None = None


def chunk_steps_for(n_patients: int, buffers: int = 1) -> int:
    """Chunk length: long for small batches (less Python per step), bounded memory for big ones."""
    return int(min(1024, max(16, _BUFFER_PATIENT_STEPS // (buffers * max(n_patients, 1)))))


def prefetch_wanted(n_slots: int) -> bool:
    """Whether a batch of ``n_slots`` draws its next chunks on the worker thread (``PAINLOOP_NOISE_THREAD``)."""
    setting = os.environ.get(NOISE_THREAD_ENV, "auto").strip().lower()
    if setting not in ("auto", "1", "0"):
        raise PainloopError(
            "PL-ENV-ARG", f"{NOISE_THREAD_ENV}={setting!r}; allowed: auto (the default), 1 (always) or 0 (never)."
        )
    if setting == "auto":
        return n_slots >= PREFETCH_MIN_SLOTS and usable_cores() >= 2
    return setting == "1"


def _executor() -> ThreadPoolExecutor:
    """The process's one noise-drawing thread, started on first use (jobs queue in order)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="painloop-noise")
    return _EXECUTOR


def _finish_draws_before_fork() -> None:
    """Let queued draws finish before a fork: a child must not inherit a generator locked mid-draw."""
    if _EXECUTOR is not None:
        _EXECUTOR.submit(lambda: None).result()  # one worker, first in first out: everything before is done


def _forget_executor_in_child() -> None:
    """A forked child has no worker thread: it starts its own when it needs one."""
    global _EXECUTOR
    _EXECUTOR = None


os.register_at_fork(before=_finish_draws_before_fork, after_in_child=_forget_executor_in_child)


def episode_streams(seed: int, uid: int, episode: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (normals, uniforms) generators of one patient's episode."""
    children = np.random.SeedSequence([int(seed), int(uid), int(episode)]).spawn(2)
    return np.random.Generator(np.random.PCG64(children[0])), np.random.Generator(
        np.random.PCG64(children[1])
    )


class NoiseStreams:
    """Chunked noise buffers for a batch of patient slots.

    ``drawn_normals[row[p], position[p]]`` and ``drawn_uniforms[row[p],
    position[p]]`` hold the draws of slot ``p`` for its current step (the
    ``normals`` and ``uniforms`` properties give them per slot, as copies).
    ``advance()`` moves every slot one step on and refills the chunks that
    ran out.

    Positions are kept as one step counter for the whole batch (``clock``)
    minus the counter's value when each slot's chunk began (``chunk_start``):
    every slot moves at every step, so advancing is one integer addition,
    and the kernel reads ``clock - chunk_start[p]``.

    Slots started together with the same (seed, uid, episode) key, such as
    one patient under several controllers in a paired evaluation, share one
    stream: the leader slot draws into its row and its followers read that
    row (``leader``; ``row`` is the buffer row each slot reads). The values
    are the same as with separate streams; the drawing is done once and
    nothing is copied.

    With ``prefetch`` (default: ``prefetch_wanted``), each leader owns two
    rows, ``s`` and ``s + n_slots``: it reads one while the worker thread
    fills the other with its next chunk.
    """

    def __init__(self, n_slots: int, chunk_steps: int | None = None, prefetch: bool | None = None) -> None:
        self.n_slots = n_slots
        self.prefetch = prefetch_wanted(n_slots) if prefetch is None else bool(prefetch)
        buffers = 2 if self.prefetch else 1
        self.chunk_steps = chunk_steps or chunk_steps_for(n_slots, buffers)
        c = self.chunk_steps
        self.drawn_normals = np.zeros((buffers * n_slots, c, L.N_NORMALS))
        self.drawn_uniforms = np.zeros((buffers * n_slots, c, L.N_UNIFORMS))
        self.clock = 0
        self.chunk_start = np.zeros(n_slots, dtype=np.int64)
        self.leader = np.arange(n_slots)  # slot whose stream each slot reads
        self._leader_row = np.arange(n_slots)  # row a leader reads now (s, or s + n_slots with prefetch)
        self.row = np.arange(n_slots)  # buffer row each slot reads: its leader's current row
        # Row views made once: a refill touches every slot, and building views costs more than drawing a few.
        self._rows_normal = list(self.drawn_normals)
        self._rows_uniform = list(self.drawn_uniforms)
        self._gen_normal: list[np.random.Generator | None] = [None] * n_slots
        self._gen_uniform: list[np.random.Generator | None] = [None] * n_slots
        # With prefetch: a leader's other row holds its next chunk (its generators are past it).
        self._next_ready = np.zeros(n_slots, dtype=bool)
        self._pending: tuple[Future, list[int]] | None = None
        # Steps until the first slot runs out: advance() is O(1) until then.
        self._steps_left = self.chunk_steps

    def __getstate__(self) -> dict:
        self.wait_for_draws()  # a copy holds finished draws only
        return self.__dict__.copy()

    def start(self, slot: int, seed: int, uid: int, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """Begin one slot's episode; return its initial-state draws (normals, uniforms)."""
        z, u = self.start_many([slot], [seed], [uid], [episode])
        return z[0], u[0]

    def start_many(
        self,
        slots: Sequence[int] | np.ndarray,
        seeds: Sequence[int] | np.ndarray,
        uids: Sequence[int] | np.ndarray,
        episodes: Sequence[int] | np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Begin episodes in several slots; return initial draws of shape (len(slots), ...)."""
        slots = [int(s) for s in slots]
        self.wait_for_draws()  # the generators and rows change below
        self._detach_followers_of(set(slots))
        initial_n = np.zeros((len(slots), N_INITIAL_NORMALS))
        initial_u = np.zeros((len(slots), N_INITIAL_UNIFORMS))
        groups: dict[tuple[int, int, int], list[int]] = {}
        for k, (seed_k, uid_k, episode_k) in enumerate(zip(seeds, uids, episodes, strict=True)):
            groups.setdefault((int(seed_k), int(uid_k), int(episode_k)), []).append(k)
        leads = []
        for (seed, uid, episode), members in groups.items():
            lead = slots[members[0]]
            leads.append(lead)
            gn, gu = episode_streams(seed, uid, episode)
            initial_n[members] = gn.standard_normal(N_INITIAL_NORMALS)
            initial_u[members] = gu.random(N_INITIAL_UNIFORMS)
            for k in members:
                slot = slots[k]
                self.leader[slot] = lead
                self._gen_normal[slot] = gn if slot == lead else None
                self._gen_uniform[slot] = gu if slot == lead else None
            self._next_ready[lead] = False
            self._draw(lead, self._leader_row[lead])
            self.chunk_start[[slots[k] for k in members]] = self.clock
        self.row = self._leader_row[self.leader]
        self._prefetch(leads)
        self._steps_left = self._steps_to_first_exhaustion()
        return initial_n, initial_u

    def _detach_followers_of(self, restarting: set[int]) -> None:
        """Slots that follow a restarting leader but do not restart get their own stream copy."""
        for old_lead in restarting:
            followers = [
                int(f) for f in np.flatnonzero(self.leader == old_lead) if f != old_lead and int(f) not in restarting
            ]
            if not followers or self._gen_normal[old_lead] is None:
                continue
            new_lead = followers[0]
            gn, gu = (copy.deepcopy(g) for g in (self._gen_normal[old_lead], self._gen_uniform[old_lead]))
            self._gen_normal[new_lead], self._gen_uniform[new_lead] = gn, gu
            # The new leader's rows: the current chunk, and the next one if it was drawn (its generators are past it).
            now, later = self._leader_row[old_lead], self._other_row(old_lead)
            self._leader_row[new_lead] = new_lead
            self.drawn_normals[new_lead] = self.drawn_normals[now]
            self.drawn_uniforms[new_lead] = self.drawn_uniforms[now]
            self._next_ready[new_lead] = self._next_ready[old_lead]
            if self._next_ready[old_lead]:
                self.drawn_normals[self._other_row(new_lead)] = self.drawn_normals[later]
                self.drawn_uniforms[self._other_row(new_lead)] = self.drawn_uniforms[later]
            self.leader[followers] = new_lead

    def _other_row(self, lead: int) -> int:
        """The row a leader does not read now (with prefetch), where its next chunk goes."""
        return lead + self.n_slots if self._leader_row[lead] == lead else lead

    def _draw(self, slot: int, row: int) -> None:
        """Slot ``slot``'s next chunk from its generators into buffer row ``row``."""
        self._gen_normal[slot].standard_normal(out=self._rows_normal[row])  # type: ignore[union-attr]
        self._gen_uniform[slot].random(out=self._rows_uniform[row])  # type: ignore[union-attr]

    def _prefetch(self, leads: list[int]) -> None:
        """With prefetch: draw these leaders' next chunks into their other rows on the worker thread."""
        if not self.prefetch or not leads:
            return
        self.wait_for_draws()  # one job at a time: a generator is never used by two threads
        jobs = [(lead, self._other_row(lead)) for lead in leads]

        def draw_all() -> None:
            for lead, row in jobs:
                self._draw(lead, row)

        self._pending = (_executor().submit(draw_all), leads)

    def wait_for_draws(self) -> None:
        """Wait for the worker thread's draws (re-raising its error); their rows are then ready."""
        if self._pending is None:
            return
        future, leads = self._pending
        self._pending = None
        future.result()
        self._next_ready[leads] = True

    @property
    def normals(self) -> np.ndarray:
        """Each slot's chunk of normals, shape (n_slots, chunk_steps, N_NORMALS) (a copy, for inspection)."""
        return self.drawn_normals[self.row]

    @property
    def uniforms(self) -> np.ndarray:
        """Each slot's chunk of uniforms, shape (n_slots, chunk_steps, N_UNIFORMS) (a copy, for inspection)."""
        return self.drawn_uniforms[self.row]

    @property
    def position(self) -> np.ndarray:
        """Each slot's step within its chunk, shape (n_slots,) (a new array)."""
        return self.clock - self.chunk_start

    @property
    def steps_left(self) -> int:
        """Steps every slot can take before a chunk runs out (``advance`` refills then)."""
        return self._steps_left

    def restart_chunks_here(self) -> None:
        """Make every slot's chunk start at its clock (a caller that writes the buffers itself, a look-ahead).

        ``steps_left`` becomes a whole chunk again, so a compiled run of up to
        ``chunk_steps`` steps reads the rows from their first column.
        """
        self.chunk_start[:] = self.clock
        self._steps_left = self._steps_to_first_exhaustion()

    def advance(self, steps: int = 1) -> None:
        """Move every slot ``steps`` steps on (at most ``steps_left``), refilling exhausted chunks.

        A compiled run of several steps inside one chunk reads ``clock + k``
        at its step ``k`` and advances the streams once, after the run.
        """
        if not 0 < steps <= self._steps_left:
            raise ValueError(f"advance({steps}): allowed 1 to steps_left={self._steps_left}")
        self.clock += steps
        self._steps_left -= steps
        if self._steps_left > 0:
            return
        exhausted = np.flatnonzero(self.position >= self.chunk_steps)
        # Followers share their leader's position, so their leader is refilled here too.
        leads = exhausted[self.leader[exhausted] == exhausted].tolist()
        if self.prefetch:
            self.wait_for_draws()
            for lead in leads:
                if self._next_ready[lead]:  # switch rows: the next chunk is there
                    self._leader_row[lead] = self._other_row(lead)
                    self._next_ready[lead] = False
                else:
                    self._draw(lead, self._leader_row[lead])
            self.row = self._leader_row[self.leader]
            self._prefetch(leads)
        else:
            for lead in leads:
                self._draw(lead, lead)
        self.chunk_start[exhausted] = self.clock
        self._steps_left = self._steps_to_first_exhaustion()

    def _steps_to_first_exhaustion(self) -> int:
        return int(self.chunk_steps - (self.clock - self.chunk_start.min()))
