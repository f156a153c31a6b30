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
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from simenv import layout as L

#: Number of values per patient drawn for the initial state, before step 0.
N_INITIAL_NORMALS = L.N_NORMALS
N_INITIAL_UNIFORMS = L.N_UNIFORMS
#: Upper bound on buffered patient-steps (memory: 8 B * 24 values each, ~100 MB).
_BUFFER_PATIENT_STEPS = 1 << 19


def chunk_steps_for(n_patients: int) -> int:
    """Chunk length: long for small batches (less Python per step), bounded memory for big ones."""
    return int(min(1024, max(16, _BUFFER_PATIENT_STEPS // max(n_patients, 1))))


def episode_streams(seed: int, uid: int, episode: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (normals, uniforms) generators of one patient's episode."""
    children = np.random.SeedSequence([int(seed), int(uid), int(episode)]).spawn(2)
    return np.random.Generator(np.random.PCG64(children[0])), np.random.Generator(
        np.random.PCG64(children[1])
    )


class NoiseStreams:
    """Chunked noise buffers for a batch of patient slots.

    ``drawn_normals[leader[p], position[p]]`` and ``drawn_uniforms[leader[p],
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
    row (``leader``). The values are the same as with separate streams; the
    drawing is done once and nothing is copied.
    """

    def __init__(self, n_slots: int, chunk_steps: int | None = None) -> None:
        self.n_slots = n_slots
        self.chunk_steps = chunk_steps or chunk_steps_for(n_slots)
        c = self.chunk_steps
        self.drawn_normals = np.zeros((n_slots, c, L.N_NORMALS))
        self.drawn_uniforms = np.zeros((n_slots, c, L.N_UNIFORMS))
        self.clock = 0
        self.chunk_start = np.zeros(n_slots, dtype=np.int64)
        self.leader = np.arange(n_slots)  # slot whose stream (buffer row) each slot reads
        # Row views made once: a refill touches every slot, and building views costs more than drawing a few.
        self._rows_normal = list(self.drawn_normals)
        self._rows_uniform = list(self.drawn_uniforms)
        self._gen_normal: list[np.random.Generator | None] = [None] * n_slots
        self._gen_uniform: list[np.random.Generator | None] = [None] * n_slots
        # Steps until the first slot runs out: advance() is O(1) until then.
        self._steps_left = self.chunk_steps

    def start(self, slot: int, seed: int, uid: int, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """Begin one slot's episode; return its initial-state draws (normals, uniforms)."""
        z, u = self.start_many([slot], [seed], [uid], [episode])
        return z[0], u[0]

    def start_many(
        self, slots: Sequence[int], seeds: Sequence[int], uids: Sequence[int], episodes: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Begin episodes in several slots; return initial draws of shape (len(slots), ...)."""
        slots = [int(s) for s in slots]
        self._detach_followers_of(set(slots))
        initial_n = np.zeros((len(slots), N_INITIAL_NORMALS))
        initial_u = np.zeros((len(slots), N_INITIAL_UNIFORMS))
        groups: dict[tuple[int, int, int], list[int]] = {}
        for k, key in enumerate(zip(seeds, uids, episodes, strict=True)):
            groups.setdefault(tuple(int(x) for x in key), []).append(k)
        for (seed, uid, episode), members in groups.items():
            lead = slots[members[0]]
            gn, gu = episode_streams(seed, uid, episode)
            initial_n[members] = gn.standard_normal(N_INITIAL_NORMALS)
            initial_u[members] = gu.random(N_INITIAL_UNIFORMS)
            for k in members:
                slot = slots[k]
                self.leader[slot] = lead
                self._gen_normal[slot] = gn if slot == lead else None
                self._gen_uniform[slot] = gu if slot == lead else None
            self._draw(lead)
            self.chunk_start[[slots[k] for k in members]] = self.clock
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
            self.drawn_normals[new_lead] = self.drawn_normals[old_lead]
            self.drawn_uniforms[new_lead] = self.drawn_uniforms[old_lead]
            self.leader[followers] = new_lead

    def _draw(self, slot: int) -> None:
        self._gen_normal[slot].standard_normal(out=self._rows_normal[slot])  # type: ignore[union-attr]
        self._gen_uniform[slot].random(out=self._rows_uniform[slot])  # type: ignore[union-attr]

    @property
    def normals(self) -> np.ndarray:
        """Each slot's chunk of normals, shape (n_slots, chunk_steps, N_NORMALS) (a copy, for inspection)."""
        return self.drawn_normals[self.leader]

    @property
    def uniforms(self) -> np.ndarray:
        """Each slot's chunk of uniforms, shape (n_slots, chunk_steps, N_UNIFORMS) (a copy, for inspection)."""
        return self.drawn_uniforms[self.leader]

    @property
    def position(self) -> np.ndarray:
        """Each slot's step within its chunk, shape (n_slots,) (a new array)."""
        return self.clock - self.chunk_start

    @property
    def steps_left(self) -> int:
        """Steps every slot can take before a chunk runs out (``advance`` refills then)."""
        return self._steps_left

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
        for slot in exhausted[self.leader[exhausted] == exhausted].tolist():
            self._draw(slot)
        self.chunk_start[exhausted] = self.clock
        self._steps_left = self._steps_to_first_exhaustion()

    def _steps_to_first_exhaustion(self) -> int:
        return int(self.chunk_steps - (self.clock - self.chunk_start.min()))
