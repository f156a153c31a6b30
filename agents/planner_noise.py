"""The exogenous noise a planner's look-ahead runs on: the patient's own future, or a sample of it.

Every random draw of the simulator is exogenous and comes from the
patient's own streams (``simenv.noise.episode_streams(seed, uid, episode)``:
first the initial-state draws, then one row of normals and one of uniforms
per step, the same numbers however they are cut into chunks). A second pair
of generators built from the same key therefore yields, row for row, the
noise the simulator will use at every future step of the episode: the
*clairvoyant* look-ahead reads it, and a look-ahead from a copy of the
slot's state with it reproduces the slot's future exactly.

The *sampled* look-ahead draws each window afresh from the planner's own
stream per patient (seeded by the evaluation seed and the patient uid):
the same law, independent of the patient's real future, as a planner that
knows the state but not the future would have to assume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simenv import layout as L
from simenv.noise import N_INITIAL_NORMALS, N_INITIAL_UNIFORMS, episode_streams

#: Steps of the patient's own future held at a time (per patient, normals and uniforms, ~6 MB).
_BUFFER_STEPS = 16_384


class FutureNoise:
    """Noise windows for a batch of patients, shape ``(n_patients, n_steps, N_NORMALS | N_UNIFORMS)``.

    ``clairvoyant``: each patient's own future, one pair of generators per
    (seed, uid, episode) key, read ahead into a buffer that only moves
    forward. Otherwise a fresh sample per window from ``sample_seed``.
    """

    def __init__(self, seeds: Sequence[int] | np.ndarray, uids: Sequence[int], episodes: Sequence[int] | np.ndarray,
                 clairvoyant: bool, sample_seed: int = 0) -> None:
        self.clairvoyant = clairvoyant
        n = len(uids)
        if clairvoyant:
            self._gens = [episode_streams(int(s), int(u), int(e)) for s, u, e in zip(seeds, uids, episodes, strict=True)]
            for normal, uniform in self._gens:  # the initial state's draws come first
                normal.standard_normal(N_INITIAL_NORMALS)
                uniform.random(N_INITIAL_UNIFORMS)
            self._normals = np.empty((n, _BUFFER_STEPS, L.N_NORMALS))
            self._uniforms = np.empty((n, _BUFFER_STEPS, L.N_UNIFORMS))
            self._base = np.zeros(n, dtype=np.int64)  # episode step of each buffer's first row
            self._filled = np.zeros(n, dtype=np.int64)  # rows drawn into each buffer
        else:
            self._samplers = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(sample_seed), int(u), 0x91A7])))
                              for u in uids]

    def write(self, first_steps: np.ndarray, n_steps: int, normals_out: Sequence[np.ndarray],
              uniforms_out: Sequence[np.ndarray]) -> None:
        """Write patient ``p``'s noise of episode steps ``first_steps[p]`` .. ``+ n_steps`` into ``normals_out[p][:n_steps]``
        and ``uniforms_out[p][:n_steps]`` (the clairvoyant windows must not move backwards)."""
        for p in range(len(first_steps)):
            if self.clairvoyant:
                first = self._ahead(p, int(first_steps[p]), n_steps)
                normals_out[p][:n_steps] = self._normals[p, first : first + n_steps]
                uniforms_out[p][:n_steps] = self._uniforms[p, first : first + n_steps]
            else:
                rng = self._samplers[p]
                rng.standard_normal(out=normals_out[p][:n_steps])
                rng.random(out=uniforms_out[p][:n_steps])

    def _ahead(self, p: int, first_step: int, n_steps: int) -> int:
        """Make patient ``p``'s buffer hold steps ``first_step`` .. ``+ n_steps``; the buffer row of ``first_step``."""
        if n_steps > _BUFFER_STEPS:
            raise ValueError(f"a window of {n_steps} steps exceeds the buffer of {_BUFFER_STEPS}")
        start = first_step - int(self._base[p])
        if start < 0:
            raise ValueError(f"patient {p}: step {first_step} is behind the noise already read ({self._base[p]})")
        if start + n_steps > self._filled[p]:
            keep = max(int(self._filled[p]) - start, 0)
            if keep:  # move the rows still ahead to the front
                self._normals[p, :keep] = self._normals[p, start : start + keep].copy()
                self._uniforms[p, :keep] = self._uniforms[p, start : start + keep].copy()
            else:  # skip the steps between the buffer's end and the window
                skip = start - int(self._filled[p])
                normal, uniform = self._gens[p]
                while skip > 0:
                    k = min(skip, _BUFFER_STEPS)
                    normal.standard_normal(out=self._normals[p, :k])
                    uniform.random(out=self._uniforms[p, :k])
                    skip -= k
            normal, uniform = self._gens[p]
            normal.standard_normal(out=self._normals[p, keep:])
            uniform.random(out=self._uniforms[p, keep:])
            self._base[p] = first_step
            self._filled[p] = _BUFFER_STEPS
            start = 0
        return start
