import numpy as np
import pandas as pd

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from factories import make_market

T = TENTACLES["whales"]


def candles(n=4, trades_col=True):
    index = pd.date_range("2025-03-01", periods=n, freq="5min", tz="UTC")
    c = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 100_000.0,
                      "quote_volume": 100_000.0}, index=index)
    if trades_col:
        c["trades"] = [100.0, 100.0, 10.0, 100.0][:n]
    return c


def trades(rows):
    df = pd.DataFrame(rows, columns=["ts", "price", "amount", "side"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    return df.set_index("ts")


def test_whale_count_net_and_skew_per_bar():
    t = trades([
        ("2025-03-01 00:00:01", 1.0, 6_000, "buy"),
        ("2025-03-01 00:01:00", 1.0, 4_000, "sell"),  # below the threshold
        ("2025-03-01 00:04:59.999", 1.0, 10_000, "sell"),
        ("2025-03-01 00:05:00", 1.0, 20_000, "buy"),  # first instant of bar 1
    ])
    df = T.compute(MarketBundle("X", "5m", candles(), trades=t), sum_window=2)
    assert df["whales_count"].tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(df["whales_net_notional_ratio"], [-0.04, 0.2, 0, 0])
    np.testing.assert_allclose(df["whales_skew"], [-4_000 / 16_000, 1.0, 0, 0])
    assert df["whales_count_sum_2"].tolist() == [2, 3, 1, 0]
    np.testing.assert_allclose(df["whales_net_notional_ratio_sum_2"], [-0.04, 16_000 / 200_000, 0.1, 0])
    assert (df["whales_available"] == 1).all()
    # the threshold is a parameter
    low = T.compute(MarketBundle("X", "5m", candles(), trades=t), whale_notional_usd=1_000)
    assert low["whales_count"].iloc[0] == 3


def test_notional_usd_column_is_used_when_present():
    t = trades([("2025-03-01 00:10:00", 1.0, 1.0, "buy")])
    t["notional_usd"] = 9_000.0
    df = T.compute(MarketBundle("X", "5m", candles(), trades=t))
    assert df["whales_count"].tolist() == [0, 0, 1, 0]
    # the feed starts at bar 2: bars before it are marked unavailable
    assert df["whales_available"].tolist() == [0, 0, 1, 1]


def test_kline_proxy_when_the_trade_feed_is_missing():
    df = T.compute(MarketBundle("X", "5m", candles()), proxy_window=3)
    assert (df["whales_available"] == 0).all() and (df["whales_count"] == 0).all()
    # volume per trade: 1000, 1000, 10000, 1000 -> medians 1000, 1000, 1000, 1000
    np.testing.assert_allclose(df["whales_proxy_size_ratio"], [1, 1, 10, 1])
    assert (df["whales_proxy_available"] == 1).all()
    assert "no trade feed" in T.reading(df.iloc[2]) and "large players" in T.reading(df.iloc[2])
    bare = T.compute(MarketBundle("X", "5m", candles(trades_col=False)))
    assert (bare["whales_proxy_size_ratio"] == 1).all() and (bare["whales_proxy_available"] == 0).all()


def test_input_unchanged_and_finite():
    m = make_market(500, seed=6)
    before = m.trades.copy()
    df = T.compute(m)
    pd.testing.assert_frame_equal(m.trades, before)
    assert np.isfinite(df.to_numpy()).all()
    assert df["whales_skew"].between(-1, 1).all()
    assert T.reading(df.iloc[-1]).startswith("Whales:")
