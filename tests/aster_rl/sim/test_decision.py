"""The decision rule (decision interval, minimum holding time, target positions): by hand, in
the env, the batched env and the backtester, and backtest == env with it on."""

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import EnvConfig
from aster_rl.errors import ConfigError
from aster_rl.sim.backtest import backtest
from aster_rl.sim.decision import BUY, SELL, WAIT, bars_held, gate_side, gate_sides, is_decision_bar, target_orders
from aster_rl.sim.prices import PriceArrays
from envs import BatchedPerpEnv, PerpEnv

TF = 300 * 10**9  # 5m in ns


def test_decision_bars_are_keyed_on_the_open_time():
    opens = np.arange(10, dtype=np.int64) * TF
    assert is_decision_bar(opens, TF, 1).all()
    assert is_decision_bar(opens, TF, 3).tolist() == [True, False, False] * 3 + [True]
    # the same wall-clock bar is a decision bar whatever the first bar of the data
    assert is_decision_bar(opens[4:], TF, 3).tolist() == [False, False, True, False, False, True]


def test_gate_sides_by_hand():
    opens = np.array([0, 1, 2, 3, 3, 3, 6, 6]) * TF
    sides = np.array([BUY, BUY, SELL, SELL, BUY, SELL, SELL, BUY])
    pos = np.array([0, 0, 0, 1, 1, -1, 1, -1])
    entry = np.array([0, 0, 0, 2, 2, 2, 2, 2]) * TF  # held 2 bars at bar 3's close, 5 at bar 6's
    got = gate_sides(sides, opens, TF, every=3, min_hold_bars=3, position_side=pos, entry_ns=entry)
    # bar 0: decision, flat BUY passes; bars 1, 2: not decision bars -> WAIT;
    # bar 3: SELL while long held 2 < 3 bars -> refused; BUY while long and SELL while short (holds) pass;
    # bar 6: held 5 bars: SELL while long / BUY while short pass
    assert got.tolist() == [BUY, WAIT, WAIT, WAIT, BUY, SELL, SELL, BUY]
    assert bars_held(3 * TF, 2 * TF, TF) == 2
    assert sides.tolist()[0] == BUY  # input untouched
    # off: unchanged
    assert gate_sides(sides, opens, TF, 1, 0, pos, entry).tolist() == sides.tolist()
    assert gate_side(SELL, 3 * TF, TF, 1, 3, 1, 2 * TF) == WAIT
    assert gate_side(SELL, 4 * TF, TF, 1, 3, 1, 2 * TF) == SELL


def test_config_bounds():
    assert EnvConfig().decision_every == 1 and EnvConfig().min_hold_bars == 0
    with pytest.raises((ConfigError, ValueError)):
        EnvConfig(decision_every=0)
    with pytest.raises((ConfigError, ValueError)):
        EnvConfig(min_hold_bars=-1)


def flat_market(n=200, crash_at=None):
    close = np.full(n, 2.0) * (1 + 0.0005 * np.sin(np.arange(n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high, low = close * 1.002, close * 0.998
    if crash_at is not None:
        low[crash_at] = close[crash_at] * 0.5  # a wick far through any stop
    prices = PriceArrays.from_arrays(open_, high, low, close, np.full(n, 1e7))
    return np.zeros((n, 3), dtype=np.float32), prices


def held(trade) -> int:
    """Bars held at the decision that closed ``trade`` by signal (it fills at the next bar's open)."""
    return (int(pd.Timestamp(trade["exit_time"]).value) - int(pd.Timestamp(trade["entry_time"]).value)) // TF


def run_env(env, sides, start):
    env.reset(options={"start": start})
    pos, trades = [], []
    for s in sides:
        _o, _r, te, tr, info = env.step(np.array([s, 0, 2]))
        pos.append(info["position"])
        trades += info.get("closed_trades", [])
        if te or tr:
            break
    return pos, trades


def test_env_acts_only_on_decision_bars_and_keeps_protection():
    features, prices = flat_market(crash_at=34)
    env = PerpEnv(features, prices, EnvConfig(decision_every=4, episode_length=100), random_start=False)
    # start at bar 21 (not a decision bar): BUY at 21, 22, 23 is ignored, BUY at 24 fills at 25's open
    pos, _ = run_env(env, [BUY] * 4, start=21)
    assert pos == [0, 0, 0, 1]
    # SELL on non-decision bars 25..27 is ignored; at 28 (a decision bar) it closes
    pos, trades = run_env(env, [BUY] * 4 + [SELL] * 5, start=21)
    assert pos == [0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert [t["reason"] for t in trades] == ["signal"]
    # holding through non-decision bars: the stop still fires (bar 34's wick), on a non-decision bar
    pos, trades = run_env(env, [BUY] * 4 + [WAIT] * 12, start=21)
    assert [t["reason"] for t in trades] == ["stop"]
    assert pd.Timestamp(trades[0]["exit_time"]) == pd.Timestamp(prices.timestamps[34])
    assert 34 % 4 != 0


def test_env_refuses_a_young_signal_close_but_not_stops():
    features, prices = flat_market()
    env = PerpEnv(features, prices, EnvConfig(min_hold_bars=5, episode_length=100), random_start=False)
    # BUY at 20 fills at 21; SELLs at the closes of 21..24 (held 1..4 bars) are refused, at 25 (5 bars) it closes
    pos, trades = run_env(env, [BUY] + [SELL] * 6, start=20)
    assert pos == [1, 1, 1, 1, 1, 0, -1]  # flat after the close, the next SELL opens a short
    assert [(t["reason"], held(t)) for t in trades] == [("signal", 5)]
    features, prices = flat_market(crash_at=23)
    env = PerpEnv(features, prices, EnvConfig(min_hold_bars=50, episode_length=100), random_start=False)
    pos, trades = run_env(env, [BUY] + [SELL] * 4, start=20)
    assert [t["reason"] for t in trades] == ["stop"] and pos[2] == 0


def synthetic(n=500, seed=0):
    rng = np.random.default_rng(seed)
    close = 2.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([2.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    prices = PriceArrays.from_arrays(open_, high, low, close, rng.uniform(1e6, 2e6, n))
    return rng.normal(size=(n, 4)).astype(np.float32), prices


def busy_policy(obs):
    f = obs[0]
    side = 1 if f > 0.3 else (2 if f < -0.3 else 0)
    return np.array([side, 2, int(abs(f * 10)) % 3])


def test_target_positions_by_hand():
    # wanted: flat, long, short; positions: flat, long, short
    wanted = np.array([WAIT, WAIT, WAIT, BUY, BUY, BUY, SELL, SELL, SELL])
    pos = np.array([0, 1, -1] * 3)
    # flat closes what is open; long / short are BUY / SELL (hold, open, or close the opposite)
    assert target_orders(wanted, pos).tolist() == [WAIT, SELL, BUY, BUY, BUY, BUY, SELL, SELL, SELL]
    # translated first, then gated: a young long is not closed by "flat", an old one is
    assert gate_side(WAIT, 3 * TF, TF, 1, 3, 1, 2 * TF, target=True) == WAIT
    assert gate_side(WAIT, 5 * TF, TF, 1, 3, 1, 2 * TF, target=True) == SELL
    assert gate_side(WAIT, 5 * TF, TF, 1, 3, 1, 2 * TF) == WAIT  # order mode: WAIT holds
    # off a decision bar nothing is sent, not even the close
    assert gate_sides(np.array([WAIT]), np.array([TF]), TF, 3, 0, np.array([1]), np.array([0]), target=True).tolist() == [WAIT]


def test_target_mode_trades_as_the_translated_orders():
    """The recorded actions of a target-mode backtest are the orders it sent: replayed in order
    mode they trade the same; they differ from the policy's sides only where it wanted flat with
    a position open; and reading the same sides as orders trades differently."""
    features, prices = synthetic()
    target = backtest(busy_policy, features, prices, EnvConfig(episode_length=10_000, action_mode="target"), start=20, end=480)
    replay = iter(target.actions.to_numpy())
    orders = backtest(lambda obs: np.asarray(next(replay)), features, prices, EnvConfig(episode_length=10_000), start=20, end=480)
    assert len(target.trades) > 3
    np.testing.assert_array_equal(orders.equity.to_numpy(), target.equity.to_numpy())
    assert orders.trades["pnl_usd"].tolist() == target.trades["pnl_usd"].tolist()
    sent = target.actions["side"].to_numpy()
    wanted = np.array([busy_policy(row)[0] for row in features[20 : 20 + len(sent)]])
    changed = sent != wanted
    assert changed.any() and (wanted[changed] == WAIT).all() and np.isin(sent[changed], [BUY, SELL]).all()
    plain = backtest(busy_policy, features, prices, EnvConfig(episode_length=10_000), start=20, end=480)
    assert not plain.equity.equals(target.equity)


@pytest.mark.parametrize(("every", "hold", "mode"), [(3, 0, "orders"), (1, 6, "orders"), (4, 5, "orders"), (1, 0, "target"), (3, 4, "target")])
def test_backtest_equals_env_with_the_rule_on(every, hold, mode):
    features, prices = synthetic()
    cfg = EnvConfig(episode_length=10_000, decision_every=every, min_hold_bars=hold, action_mode=mode)
    res = backtest(busy_policy, features, prices, cfg, start=20, end=480)
    env = PerpEnv(features, prices, cfg, start=20, end=480, random_start=False)
    obs, _ = env.reset()
    trades, equity = [], [cfg.initial_equity_usd]
    while True:
        obs, _r, te, tr, info = env.step(busy_policy(obs))
        trades.extend(info.get("closed_trades", []))
        equity.append(info["equity"])
        if te or tr:
            break
    assert len(res.trades) == len(trades) > 3
    for row, tr in zip(res.trades.to_dict("records"), trades):
        assert row["pnl_usd"] == tr["pnl_usd"] and row["reason"] == tr["reason"]
    np.testing.assert_array_equal(res.equity.to_numpy(), np.array(equity))
    # the recorded actions are what was done: no entry on a non-decision bar
    opens = prices.timestamps[20:479][: len(res.actions)]
    off = (opens // TF) % every != 0
    assert (res.actions["side"].to_numpy()[off] == WAIT).all()
    entries = pd.DatetimeIndex(res.trades["entry_time"]).asi8  # fills at the open after a decision bar
    assert ((entries // TF - 1) % every == 0).all()
    if hold:
        signal = res.trades[res.trades["reason"] == "signal"]
        assert len(signal) and all(held(t) >= hold for t in signal.to_dict("records"))
    # without the rule the same policy trades differently
    free = backtest(busy_policy, features, prices, EnvConfig(episode_length=10_000), start=20, end=480)
    assert len(free.trades) != len(res.trades) or not free.equity.equals(res.equity)


@pytest.mark.parametrize("mode", ["orders", "target"])
def test_batched_env_applies_the_same_rule_as_single_envs(mode):
    features, prices = synthetic()
    cfg = EnvConfig(episode_length=60, decision_every=3, min_hold_bars=4, action_mode=mode)
    n = 3
    vec = BatchedPerpEnv(features, prices, cfg, n, seed=5)
    singles = [PerpEnv(features, prices, cfg) for _ in range(n)]
    vec.reset()
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    rng = np.random.default_rng(1)
    closed = 0
    for _ in range(150):
        actions = np.stack([rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 3, n)], axis=1)
        given = actions.copy()
        _obs, rew, done, infos = vec.step(actions)
        np.testing.assert_array_equal(actions, given)  # the agent's actions are not rewritten
        for i, env in enumerate(singles):
            _o, r, te, tr, info = env.step(actions[i])
            assert rew[i] == np.float32(r) and infos[i]["equity"] == info["equity"] and done[i] == (te or tr)
            assert infos[i].get("closed_trades") == info.get("closed_trades")
            closed += len(info.get("closed_trades", []))
            for t in info.get("closed_trades", []):
                assert t["reason"] != "signal" or held(t) >= 4
            if te or tr:
                env.reset()
    assert closed > 3
