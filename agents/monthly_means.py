"""Monthly means of an evaluation: how pain, efficacy, energy and duty move over the whole run.

Tolerance builds over weeks, so a long-term evaluation also reports, for
every controller and patient, means over consecutive 30-day blocks of the
whole run, warm-up included. Blocks are cut within each part of the run: the
warm-up from its first day, the scored window from its first day, so no block
mixes the two. Each block is labelled with its start day (days since the run
began), its length (a last block of a part may be shorter than 30 days) and
whether it is warm-up or scored.

Work per decision is constant: the evaluation's compiled accumulator adds
each decision's pain and efficacy to ``MonthlyAccumulator.sums``; at a block's
end, ``end_of_decision`` turns them into means and reads energy and duty from
the simulator's cumulative counters. Nothing is kept per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agents.evaluation_window import RunWindow
from simenv import layout as L
from simenv.params import SECONDS_PER_DAY

#: Length of a full block, days.
MONTH_DAYS = 30.0

#: Monthly metrics, in table order, with units and meaning.
MONTHLY_METRICS: dict[str, str] = {
    "pain_nrs": "mean pain over the block, NRS 0-10 (mean of each decision's mean)",
    "efficacy": "mean efficacy of stimulation, 1 - tolerance (at the end of each decision)",
    "stim_energy_j_per_day": "stimulation energy delivered (TEED) over the block, J/day",
    "duty_cycle": "fraction of the block with amplitude > 0 (ramps count as on)",
}


@dataclass(frozen=True)
class MonthBlock:
    """One block of a run: start (days since the run began), length in days, warm-up or scored."""

    start_day: float
    length_days: float
    scored: bool

    @property
    def phase(self) -> str:
        return "scored" if self.scored else "warm-up"


@dataclass
class MonthlyMeans:
    """The blocks of a run and, per controller label and monthly metric, an array (n_patients, n_blocks)."""

    blocks: list[MonthBlock] = field(default_factory=list)
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def concat_patients(parts: Sequence[MonthlyMeans]) -> MonthlyMeans:
    """One ``MonthlyMeans`` from those of consecutive groups of patients (same blocks), patients in order."""
    first = parts[0]
    return MonthlyMeans(
        blocks=list(first.blocks),
        values={
            label: {m: np.concatenate([p.values[label][m] for p in parts], axis=0) for m in metrics}
            for label, metrics in first.values.items()
        },
    )


def month_blocks(window: RunWindow) -> list[tuple[MonthBlock, int, int]]:
    """Each block of the run with its first decision and the decision after its last, in run order."""
    spd = window.steps_per_decision
    dt_s = window.run_settings.dt_s
    per_block = max(1, int(round(MONTH_DAYS * SECONDS_PER_DAY / (spd * dt_s))))
    out = []
    for first, end, scored in ((0, window.warmup_decisions, False), (window.warmup_decisions, window.total_decisions, True)):
        for a in range(first, end, per_block):
            b = min(a + per_block, end)
            steps = min(b * spd, window.total_steps) - a * spd
            out.append((MonthBlock(a * spd * dt_s / SECONDS_PER_DAY, steps * dt_s / SECONDS_PER_DAY, scored), a, b))
    return out


class MonthlyAccumulator:
    """Running sums of the current block for every slot; block means as blocks end."""

    def __init__(self, window: RunWindow, n_slots: int) -> None:
        self._plan = month_blocks(window)
        self.blocks = [block for block, _, _ in self._plan]
        #: The current block's sums per slot: pain, efficacy (added by the caller at each decision).
        self.sums = np.zeros((n_slots, 2))
        self._means = np.full((len(MONTHLY_METRICS), n_slots, len(self.blocks)), np.nan)
        self._block = 0
        self._start = np.zeros((n_slots, 3))  # time, stimulation energy, on-time at the block's start

    def start(self, state: np.ndarray) -> None:
        """Mark the start of the first block (the state after the reset)."""
        self._block = 0
        self.sums[:] = 0.0
        self._start = self._counters(state)

    def end_of_decision(self, decisions_done: int, state: np.ndarray) -> None:
        """After each decision: if it ended a block, record the block's means and start the next."""
        if self._block >= len(self._plan):
            return
        _, first, end = self._plan[self._block]
        if decisions_done != end:
            return
        now = self._counters(state)
        elapsed = now[:, 0] - self._start[:, 0]
        n = end - first
        self._means[0, :, self._block] = self.sums[:, 0] / n
        self._means[1, :, self._block] = self.sums[:, 1] / n
        self._means[2, :, self._block] = (now[:, 1] - self._start[:, 1]) / (elapsed / SECONDS_PER_DAY)
        self._means[3, :, self._block] = (now[:, 2] - self._start[:, 2]) / elapsed
        self.sums[:] = 0.0
        self._start = now
        self._block += 1

    def per_label(self, labels: Sequence[str], slices: Sequence[slice]) -> dict[str, dict[str, np.ndarray]]:
        """label -> metric -> (n_patients, n_blocks), each controller's slots."""
        return {
            label: {m: self._means[i, sl].copy() for i, m in enumerate(MONTHLY_METRICS)}
            for label, sl in zip(labels, slices, strict=True)
        }

    @staticmethod
    def _counters(state: np.ndarray) -> np.ndarray:
        return state[:, [L.S_TIME_S, L.S_ENERGY_STIM_J, L.S_ON_TIME_S]]  # a new array (fancy indexing)
