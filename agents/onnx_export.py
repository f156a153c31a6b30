"""ONNX export of a trained policy, with observation normalisation and action post-processing fused in.

``torch.onnx.export`` of a whole SB3 policy trips over torch.distributions
(docs: STACK.md), so a small module is exported instead: raw observation ->
VecNormalize's transform ((obs - mean) / sqrt(var + eps), clipped) -> the
actor's feature extractor and layers -> the action head -> argmax
(discrete actions) or the mean clipped to the action space (continuous).
The graph takes the policy's own *raw* observation (``RLPolicy.observation_names``,
recorded in the graph's metadata: the full observation, or only the band powers for a
policy trained with ``observation=biomarkers``) and returns the action SB3's ``predict(deterministic=True)`` returns; the
caller holds it for the policy's decision interval.

Needs the optional extra ``onnx`` (onnx, onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agents.atomic_io import write_bytes_atomic
from simenv.errors import PainloopError

OPSET = 17
#: Continuous actions (in [-1, 1]) may differ by float32 rounding; 1e-6 is far below the 0.1 mA amplitude step.
CONTINUOUS_TOLERANCE = 1e-6


def _module(policy):
    """The fused torch module of an ``RLPolicy`` (PPO/A2C actor-critic or DQN, non-recurrent)."""
    import torch
    from gymnasium import spaces

    model = policy.model
    sb3 = model.policy
    if policy.recurrent:
        raise PainloopError("PL-EXPORT-SOURCE", "ONNX export of a recurrent policy is not supported; allowed: PPO, A2C, DQN.")
    if getattr(sb3, "use_sde", False):
        raise PainloopError("PL-EXPORT-SOURCE", "ONNX export of a gSDE policy is not supported; allowed: PPO, A2C, DQN.")
    space = model.action_space
    n_obs = int(np.prod(model.observation_space.shape))
    if n_obs != len(policy.observation_names):
        raise PainloopError(
            "PL-EXPORT-SOURCE", f"the model takes {n_obs} observation entries but its run records "
            f"{len(policy.observation_names)} ({policy.observation_names[:3]}...); allowed: a run folder whose "
            "train_config.json matches its model."
        )
    mean = torch.zeros(n_obs) if policy.obs_mean is None else torch.as_tensor(policy.obs_mean, dtype=torch.float32)
    scale = torch.ones(n_obs) if policy.obs_scale is None else torch.as_tensor(policy.obs_scale, dtype=torch.float32)
    clip = float(policy.clip_obs) if policy.obs_mean is not None else float("inf")

    if hasattr(sb3, "mlp_extractor") and hasattr(sb3, "action_net"):
        extractor = getattr(sb3, "pi_features_extractor", None) or sb3.features_extractor
        body = torch.nn.Sequential(extractor, sb3.mlp_extractor.policy_net, sb3.action_net)
    elif hasattr(sb3, "q_net"):
        body = torch.nn.Sequential(sb3.q_net.features_extractor, sb3.q_net.q_net)
    else:
        raise PainloopError(
            "PL-EXPORT-SOURCE", f"ONNX export of {type(model).__name__} is not supported; allowed: PPO, A2C, DQN."
        )
    if isinstance(space, spaces.Discrete):
        post = "argmax"
        low = high = None
    elif isinstance(space, spaces.Box):
        post = "clip"
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
    else:
        raise PainloopError("PL-EXPORT-SOURCE", f"action space {space}; allowed: Discrete or Box.")

    class Fused(torch.nn.Module):
        low: torch.Tensor  # buffers, registered below
        high: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.body = body
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)
            if low is not None:
                self.register_buffer("low", low)
                self.register_buffer("high", high)

        def forward(self, observation):
            x = (observation - self.mean) * self.scale
            if clip != float("inf"):
                x = torch.clamp(x, -clip, clip)
            out = self.body(x)
            if post == "argmax":
                return torch.argmax(out, dim=1)
            return torch.maximum(torch.minimum(out, self.high), self.low)

    return Fused().eval(), n_obs


def export_onnx(policy, path: str | Path) -> Path:
    """Write the fused policy graph to ``path`` (input ``observation`` float32 (batch, n_obs), output ``action``)."""
    import torch

    module, n_obs = _module(policy)
    path = Path(path)
    dummy = torch.zeros((2, n_obs), dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=["observation"],
            output_names=["action"],
            dynamic_axes={"observation": {0: "batch"}, "action": {0: "batch"}},
            opset_version=OPSET,
        )
    import onnx

    graph = onnx.load(str(path))
    meta = {
        "painloop.format": "painloop.policy-onnx/v1",
        "action_mode": policy.action_mode,
        "steps_per_decision": str(policy.steps_per_decision),
        "observation": f"raw painloop observation, {policy.env_settings['observation']} "
        "(observation_names, in order); normalisation is inside",
        "observation_names": json.dumps(policy.observation_names),
    }
    for k, v in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = k, str(v)
    write_bytes_atomic(path, graph.SerializeToString())
    return path


def onnx_actions(path: str | Path, observations: np.ndarray) -> np.ndarray:
    """Actions of the exported graph under onnxruntime, for the policy's own raw observations (n, n_obs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["action"], {"observation": np.asarray(observations, dtype=np.float32)})[0]


def sb3_actions(policy, observations: np.ndarray) -> np.ndarray:
    """SB3's deterministic actions for raw observations (through the policy's column choice and normalisation)."""
    action, _ = policy.model.predict(policy.normalise(observations), deterministic=True)
    return np.asarray(action)


def record_observations(policy, patients, settings, seed: int, n: int) -> np.ndarray:
    """At least ``n`` raw observations met while ``policy`` runs on ``patients`` (first ``n`` returned)."""
    from agents.policy import PatientContext
    from simenv.batch import PainStimBatch

    batch = PainStimBatch(list(patients), settings)
    obs, info = batch.reset(seed=seed)
    policy.reset([PatientContext(p.uid, p.cohort, p.index, p.params, batch._norm[p]) for p in patients])
    out = []
    total = 0
    while total < n:
        out.append(obs.copy())
        total += len(obs)
        action = policy.act(obs, info)
        amps = batch.amplitudes_for(action, policy.action_mode, slice(None), policy.n_levels)
        obs, _, _, truncated = batch.step_arrays(None, amps)
        info = batch.step_info()
        if truncated.all():
            obs, info = batch.reset()
    return np.concatenate(out)[:n]


def check_onnx(policy, path: str | Path, observations: np.ndarray) -> dict:
    """Compare the graph's actions with SB3's on ``observations``; returns counts and the largest difference.

    ``observations`` are what the simulator gave the policy (``record_observations``: the full
    observation); the graph gets the policy's own columns of them, SB3 the same through ``normalise``.
    """
    a = onnx_actions(path, policy.own_observation(observations))
    b = sb3_actions(policy, observations)
    a = a.reshape(b.shape)
    if np.issubdtype(b.dtype, np.integer):
        exact = a.astype(np.int64) == b.astype(np.int64)
        max_diff = float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if a.size else 0.0
        ok = exact
        rule = "discrete actions: exactly equal"
    else:
        diff = np.abs(a.reshape(len(a), -1).astype(np.float64) - b.reshape(len(b), -1).astype(np.float64))
        exact = np.all(diff == 0.0, axis=1)
        max_diff = float(diff.max()) if a.size else 0.0
        ok = np.all(diff <= CONTINUOUS_TOLERANCE, axis=1)
        rule = f"continuous actions: within {CONTINUOUS_TOLERANCE:g} (float32 rounding of a different matmul order)"
    return {
        "n_observations": int(len(observations)),
        "n_equal": int(np.sum(ok)),
        "n_bitwise_equal": int(np.sum(exact)),
        "all_equal": bool(np.all(ok)),
        "rule": rule,
        "max_abs_difference": max_diff,
    }
