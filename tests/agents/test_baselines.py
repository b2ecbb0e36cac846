import numpy as np
import pandas as pd
import pytest

from agents.baselines import (
    BUY, SELL, WAIT, buy_and_hold_policy, flat_policy, leverage_index, random_policy, rule_brain_policy,
    widest_profile_index,
)
from agents.evaluate import Outcome, cost_scaled, verdict
from aster_rl import metrics as M
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
    a = buy_and_hold_policy(CFG)(obs(2, -1))
    assert a[0] == BUY and CFG.leverages[a[1]] == 1
    assert list(CFG.exit_profiles)[a[2]] == "position" == list(CFG.exit_profiles)[widest_profile_index(CFG)]


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


def test_cost_scaling():
    c = cost_scaled(CFG, 2.0)
    assert c.taker_fee_rate == 2 * CFG.taker_fee_rate and c.slippage_bps == 2 * CFG.slippage_bps
    z = cost_scaled(CFG, 0.0)
    assert z.maker_fee_rate == 0 and z.impact_coef == 0


def _outcome(name, ret, ci=None):
    return Outcome(name, {"net_return": ret}, pd.Series(dtype=float), pd.DataFrame(), ci_return=ci)


def test_verdict_says_plainly_when_there_is_no_edge():
    agent = _outcome("agent", 0.01, M.Interval(0.01, -0.02, 0.04, 0.95))
    text, flags = verdict(agent, {"flat": _outcome("flat", 0.0), "buy_and_hold": _outcome("buy_and_hold", 0.03)})
    assert "CI [-2.00%, +4.00%] includes 0: no evidence of an edge" in text
    assert "does not beat buy_and_hold (+3.00%)" in text
    assert flags == {"edge": False, "beats_all_baselines": False}


def test_verdict_with_an_edge_that_beats_every_baseline():
    agent = _outcome("agent", 0.2, M.Interval(0.2, 0.05, 0.4, 0.95))
    text, flags = verdict(agent, {"flat": _outcome("flat", 0.0), "random": _outcome("random", -0.1)})
    assert "above 0: evidence of an edge" in text and "beats every baseline (flat, random)" in text
    assert flags == {"edge": True, "beats_all_baselines": True}
    loser = _outcome("agent", -0.2, M.Interval(-0.2, -0.3, -0.1, 0.95))
    assert "below 0: it loses money" in verdict(loser, {"flat": _outcome("flat", 0.0)})[0]
