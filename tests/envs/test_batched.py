"""BatchedPerpEnv equals N single PerpEnvs, and works as an SB3 VecEnv."""

import numpy as np
import pytest

from aster_rl.config import EnvConfig
from envs import BatchedPerpEnv, PerpEnv
from test_perp import synthetic

KEYS = ("equity", "position", "leverage", "fees", "funding", "slippage")


@pytest.mark.parametrize("reward", ["log_equity", "trade_outcome"])
def test_batched_equals_single_envs(reward):
    features, prices = synthetic(n=500)
    cfg = EnvConfig(episode_length=60, reward=reward, drawdown_penalty=0.1, turnover_penalty=0.01)
    n = 4
    vec = BatchedPerpEnv(features, prices, cfg, n, seed=11)
    singles = [PerpEnv(features, prices, cfg) for _ in range(n)]
    obs = vec.reset()
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=11 + i)
        np.testing.assert_array_equal(obs[i], o)
    rng = np.random.default_rng(0)
    n_closed = n_done = 0
    for _ in range(200):
        actions = np.stack([rng.integers(0, 3, n), rng.integers(0, len(cfg.leverages), n),
                            rng.integers(0, len(cfg.exit_profiles), n)], axis=1)
        obs, rew, done, infos = vec.step(actions)
        masks = vec.action_masks()
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(actions[i])
            np.testing.assert_array_equal(masks[i], env.action_masks())
            assert done[i] == (te or tr)
            assert rew[i] == np.float32(r)
            for k in KEYS:
                assert infos[i][k] == info[k], k
            assert infos[i].get("closed_trades") == info.get("closed_trades")
            n_closed += "closed_trades" in info
            if te or tr:
                n_done += 1
                assert infos[i]["episode_stats"] == info["episode_stats"]
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    assert n_closed > 20 and n_done >= n


def test_vecenv_api_and_lazy_infos():
    features, prices = synthetic(n=300)
    vec = BatchedPerpEnv(features, prices, EnvConfig(episode_length=50), 3, seed=0)
    vec.reset()
    obs, rew, done, infos = vec.step(np.zeros((3, 3), dtype=np.int64))
    assert obs.shape == (3, features.shape[1] + 6) and obs.dtype == np.float32
    assert rew.shape == (3,) and done.shape == (3,)
    assert len(infos) == 3 and infos[-1]["equity"] == 10_000.0 and len(infos[:]) == 3
    assert vec.get_attr("render_mode") == [None] * 3
    assert vec.env_is_wrapped(object) == [False] * 3
    assert len(vec.env_method("action_masks")) == 3


def test_sb3_ppo_learns_a_few_steps_on_it():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    features, prices = synthetic(n=300)
    vec = VecMonitor(BatchedPerpEnv(features, prices, EnvConfig(episode_length=30), 2, seed=0))
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [8]},
                seed=0, device="cpu")
    model.learn(64)
    assert model.num_timesteps == 64


def test_set_exposure_penalty_charges_as_the_config_would():
    features, prices = synthetic(n=300)
    charged = EnvConfig(episode_length=50, exposure_penalty=0.002)
    base = {"episode_length": 50}
    envs = {name: BatchedPerpEnv(features, prices, cfg, 1, seed=0, random_start=False)
            for name, cfg in (("config", charged), ("set", EnvConfig(**base)), ("none", EnvConfig(**base)))}
    envs["set"].set_exposure_penalty(0.002)
    buy, wait = np.array([[1, 0, 2]]), np.array([[0, 0, 0]])
    rewards: dict[str, list[float]] = {name: [] for name in envs}
    for name, env in envs.items():
        env.reset()
        for action in [buy] + [wait] * 5:
            rewards[name].append(float(env.step(action)[1][0]))
    assert rewards["set"] == rewards["config"]
    assert rewards["none"][1:] != rewards["config"][1:]  # the charge is on while the position is held
    with pytest.raises(ValueError, match="exposure_penalty"):
        envs["set"].set_exposure_penalty(-1e-4)
