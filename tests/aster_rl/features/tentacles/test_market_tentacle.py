import numpy as np
import pandas as pd
import pytest

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from factories import make_market

T = TENTACLES["market"]


def bundle(close, volume=None, funding=None, timeframe="5m", start="2025-03-01"):
    close = np.asarray(close, dtype=float)
    index = pd.date_range(start, periods=len(close), freq=pd.Timedelta(timeframe.replace("m", "min")), tz="UTC")
    open_ = np.concatenate(([close[0]], close[:-1]))
    candles = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.01, "low": np.minimum(open_, close) * 0.99, "close": close,
         "volume": np.ones(len(close)) if volume is None else np.asarray(volume, float)},
        index=index,
    )
    return MarketBundle("X", timeframe, candles, funding=funding)


def test_returns_and_24h_change_known_values():
    close = 100 * 1.01 ** np.arange(300)
    df = T.compute(bundle(close), horizons=(1, 6))
    np.testing.assert_allclose(df["market_return_1"].iloc[1:], 0.01, rtol=1e-12)
    np.testing.assert_allclose(df["market_return_6"].iloc[6:], 1.01**6 - 1, rtol=1e-12)
    assert (df["market_return_6"].iloc[:6] == 0).all()
    # 24h on 5m bars = 288 bars
    np.testing.assert_allclose(df["market_change_24h"].iloc[288:], 1.01**288 - 1, rtol=1e-9)
    assert (df["market_change_24h"].iloc[:288] == 0).all()
    # a steady rise closes near the top of its range
    assert (df["market_range_pos_24h"].iloc[5:] > 0.5).all()


def test_24h_window_follows_the_timeframe():
    close = 100 * 1.001 ** np.arange(1500)
    df = T.compute(bundle(close, timeframe="1m"))
    assert df["market_change_24h"].iloc[1439] == 0
    assert df["market_change_24h"].iloc[1440] == pytest.approx(1.001**1440 - 1)


def test_volume_ratio_is_volume_over_trailing_median():
    vol = np.ones(50)
    vol[30] = 5.0
    df = T.compute(bundle(np.full(50, 10.0), volume=vol), volume_window=10)
    assert df["market_volume_ratio"].iloc[30] == pytest.approx(5.0)
    assert df["market_volume_ratio"].iloc[29] == pytest.approx(1.0)
    assert df["market_range_pos_24h"].between(0, 1).all()


def test_funding_4h_step_is_assigned_to_the_bar_holding_the_settlement():
    funding = pd.DataFrame(
        {"funding_rate": [0.0001, 0.0005]},
        index=pd.DatetimeIndex(["2025-03-01 00:00", "2025-03-01 04:00"], tz="UTC"),
    )
    m = bundle(np.full(60, 1.0), funding=funding)  # 60 bars: 00:00 .. 04:55
    df = T.compute(m, funding_trend_events=2)
    at = df.index.get_loc(pd.Timestamp("2025-03-01 04:00", tz="UTC"))
    assert df["market_funding_rate_bps"].iloc[at - 1] == pytest.approx(1.0)  # bar 03:55 closes at 04:00: not yet
    assert df["market_funding_rate_bps"].iloc[at] == pytest.approx(5.0)
    np.testing.assert_allclose(df["market_funding_rate_bps"].iloc[at:], 5.0)
    # trend: 5 bps minus the mean of the last two settlements (1 and 5) = +2 bps
    assert df["market_funding_trend_bps"].iloc[at] == pytest.approx(2.0)
    assert df["market_funding_trend_bps"].iloc[at - 1] == pytest.approx(0.0)
    assert (df["market_funding_available"] == 1).all()


def test_funding_before_the_first_settlement_and_without_a_feed_is_neutral():
    funding = pd.DataFrame({"funding_rate": [0.0003]}, index=pd.DatetimeIndex(["2025-03-01 01:02:03"], tz="UTC"))
    df = T.compute(bundle(np.full(30, 1.0), funding=funding))
    first = df.index.get_loc(pd.Timestamp("2025-03-01 01:00", tz="UTC"))
    assert (df["market_funding_available"].iloc[:first] == 0).all()
    assert (df["market_funding_rate_bps"].iloc[:first] == 0).all()
    assert df["market_funding_rate_bps"].iloc[first] == pytest.approx(3.0)
    none = T.compute(bundle(np.full(30, 1.0)))
    assert (none[["market_funding_rate_bps", "market_funding_trend_bps", "market_funding_available"]] == 0).all().all()
    assert "unknown" in T.reading(none.iloc[-1])


def test_input_unchanged_finite_and_reading():
    m = make_market(800, seed=2)
    before = {k: getattr(m, k).copy() for k in ("candles", "funding")}
    df = T.compute(m)
    for k, v in before.items():
        pd.testing.assert_frame_equal(getattr(m, k), v)
    assert np.isfinite(df.to_numpy()).all()
    assert all(c.startswith("market_") for c in df.columns)
    assert df.index.equals(m.candles.index)
    assert T.reading(df.iloc[-1]).startswith("Market: 24h")
