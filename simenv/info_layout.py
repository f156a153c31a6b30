"""The columns of the packed per-decision info: their names and where each comes from.

``PainStimBatch`` returns a decision's info as one array, ``(n_slots,
len(STEP_INFO))``, filled by ``simenv.decision.finish_decision`` from the
simulator's state and outputs (``simenv.layout``) and the decision's sums.
This module fixes that column order (``STATE_INFO`` and ``STEP_INFO``) and
the state and output columns read into it (``STATE_COLS``, ``OUT_COLS``,
``ACC_COLS``), so readers of the packed array (the paired evaluation, the
training's validation) name columns without building the info dict.
"""

from __future__ import annotations

import numpy as np

from simenv import layout as L

# Output columns summed over a decision: the five reward terms' raw sums, then
# drawn energy, stimulation energy, mild and seizure events.
ACC_COLS = np.array(
    [
        L.O_PAIN_NRS,
        L.O_HIGH_PAIN,
        L.O_STIM_ENERGY_J,
        L.O_SIDE_EFFECT_EXPECTED,
        L.O_SWITCHED,
        L.O_STIM_ENERGY_J,
        L.O_DRAWN_ENERGY_J,
        L.O_MILD_EVENT,
        L.O_SEIZURE_EVENT,
    ]
)
# info keys read from the state (after the step), then derived ones.
_STATE_INFO_COLS = {
    "elapsed_s": L.S_TIME_S,
    "tolerance": L.S_TOLERANCE,
    "relief_fraction": L.S_RELIEF,
    "amplitude_ma": L.S_AMPLITUDE_MA,
    "stim_energy_total_j": L.S_ENERGY_STIM_J,
    "battery_drawn_total_j": L.S_ENERGY_DRAWN_J,
    "side_effect_burden": L.S_BURDEN,
    "mild_events_total": L.S_MILD_EVENTS,
    "seizure_events_total": L.S_SEIZURE_EVENTS,
    "switches_total": L.S_SWITCHES,
    "on_time_total_s": L.S_ON_TIME_S,
}
STATE_COLS = np.array(list(_STATE_INFO_COLS.values()))
STATE_INFO: tuple[str, ...] = (*_STATE_INFO_COLS, "battery_energy_left_j", "battery_life_years", "time_of_day_h")
# info keys of the last simulator step of the decision.
_OUT_INFO_COLS = {
    "pain_nrs": L.O_PAIN_NRS,
    "pain_drive_nrs": L.O_DRIVE_NRS,
    "relief_nrs": L.O_RELIEF_NRS,
    "relief_lost_nrs": L.O_RELIEF_LOST_NRS,
    "efficacy": L.O_EFFICACY,
    "asleep": L.O_ASLEEP,
    "on_fraction": L.O_ON_FRACTION,
}
OUT_COLS = np.array(list(_OUT_INFO_COLS.values()))
# Sums over the decision, then the self-report made in it (NaN if none).
STEP_INFO: tuple[str, ...] = (
    *STATE_INFO,
    *_OUT_INFO_COLS,
    "stim_energy_j",
    "battery_drawn_j",
    "mild_events",
    "seizure_events",
    "self_report",
)
