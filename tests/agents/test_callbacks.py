import numpy as np
import pytest

from agents.callbacks import RolloutStats, action_scalars, trade_scalars


def _trade(pnl, lev=5, reason="target"):
    return {"pnl_usd": pnl, "leverage": lev, "reason": reason, "profile": "swing"}


def test_trade_scalars_by_hand():
    trades = [_trade(10, 2), _trade(-5, 10, "liquidation"), _trade(20, 3), _trade(-5, 5)]
    s = trade_scalars(trades, env_steps=576, bars_per_day=288)  # two env-days
    assert s["trade/win_rate"] == 0.5
    assert s["trade/profit_factor"] == pytest.approx(3.0)
    assert s["trade/expectancy"] == pytest.approx(5.0)
    assert s["trade/avg_pnl"] == pytest.approx(5.0)
    assert s["trade/trades_per_day"] == pytest.approx(2.0)
    assert s["trade/avg_leverage"] == pytest.approx(5.0)
    assert s["trade/liquidations"] == 1
    assert trade_scalars([], 10, 288)["trade/win_rate"] == 0.0


def test_action_scalars_shares():
    a = np.array([[0, 0, 0], [1, 0, 2], [2, 1, 2], [1, 1, 0]])
    s = action_scalars(a, leverages=[1, 10], profiles=["scalp", "swing", "position"])
    assert s["actions/side_wait"] == 0.25 and s["actions/side_buy"] == 0.5 and s["actions/side_sell"] == 0.25
    assert s["actions/leverage_1x"] == pytest.approx(1 / 3) and s["actions/leverage_10x"] == pytest.approx(2 / 3)
    assert s["actions/profile_position"] == pytest.approx(2 / 3) and s["actions/profile_swing"] == 0.0
    assert s["actions/leverage_mean"] == pytest.approx(7.0)


def test_rollout_stats_aggregate_over_all_envs_not_env_zero():
    st = RolloutStats(n_envs=2)
    # env 1 is the only one that trades and finishes an episode
    st.update([{"equity": 100.0, "position": 0}, {"equity": 100.0, "position": 1}], np.array([[0, 0, 0], [1, 0, 0]]))
    st.update(
        [{"equity": 100.0, "position": 0},
         {"equity": 90.0, "position": 0, "closed_trades": [_trade(-10)],
          "episode_stats": {"fees": 2.0, "funding": 0.5, "slippage": 0.1, "time_in_market": 0.5, "return": -0.1,
                            "max_drawdown": 0.1, "liquidations": 0}}],
        np.array([[0, 0, 0], [0, 0, 0]]),
    )
    s = st.scalars(288, [1, 10], ["scalp"])
    assert s["trade/n_trades"] == 1 and s["trade/win_rate"] == 0.0
    assert s["env/equity"] == pytest.approx(95.0)
    assert s["env/drawdown"] == pytest.approx(0.05)  # env 1 is 10% below its peak, env 0 at its peak
    assert s["env/fees"] == 2.0 and s["env/funding"] == 0.5 and s["env/slippage"] == 0.1
    assert s["env/episode_return"] == pytest.approx(-0.1) and s["env/episode_max_drawdown"] == pytest.approx(0.1)
    assert not {"env/episode_fees", "env/episode_funding", "env/episode_slippage"} & set(s)  # each cost logged once
    assert s["env/time_in_market"] == pytest.approx(0.25)
    assert s["actions/side_buy"] == pytest.approx(0.25)
    st.reset()
    assert st.scalars(288, [1], ["scalp"])["trade/n_trades"] == 0
