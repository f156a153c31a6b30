"""The headroom planner: receding-horizon control on copies of the patient, a privileged reference to bound others.

Every ``replan_min`` (when a patient's commitment has ended) the planner
copies each patient's full simulator state (it reads latent state no device
has: ``uses_latent = True``), simulates every candidate of
``agents.planner_candidates`` (off, continuous, periodic on/off patterns)
for ``lookahead_min`` on those copies, all patients x candidates in one
batch (``agents.lookahead``), scores each by the evaluation's own reward
summed over the look-ahead, and follows the best for its commitment. ``clairvoyant: true`` runs the look-ahead
on the patient's own future noise (exact: the look-ahead of the chosen
candidate *is* the patient's next minutes, bit for bit); otherwise on a
fresh sample of it (``agents.planner_noise``).

**Tolerance.** A look-ahead of an hour sees no tolerance (it builds over a
month): scored by the reward alone, the planner stimulates greedily and
ends near-continuous, which is worse over months. With
``price_tolerance: true`` (the default) each candidate is also charged the
quasi-steady-state price of tolerance per unit of on-time
(``agents.slow_costs``): ``price = c_T * T_eq'(d)``, where ``d`` is the
patient's own 7-day duty (the kernel's ``S_DUTY_7D``) and ``c_T`` the
running mean (7 days) of the reward lost per unit of tolerance,
``slow_costs.tolerance_cost``, on the patient's real trajectory. By the
separation of time scales in ``agents.slow_costs`` the look-ahead reward
minus this price has, to first order, the long-run reward's gradient in the
duty, so the planner settles at the duty that is best over months and
spends it where the look-ahead says it helps most.

**Commitment.** A chosen pattern is followed for its whole period (off and
continuous for one re-planning interval; ``agents.planner_candidates``), so
the off blocks a plan was scored with do happen: a plain receding horizon
re-chooses "on first" every few minutes and ends near-continuous.

**Why it bounds, and where it can fall short.** Whenever a commitment ends
the candidates include starting each fixed schedule of the set afresh
(cycling 5/5 among them), off and continuous, and the planner takes the best
of them over the look-ahead by the priced reward: a rollout over these base
policies, which (exact model, infinite horizon) is at least as good as the
best of them. It can fall short: (1) the look-ahead is finite, so relief
built near its end is not credited, which biases the choice between patterns
where carry-over is long next to the look-ahead; (2) the tolerance price is
first order, at the running duty, with ``c_T`` estimated on the planner's
own past; (3) the candidates are a few patterns, not every on/off sequence,
so the true optimum lies above; (4) without clairvoyance it plans on one
sampled future per re-plan. Controllers outside the set that react to the
biomarkers (threshold, learned policies) are not covered by the rollout
argument: whether the planner beats them is measured (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.lookahead import Lookahead
from agents.planner_candidates import DEFAULT_PATTERNS_MIN, PlannerSettings, candidate_table
from agents.planner_noise import FutureNoise
from agents.policy import BasePolicy, PatientContext
from agents.slow_costs import SlowCostSettings, equilibrium_tolerance_slope, tolerance_cost
from simenv import layout as L
from simenv.core import BatchedCore
from simenv.errors import PainloopError
from simenv.info_layout import STEP_INFO
from simenv.params import SECONDS_PER_DAY
from simenv.reward import RewardWeights
from simenv.settings import EnvSettings

#: Time constant of the running mean of the tolerance cost ``c_T``, s (that of the 7-day duty it is paired with).
COST_MEMORY_S = 7 * SECONDS_PER_DAY
_COST_INFO = ("relief_nrs", "efficacy", "pain_nrs")
_COL = {name: i for i, name in enumerate(STEP_INFO)}
#: The slow-cost band of high pain, read once (building the settings at every decision cost 8% of a planner run).
_HIGH_PAIN_BAND_NRS = SlowCostSettings().high_pain_band_nrs


@dataclass(frozen=True)
class PlanRecord:
    """The last re-plan, per patient: the look-ahead's view of the next re-planning interval under the best candidate."""

    decision: int  # index of the block's first decision since the reset
    candidate: np.ndarray  # best candidate per patient (row of ``Planner.candidates``)
    adopted: np.ndarray  # True where the patient's commitment had ended: it follows ``candidate`` now
    block_rewards: np.ndarray  # look-ahead reward of each of the block's decisions, shape (n_patients, replan decisions)
    state_after_block: np.ndarray  # look-ahead state at the block's end, shape (n_patients, N_STATE)
    price: np.ndarray  # tolerance price per unit of on-fraction per decision (0 without price_tolerance)


class Planner(BasePolicy):
    """Receding-horizon planner over patient copies (module docstring); on/off actions."""

    uses_latent = True
    reads_observations = False

    def __init__(self, name: str, dt_s: float = 30.0, seed: int = 0, lookahead_min: float = 60.0,
                 replan_min: float = 5.0, patterns_min: Sequence[Sequence[float]] = DEFAULT_PATTERNS_MIN,
                 clairvoyant: bool = False, price_tolerance: bool = True) -> None:
        super().__init__(name)
        self.seed = seed
        self.settings = PlannerSettings(dt_s, lookahead_min, replan_min, tuple(map(tuple, patterns_min)),  # type: ignore[arg-type]
                                        clairvoyant, price_tolerance)
        self.candidates, self.commit_decisions, self.candidate_names = candidate_table(self.settings)
        self.env_settings = EnvSettings(dt_s=dt_s)
        self.reward = RewardWeights()
        self.last_plan: PlanRecord | None = None
        self._core: BatchedCore | None = None
        self._lookahead: Lookahead | None = None

    # -- what the evaluation hands over ----------------------------------------------------------------
    def check_settings(self, settings: EnvSettings) -> None:
        """Plan at the evaluation's decision interval (durations must be whole numbers of it) and settings."""
        decision_s = settings.steps_per_decision * settings.dt_s
        s = self.settings
        self.settings = PlannerSettings(decision_s, s.lookahead_min, s.replan_min, s.patterns_min, s.clairvoyant,
                                        s.price_tolerance)
        self.candidates, self.commit_decisions, self.candidate_names = candidate_table(self.settings)
        self.env_settings = settings

    def configure_reward(self, reward: RewardWeights) -> None:
        """Score candidates by these reward weights (the evaluation's)."""
        self.reward = reward

    def reset(self, patients: list[PatientContext]) -> None:
        super().reset(patients)
        self._decision = 0
        self._plan = np.zeros((self.n, int(self.commit_decisions.max())), dtype=np.int64)  # committed actions
        self._step = np.zeros(self.n, dtype=np.int64)  # decisions of the commitment done
        self._length = np.zeros(self.n, dtype=np.int64)  # the commitment's length, decisions
        self._cost = np.zeros(self.n)  # running mean of the tolerance cost c_T per patient
        self._packed = np.zeros((self.n, len(STEP_INFO)))
        self._core = None
        self._lookahead = None
        self.last_plan = None

    def configure_core(self, core: BatchedCore, slots: slice) -> None:
        """Plan on copies of ``slots`` of ``core`` (the evaluation's), which hold this policy's patients."""
        self._core, self._slots = core, slots
        patients = [core.patients[i] for i in range(core.n_slots)[slots]]
        if [p.uid for p in patients if p is not None] != [p.uid for p in self.patients]:
            raise PainloopError("PL-CONTROLLER-PARAM", f"planner '{self.name}': the core's slots hold other patients.")
        self._lookahead = Lookahead(patients, core, slots, self.env_settings, self.reward,  # type: ignore[arg-type]
                                    len(self.candidates), self.settings.lookahead_decisions)
        n_pat = len(patients)
        self._amplitudes = self._lookahead.amplitude_table(self.candidates, np.repeat(np.arange(len(self.candidates)), n_pat))
        self._noise = FutureNoise(core.seeds[slots], [p.uid for p in self.patients], core.episodes[slots],
                                  self.settings.clairvoyant, sample_seed=self.seed)
        self._slope_at = [p.params for p in self.patients]

    # -- deciding ------------------------------------------------------------------------------------
    def act(self, observations: np.ndarray, info: dict) -> np.ndarray:
        if self._core is None:
            raise PainloopError(
                "PL-CONTROLLER-PARAM",
                f"planner '{self.name}' plans on copies of the simulator's slots: run it through "
                "agents.evaluation.evaluate or agents.rollout, which hand it the core (configure_core).",
            )
        self._book_cost(info)
        if self._decision % self.settings.replan_decisions == 0:
            due = self._step >= self._length  # commitments end on the re-planning grid
            if due.any():
                self._replan(due)
        action = self._plan[np.arange(self.n), self._step]
        self._step += 1
        self._decision += 1
        return action

    def _book_cost(self, info: Any) -> None:
        """Fold the last decision's tolerance cost into each patient's running ``c_T`` (none at a reset)."""
        if not all(key in info for key in _COST_INFO):
            return
        for key in _COST_INFO:
            self._packed[:, _COL[key]] = info[key]
        cost = tolerance_cost(self._packed, self.reward, _HIGH_PAIN_BAND_NRS)
        self._cost += (self.settings.decision_s / COST_MEMORY_S) * (cost - self._cost)

    def price(self) -> np.ndarray:
        """Reward charged per decision per unit of on-fraction, per patient: ``c_T * T_eq'(7-day duty)``."""
        if not self.settings.price_tolerance:
            return np.zeros(self.n)
        assert self._core is not None
        duty = self._core.state[self._slots, L.S_DUTY_7D]
        slope = np.array([equilibrium_tolerance_slope(p, float(d)) for p, d in zip(self._slope_at, duty, strict=True)])
        return np.maximum(self._cost, 0.0) * slope

    def _replan(self, due: np.ndarray) -> None:
        """Run the look-ahead and commit the patients in ``due`` (bool, per patient) to their best candidate."""
        assert self._core is not None and self._lookahead is not None
        keep = self.settings.replan_decisions
        result = self._lookahead.run(self._core, self._slots, self._noise, self._amplitudes, keep)
        price = self.price()
        n_cand = len(self.candidates)
        score = result.reward.reshape(n_cand, self.n) - price * (result.on_time_s.reshape(n_cand, self.n)
                                                                 / self.settings.decision_s)
        best = np.argmax(score, axis=0)  # ties: the first candidate (off before continuous before patterns)
        for i in np.flatnonzero(due):
            length = self.commit_decisions[best[i]]
            self._plan[i, :length] = self.candidates[best[i], :length]
            self._length[i], self._step[i] = length, 0
        rows = best * self.n + np.arange(self.n)
        self.last_plan = PlanRecord(self._decision, best, due.copy(), result.first_rewards[rows],
                                    result.state_after_first[rows], price)
