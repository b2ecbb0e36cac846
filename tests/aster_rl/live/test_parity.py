"""Backtest-live parity: replaying a range through the runner with the paper broker gives
exactly the backtester's decisions, trades and equity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.sim.backtest import backtest
from aster_rl.config import EnvConfig, FeaturesConfig
from aster_rl.features.pipeline import build_features
from aster_rl.indicator_math import wilder_atr
from aster_rl.live.bars import LivePrices
from aster_rl.live.sources import ReplaySource, bars_from_market
from aster_rl.sim.prices import PriceArrays
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import FixedPolicy, make_db, paper_runner

START, END = 700, 1_100


@pytest.fixture(scope="module")
def market():
    return make_market(1_300, seed=11)


@pytest.fixture(scope="module")
def reference(market):
    """The backtester on the same range, features built on the market up to the range's end."""
    upto = market.window(None, market.candles.index[END - 1])
    fs = build_features(upto, FeaturesConfig())
    prices = PriceArrays.from_market(upto)
    assert fs.warmup < START
    res = backtest(FixedPolicy(n_lev=4).predict, fs.matrix, prices, EnvConfig(), start=START, end=END)
    return res


def test_live_prices_equal_price_arrays_bit_for_bit(market):
    prices = PriceArrays.from_market(market)
    live = LivePrices(market.timeframe, capacity=16)
    for bar in bars_from_market(market, prices):
        live.append(bar)
    for name in ("timestamps", "open", "high", "low", "close", "volume", "atr", "funding_rate"):
        assert np.array_equal(getattr(live, name), getattr(prices, name)), name
    assert np.array_equal(live.atr, wilder_atr(prices.high, prices.low, prices.close))


def test_replay_equals_backtest_exactly(market, reference, tmp_path):
    db = make_db(tmp_path)
    source = ReplaySource(market, START, END)
    runner = paper_runner(FixedPolicy(n_lev=4), source, db, tmp_path, features="batch")
    summary = runner.run()
    assert summary.stopped_by == "end"
    res = reference
    # decisions: every bar of the range but the last, identical actions
    assert len(res.trades) >= 20, "the fixed policy must trade enough for the comparison to mean something"
    assert [tuple(a) for a in res.actions.to_numpy()] == summary.actions
    assert list(res.actions.index) == summary.decision_times
    # trades: identical rows, every field
    live_trades = pd.DataFrame(summary.trades)
    for col in ("side", "profile", "reason"):
        assert list(live_trades[col]) == list(res.trades[col]), col
    for col in ("entry_price", "exit_price", "qty", "pnl_usd", "fees_usd", "funding_usd", "leverage"):
        assert np.array_equal(live_trades[col].to_numpy(float), res.trades[col].to_numpy(float)), col
    assert list(pd.to_datetime(live_trades["exit_time"], utc=True)) == list(res.trades["exit_time"])
    # equity after every bar, and at the end
    assert np.array_equal(np.array(summary.equity[1:]), res.equity.to_numpy()[1:])
    assert summary.final_equity == res.equity.iloc[-1]
    # the prediction log holds every decision and every outcome
    preds = live_store.predictions(db, session_id="test-session")
    assert len(preds) == len(res.actions)
    closed = preds[preds["status"].isin(["win", "loss"])]
    assert len(closed) == len(res.trades)
    assert np.allclose(np.sort(closed["pnl_usd"].to_numpy()), np.sort(res.trades["pnl_usd"].to_numpy()))
    assert set(closed["exit_reason"]) <= {"target", "stop", "liquidation", "signal", "end"}


def test_replay_with_incremental_features_makes_the_same_decisions(market, reference, tmp_path):
    """The live feature path (latest_features on the market known at each close) agrees with
    the batch matrix closely enough that the decisions are the same (a short range: ~0.1 s a bar)."""
    end = START + 25
    upto = market.window(None, market.candles.index[end - 1])
    fs = build_features(upto, FeaturesConfig())
    ref = backtest(FixedPolicy(n_lev=4).predict, fs.matrix, PriceArrays.from_market(upto), EnvConfig(), start=START, end=end)
    db = make_db(tmp_path)
    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, START, end), db, tmp_path, features="incremental")
    summary = runner.run()
    assert [tuple(a) for a in ref.actions.to_numpy()] == summary.actions
    assert np.array_equal(np.array(summary.equity[1:]), ref.equity.to_numpy()[1:])
