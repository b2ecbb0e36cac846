import numpy as np
import pandas as pd
import pytest

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from factories import make_market

T = TENTACLES["orderflow"]


def candles(n=6, taker=True):
    index = pd.date_range("2025-03-01", periods=n, freq="5min", tz="UTC")
    c = pd.DataFrame({"open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 100.0}, index=index)
    if taker:
        c["taker_buy_volume"] = [70.0, 30.0, 50.0, 100.0, 0.0, 60.0][:n]
    return c


def snap(ts, bid_depth, ask_depth, bid=0.999, ask=1.001, big_bid=0.0, big_ask=0.0):
    return {"ts": pd.Timestamp(ts, tz="UTC"), "best_bid": bid, "best_ask": ask, "bid_depth_usd": bid_depth,
            "ask_depth_usd": ask_depth, "largest_bid_usd": big_bid, "largest_ask_usd": big_ask}


def test_taker_buy_ratio_and_mean():
    df = T.compute(MarketBundle("X", "5m", candles()), mean_window=2)
    np.testing.assert_allclose(df["orderflow_taker_buy_ratio"], [0.7, 0.3, 0.5, 1.0, 0.0, 0.6])
    np.testing.assert_allclose(df["orderflow_taker_buy_mean_2"], [0.7, 0.5, 0.4, 0.75, 0.5, 0.3])
    assert (df["orderflow_taker_available"] == 1).all()


def test_missing_taker_volume_is_neutral():
    df = T.compute(MarketBundle("X", "5m", candles(taker=False)))
    assert (df["orderflow_taker_buy_ratio"] == 0.5).all()
    assert (df["orderflow_taker_available"] == 0).all()
    assert (df.filter(like="taker_buy_z") == 0).all().all()


def test_book_snapshot_is_the_latest_before_the_bar_close():
    rows = [
        snap("2025-03-01 00:01", 300, 100, big_bid=150),  # inside bar 0
        snap("2025-03-01 00:10", 100, 300, bid=0.99, ask=1.01),  # exactly at bar 1's close: belongs to bar 2
        snap("2025-03-01 00:14:59.999", 200, 200),  # last instant of bar 2
    ]
    book = pd.DataFrame(rows).set_index("ts")
    df = T.compute(MarketBundle("X", "5m", candles(), book=book), book_max_age_minutes=10)
    imb = df["orderflow_book_imbalance"].to_numpy()
    np.testing.assert_allclose(imb[:3], [0.5, 0.5, 0.0])
    assert df["orderflow_large_bid_share"].iloc[0] == pytest.approx(0.5)
    assert df["orderflow_spread_bps"].iloc[0] == pytest.approx(20.0)
    # bar 3 still sees the 00:14:59.999 snapshot; bars 4-5 closing 00:25 and 00:30 find it too old (> 10 min)
    np.testing.assert_allclose(df["orderflow_book_available"], [1, 1, 1, 1, 0, 0])
    assert df["orderflow_book_imbalance"].iloc[5] == 0 and df["orderflow_spread_bps"].iloc[5] == 0


def test_no_book_is_neutral_with_flag_zero():
    df = T.compute(MarketBundle("X", "5m", candles()))
    cols = ["orderflow_book_imbalance", "orderflow_spread_bps", "orderflow_large_bid_share", "orderflow_large_ask_share",
            "orderflow_book_available"]
    assert (df[cols] == 0).all().all()
    assert "no order book" in T.reading(df.iloc[-1])


def test_input_unchanged_and_finite():
    m = make_market(600, seed=4)
    before = (m.candles.copy(), m.book.copy())
    df = T.compute(m)
    pd.testing.assert_frame_equal(m.candles, before[0])
    pd.testing.assert_frame_equal(m.book, before[1])
    assert np.isfinite(df.to_numpy()).all()
    assert df["orderflow_book_imbalance"].between(-1, 1).all()
    assert T.reading(df.iloc[-1]).startswith("Order flow:")
