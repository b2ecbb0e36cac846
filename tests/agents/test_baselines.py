import numpy as np
import pandas as pd
import pytest

from agents.baselines import (
    BUY,
    NO_EXIT_ATR,
    SELL,
    WAIT,
    buy_and_hold,
    flat_policy,
    holding,
    holding_config,
    leverage_index,
    random_policy,
    rule_brain_policy,
)
from agents.evaluate import Outcome, verdict
from aster_rl.evaluation import metrics as M
from aster_rl.config import EnvConfig

CFG = EnvConfig()
COLS = ["regime_state", "multi_timeframe_alignment", "strategy_profile", "strategy_leverage_low", "btc_cycle_phase", "x"]


def obs(regime, align, profile=1, lev=10, phase=1):
    return np.array([regime, align, profile, lev, phase, 0.0, 0, 0, 0, 0, 1, 0], dtype=np.float32)


def test_leverage_index_caps_to_the_ladder():
    assert CFG.leverages[leverage_index(CFG, 1)] == 1
    assert CFG.leverages[leverage_index(CFG, 25)] == 20
    assert CFG.leverages[leverage_index(CFG, 500)] == 50
    assert CFG.leverages[leverage_index(CFG, 0.5)] == 1


def test_flat_and_buy_and_hold():
    assert flat_policy(CFG)(obs(1, 1))[0] == WAIT
    bh = buy_and_hold(CFG)
    a = bh.policy(obs(2, -1))
    assert a[0] == BUY and bh.env.leverages[a[1]] == 1
    # all equity at 1x, no stop, no target; the market's costs are the agent's
    assert bh.env.margin_fraction == 1.0 and bh.env.leverages == (1,)
    (prof,) = bh.env.exit_profiles.values()
    assert prof.stop_atr == prof.target_atr == NO_EXIT_ATR
    assert bh.env.taker_fee_rate == CFG.taker_fee_rate and bh.env.slippage_bps == CFG.slippage_bps


def test_holding_scales_to_a_signed_exposure():
    short = holding(CFG, -0.4)
    assert short.policy(None)[0] == SELL and short.env.leverages == (1,) and short.env.margin_fraction == pytest.approx(0.4)
    big = holding_config(CFG, 2.5)
    assert big.leverages == (3,) and big.margin_fraction * 3 == pytest.approx(2.5)
    assert holding(CFG, 0.0).policy(None)[0] == WAIT
    with pytest.raises(ValueError):
        holding_config(CFG, float("nan"))


def test_rule_brain_follows_regime_alignment_and_strategy_bands():
    rule = rule_brain_policy(CFG, COLS)
    long = rule(obs(1, 0.8, profile=0, lev=25))
    assert long[0] == BUY and CFG.leverages[long[1]] == 20 and list(CFG.exit_profiles)[long[2]] == "scalp"
    short = rule(obs(2, -0.6, profile=2, lev=3))
    assert short[0] == SELL and CFG.leverages[short[1]] == 3 and list(CFG.exit_profiles)[short[2]] == "position"
    assert rule(obs(1, 0.2))[0] == WAIT  # trending but timeframes disagree
    assert rule(obs(0, 1.0))[0] == WAIT  # ranging
    assert rule(obs(3, 1.0))[0] == WAIT  # volatile
    assert rule(obs(1, 1.0, phase=4))[0] == WAIT  # no new longs in the bear phase
    assert rule(obs(2, -1.0, phase=4))[0] == SELL


def test_rule_brain_without_its_columns_never_trades():
    rule = rule_brain_policy(CFG, ["a", "b"])
    assert rule(np.ones(8, np.float32))[0] == WAIT


def test_random_policy_is_seeded_and_hits_its_rate():
    a = [random_policy(CFG, 0.1, seed=4)(None) for _ in range(2_000)]
    b = [random_policy(CFG, 0.1, seed=4)(None) for _ in range(1)]
    pol1, pol2 = random_policy(CFG, 0.1, seed=4), random_policy(CFG, 0.1, seed=4)
    s1 = np.array([pol1(None) for _ in range(2_000)])
    s2 = np.array([pol2(None) for _ in range(2_000)])
    np.testing.assert_array_equal(s1, s2)
    assert 0.08 < (s1[:, 0] != WAIT).mean() < 0.12
    weighted = random_policy(CFG, 1.0, seed=0, leverage_weights=[0, 0, 0, 0, 1, 0, 0, 0])
    assert {CFG.leverages[weighted(None)[1]] for _ in range(50)} == {10}
    assert a and b


def _outcome(name, ret, **metrics):
    return Outcome(name, {"net_return": ret, **metrics}, pd.Series(dtype=float), pd.DataFrame())


def test_verdict_needs_both_excess_intervals_above_zero():
    agent = _outcome("agent", 0.30, sharpe=2.0, deflated_sharpe=0.91, trials=3)
    base = {"flat": _outcome("flat", 0.0), "buy_and_hold": _outcome("buy_and_hold", 0.03),
            "exposure_matched": _outcome("exposure_matched", 0.29)}
    base["exposure_matched"].extra["exposure"] = 0.95
    # a big level (net return CI far above 0) with an excess over its own exposure that spans 0: no edge
    level_only = {"exposure_matched": M.Interval(0.01, -0.02, 0.04, 0.95), "flat": M.Interval(0.30, 0.10, 0.50, 0.95)}
    text, flags = verdict(agent, base, level_only)
    assert "over exposure_matched (net exposure +0.95) +1.00%, 95% CI [-2.00%, +4.00%] includes 0" in text
    assert "over flat +30.00%, 95% CI [+10.00%, +50.00%] lies above 0" in text
    assert "no evidence of an edge" in text and "deflated Sharpe 0.91 for 3 trials" in text
    assert flags["edge"] is False and flags["excess_over_flat_above_0"] and not flags["excess_over_exposure_matched_above_0"]
    both = {"exposure_matched": M.Interval(0.05, 0.01, 0.09, 0.95), "flat": M.Interval(0.30, 0.10, 0.50, 0.95)}
    text, flags = verdict(agent, base, both)
    assert "both intervals lie above 0: evidence of an edge" in text and flags["edge"] is True
    assert "on net return it beats every baseline (flat, buy_and_hold, exposure_matched)" in text
    worse = {"exposure_matched": M.Interval(-0.05, -0.09, -0.01, 0.95), "flat": M.Interval(0.30, 0.10, 0.50, 0.95)}
    text, flags = verdict(agent, base, worse)
    assert "does worse than holding its own average market exposure: no evidence of an edge" in text
    assert not flags["edge"]


def test_baselines_trade_in_order_mode_beside_a_target_mode_agent():
    """The baselines' WAIT keeps a position (orders); an agent reading its side as target positions
    must not turn the rule brain's or random's WAIT into closes, nor the holdings'."""
    from agents.evaluate import baseline_policies
    from aster_rl.sim.backtest import backtest
    from aster_rl.sim.prices import PriceArrays

    target = EnvConfig(action_mode="target", episode_length=10_000)
    assert holding(target, 0.5).env.action_mode == "orders" and buy_and_hold(target).env.action_mode == "orders"

    class Data:
        columns = COLS

    assert {b.env.action_mode for b in baseline_policies(Data(), target).values()} == {"orders"}
    # what it protects: a BUY-once-then-WAIT policy holds in order mode and is closed at once in target mode
    n = 60
    close = 1.0 + 0.0005 * np.sin(np.arange(n))  # no stop or target is reached
    prices = PriceArrays.from_arrays(close, close * 1.001, close * 0.999, close, np.full(n, 1e7))
    feats = np.zeros((n, 2), dtype=np.float32)
    steps = iter([BUY] + [WAIT] * n)

    def once(_obs):
        return np.array([next(steps), 0, 0])

    held = backtest(once, feats, prices, EnvConfig(episode_length=10_000), start=0, end=n)
    steps = iter([BUY] + [WAIT] * n)
    closed = backtest(once, feats, prices, target, start=0, end=n)
    assert len(held.trades) == 1 and held.trades["reason"].iloc[0] == "end"
    assert closed.trades["reason"].iloc[0] == "signal"
