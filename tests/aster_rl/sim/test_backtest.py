"""The backtester matches stepping PerpEnv over the same range."""

import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import ConfigError
from aster_rl.sim.backtest import COST_FIELDS, backtest, scale_costs
from aster_rl.config import EnvConfig
from envs import PerpEnv
from aster_rl.sim.prices import PriceArrays


def synthetic(n=400, seed=0, n_features=5):
    rng = np.random.default_rng(seed)
    close = 2.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([2.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    funding = np.zeros(n)
    funding[::48] = rng.normal(0, 1e-4, len(funding[::48]))
    prices = PriceArrays.from_arrays(open_, high, low, close, rng.uniform(1e6, 2e6, n), funding_rate=funding)
    return rng.normal(size=(n, n_features)).astype(np.float32), prices


def fixed_policy(obs):
    # a deterministic function of the observation: trade on the sign of feature 0
    f = obs[0]
    side = 1 if f > 0.8 else (2 if f < -0.8 else 0)
    return np.array([side, 3, int(abs(f * 10)) % 3])


def test_backtest_equals_env_stepping():
    features, prices = synthetic(n=400)
    cfg = EnvConfig(episode_length=10_000)
    res = backtest(fixed_policy, features, prices, cfg, start=20, end=380)
    env = PerpEnv(features, prices, cfg, start=20, end=380, random_start=False)
    obs, _ = env.reset()
    trades, equity = [], [cfg.initial_equity_usd]
    while True:
        obs, _r, te, tr, info = env.step(fixed_policy(obs))
        trades.extend(info.get("closed_trades", []))
        equity.append(info["equity"])
        if te or tr:
            break
    assert len(res.trades) == len(trades) > 5
    for row, tr in zip(res.trades.to_dict("records"), trades):
        assert row["pnl_usd"] == tr["pnl_usd"] and row["reason"] == tr["reason"]
        assert row["entry_time"] == pd.Timestamp(tr["entry_time"], tz="UTC")
    np.testing.assert_array_equal(res.equity.to_numpy(), np.array(equity))
    assert res.equity.index[0] == pd.Timestamp(prices.timestamps[20], tz="UTC")
    assert res.fees_usd == pytest.approx(info["fees"]) and res.slippage_usd == pytest.approx(info["slippage"])
    assert list(res.actions.columns) == ["side", "leverage", "profile"]
    again = backtest(fixed_policy, features, prices, cfg, start=20, end=380)
    pd.testing.assert_series_equal(again.equity, res.equity)


def test_cost_sweep():
    features, prices = synthetic(n=400)
    cfg = EnvConfig()
    free = backtest(fixed_policy, features, prices, scale_costs(cfg, 0.0), start=20)
    double = backtest(fixed_policy, features, prices, scale_costs(cfg, 2.0), start=20)
    assert free.fees_usd == 0.0 and free.slippage_usd == 0.0
    assert double.fees_usd > 0 and double.equity.iloc[-1] < free.equity.iloc[-1]


def test_scale_costs_scales_fees_slippage_and_impact_only():
    cfg = EnvConfig(taker_fee_rate=0.0004, maker_fee_rate=0.0001, slippage_bps=2.0, impact_coef=0.5)
    triple = scale_costs(cfg, 3.0)
    for name in COST_FIELDS:
        assert getattr(triple, name) == pytest.approx(3 * getattr(cfg, name)), name
    rest = set(EnvConfig.model_fields) - set(COST_FIELDS)
    assert {k: getattr(triple, k) for k in rest} == {k: getattr(cfg, k) for k in rest}
    assert scale_costs(cfg, 1.0) == cfg
    with pytest.raises(ConfigError, match="cost multiplier"):
        scale_costs(cfg, -1.0)
    with pytest.raises(ConfigError, match=r"env\.taker_fee_rate"):  # 0.0004 x 30 = 1.2%: past the fee bound
        scale_costs(cfg, 30.0)
