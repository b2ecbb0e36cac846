"""PPO frames per second on our batched env vs a minimal numpy VecEnv of the same shapes,
and the demo's wall time.

The minimal env does nothing but a row lookup and a constant reward, so the ratio
(ours / minimal) is the share of PPO's speed the trading env keeps; the target is >= 0.9.
Both use the demo's PPO settings (16 envs x 256 steps, batch 1024, 5 epochs, net [64, 64],
one torch thread).

    .venv/bin/python benchmarks/bench_ppo.py [--timesteps 65536] [--skip-demo]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from aster_rl.config import AppConfig, replace
from aster_rl.data.synthetic import synthesize

from agents.data import build_dataset
from aster_rl.cli.demo_cmd import DEMO_TRAIN


class MinimalVecEnv(VecEnv):
    """Row lookup over the same feature matrix; MultiDiscrete actions of the same shape."""

    def __init__(self, features: np.ndarray, n_envs: int, n_account: int, nvec, episode_length: int, seed: int = 0):
        self.obs_table = np.zeros((len(features), features.shape[1] + n_account), np.float32)
        self.obs_table[:, : features.shape[1]] = features
        self.render_mode = None
        super().__init__(n_envs, spaces.Box(-np.inf, np.inf, (self.obs_table.shape[1],), np.float32), spaces.MultiDiscrete(nvec))
        self.rng = np.random.default_rng(seed)
        self.episode_length = episode_length
        self.t = np.zeros(n_envs, np.int64)
        self.steps = np.zeros(n_envs, np.int64)

    def reset(self):
        self.t = self.rng.integers(0, len(self.obs_table) - self.episode_length - 1, self.num_envs)
        self.steps[:] = 0
        return self.obs_table[self.t]

    def step_async(self, actions):
        self.actions = actions

    def step_wait(self):
        self.t += 1
        self.steps += 1
        done = self.steps >= self.episode_length
        infos = [{} for _ in range(self.num_envs)]
        obs = self.obs_table[self.t]
        if done.any():
            d = np.flatnonzero(done)
            for i in d:
                infos[i]["terminal_observation"] = obs[i].copy()
            self.t[d] = self.rng.integers(0, len(self.obs_table) - self.episode_length - 1, len(d))
            self.steps[d] = 0
            obs[d] = self.obs_table[self.t[d]]
        return obs, np.zeros(self.num_envs, np.float32), done, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name)] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        setattr(self, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def ppo_fps(venv, timesteps: int) -> float:
    t = DEMO_TRAIN
    model = PPO("MlpPolicy", venv, n_steps=t["n_steps"], batch_size=t["batch_size"], n_epochs=t["n_epochs"],
                policy_kwargs={"net_arch": list(t["net_arch"])}, seed=0, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    from envs import BatchedPerpEnv
    from aster_rl.sim.observation import N_ACCOUNT

    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = replace(AppConfig(), synth={"n_bars": 30 * 288}, env={"episode_length": 512})
    ds = build_dataset(cfg, market=synthesize(cfg.synth))
    n_envs = DEMO_TRAIN["n_envs"]
    nvec = [3, len(cfg.env.leverages), len(cfg.env.exit_profiles)]
    ours, minimal = [], []
    for r in range(args.repeats):  # interleaved, best of each: robust to other load on the machine
        ours.append(ppo_fps(BatchedPerpEnv(ds.matrix, ds.prices, cfg.env, n_envs, start=ds.warmup, seed=r), args.timesteps))
        minimal.append(ppo_fps(MinimalVecEnv(ds.matrix[ds.warmup:], n_envs, N_ACCOUNT, nvec, 512, seed=r), args.timesteps))
    a, b = max(ours), max(minimal)
    print(f"PPO fps ({n_envs} envs, batch {DEMO_TRAIN['batch_size']}, {args.timesteps} steps, best of {args.repeats}): "
          f"BatchedPerpEnv {a:,.0f}  minimal numpy VecEnv {b:,.0f}  ratio {a / b:.2f} (target >= 0.9)")
    if not args.skip_demo:
        from aster_rl.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cli(["--set", f"data.data_dir={Path(tmp) / 'data'}", "--set", f"train.checkpoint_dir={Path(tmp) / 'ck'}", "demo"])
            print(f"demo wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
