"""The benchmark's simulator section: steps/s of painloop's simulator beside CartPole.

Measured in one run and interleaved repeat by repeat (so a slow moment of
the machine hits every figure alike):

- steps/s of the single environment through ``gymnasium.make("painloop/PainStim-v0")``
  (random ``on_off`` actions, reset on truncation, resets inside the timing);
- patient-steps/s of ``simenv.BatchedCore.step`` at N = 1, 64, 1024 and 4096
  patients of the default preset (random on/off amplitudes; building the
  core, drawing the patients and their simulated calibration are timed
  separately, never inside the rate);
- NumPy alone drawing the same per-patient noise at the largest N (the
  batched core's physical limit);
- gymnasium's CartPole-v1 through ``gymnasium.make`` as the yardstick, and
  each figure's ratio to it;
- the numba kernel's first step: compiled from scratch (empty cache) and
  loaded from the on-disk cache, each in a fresh process.

Each figure is the median, min and max over ``--repeats`` repeats, checked
against the floors of the simulator-core issue and the targets of the speed
issue. NumPy, gymnasium and simenv are imported inside the functions, after
the command has set ``OPENBLAS_NUM_THREADS``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from experiments.benchmarks.timing import paired_ratio, summarize, timed_core, timed_loop

ENV_ID = "painloop/PainStim-v0"
DEFAULT_SIZES = (1, 64, 1024, 4096)
QUICK_SIZES = (1, 16, 64)

#: Floors of the simulator-core issue (issue 2): (key, label, figure, threshold).
FLOORS = (
    ("single_env_steps_per_s", "single env >= 20,000 steps/s (gymnasium.make)", ("single_env",), 20_000.0),
    ("batched_1024_patient_steps_per_s", "batched core >= 2,000,000 patient-steps/s at N = 1024", ("batched", "1024"), 2_000_000.0),
)
#: Targets of the speed issue (issue 7) that this section can already check.
TARGETS = (
    ("single_env_steps_per_s", "single env >= 50,000 steps/s (gymnasium.make)", ("single_env",), 50_000.0),
    ("batched_1024_patient_steps_per_s", "batched core >= 3,000,000 patient-steps/s at N = 1024", ("batched", "1024"), 3_000_000.0),
)

#: The physical limit of the batched core: NumPy drawing the same per-patient numbers alone.
NOISE_TARGETS = (
    ("batched_4096_vs_numpy_noise", "batched core at N = 4096 >= 60% of NumPy drawing its per-patient noise alone",
     ("batched", "4096", "ratio_to_numpy_noise"), 0.6),
)

#: Run in a fresh process: import time and the first BatchedCore.step (numba compile or cache load).
_FIRST_STEP_PROBE = """
import json, time
t0 = time.perf_counter()
import numpy as np
from simenv import BatchedCore, load_preset
t1 = time.perf_counter()
core = BatchedCore(1)
core.reset_slots([0], [load_preset("default").patient(0)], [0], [0])
t2 = time.perf_counter()
core.step(np.zeros(1))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t3 - t2}))
"""


def first_step_in_fresh_process(cache_dir: str, root: Path) -> dict:
    """Import time and first-step time of a new Python process using numba cache ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_STEP_PROBE], env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def numpy_noise_drawer(n_patients: int) -> Callable[[], float]:
    """A function returning patient-steps/s of NumPy alone drawing ``n_patients``' per-patient noise.

    Each patient has its own pair of PCG64 streams (normals, uniforms) and
    draws one chunk of steps into a preallocated buffer, exactly the numbers
    the batched core consumes; no simulation.
    """
    import numpy as np

    from simenv import layout as L
    from simenv.noise import chunk_steps_for, episode_streams

    steps = chunk_steps_for(n_patients)
    streams = [episode_streams(0, uid, 0) for uid in range(n_patients)]
    normals = np.empty((n_patients, steps, L.N_NORMALS))
    uniforms = np.empty((n_patients, steps, L.N_UNIFORMS))

    def draw() -> float:
        t0 = time.perf_counter()
        for p, (gn, gu) in enumerate(streams):
            gn.standard_normal(out=normals[p])
            gu.random(out=uniforms[p])
        return n_patients * steps / (time.perf_counter() - t0)

    return draw


def run_simulator(args: argparse.Namespace, root: Path, log: Callable[[str], None]) -> dict:
    """The section's figures (``args`` as the command completed it; ``root``: the checkout, for the fresh processes)."""
    t_import = time.perf_counter()
    import gymnasium as gym
    import numpy as np

    import simenv
    from simenv import BatchedCore, load_preset
    from simenv import layout as L
    from simenv.calibration import DEFAULT_CALIBRATION_DAYS, normalisation_for

    import_s = time.perf_counter() - t_import
    preset = load_preset("default")
    rng = np.random.default_rng(12345)
    n_actions = 4096  # pre-drawn random actions, cycled: no RNG inside the timed loops

    # --- numba: the first step of the kernel -----------------------------------
    log("numba: first step in fresh processes (empty cache, then cached)")
    with tempfile.TemporaryDirectory(prefix="painloop-numba-") as cache_dir:
        cold = first_step_in_fresh_process(cache_dir, root)
        warm = first_step_in_fresh_process(cache_dir, root)
    core1 = BatchedCore(1)
    core1.reset_slots([0], [preset.patient(0)], [0], [0])
    t0 = time.perf_counter()
    core1.step(np.zeros(1))
    in_process_first = time.perf_counter() - t0
    numba_info = {
        "compile_first_step_s": cold.get("first_step_s"),
        "cache_load_first_step_s": warm.get("first_step_s"),
        "import_simenv_fresh_process_s": warm.get("import_s"),
        "this_process_first_step_s": in_process_first,
        "this_process_import_s": import_s,
        "errors": {k: v["error"] for k, v in (("compile", cold), ("cache_load", warm)) if "error" in v},
        "note": "first BatchedCore.step in a fresh process with an empty NUMBA_CACHE_DIR (compile) and "
        "again with that cache filled (load); 'this_process' used the project's own numba cache.",
    }

    # --- CartPole (yardstick) ----------------------------------------------------
    cart = gym.make("CartPole-v1")
    cart.reset(seed=0)
    cart_actions = [int(a) for a in rng.integers(0, 2, n_actions)]

    def cart_step(i: int) -> None:
        _, _, terminated, truncated, _ = cart.step(cart_actions[i % n_actions])
        if terminated or truncated:
            cart.reset()

    # --- single env through gymnasium.make -------------------------------------
    log(f"single env: gymnasium.make('{ENV_ID}') (includes the patient's simulated calibration)")
    t0 = time.perf_counter()
    env = gym.make(ENV_ID)
    make_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    env.reset(seed=0)
    reset_s = time.perf_counter() - t0
    env_actions = [int(a) for a in rng.integers(0, 2, n_actions)]
    env_resets = [0]

    def env_step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(env_actions[i % n_actions])
        if terminated or truncated:
            env.reset()
            env_resets[0] += 1

    # --- batched core ------------------------------------------------------------
    cores = {}
    for k, n in enumerate(args.sizes):
        log(f"batched core: N = {n} (drawing patients, building, calibration timed apart)")
        t0 = time.perf_counter()
        patients = preset.sample(n)
        sample_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        core = BatchedCore(n)
        core.reset_slots(range(n), patients, [0] * n, [0] * n)
        setup_s = time.perf_counter() - t0
        on_ma = np.array([p.params.stimulation.on_amplitude_ma for p in patients])
        n_tables = 64
        amps = [np.where(rng.random(n) < 0.5, on_ma, 0.0) for _ in range(n_tables)]
        calibration_s = None
        if args.calibration:
            # Fresh patients (indices no other part of this run uses), so no cache hides the cost.
            fresh = [preset.patient(1_000_000 * (k + 1) + i) for i in range(n)]
            t0 = time.perf_counter()
            normalisation_for(fresh, 30.0, DEFAULT_CALIBRATION_DAYS)
            calibration_s = time.perf_counter() - t0
        steps = int(min(args.max_steps, max(args.min_steps, args.patient_steps // n)))

        def core_step(i: int, core=core, amps=amps, n_tables=n_tables) -> None:
            core.step(amps[i % n_tables])

        cores[n] = {
            "step": core_step,
            "core": core,
            "steps": steps,
            "sample_patients_s": sample_s,
            "setup_s": setup_s,
            "calibration_s": calibration_s,
        }

    # --- NumPy alone drawing the same per-patient numbers (the physical limit) -----
    noise_n = max(args.sizes)
    noise_draw = numpy_noise_drawer(noise_n)

    # --- warm-up, then interleaved repeats --------------------------------------
    warm_steps = min(200, args.env_steps)
    timed_loop(cart_step, warm_steps)
    timed_loop(env_step, warm_steps)
    for c in cores.values():
        timed_loop(c["step"], min(20, c["steps"]))
    cart_rates, env_rates = [], []
    core_rates: dict[int, list[float]] = {n: [] for n in cores}
    noise_rates: list[float] = []
    noise_draw()
    for r in range(args.repeats):
        log(f"repeat {r + 1}/{args.repeats}")
        cart_rates.append(args.cartpole_steps / timed_loop(cart_step, args.cartpole_steps))
        env_rates.append(args.env_steps / timed_loop(env_step, args.env_steps))
        for n, c in cores.items():
            core_rates[n].append(n * c["steps"] / timed_core(c["core"], c["step"], c["steps"]))
        noise_rates.append(noise_draw())
    env.close()
    cart.close()

    results: dict = {}
    results["cartpole"] = {
        "what": "gymnasium CartPole-v1 through gymnasium.make, random actions, reset on episode end",
        **summarize(cart_rates, "steps/s"),
        "steps_per_repeat": args.cartpole_steps,
    }
    cart_median = results["cartpole"]["median"]
    results["single_env"] = {
        "what": f"gymnasium.make('{ENV_ID}') defaults (cohort default, patient 0, on_off, dt_s 30, "
        "1-day episodes), random actions, reset on truncation (resets timed)",
        **summarize(env_rates, "steps/s"),
        "ratio_to_cartpole": statistics.median(env_rates) / cart_median,
        "ratio_to_cartpole_paired": paired_ratio(env_rates, cart_rates),
        "steps_per_repeat": args.env_steps,
        "episode_resets_timed": env_resets[0],
        "make_s": make_s,
        "first_reset_s": reset_s,
        "wrappers": str(env),
    }
    results["batched"] = {}
    for n, c in cores.items():
        s = summarize(core_rates[n], "patient-steps/s")
        results["batched"][str(n)] = {
            "what": f"BatchedCore.step, N = {n} patients of the default preset, dt_s 30, random on/off amplitudes",
            "n_patients": n,
            **s,
            "ratio_to_cartpole": s["median"] / cart_median,
            "ratio_to_cartpole_paired": paired_ratio(core_rates[n], cart_rates),
            "steps_per_repeat": c["steps"],
            "noise_thread": c["core"].noise.prefetch,
            "sample_patients_s": c["sample_patients_s"],
            "setup_s": c["setup_s"],
            "calibration_s": c["calibration_s"],
            "calibration_days": DEFAULT_CALIBRATION_DAYS if args.calibration else None,
        }
    results["numpy_noise"] = {
        "what": f"NumPy alone drawing the per-patient noise of N = {noise_n} patients (their own PCG64 streams, "
        f"{L.N_NORMALS} normals + {L.N_UNIFORMS} uniforms per patient-step, chunks as the core uses)",
        "n_patients": noise_n,
        **summarize(noise_rates, "patient-steps/s"),
    }
    big = results["batched"].get(str(noise_n))
    if big is not None:
        big["ratio_to_numpy_noise"] = paired_ratio(core_rates[noise_n], noise_rates)
    results["numba"] = numba_info
    results["simenv_physics_version"] = getattr(simenv, "PHYSICS_VERSION", None)
    return results


def run_painloop_single_env(args: argparse.Namespace) -> dict:
    """Steps/s of the single env through ``gymnasium.make`` alone (the peers section's neighbour figure)."""
    import gymnasium as gym
    import numpy as np

    import simenv  # noqa: F401  (registers the env)

    env = gym.make(ENV_ID)
    env.reset(seed=0)
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 2, 4096)]

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i % 4096])
        if terminated or truncated:
            env.reset()

    timed_loop(step, 200)
    rates = [args.env_steps / timed_loop(step, args.env_steps) for _ in range(args.repeats)]
    return {"what": f"gymnasium.make('{ENV_ID}') defaults, random actions", **summarize(rates, "steps/s")}


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_simulator(report: dict) -> str:
    """The simulator section's table, set-up times, floors and targets."""
    res = report["results"]
    rows = [("CartPole-v1 (gymnasium.make)", res["cartpole"])]
    rows.append((f"{ENV_ID} single env (gymnasium.make)", res["single_env"]))
    for n, fig in res["batched"].items():
        thread = " (noise thread)" if fig.get("noise_thread") else ""
        rows.append((f"BatchedCore.step N = {n}{thread}", fig))
    if "numpy_noise" in res:
        rows.append((f"NumPy noise alone N = {res['numpy_noise']['n_patients']}", res["numpy_noise"]))
    header = ("figure", "unit", "median", "min", "max", "x CartPole")
    table = [header]
    for name, fig in rows:
        ratio = fig.get("ratio_to_cartpole", 1.0)
        table.append((name, fig["unit"], fmt_rate(fig["median"]), fmt_rate(fig["min"]), fmt_rate(fig["max"]), f"{ratio:.2f}"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for j, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    s = report["settings"]
    lines.append(f"(medians of {s['repeats']} interleaved repeats; OPENBLAS_NUM_THREADS={s['openblas_num_threads']}; "
                 f"PAINLOOP_NOISE_THREAD={s.get('painloop_noise_thread', 'auto')})")
    lines.append("")
    lines.append("set-up, timed apart from the rates (seconds):")
    lines.append(f"  single env: gymnasium.make {fmt_s(res['single_env']['make_s'])} (incl. calibration), first reset {fmt_s(res['single_env']['first_reset_s'])}")
    for n, fig in res["batched"].items():
        lines.append(
            f"  N = {n}: draw patients {fmt_s(fig['sample_patients_s'])}, build + reset core {fmt_s(fig['setup_s'])}, "
            f"calibration ({fig['calibration_days'] or '-'} days, fresh patients) {fmt_s(fig['calibration_s'])}"
        )
    nb = res["numba"]
    lines.append(
        f"  numba first step: compile {fmt_s(nb['compile_first_step_s'])}, cache load {fmt_s(nb['cache_load_first_step_s'])} "
        f"(fresh processes); import simenv {fmt_s(nb['import_simenv_fresh_process_s'])}"
    )
    for kind, err in nb["errors"].items():
        lines.append(f"  numba {kind} probe failed: {err}")
    lines.append("")
    for group, title in (("floors", "floors (issue 2)"), ("targets", "targets (issue 7)")):
        lines.append(f"{title}:")
        for f in report[group]:
            state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
            small = f["threshold"] is not None and f["threshold"] < 10 and f["measured_median"] is not None
            value = f"{f['measured_median']:.2f}" if small else fmt_rate(f["measured_median"])
            lines.append(f"  {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)
