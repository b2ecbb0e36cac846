"""A run directory's model files in formats that load without running code, and their checksums.

- ``policy_{best,last}.pt``: ``torch.save`` of plain data: the policy's ``state_dict``, its
  optimizer's ``state_dict``, the observation shape, the action dimensions and the step count.
  Loaded with ``torch.load(weights_only=True)`` into a policy rebuilt from the run's config.
- ``obs_norm_{best,last}.npz``: the observation (and return) statistics of ``VecNormalize``
  as plain arrays (``np.load(allow_pickle=False)``).
- ``manifest.json``: the sha256 of every run file, written at each save; a listed file that
  is missing or changed is refused by name.

SB3's own ``model_*.zip`` is still written beside them for SB3 tools; it carries cloudpickle
payloads, so it (and the ``vecnormalize*.pkl`` of older runs) is read only for a run the user
trusts explicitly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.run_dir import RunDir, Which
from aster_rl.config import AppConfig
from aster_rl.errors import UntrustedRunError

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = RunDir.MANIFEST
_NORM_KEYS = ("obs_mean", "obs_var", "obs_count", "ret_mean", "ret_var", "ret_count", "clip_obs", "clip_reward",
              "epsilon", "gamma", "norm_obs", "norm_reward")


# ---------------------------------------------------------------- manifest

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(run_dir: Path) -> Path:
    """Record the sha256 of every run file present in ``run_dir``, and when the run was created (the first write)."""
    rd = RunDir(run_dir)
    files = {name: sha256_of(rd.path / name) for name in RunDir.manifest_files() if (rd.path / name).is_file()}
    path = rd.manifest
    created = rd.created_at() if path.is_file() else time.time()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "algorithm": "sha256", "created": created, "files": files}, indent=2) + "\n")
    tmp.replace(path)
    return path


def verify_manifest(run_dir: Path, needed: tuple[str, ...]) -> None:
    """Refuse the run, naming the file, when a listed file is missing or changed or a needed one is unlisted."""
    run_dir = Path(run_dir)
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UntrustedRunError(f"run {run_dir}: {MANIFEST} is unreadable ({e}); the run cannot be checked") from None
    for name in needed:
        if name not in files:
            raise UntrustedRunError(f"run {run_dir}: {name} is not listed in {MANIFEST}; refusing to load it")
    for name, expected in sorted(files.items()):
        path = run_dir / Path(name).name  # names only: a manifest cannot point outside the run
        if not path.is_file():
            raise UntrustedRunError(f"run {run_dir}: {name} is missing (listed in {MANIFEST}); refusing to load the run")
        if sha256_of(path) != expected:
            raise UntrustedRunError(
                f"run {run_dir}: {name} was modified after the run was saved (its sha256 differs from {MANIFEST}); "
                "refusing to load the run"
            )


# ---------------------------------------------------------------- observation statistics

@dataclass(frozen=True)
class ObsNormalizer:
    """VecNormalize's observation normalization from plain arrays (frozen: no statistics update)."""

    obs_mean: np.ndarray
    obs_var: np.ndarray
    clip_obs: float
    epsilon: float
    norm_obs: bool

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if not self.norm_obs:
            return np.array(obs, copy=True)
        return np.clip((obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon), -self.clip_obs, self.clip_obs).astype(
            np.float32
        )


def norm_arrays(vec_normalize: Any) -> dict[str, np.ndarray]:
    """The statistics of an SB3 ``VecNormalize`` as plain arrays (without observation normalization,
    which leaves SB3 no observation statistics: mean 0, variance 1, count 0, unused on load)."""
    vn = vec_normalize
    shape = vn.observation_space.shape
    obs_rms = vn.obs_rms if vn.norm_obs else None
    return {
        "obs_mean": np.asarray(obs_rms.mean if obs_rms is not None else np.zeros(shape), dtype=np.float64),
        "obs_var": np.asarray(obs_rms.var if obs_rms is not None else np.ones(shape), dtype=np.float64),
        "obs_count": np.asarray(obs_rms.count if obs_rms is not None else 0.0, dtype=np.float64),
        "ret_mean": np.asarray(vn.ret_rms.mean, dtype=np.float64),
        "ret_var": np.asarray(vn.ret_rms.var, dtype=np.float64),
        "ret_count": np.asarray(vn.ret_rms.count, dtype=np.float64),
        "clip_obs": np.asarray(vn.clip_obs, dtype=np.float64),
        "clip_reward": np.asarray(vn.clip_reward, dtype=np.float64),
        "epsilon": np.asarray(vn.epsilon, dtype=np.float64),
        "gamma": np.asarray(vn.gamma, dtype=np.float64),
        "norm_obs": np.asarray(bool(vn.norm_obs)),
        "norm_reward": np.asarray(bool(vn.norm_reward)),
    }


def read_norm_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in _NORM_KEYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise UntrustedRunError(f"{path}: not a normalization-statistics file of this program ({e})") from None
    if arrays["obs_mean"].shape != arrays["obs_var"].shape:
        raise UntrustedRunError(f"{path}: obs_mean and obs_var differ in shape")
    return arrays


def obs_normalizer(arrays: dict[str, np.ndarray]) -> ObsNormalizer:
    return ObsNormalizer(
        obs_mean=arrays["obs_mean"], obs_var=arrays["obs_var"], clip_obs=float(arrays["clip_obs"]),
        epsilon=float(arrays["epsilon"]), norm_obs=bool(arrays["norm_obs"]),
    )


def vec_normalize_from(arrays: dict[str, np.ndarray], venv: Any, training: bool = True) -> Any:
    """An SB3 ``VecNormalize`` around ``venv`` carrying the saved statistics (to continue training)."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    vn = VecNormalize(
        venv, training=training, norm_obs=bool(arrays["norm_obs"]), norm_reward=bool(arrays["norm_reward"]),
        clip_obs=float(arrays["clip_obs"]), clip_reward=float(arrays["clip_reward"]), gamma=float(arrays["gamma"]),
        epsilon=float(arrays["epsilon"]),
    )
    if not vn.norm_obs:  # SB3 keeps no observation statistics then
        vn.ret_rms.mean, vn.ret_rms.var, vn.ret_rms.count = arrays["ret_mean"].copy(), arrays["ret_var"].copy(), float(arrays["ret_count"])
        return vn
    obs_rms = vn.obs_rms
    if not isinstance(obs_rms, RunningMeanStd):  # a dict observation space: not this program's environment
        raise UntrustedRunError("the environment's observations are a dict; saved statistics are for one array")
    if obs_rms.mean.shape != arrays["obs_mean"].shape:
        raise UntrustedRunError(
            f"saved observation statistics have shape {arrays['obs_mean'].shape}, the environment's observation "
            f"{obs_rms.mean.shape}"
        )
    obs_rms.mean, obs_rms.var, obs_rms.count = arrays["obs_mean"].copy(), arrays["obs_var"].copy(), float(arrays["obs_count"])
    vn.ret_rms.mean, vn.ret_rms.var, vn.ret_rms.count = arrays["ret_mean"].copy(), arrays["ret_var"].copy(), float(arrays["ret_count"])
    return vn


# ---------------------------------------------------------------- policy

class PolicyModel:
    """What acting needs of an SB3 model: ``policy`` and ``predict``, without the algorithm object."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    @property
    def observation_space(self) -> Any:
        return self.policy.observation_space

    def predict(self, observation: np.ndarray, deterministic: bool = True):
        return self.policy.predict(observation, deterministic=deterministic)


def save_model(model: Any, vec_normalize: Any, run_dir: Path, which: Which) -> None:
    """Write ``which`` model of a run: state dicts, plain statistics, SB3's zip, and the manifest."""
    import torch

    rd = RunDir(run_dir)
    policy = model.policy
    payload = {
        "format": FORMAT,
        "observation_shape": [int(n) for n in model.observation_space.shape],
        "action_nvec": [int(n) for n in np.asarray(model.action_space.nvec).ravel()],
        "num_timesteps": int(model.num_timesteps),
        "policy": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        "optimizer": policy.optimizer.state_dict(),
    }
    torch.save(payload, rd.policy(which))
    arrays: dict[str, Any] = norm_arrays(vec_normalize)
    np.savez(rd.normalizer(which), **arrays)
    model.save(rd.sb3_model(which))
    write_manifest(rd.path)


def read_policy_payload(path: Path) -> dict[str, Any]:
    """The saved policy as plain tensors and numbers; nothing in the file can run code."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UntrustedRunError(f"{path}: not a plain state-dict file; refusing to load it ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("policy"), dict):
        raise UntrustedRunError(f"{path}: not a policy file of this program (format {FORMAT})")
    return payload


def build_policy(payload: dict[str, Any], config: AppConfig, source: Path) -> Any:
    """An SB3 ``ActorCriticPolicy`` rebuilt from the run's config, with the saved weights."""
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy

    nvec = [int(n) for n in payload["action_nvec"]]
    expected = [3, len(config.env.leverages), len(config.env.exit_profiles)]
    if nvec != expected:
        raise UntrustedRunError(f"{source}: action dimensions {nvec} differ from the run's config {expected}")
    obs_space = spaces.Box(-np.inf, np.inf, tuple(int(n) for n in payload["observation_shape"]), np.float32)
    policy = ActorCriticPolicy(obs_space, spaces.MultiDiscrete(nvec), lambda _: 0.0, net_arch=list(config.train.net_arch))
    load_weights(policy, payload, source)
    policy.set_training_mode(False)
    return policy


def load_weights(policy: Any, payload: dict[str, Any], source: Path) -> None:
    """Put the saved policy (and optimizer) state into ``policy``; UntrustedRunError when they do not fit."""
    try:
        policy.load_state_dict(payload["policy"])
        if payload.get("optimizer") is not None:
            policy.optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UntrustedRunError(f"{source}: the weights do not fit the network of the run's config ({first})") from None


def check_run(run_dir: Path, which: Which) -> Which:
    """Refuse ``run_dir`` unless the files ``which`` model needs match its manifest; the model to load
    (the last one when there is no best one)."""
    rd = RunDir(run_dir)
    if not rd.policy(which).exists():
        logger.info("%s: no %s, using the last model", rd.path, rd.policy_name(which))
        which = "last"
    verify_manifest(rd.path, (RunDir.CONFIG, RunDir.SCHEMA, rd.policy_name(which), rd.normalizer_name(which)))
    return which


def load_model_files(run_dir: Path, which: Which, config: AppConfig) -> tuple[PolicyModel, ObsNormalizer, dict[str, Any]]:
    """The policy and observation normalizer of a run in the safe format (call :func:`check_run` first)."""
    rd = RunDir(run_dir)
    payload = read_policy_payload(rd.policy(which))
    policy = build_policy(payload, config, rd.policy(which))
    arrays = read_norm_arrays(rd.normalizer(which))
    return PolicyModel(policy), obs_normalizer(arrays), payload


def admit_run(run_dir: Path, which: Which, trust_run: bool = False) -> tuple[bool, Which]:
    """``(safe, which)``: a safe-format run checked against its manifest, or an older pickled run the
    user trusts explicitly; anything else is refused."""
    if RunDir(run_dir).is_safe_format():
        return True, check_run(run_dir, which)
    if not trust_run:
        raise UntrustedRunError(
            f"run {run_dir} is in the older pickled format (model_*.zip, vecnormalize*.pkl) with no {MANIFEST}: loading "
            "it runs code stored in those files; pass --trust-run only if you made this run yourself"
        )
    return False, which
