"""Column layouts of the core's struct-of-arrays and of its noise draws.

The batched core keeps each quantity as one column of an ``(n_patients, k)``
float64 array so the compiled step reads and writes contiguous rows. These
names are the single place that says which column holds what; the kernel,
the core and the tests all index through them.
"""

from __future__ import annotations

# --- biomarker geometry -------------------------------------------------------
SITES: tuple[str, ...] = ("ACC", "OFC")
BANDS: tuple[str, ...] = ("delta", "theta", "alpha", "beta", "low_gamma", "high_gamma")
BAND_EDGES_HZ: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "low_gamma": (30.0, 70.0),
    "high_gamma": (70.0, 150.0),
}
N_SITES = len(SITES)
N_BANDS = len(BANDS)
N_FEATURES = N_SITES * N_BANDS
FEATURE_NAMES: tuple[str, ...] = tuple(f"{s}_{b}" for s in SITES for b in BANDS)
STIMULATED_SITE = 0  # the ACC lead carries the stimulation artifact

# --- dynamic state, one row per patient --------------------------------------
S_X_FAST = 0  # fast OU pain fluctuation, NRS
S_X_SLOW = 1  # slow OU pain drift, NRS
S_FLARE_LEVEL = 2  # pain added by the current flare, NRS (0 outside flares)
S_FLARE_LEFT_S = 3  # time left in the current flare, s
S_TOLERANCE = 4  # tolerance T in [0, 1 - efficacy_floor]
S_RELIEF = 5  # relief fraction r of pain above the floor
S_AMPLITUDE_MA = 6  # delivered amplitude at the end of the step, mA
S_STIM_SETTLED_MA = 7  # amplitude low-passed with the band-power settling time, mA
S_DRIFT0 = 8  # slow biomarker drift of site 0, dB (site s at S_DRIFT0 + s)
S_BURDEN = 10  # side-effect burden, events (decaying)
S_ENERGY_STIM_J = 11  # cumulative stimulation energy delivered to tissue, J
S_ENERGY_DRAWN_J = 12  # cumulative energy drawn from the battery, J
S_TIME_S = 13  # time since the episode began, s
S_LAST_REPORT_NRS = 14  # last self-report (NaN before the first), NRS
S_REPORT_AGE_S = 15  # time since the last self-report, s
S_DUTY_30MIN = 16  # exponential average of the on-fraction, time constant 30 min
S_DUTY_24H = 17  # same, 24 h
S_DUTY_7D = 18  # same, 7 days
S_SINCE_SWITCH_S = 19  # time since the commanded amplitude last changed, s
S_MILD_EVENTS = 20  # cumulative mild side-effect events
S_SEIZURE_EVENTS = 21  # cumulative seizure (after-discharge) events
S_TARGET_MA = 22  # last commanded amplitude, mA
S_SWITCHES = 23  # cumulative number of switches
S_ON_TIME_S = 24  # cumulative time with amplitude > 0 (ramps count as on), s
S_STEPS = 25  # steps taken in this episode
N_STATE = 26

# --- per-patient constants, precomputed for the step size --------------------
P_BASELINE_NRS = 0
P_CIRC_AMP_NRS = 1
P_CIRC_PEAK_H = 2
P_FAST_DECAY = 3  # exp(-dt / tau_fast)
P_FAST_KICK = 4  # sd_fast * sqrt(1 - decay^2)
P_SLOW_DECAY = 5
P_SLOW_KICK = 6
P_FLARE_ONSET_PROB = 7  # 1 - exp(-rate * dt)
P_FLARE_SIZE_NRS = 8
P_FLARE_MEDIAN_S = 9
P_FLARE_LOG_SD = 10
P_RELIEF_MAX = 11
P_FLOOR_NRS = 12
P_HALF_CHARGE_UC = 13
P_HILL = 14
P_ONSET_DECAY = 15  # exp(-dt / tau_onset)
P_CARRY_DECAY = 16  # exp(-dt / tau_carryover)
P_TOL_BUILD_DECAY = 17
P_TOL_RECOVER_DECAY = 18
P_TOL_MAX = 19  # 1 - efficacy_floor
P_NOISE_DECAY = 20  # biomarker AR(1) coefficient
P_NOISE_KICK = 21
P_DRIFT_DECAY = 22
P_DRIFT_KICK = 23
P_SLEEP_SHIFT_DB = 24
P_SUPPRESSION = 25
P_SETTLE_DECAY = 26
P_ARTIFACT_DB = 27
P_REPORT_PROB = 28  # prompt probability per awake step
P_ADHERENCE = 29
P_REPORT_SD_NRS = 30
P_WAKE_H = 31
P_SLEEP_H = 32
P_PULSE_WIDTH_US = 33
P_POWER_W_PER_MA2 = 34  # R * f * PW * 1e-6 (W per mA^2)
P_RAMP_MA_PER_S = 35  # ramp up
P_AMP_MAX_MA = 36
P_MILD_RATE_PER_S = 37
P_MILD_HALF_UC = 38
P_MILD_SLOPE_UC = 39
P_SEIZURE_PROB = 40
P_SEIZURE_REF_MA = 41
P_SEIZURE_HALF_RATE = 42
P_SEIZURE_WEIGHT = 43
P_BURDEN_DECAY = 44
P_EFFICIENCY = 45
P_OVERHEAD_W = 46
P_START_HOUR = 47  # clock hour at the start of the episode
P_SWITCH_TOL_MA = 48  # half the amplitude step: smaller changes are not switches
P_SEIZURE_EXPONENT = 49
P_RAMP_DOWN_MA_PER_S = 50
P_SEIZURE_HAZARD_UP = 51  # seizure_hazard() at the up ramp: a constant, so computed once
P_SEIZURE_HAZARD_DOWN = 52  # same at the down ramp
N_PARAMS = 53

# --- exogenous noise drawn per patient and step ------------------------------
N_FAST = 0  # standard normals
N_SLOW = 1
N_DRIFT0 = 2  # one per site
N_AR0 = 2 + N_SITES  # one per feature
N_NORMALS = N_AR0 + N_FEATURES

U_FLARE_ONSET = 0  # uniforms in [0, 1)
U_FLARE_SIZE = 1
U_FLARE_DURATION = 2
U_REPORT_PROMPT = 3
U_REPORT_ANSWER = 4
U_REPORT_ERROR = 5
U_MILD = 6
U_SEIZURE = 7
N_UNIFORMS = 8

# --- per-step outputs --------------------------------------------------------
O_PAIN_NRS = 0
O_DRIVE_NRS = 1  # pain drive before relief
O_RELIEF_NRS = 2  # pain removed by stimulation in this step
O_RELIEF_LOST_NRS = 3  # relief the target lost to tolerance
O_AMP_MEAN_MA = 4  # mean delivered amplitude over the step
O_ON_FRACTION = 5  # fraction of the step with amplitude > 0
O_STIM_ENERGY_J = 6  # stimulation energy (TEED) delivered in the step
O_DRAWN_ENERGY_J = 7  # battery energy drawn in the step
O_MILD_EVENT = 8
O_SEIZURE_EVENT = 9
O_SIDE_EFFECT_EXPECTED = 10  # expected weighted events in the step (mild + weight * seizure)
O_REPORT_NRS = 11  # self-report made in this step (NaN if none)
O_SWITCHED = 12  # 1 if the commanded amplitude changed
O_ASLEEP = 13
O_HIGH_PAIN = 14  # 1 if pain >= 7 NRS
O_EFFICACY = 15  # 1 - tolerance
N_OUTPUTS = 16

HIGH_PAIN_NRS = 7.0
DUTY_TAUS_S: tuple[float, float, float] = (1800.0, 86_400.0, 7 * 86_400.0)
