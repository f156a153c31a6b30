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

import numpy as np

from simenv import layout as L

#: Number of values per patient drawn for the initial state, before step 0.
N_INITIAL_NORMALS = L.N_NORMALS
N_INITIAL_UNIFORMS = L.N_UNIFORMS
#: Upper bound on buffered patient-steps (memory: 8 B * 24 values each).
_BUFFER_PATIENT_STEPS = 1 << 17


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

    ``normals[p, position[p]]`` and ``uniforms[p, position[p]]`` hold the draws
    of slot ``p`` for its current step. ``advance()`` moves every slot one
    step on and refills the chunks that ran out.
    """

    def __init__(self, n_slots: int, chunk_steps: int | None = None) -> None:
        self.n_slots = n_slots
        self.chunk_steps = chunk_steps or chunk_steps_for(n_slots)
        c = self.chunk_steps
        self.normals = np.zeros((n_slots, c, L.N_NORMALS))
        self.uniforms = np.zeros((n_slots, c, L.N_UNIFORMS))
        self.position = np.zeros(n_slots, dtype=np.int64)
        self._gen_normal: list[np.random.Generator | None] = [None] * n_slots
        self._gen_uniform: list[np.random.Generator | None] = [None] * n_slots
        # Steps until the first slot runs out: advance() is O(1) until then.
        self._steps_left = self.chunk_steps

    def start(self, slot: int, seed: int, uid: int, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """Begin a slot's episode; return its initial-state draws (normals, uniforms)."""
        gn, gu = episode_streams(seed, uid, episode)
        initial_normals = gn.standard_normal(N_INITIAL_NORMALS)
        initial_uniforms = gu.random(N_INITIAL_UNIFORMS)
        self._gen_normal[slot] = gn
        self._gen_uniform[slot] = gu
        self._fill(slot)
        return initial_normals, initial_uniforms

    def _fill(self, slot: int) -> None:
        gn = self._gen_normal[slot]
        gu = self._gen_uniform[slot]
        assert gn is not None and gu is not None
        gn.standard_normal(out=self.normals[slot])
        gu.random(out=self.uniforms[slot])
        self.position[slot] = 0
        self._steps_left = int(self.chunk_steps - self.position.max())

    def advance(self) -> None:
        """Move every slot to its next step's draws, refilling exhausted chunks."""
        self.position += 1
        self._steps_left -= 1
        if self._steps_left > 0:
            return
        for slot in np.flatnonzero(self.position >= self.chunk_steps):
            self._fill(int(slot))
        self._steps_left = int(self.chunk_steps - self.position.max())
