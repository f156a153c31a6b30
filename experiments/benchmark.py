"""Throughput benchmark: ``python -m experiments.benchmark --section simulator``.

The simulator section measures, in one run and interleaved repeat by repeat
(so a slow moment of the machine hits every figure alike):

- steps/s of the single environment through ``gymnasium.make("painloop/PainStim-v0")``
  (random ``on_off`` actions, reset on truncation, resets inside the timing);
- patient-steps/s of ``simenv.BatchedCore.step`` at N = 1, 64, 1024 and 4096
  patients of the default preset (random on/off amplitudes; building the
  core, drawing the patients and their simulated calibration are timed
  separately, never inside the rate);
- gymnasium's CartPole-v1 through ``gymnasium.make`` as the yardstick, and
  each figure's ratio to it;
- the numba kernel's first step: compiled from scratch (empty cache) and
  loaded from the on-disk cache, each in a fresh process.

Each figure is the median, min and max over ``--repeats`` repeats. The
console gets a table; ``--out`` (default
``benchmark_results/benchmark-<timestamp>.json``) gets the figures, the
machine, package versions, the git revision and the floors of the
simulator-core issue marked met or not.

The evaluation section times ``agents.evaluation.evaluate`` (the engine of
``experiments.evaluate``) on the 7 baselines x 100 patients of the test
cohort x 28 days, clinic calibration included, end to end.

The learning section (``experiments.benchmarks.learning``) trains each agent
of ``--agents`` (default ppo and a2c) for each of ``--seeds`` training seeds
with the default experiment, each training in its own
``python -m experiments.train`` process (wall time and steps/s recorded,
at most ``--max-train-minutes``), tunes the threshold's target duty on the
validation cohort, then evaluates every run beside continuous, cycling, the
calibrated and the tuned threshold on the test cohort (100 patients x 7
days, paired) and checks the RL-training issue's goal per run.

The training section (``experiments.benchmarks.training``) measures PPO's
rollout collection alone on the SB3 adapter at n_envs 8, 64, 256 beside
CartPole-v1 in a ``DummyVecEnv``, end-to-end PPO with the shipped default
config beside CartPole at identical settings, and PPO's default settings on
CartPole with 8 envs, all in one run on one torch thread (``--torch-threads``).

The peers section (``experiments.benchmarks.peers``) installs simglucose in a
throwaway virtual environment and times its step beside painloop's single
env; it is skipped with the reason when simglucose cannot be installed.

``--section all`` (the default) runs simulator, evaluation, training and
peers into one JSON file (``sections`` holds each section's report); the
learning section trains for hours and runs only when asked for by name.

Heavy imports (NumPy, gymnasium, simenv) happen only after the options are
read, so ``OPENBLAS_NUM_THREADS`` (default 1, ``--blas-threads``) is set
before NumPy loads.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from agents.atomic_io import write_text_atomic

SECTIONS = ("all", "simulator", "evaluation", "training", "learning", "peers")
#: The sections ``--section all`` runs, in order (learning trains for hours: by name only).
ALL_SECTIONS = ("simulator", "evaluation", "training", "peers")
SCHEMA = "painloop.benchmark/v1"
ENV_ID = "painloop/PainStim-v0"

DEFAULT_SIZES = (1, 64, 1024, 4096)
QUICK_SIZES = (1, 16, 64)
DEFAULT_TRAINING_SIZES = (8, 64, 256)
QUICK_TRAINING_SIZES = (2, 4)

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


# ---------------------------------------------------------------- helpers
def summarize(values: Sequence[float], unit: str) -> dict:
    """Median, min, max and the raw values of one figure."""
    vals = [float(v) for v in values]
    return {
        "unit": unit,
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n_repeats": len(vals),
        "repeats": vals,
    }


def paired_ratio(values: Sequence[float], yardstick: Sequence[float]) -> float:
    """Median over repeats of value / CartPole of the same repeat (robust to a slow moment)."""
    return statistics.median(v / y for v, y in zip(values, yardstick, strict=True))


def git_revision(root: Path) -> dict:
    """The checked-out commit and whether the work tree has uncommitted changes (None without git)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root, capture_output=True, text=True, check=True, timeout=10,
            ).stdout.strip()
        )
        return {"revision": rev, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: another busy process shows up here."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def package_versions(learning: bool = False) -> dict:
    out = {}
    names = ("painloop", "numpy", "numba", "gymnasium", "scipy")
    for name in names + (("torch", "stable_baselines3", "sb3_contrib") if learning else ()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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


def timed_loop(step: Callable[[int], None], n: int) -> float:
    """Seconds to call ``step(i)`` for i in range(n)."""
    t0 = time.perf_counter()
    for i in range(n):
        step(i)
    return time.perf_counter() - t0


def timed_core(core, step: Callable[[int], None], n: int) -> float:
    """Seconds for ``n`` core steps, including the noise draws still in flight on the worker thread.

    Those draws are the next chunks the timed steps used up; leaving them out
    would credit the core with work it has not finished, and they would run
    into the next figure's time.
    """
    t0 = time.perf_counter()
    timed_loop(step, n)
    core.noise.wait_for_draws()
    return time.perf_counter() - t0


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


# ---------------------------------------------------------------- simulator section
def run_simulator(args: argparse.Namespace, root: Path) -> dict:
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
    log(args, "numba: first step in fresh processes (empty cache, then cached)")
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
    log(args, f"single env: gymnasium.make('{ENV_ID}') (includes the patient's simulated calibration)")
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
        log(args, f"batched core: N = {n} (drawing patients, building, calibration timed apart)")
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
        log(args, f"repeat {r + 1}/{args.repeats}")
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


EVALUATION_FLOORS = (
    ("evaluation_wall_s", "7 controllers x 100 patients x 28 days in <= 60 s (issue 3)", ("evaluation",), 60.0),
)
EVALUATION_TARGETS = (
    ("evaluation_wall_s", "7 controllers x 100 patients x 28 days in < 20 s (issue 7), one process",
     ("evaluation",), 20.0),
    ("evaluation_parallel_wall_s",
     "7 controllers x 100 patients x 28 days in < 20 s (issue 7), one process per core",
     ("evaluation_parallel",), 20.0),
)
BASELINES = ("off", "continuous", "cycling", "threshold", "dual_threshold", "oracle", "random")


def run_evaluation(args: argparse.Namespace) -> dict:
    """Wall time of the paired evaluation engine, end to end (calibrations included), in one and in N processes.

    The repeats are interleaved (each repeat times one process, then N), so a slow moment of the machine hits
    both alike. The worker pool is started once, timed apart (``pool_start_s``: a tiny evaluation in a
    fresh pool, imports and cache loads included), and kept for the repeats, as in any process that
    evaluates more than once; each repeat's own set-up (clinic calibration, detector fits) is inside its time.
    """
    from agents.controllers import ControllerSpec
    from agents.evaluation import evaluate
    from agents.evaluation_pool import resolve_jobs
    from simenv import EnvSettings, load_preset

    n, days = (4, 1.0) if args.quick else (100, 28.0)
    specs = [
        ControllerSpec(name, name, {"match": "threshold"} if name == "random" else {}) for name in BASELINES
    ]
    patients = load_preset("test").sample(n)
    jobs = resolve_jobs(args.eval_jobs, n)
    evaluate(specs[:2], patients[:1], EnvSettings(horizon_days=0.01), seed=0)  # compile / warm caches
    pool_start_s = None
    if jobs > 1:
        t0 = time.perf_counter()
        evaluate(specs[:2], patients[:jobs], EnvSettings(horizon_days=0.01), seed=0, jobs=jobs)
        pool_start_s = time.perf_counter() - t0
    walls: dict[int, list[float]] = {1: []} | ({jobs: []} if jobs > 1 else {})
    for r in range(args.repeats):
        for n_jobs, times in walls.items():
            log(args, f"evaluation repeat {r + 1}/{args.repeats}: {len(specs)} controllers x {n} patients x "
                      f"{days:g} days, {n_jobs} process{'es' if n_jobs > 1 else ''}")
            t0 = time.perf_counter()
            evaluate(specs, patients, EnvSettings(horizon_days=days), seed=r, jobs=n_jobs)
            times.append(time.perf_counter() - t0)
    controller_patient_days = len(specs) * n * days
    what = f"agents.evaluation.evaluate: {len(specs)} baselines x {n} patients of 'test' x {days:g} days, dt_s 30"
    out = {}
    for n_jobs, times in walls.items():
        summary = summarize(times, "s")
        key = "evaluation" if n_jobs == 1 else "evaluation_parallel"
        out[key] = {
            "what": what + (f", {n_jobs} worker processes" if n_jobs > 1 else ", one process"),
            **summary,
            "jobs": n_jobs,
            "controllers": list(BASELINES),
            "n_patients": n,
            "days": days,
            "controller_patient_days_per_s": controller_patient_days / summary["median"],
        }
    if jobs > 1:
        out["evaluation_parallel"]["pool_start_s"] = pool_start_s
        out["evaluation_parallel"]["speedup_paired"] = statistics.median(
            one / many for one, many in zip(walls[1], walls[jobs], strict=True)
        )
    return out


def learning_goal(results: dict) -> list[dict]:
    """The RL-training issue's goal, one entry per trained run (floors/targets format)."""
    return [
        {
            "key": f"goal_{g['controller']}",
            "label": f"{g['controller']}: paired 95% interval of reward/day - threshold's > 0, mean pain <= 0.2 NRS "
            "worse, stimulation energy/day no higher",
            "source": "issue 4",
            "threshold": None,
            "measured_median": None,
            "met": g["met"],
            "detail": g,
        }
        for g in results["evaluation"]["goal"]
    ]


def lookup(results: dict, path: Sequence[str]) -> float | None:
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    return node.get("median") if isinstance(node, dict) else None


def check(results: dict, specs, source: str, lower_is_better: bool = False) -> list[dict]:
    out = []
    for key, label, path, threshold in specs:
        measured = lookup(results, path)
        met = None if measured is None else bool(measured <= threshold if lower_is_better else measured >= threshold)
        out.append(
            {
                "key": key,
                "label": label,
                "source": source,
                "threshold": threshold,
                "measured_median": measured,
                "met": met,
            }
        )
    return out


# ---------------------------------------------------------------- output
def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_evaluation(report: dict) -> str:
    lines = []
    for key in ("evaluation", "evaluation_parallel"):
        fig = report["results"].get(key)
        if fig is None:
            continue
        lines += [
            f"evaluation: {fig['what']}",
            f"  wall time: median {fig['median']:.1f} s (min {fig['min']:.1f}, max {fig['max']:.1f}) over "
            f"{report['settings']['repeats']} repeats; {fig['controller_patient_days_per_s']:,.0f} "
            "controller-patient-days/s",
        ]
        if fig.get("pool_start_s") is not None:
            lines.append(f"  worker pool start-up (once per process, timed apart): {fig['pool_start_s']:.1f} s; "
                         f"speed-up over one process (median of paired ratios): {fig['speedup_paired']:.2f}x")
    for group, title in (("floors", "floor (issue 3)"), ("targets", "target (issue 7)")):
        for f in report[group]:
            state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
            value = "-" if f["measured_median"] is None else f"{f['measured_median']:.1f} s"
            lines.append(f"  {title}: {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)


def render_targets(report: dict, title: str) -> str:
    lines = [f"{title}:"]
    for f in report["targets"]:
        state = "not measured" if f["met"] is None else ("met" if f["met"] else "NOT met")
        value = "-" if f["measured_median"] is None else f"{f['measured_median']:,.2f}"
        lines.append(f"  {f['label']}: measured {value} -> {state}")
    return "\n".join(lines)


def render(report: dict) -> str:
    if report["section"] == "all":
        return "\n\n".join(f"=== {name} ===\n{render(sub)}" for name, sub in report["sections"].items())
    if report["section"] == "evaluation":
        return render_evaluation(report)
    if report["section"] == "training":
        from experiments.benchmarks.training import render_training

        return render_training(report["results"]) + "\n" + render_targets(report, "targets (issue 7)")
    if report["section"] == "peers":
        from experiments.benchmarks.peers import render_peers

        return render_peers(report["results"], report["results"].get("painloop_single_env"))
    if report["section"] == "learning":
        from experiments.benchmarks.learning import render_learning

        return render_learning(report["results"])
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


def log(args: argparse.Namespace, message: str) -> None:
    if not args.silent:
        print(f"[benchmark] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.benchmark",
        description="painloop throughput benchmark (see docs/performance.md).",
    )
    p.add_argument(
        "--section",
        default="all",
        help=f"one of {', '.join(SECTIONS)} (default all: {', '.join(ALL_SECTIONS)}; learning only by name)",
    )
    p.add_argument("--repeats", type=int, default=5, help="repeats per figure (default 5; medians need >= 5)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default benchmark_results/benchmark-<timestamp>.json)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing, not the speed")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="batch sizes N (default 1 64 1024 4096)")
    p.add_argument("--blas-threads", default=None, help="OPENBLAS_NUM_THREADS (default: the environment's, else 1)")
    p.add_argument("--no-calibration", dest="calibration", action="store_false", help="skip timing the calibration")
    p.add_argument("--check-floors", action="store_true", help="exit 1 if a floor of issue 2 is not met")
    p.add_argument("--silent", action="store_true", help="no progress messages on stderr")
    p.add_argument("--eval-jobs", type=int, default=-1,
                   help="processes of the parallel evaluation figure (default -1: every usable core; 1: skip it)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads for training/learning (default 1)")
    p.add_argument("--training-sizes", type=int, nargs="+", default=None,
                   help="n_envs of the training section's rollout figures (default 8 64 256)")
    p.add_argument("--peers-venv", type=Path, default=None,
                   help="keep simglucose's venv here and reuse it (default: a temporary one, removed afterwards)")
    g = p.add_argument_group("learning section")
    g.add_argument("--agents", nargs="+", default=None, help="agents to train (default: ppo a2c)")
    g.add_argument("--seeds", type=int, default=3, help="training seeds 0..n-1 per agent (default 3)")
    g.add_argument(
        "--budget-steps", nargs="+", default=None,
        help="steps per training: one number for every agent, or agent=steps entries "
        "(default per agent: ppo 4,096,000, a2c 4,096,000, recurrent_ppo 4,096,000, dqn 2,000,000, sac 1,000,000)",
    )
    g.add_argument("--experiment", default="default", help="named experiment of conf/experiment/ (default: default)")
    g.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for every training (repeatable)")
    g.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1; at most 2 on 2 cores)")
    g.add_argument("--max-train-minutes", type=float, default=20.0, help="wall limit per training (default 20)")
    g.add_argument("--runs-dir", type=Path, default=None,
                   help="where the run folders go (default benchmark_results/learning-<timestamp>; "
                   "finished runs found there are reused)")
    g.add_argument("--test-patients", type=int, default=100, help="test cohort size (default 100)")
    g.add_argument("--days", type=float, default=7.0, help="simulated days per test patient (default 7)")
    g.add_argument("--tune-patients", type=int, default=50, help="validation patients for tuning the threshold (default 50)")
    return p


def learning_options(args: argparse.Namespace, started: _dt.datetime):
    """The learning section's options from the command line; raises ValueError naming a bad option."""
    from experiments.benchmarks.learning import DEFAULT_AGENTS, TUNE_DUTIES, LearningOptions

    agents = list(args.agents or DEFAULT_AGENTS)
    known = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "agent").glob("*.yaml"))
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"--agents {unknown} unknown; allowed: {', '.join(known)}")
    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}; allowed: a whole number >= 1")
    budgets: dict[str, int] = {}
    for item in args.budget_steps or []:
        agent, _, steps = item.rpartition("=")
        try:
            n = int(float(steps))
        except ValueError:
            n = 0
        if n < 1 or (agent and agent not in agents):
            raise ValueError(f"--budget-steps {item!r}; allowed: a number of steps >= 1, or agent=steps for an agent "
                             f"of --agents ({', '.join(agents)})")
        for a in [agent] if agent else agents:
            budgets[a] = n
    if args.jobs < 1 or args.max_train_minutes <= 0 or args.test_patients < 2 or args.days <= 0 or args.tune_patients < 2:
        raise ValueError("--jobs >= 1, --max-train-minutes > 0, --test-patients >= 2, --tune-patients >= 2 and "
                         "--days > 0 are required")
    quick = bool(args.quick)
    return LearningOptions(
        agents=agents,
        seeds=list(range(1 if quick and args.seeds == 3 else args.seeds)),
        budgets=budgets,
        experiment=args.experiment,
        train_overrides=list(args.train_override),
        out_dir=args.runs_dir or Path("benchmark_results") / f"learning-{started.strftime('%Y%m%d-%H%M%S')}",
        jobs=args.jobs,
        max_train_s=60.0 * args.max_train_minutes,
        test_patients=4 if quick and args.test_patients == 100 else args.test_patients,
        test_days=0.25 if quick and args.days == 7.0 else args.days,
        tune_patients=3 if quick and args.tune_patients == 50 else args.tune_patients,
        tune_days=0.25 if quick else 7.0,
        tune_duties=[0.3, 0.7] if quick else list(TUNE_DUTIES),
        quick=quick,
    )


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


def section_settings(args: argparse.Namespace, numpy_preloaded: bool) -> dict:
    return {
        "repeats": args.repeats,
        "quick": args.quick,
        "sizes": args.sizes,
        "training_sizes": args.training_sizes,
        "cartpole_steps_per_repeat": args.cartpole_steps,
        "single_env_steps_per_repeat": args.env_steps,
        "batched_patient_steps_per_repeat": args.patient_steps,
        "openblas_num_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "painloop_noise_thread": os.environ.get("PAINLOOP_NOISE_THREAD", "auto"),
        "torch_threads": args.torch_threads,
        "numpy_imported_before_setting_blas_threads": numpy_preloaded,
        "calibration_timed": args.calibration,
    }


def run_section(section: str, args: argparse.Namespace, root: Path, learning, numpy_preloaded: bool) -> dict:
    """One section's part of the report: settings, results, floors, targets."""
    settings = section_settings(args, numpy_preloaded)
    floors: list[dict] = []
    if section == "learning":
        from experiments.benchmarks.learning import run_learning

        results = run_learning(learning, lambda message: log(args, message))
        targets = learning_goal(results)
        settings = {"quick": args.quick, "openblas_num_threads": os.environ["OPENBLAS_NUM_THREADS"], **results["options"]}
    elif section == "evaluation":
        results = run_evaluation(args)
        floors = check(results, EVALUATION_FLOORS, "issue 3", lower_is_better=True)
        targets = check(results, EVALUATION_TARGETS, "issue 7", lower_is_better=True)
    elif section == "training":
        from experiments.benchmarks.training import TrainingOptions, check_training, run_training

        opts = TrainingOptions(sizes=args.training_sizes, repeats=args.repeats, torch_threads=args.torch_threads,
                               quick=args.quick)
        if args.quick:
            opts.rollout_steps, opts.end_to_end_rollouts = 64, 1
        results = run_training(opts, lambda message: log(args, message))
        targets = check_training(results)
    elif section == "peers":
        from experiments.benchmarks.peers import run_peers

        results = run_peers(lambda message: log(args, message), steps=50 if args.quick else 500,
                            repeats=args.repeats, venv_dir=args.peers_venv)
        results["painloop_single_env"] = run_painloop_single_env(args)
        sg = results["simglucose"]
        if "median" in sg:
            results["painloop_single_env"]["ratio_to_simglucose"] = results["painloop_single_env"]["median"] / sg["median"]
        targets = []
    else:
        results = run_simulator(args, root)
        floors, targets = check(results, FLOORS, "issue 2"), check(results, TARGETS, "issue 7")
        targets += check(results, NOISE_TARGETS, "issue 7")
    return {"section": section, "settings": settings, "results": results, "floors": floors, "targets": targets}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.section not in SECTIONS:
        print(f"error: --section {args.section!r} is unknown; allowed: {', '.join(SECTIONS)}.", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print(f"error: --repeats {args.repeats}; allowed: a whole number >= 1.", file=sys.stderr)
        return 2
    for name in ("sizes", "training_sizes"):
        value = getattr(args, name)
        if value is not None and any(n < 1 for n in value):
            print(f"error: --{name.replace('_', '-')} {value}; allowed: whole numbers >= 1.", file=sys.stderr)
            return 2
    if args.torch_threads < 1:
        print(f"error: --torch-threads {args.torch_threads}; allowed: a whole number >= 1.", file=sys.stderr)
        return 2

    started = _dt.datetime.now(_dt.timezone.utc)
    learning = None
    if args.section == "learning":
        try:
            learning = learning_options(args, started)
        except ValueError as exc:
            print(f"error: {exc}.", file=sys.stderr)
            return 2

    numpy_preloaded = "numpy" in sys.modules
    blas = args.blas_threads or os.environ.get("OPENBLAS_NUM_THREADS") or "1"
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas)

    if args.quick:
        args.sizes = args.sizes or list(QUICK_SIZES)
        args.training_sizes = args.training_sizes or list(QUICK_TRAINING_SIZES)
        args.cartpole_steps, args.env_steps = 500, 300
        args.patient_steps, args.min_steps, args.max_steps = 2_000, 20, 200
    else:
        args.sizes = args.sizes or list(DEFAULT_SIZES)
        args.training_sizes = args.training_sizes or list(DEFAULT_TRAINING_SIZES)
        args.cartpole_steps, args.env_steps = 20_000, 20_000
        args.patient_steps, args.min_steps, args.max_steps = 2_000_000, 200, 20_000
    args.sizes = sorted(dict.fromkeys(args.sizes))
    args.training_sizes = sorted(dict.fromkeys(args.training_sizes))

    root = Path(__file__).resolve().parents[1]
    out = args.out or Path("benchmark_results") / f"benchmark-{started.strftime('%Y%m%d-%H%M%S')}.json"
    wall0 = time.perf_counter()
    machine = machine_info()
    machine["load_average_at_start"] = load_average()
    git = git_revision(root)
    sections = ALL_SECTIONS if args.section == "all" else (args.section,)
    parts = {}
    for name in sections:
        log(args, f"section {name}")
        t0 = time.perf_counter()
        parts[name] = run_section(name, args, root, learning, numpy_preloaded)
        parts[name]["wall_s"] = time.perf_counter() - t0
    machine["load_average_at_end"] = load_average()
    torch_used = any(name in ("training", "learning") for name in sections)
    report = {
        "schema": SCHEMA,
        "section": args.section,
        "created_utc": started.isoformat(timespec="seconds"),
        "command": [sys.executable, "-m", "experiments.benchmark", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "versions": package_versions(torch_used),
        "git": git,
    }
    if args.section == "all":
        report["sections"] = {name: {**part, "machine": machine} for name, part in parts.items()}
        report["floors"] = [f for part in parts.values() for f in part["floors"]]
        report["targets"] = [t for part in parts.values() for t in part["targets"]]
    else:
        report.update(parts[args.section])
    report["wall_s"] = time.perf_counter() - wall0
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {out} ({report['wall_s']:.0f} s)")
    if args.check_floors and any(f["met"] is False for f in report["floors"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
