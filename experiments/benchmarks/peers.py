"""The benchmark's peers section: simglucose's step rate, measured in a virtual environment of its own.

simglucose pins old packages (gymnasium 0.29, gym 0.9.4) and needs
``setuptools<81`` (it imports ``pkg_resources``) and ``numpy<2.3``, so it
cannot live in painloop's environment. This section creates a throwaway
venv (in a temporary directory, removed afterwards, unless ``venv_dir``
names one to keep and reuse, e.g. under the gitignored ``benchmark_results/``),
installs simglucose there with pip, and times ``env.step`` in a child
process. If anything fails (no network, no wheel), the section is skipped
with the reason; it never fails the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path

from experiments.benchmarks.timing import summarize

REQUIREMENTS = ("simglucose", "gymnasium==0.29.*", "setuptools<81", "numpy<2.3")

#: Run inside the peer venv: steps/s of simglucose's gymnasium env, random actions, reset on episode end.
_PROBE = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import gymnasium
from gymnasium.envs.registration import register
register(id="simglucose/adolescent2-v0", entry_point="simglucose.envs:T1DSimGymnaisumEnv",
         kwargs={"patient_name": "adolescent#002"})
steps, repeats = int(sys.argv[1]), int(sys.argv[2])
env = gymnasium.make("simglucose/adolescent2-v0")
env.reset(seed=0)
env.action_space.seed(0)
rates, resets = [], 0
for _ in range(repeats + 1):  # the first round warms up
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
            resets += 1
    rates.append(steps / (time.perf_counter() - t0))
import importlib.metadata as md
print(json.dumps({"rates": rates[1:], "resets": resets, "wrappers": str(env),
                  "versions": {k: md.version(k) for k in ("simglucose", "gymnasium", "numpy")}}))
"""


def _pip_install(python: Path, log: Callable[[str], None], timeout_s: float) -> None:
    log(f"peers: pip install {' '.join(REQUIREMENTS)} into {python.parent.parent}")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True, capture_output=True,
                   text=True, timeout=timeout_s)


def run_peers(log: Callable[[str], None], steps: int = 500, repeats: int = 5, venv_dir: Path | None = None,
              install_timeout_s: float = 900.0) -> dict:
    """simglucose's steps/s (median, min, max over ``repeats``), or ``{"skipped": reason}``."""
    tmp = None
    if venv_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="painloop-peers-")
        venv_dir = Path(tmp.name) / "venv"
    try:
        python = venv_dir / "bin" / "python"
        t0 = time.perf_counter()
        if not python.exists():
            log(f"peers: creating a throwaway venv in {venv_dir}")
            venv.create(venv_dir, with_pip=True)
            _pip_install(python, log, install_timeout_s)
        install_s = time.perf_counter() - t0
        log(f"peers: timing simglucose ({repeats} repeats of {steps} steps)")
        proc = subprocess.run([str(python), "-c", _PROBE, str(steps), str(repeats)], capture_output=True, text=True,
                              timeout=install_timeout_s, check=True)
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        reason = detail.strip().splitlines()[-1] if detail and detail.strip() else type(exc).__name__
        log(f"peers: simglucose skipped: {reason}")
        return {"simglucose": {"skipped": f"simglucose could not be installed or run: {reason}"}}
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {
        "simglucose": {
            "what": "simglucose T1DSimGymnaisumEnv (adolescent#002) through gymnasium.make, random actions, one step "
            "= 3 simulated minutes, in its own venv",
            **summarize(probe["rates"], "steps/s"),
            "steps_per_repeat": steps,
            "resets": probe["resets"],
            "wrappers": probe["wrappers"],
            "versions": probe["versions"],
            "venv_setup_s": install_s,
            "python": sys.version.split()[0],
        }
    }


def render_peers(results: dict, painloop: dict | None = None) -> str:
    sg = results["simglucose"]
    if "skipped" in sg:
        return f"peers: {sg['skipped']}"
    lines = [f"peers: simglucose {sg['median']:,.1f} steps/s (min {sg['min']:,.1f}, max {sg['max']:,.1f}; "
             f"versions {sg['versions']})"]
    if painloop:
        lines.append(f"  painloop single env in this run: {painloop['median']:,.0f} steps/s "
                     f"({painloop['median'] / sg['median']:,.0f}x simglucose)")
    return "\n".join(lines)
