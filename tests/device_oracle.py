"""A minimal, independent device model that checks golden traces (the one permitted second copy).

Written from DOMAIN.md's description of the Summit RC+S embedded adaptive
controller, not from painloop's engine, and reading only the config's
*device integers* (what the implant stores) and the trace's inputs:

- y = sum_i w_i * m_i * (x_i - s_i), with w, m, s and the thresholds B0, B1
  stored as integers: real = integer / 2^F;
- single threshold: state 1 if y > B0 else 0; dual: 0 if y <= B0,
  2 if y > B1, else 1;
- a higher state takes effect after OnsetDuration + 1 consecutive updates
  asking for it, a lower one after TerminationDuration + 1; HoldoffTime
  updates are ignored at start-up; after each state change the updates
  falling in BlankingDurationUponStateChange (FFT intervals, rounded up to
  whole updates) are ignored;
- an update happens every FftInterval x UpdateRate ms (k simulator steps of
  ``dt_s``; the trace gives the band power each update read, the mean over
  its k steps), so rows are k steps apart and the ramps run k steps between
  them;
- combined state = LD0 + 3 * LD1 selects an amplitude in tenths of a mA,
  255 (25.5 mA) meaning HOLD (keep the current one);
- the delivered amplitude slews toward the commanded one at the ramp rates
  (device integer / 65536 mA/s).

Used only by tests; the engine under test is ``agents.config_policy``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


class _LD:
    def __init__(self, det: dict, enc: dict, fft_ms: int, dt_s: float) -> None:
        scale = 2.0 ** det["fractional_fixed_point"]
        self.inputs = det["inputs"]
        self.w = [v / scale for v in enc["weight"]]
        self.m = [v / scale for v in enc["norm_multiply"]]
        self.s = [v / scale for v in enc["norm_subtract"]]
        self.b0 = enc["threshold_low"] / scale
        self.b1 = enc["threshold_high"] / scale
        self.dual = det["dual_threshold"]
        self.onset = det["onset_updates"]
        self.termination = det["termination_updates"]
        self.holdoff = det["holdoff_updates"]
        self.blank = math.ceil(det["blank_fft_intervals"] / det["update_rate_fft_intervals"] - 1e-9)
        self.state = 0
        self.candidate = 0
        self.count = 0
        self.ignore = self.holdoff
        self.blanking = 0

    def output(self, x: dict[str, float]) -> float:
        return sum((w * m) * (x[name] - s) for name, w, m, s in zip(self.inputs, self.w, self.m, self.s, strict=True))

    def update(self, y: float) -> int:
        if self.ignore > 0:
            self.ignore -= 1
            return self.state
        if self.blanking > 0:
            self.blanking -= 1
            return self.state
        if self.dual:
            raw = 0 if y <= self.b0 else (2 if y > self.b1 else 1)
        else:
            raw = 1 if y > self.b0 else 0
        if raw == self.state:
            self.count = 0
            return self.state
        if raw == self.candidate and self.count > 0:
            self.count += 1
        else:
            self.candidate, self.count = raw, 1
        if self.count >= (self.onset if raw > self.state else self.termination) + 1:
            self.state, self.count, self.blanking = raw, 0, self.blank
        return self.state


def read_trace(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open() as fh:
        return list(csv.DictReader(fh))


def check_trace(config: dict, rows: list[dict[str, str]], dt_s: float) -> list[str]:
    """Recompute every row from its inputs and the config; return the mismatches (empty if none)."""
    enc = config["device_encoding"]
    fft = config["sensing"]["fft_interval_ms"]
    lds = [_LD(config["detectors"]["LD0"], enc["LD0"], fft, dt_s)]
    if config["detectors"].get("LD1"):
        lds.append(_LD(config["detectors"]["LD1"], enc["LD1"], fft, dt_s))
    table = enc["states_tenths_ma"]
    up, down = enc["ramp_up"] / 65536.0, enc["ramp_down"] / 65536.0

    def ramp(a: float, target: float) -> float:
        step = (up if target >= a else down) * dt_s
        return a + max(-step, min(step, target - a))

    period_ms = fft * config["detectors"]["LD0"]["update_rate_fft_intervals"]
    steps = round(period_ms / (1000.0 * dt_s))  # simulator steps per update
    commanded = 0.0 if table[0] == 255 else table[0] / 10.0  # start-up: state 0
    delivered = 0.0
    for _ in range(steps):  # the steps before the first update
        delivered = ramp(delivered, commanded)
    problems: list[str] = []
    for k, row in enumerate(rows):
        if k > 0:
            for _ in range(steps - 1):  # the rest of the previous update's period
                delivered = ramp(delivered, commanded)
        if not math.isclose(float(row["time_s"]), (k + 1) * steps * dt_s, rel_tol=1e-12):
            problems.append(f"row {k}: time_s {row['time_s']}, oracle {(k + 1) * steps * dt_s}")
        x = {key[: -len("_db")]: float(v) for key, v in row.items() if key.endswith("_db")}
        states = []
        for i, ld in enumerate(lds):
            y = ld.output(x)
            got = float(row[f"LD{i}_output"])
            if not math.isclose(y, got, rel_tol=1e-12, abs_tol=1e-12):
                problems.append(f"row {k}: LD{i}_output {got!r}, oracle {y!r}")
            states.append(ld.update(got))
            if int(row[f"LD{i}_state"]) != states[-1]:
                problems.append(f"row {k}: LD{i}_state {row[f'LD{i}_state']}, oracle {states[-1]}")
        combined = states[0] + 3 * (states[1] if len(states) > 1 else 0)
        if int(row["state"]) != combined:
            problems.append(f"row {k}: state {row['state']}, oracle {combined}")
        code = table[combined]
        if code is None:
            problems.append(f"row {k}: reached null state {combined}")
        elif code != 255:
            commanded = code / 10.0
        if not math.isclose(float(row["amplitude_ma"]), commanded, abs_tol=1e-9):
            problems.append(f"row {k}: amplitude_ma {row['amplitude_ma']}, oracle {commanded}")
        delivered = ramp(delivered, commanded)
        if not math.isclose(float(row["delivered_amplitude_ma"]), delivered, abs_tol=1e-9):
            problems.append(f"row {k}: delivered_amplitude_ma {row['delivered_amplitude_ma']}, oracle {delivered}")
        if len(problems) > 20:
            break
    return problems
