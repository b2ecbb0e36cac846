"""Environment speed, measured in one run: PerpEnv, peers, a minimal numpy env, the batched
env and SB3 PPO frames per second.

    .venv/bin/python benchmarks/bench_env.py [--steps 100000]

Peers (gym-anytrading, Gym-Trading-Env) are measured in a separate interpreter, never in
the project's environment:

    python -m venv .bench-venv
    .bench-venv/bin/pip install numpy pandas gymnasium gym-anytrading matplotlib
    .bench-venv/bin/pip install --no-deps gym-trading-env   # it pins ccxt==3.0.59, flask==2.2.5

A peer that is not importable there is skipped with that hint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402

from aster_rl.config import EnvConfig  # noqa: E402
from aster_rl.sim.prices import PriceArrays  # noqa: E402
from envs import BatchedPerpEnv, PerpEnv  # noqa: E402

N_BARS, N_FEATURES = 100_000, 64


def synthetic(n=N_BARS, f=N_FEATURES, seed=0):
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate(([1.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    funding = np.zeros(n)
    funding[::48] = rng.normal(0, 1e-4, len(funding[::48]))
    prices = PriceArrays.from_arrays(open_, high, low, close, rng.uniform(1e7, 1e8, n), funding_rate=funding)
    return rng.normal(size=(n, f)).astype(np.float32), prices


class MinimalEnv(gym.Env):
    """Row lookup plus a few float operations: the floor any env pays."""

    def __init__(self, features, close, length=2048):
        self.features, self.close, self.length = features, close, length
        self.observation_space = spaces.Box(-np.inf, np.inf, (features.shape[1] + 6,), np.float32)
        self.action_space = spaces.MultiDiscrete([3, 8, 3])
        self._acct = np.zeros(6, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = int(self.np_random.integers(0, len(self.close) - self.length - 1))
        self.k, self.pos, self.eq = 0, 0.0, 1.0
        return np.concatenate((self.features[self.t], self._acct)), {}

    def step(self, action):
        self.t += 1
        self.k += 1
        r = self.pos * (self.close[self.t] / self.close[self.t - 1] - 1.0)
        self.eq *= 1.0 + r
        self.pos = (0.0, 1.0, -1.0)[int(action[0])]
        obs = np.concatenate((self.features[self.t], self._acct))
        return obs, r, False, self.k >= self.length, {"equity": self.eq}


def minimal_vec_env(features, close, n_envs, length=2048):
    from stable_baselines3.common.vec_env import VecEnv

    class MinimalVecEnv(VecEnv):
        def __init__(self):
            super().__init__(n_envs, spaces.Box(-np.inf, np.inf, (features.shape[1] + 6,), np.float32),
                             spaces.MultiDiscrete([3, 8, 3]))
            self.rng = np.random.default_rng(0)
            self.render_mode = None

        def reset(self):
            self.t = self.rng.integers(0, len(close) - length - 1, n_envs)
            self.k = np.zeros(n_envs, np.int64)
            self.pos = np.zeros(n_envs)
            return np.concatenate((features[self.t], np.zeros((n_envs, 6), np.float32)), axis=1)

        def step_async(self, actions):
            self.a = actions

        def step_wait(self):
            self.t += 1
            self.k += 1
            r = (self.pos * (close[self.t] / close[self.t - 1] - 1.0)).astype(np.float32)
            self.pos = np.array([0.0, 1.0, -1.0])[self.a[:, 0]]
            done = self.k >= length
            obs = np.concatenate((features[self.t], np.zeros((n_envs, 6), np.float32)), axis=1)
            infos = [{} for _ in range(n_envs)]
            if done.any():
                for i in np.flatnonzero(done):
                    infos[i]["terminal_observation"] = obs[i].copy()
                self.t[done] = self.rng.integers(0, len(close) - length - 1, int(done.sum()))
                self.k[done] = 0
            return obs, r, done, infos

        def close(self):
            pass

        def get_attr(self, name, indices=None):
            return [getattr(self, name, None)] * n_envs

        def set_attr(self, name, value, indices=None):
            setattr(self, name, value)

        def env_method(self, name, *a, indices=None, **k):
            return [None] * n_envs

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * n_envs

    return MinimalVecEnv()


def steps_per_second(env, n_steps, seed=0):
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = np.stack([rng.integers(0, 3, n_steps), rng.integers(0, 8, n_steps), rng.integers(0, 3, n_steps)], 1)
    t0 = time.perf_counter()
    for a in actions:
        _, _, te, tr, _ = env.step(a)
        if te or tr:
            env.reset()
    return n_steps / (time.perf_counter() - t0)


PEER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np, pandas as pd
    warnings.filterwarnings("ignore")
    n_steps = int(sys.argv[1])
    rng = np.random.default_rng(0)
    n = 100_000
    close = np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="5min")
    df = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                       "volume": rng.uniform(1e3, 1e4, n)}, index=idx)
    out = {}
    def run(env, act):
        env.reset(seed=0)
        t0 = time.perf_counter()
        for a in act:
            res = env.step(a)
            if res[2] or res[3]:
                env.reset()
        return n_steps / (time.perf_counter() - t0)
    try:
        from gym_anytrading.envs import StocksEnv
        sdf = df.rename(columns=str.capitalize)
        env = StocksEnv(df=sdf, window_size=10, frame_bound=(10, n))
        out["gym-anytrading StocksEnv"] = run(env, rng.integers(0, 2, n_steps))
    except ImportError as e:
        out["gym-anytrading StocksEnv"] = "skipped: " + str(e)
    try:
        from gym_trading_env.environments import TradingEnv
        tdf = df.copy()
        for k in range(8):
            tdf[f"feature_{k}"] = rng.normal(size=n)
        env = TradingEnv(df=tdf, positions=[-1, 0, 1], max_episode_duration=2048, verbose=0)
        out["Gym-Trading-Env TradingEnv"] = run(env, rng.integers(0, 3, n_steps))
    except ImportError as e:
        out["Gym-Trading-Env TradingEnv"] = "skipped: " + str(e)
    print(json.dumps(out))
    """
)


def peers(n_steps: int) -> dict:
    python = ROOT / ".bench-venv" / "bin" / "python"
    hint = "install it in .bench-venv (see this file's docstring)"
    if not python.exists():
        return {"gym-anytrading StocksEnv": f"skipped: no .bench-venv; {hint}",
                "Gym-Trading-Env TradingEnv": f"skipped: no .bench-venv; {hint}"}
    proc = subprocess.run([str(python), "-c", PEER_SCRIPT, str(n_steps)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"peers": f"skipped: {proc.stderr.strip().splitlines()[-1] if proc.stderr else 'failed'}; {hint}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def batched_steps_per_second(features, prices, n_envs, n_steps):
    vec = BatchedPerpEnv(features, prices, EnvConfig(), n_envs, seed=0)
    vec.reset()
    rng = np.random.default_rng(0)
    acts = [np.stack([rng.integers(0, 3, n_envs), rng.integers(0, 8, n_envs), rng.integers(0, 3, n_envs)], 1)
            for _ in range(16)]
    t0 = time.perf_counter()
    for k in range(n_steps):
        vec.step(acts[k % 16])
    return n_envs * n_steps / (time.perf_counter() - t0)


def ppo_fps(vec_env, total):
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", vec_env, n_steps=256, batch_size=1024, seed=0, device="cpu", verbose=0)
    model.learn(8 * 256)  # warm-up rollout
    t0 = time.perf_counter()
    model.learn(total, reset_num_timesteps=False)
    return total / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--ppo-steps", type=int, default=8 * 256 * 4)
    ap.add_argument("--ppo-repeats", type=int, default=3)
    args = ap.parse_args()
    features, prices = synthetic()
    print(f"data: {N_BARS} bars x {N_FEATURES} float32 features, random-walk prices; {args.steps} random actions")
    results = {}
    results["PerpEnv"] = steps_per_second(PerpEnv(features, prices, EnvConfig()), args.steps)
    results["minimal numpy env"] = steps_per_second(MinimalEnv(features, prices.close), args.steps)
    results.update(peers(args.steps))
    base = results["PerpEnv"]
    for name, v in results.items():
        if isinstance(v, float):
            print(f"  {name:30s} {v:12,.0f} steps/s  ({1e6 / v:6.2f} us/step)  PerpEnv / this = {base / v:6.2f}")
        else:
            print(f"  {name:30s} {v}")
    for n_envs, steps in ((1024, 300), (8, 3000)):
        sps = batched_steps_per_second(features, prices, n_envs, steps)
        print(f"  BatchedPerpEnv N={n_envs:<5d}          {sps:12,.0f} env-steps/s")
    # PPO runs are short and the machine is shared: alternate the two envs and take each one's median
    fps_env, fps_min = [], []
    for _ in range(args.ppo_repeats):
        fps_env.append(ppo_fps(BatchedPerpEnv(features, prices, EnvConfig(), 8, seed=0), args.ppo_steps))
        fps_min.append(ppo_fps(minimal_vec_env(features, prices.close, 8), args.ppo_steps))
    med_env, med_min = float(np.median(fps_env)), float(np.median(fps_min))
    print(f"  PPO (MlpPolicy, 8 envs, n_steps 256, batch 1024, 1 thread, median of {args.ppo_repeats} alternating runs): "
          f"BatchedPerpEnv {med_env:,.0f} fps, minimal VecEnv {med_min:,.0f} fps, ratio {med_env / med_min:.2f}")
    print(f"    runs: BatchedPerpEnv {[round(x) for x in fps_env]}, minimal {[round(x) for x in fps_min]}")


if __name__ == "__main__":
    main()
