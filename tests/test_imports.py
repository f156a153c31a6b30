"""Import boundaries (DESIGN.md): simenv pulls in neither torch nor Hydra nor an RL library; agents no Hydra."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import {module}
mods = set(sys.modules)
print(json.dumps({{
    "torch": "torch" in mods,
    "hydra": any(m == "hydra" or m.startswith("hydra.") for m in mods),
    "omegaconf": "omegaconf" in mods,
    "stable_baselines3": "stable_baselines3" in mods,
    "agents": "agents" in mods,
    "experiments": "experiments" in mods,
}}))
"""


def loaded_after(module: str) -> dict[str, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_simenv_loads_neither_torch_nor_hydra():
    loaded = loaded_after("simenv")
    assert loaded == {
        "torch": False,
        "hydra": False,
        "omegaconf": False,
        "stable_baselines3": False,
        "agents": False,
        "experiments": False,
    }


def test_import_agents_does_not_load_hydra():
    loaded = loaded_after("agents")
    assert not loaded["hydra"] and not loaded["omegaconf"] and not loaded["experiments"]


def test_import_sb3_adapter_does_not_load_hydra():
    loaded = loaded_after("agents.sb3_vec_env")
    assert not loaded["hydra"] and not loaded["omegaconf"] and not loaded["experiments"]
    # The probe does see what is loaded: the adapter needs SB3, and SB3 needs torch.
    assert loaded["stable_baselines3"] and loaded["torch"]
