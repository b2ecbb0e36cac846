"""The equity-change observation: measured from the start of the current block of
``episode_length`` steps, the same in the env, the batched env and the backtester."""

import numpy as np
import pytest
from test_backtest import fixed_policy, synthetic

from aster_rl.sim.backtest import backtest
from aster_rl.config import EnvConfig
from aster_rl.sim.observation import ACCOUNT_COLUMNS, EquityReference
from envs import BatchedPerpEnv, PerpEnv

EQ = ACCOUNT_COLUMNS.index("account_equity_change") - len(ACCOUNT_COLUMNS)


def test_backtest_equity_change_restarts_every_episode_length_steps():
    features, prices = synthetic(n=400, seed=2)
    cfg = EnvConfig(episode_length=16)
    seen = []

    def policy(obs):
        seen.append(float(obs[EQ]))
        return fixed_policy(obs)

    res = backtest(policy, features, prices, cfg, start=20, end=380)
    equity = res.equity.to_numpy()  # equity[k] = after k steps (equity[0] the initial)
    k = np.arange(len(seen))
    ref = equity[(k // 16) * 16]
    np.testing.assert_allclose(seen, np.log(equity[k] / ref), atol=1e-6)
    assert len(res.trades) > 5 and abs(np.log(equity[-1] / equity[0])) > 1e-3  # the equity did move
    assert max(abs(v) for v in seen) < abs(np.log(equity / equity[0])).max() + 1e-9
    assert seen[16] == 0.0 and seen[32] == 0.0
    # the same rule outside the accounting core
    ref_keeper = EquityReference(16, equity[0])
    refs = [equity[0]] + [ref_keeper.step(e) for e in equity[1 : len(seen)]]
    np.testing.assert_allclose(seen, np.log(equity[: len(seen)] / np.array(refs)), atol=1e-6)


def test_env_and_batched_env_measure_from_the_episode_start():
    features, prices = synthetic(n=400, seed=2)
    cfg = EnvConfig(episode_length=64)
    env = PerpEnv(features, prices, cfg, start=20, end=380, random_start=False)
    obs, _ = env.reset()
    assert obs[EQ] == 0.0
    for _ in range(40):
        obs, _, _, _, info = env.step(fixed_policy(obs))
        assert obs[EQ] == pytest.approx(np.log(info["equity"] / cfg.initial_equity_usd), abs=1e-6)
    venv = BatchedPerpEnv(features, prices, cfg, 2, start=20, end=380, random_start=False, seed=0)
    obs = venv.reset()
    assert (obs[:, EQ] == 0).all()
