"""The decision rule (env.decision_every, env.min_hold_bars, env.action_mode) in the live runner: a
paper replay makes exactly the backtester's decisions and trades with the rule on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import EnvConfig, FeaturesConfig
from aster_rl.features.pipeline import build_features
from aster_rl.sim.backtest import backtest
from aster_rl.sim.decision import WAIT
from aster_rl.sim.prices import PriceArrays
from aster_rl.live.sources import ReplaySource
from factories import make_market
from live_helpers import FixedPolicy, make_db, paper_runner

START, END = 700, 1_000


@pytest.mark.parametrize("mode", ["orders", "target"])
def test_replay_with_the_rule_equals_the_backtest(tmp_path, mode):
    cfg = EnvConfig(decision_every=3, min_hold_bars=4, action_mode=mode)
    market = make_market(1_100, seed=11)
    upto = market.window(None, market.candles.index[END - 1])
    fs = build_features(upto, FeaturesConfig())
    prices = PriceArrays.from_market(upto)
    res = backtest(FixedPolicy(n_lev=4).predict, fs.matrix, prices, cfg, start=START, end=END)
    free = backtest(FixedPolicy(n_lev=4).predict, fs.matrix, prices, EnvConfig(), start=START, end=END)
    summary = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, START, END), make_db(tmp_path), tmp_path,
                           env=cfg, features="batch").run()
    assert len(res.trades) >= 5
    assert [tuple(a) for a in res.actions.to_numpy()] == summary.actions
    live_trades = pd.DataFrame(summary.trades)
    assert list(live_trades["reason"]) == list(res.trades["reason"])
    assert np.array_equal(live_trades["pnl_usd"].to_numpy(float), res.trades["pnl_usd"].to_numpy(float))
    # the rule acted: WAIT on every non-decision bar, and a different result than without it
    tf = int(pd.Timedelta(market.timeframe.replace("m", "min")).value)
    off = (res.actions.index.asi8 // tf) % 3 != 0
    assert off.any() and (res.actions["side"].to_numpy()[off] == WAIT).all()
    assert not free.equity.equals(res.equity)
