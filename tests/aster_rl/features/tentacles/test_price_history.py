import numpy as np
import pandas as pd
import pytest

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.price_history import bars_since
from factories import make_market

T = TENTACLES["price_history"]


def bundle(close, volume=None, spread=0.001):
    close = np.asarray(close, float)
    index = pd.date_range("2025-03-01", periods=len(close), freq="5min", tz="UTC")
    open_ = np.concatenate(([close[0]], close[:-1]))
    c = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + spread),
                      "low": np.minimum(open_, close) * (1 - spread), "close": close,
                      "volume": np.ones(len(close)) if volume is None else np.asarray(volume, float)}, index=index)
    return MarketBundle("X", "5m", c)


def test_moon_candle_and_dump_candle():
    rng = np.random.default_rng(0)
    close = 1.0 * np.exp(np.cumsum(rng.normal(0, 0.001, 200)))
    close[150:] *= 1.03  # a +3% bar: 30 sigma, below the 5% floor
    close[180:] *= 0.90  # a -10% bar
    df = T.compute(bundle(close))
    assert df["price_history_moon_candle"].iloc[150] == 1
    assert df["price_history_moon_candle"].drop(df.index[150]).sum() == 0
    assert df["price_history_return_z"].iloc[150] == 20  # clipped
    assert df["price_history_dump_candle"].iloc[180] == 1
    assert "MOON CANDLE" in T.reading(df.iloc[150])


def test_volume_spike_and_bars_since():
    vol = np.ones(40)
    vol[20] = 2.5
    vol[30] = 1.9
    df = T.compute(bundle(np.full(40, 1.0), volume=vol), spike_window=10)
    assert df["price_history_volume_spike"].tolist() == [1.0 if i == 20 else 0.0 for i in range(40)]
    assert df["price_history_bars_since_spike"].iloc[20] == 0
    assert df["price_history_bars_since_spike"].iloc[25] == pytest.approx(0.5)
    assert df["price_history_bars_since_spike"].iloc[35] == 1.0  # capped at the window
    assert bars_since(np.array([0, 1, 0, 0, 1, 0.0]), 3).tolist() == [3, 0, 1, 2, 0, 1]


def test_dip_from_rolling_high_and_support_resistance():
    close = np.concatenate((np.linspace(1.0, 2.0, 50), np.linspace(2.0, 1.5, 11)[1:]))
    df = T.compute(bundle(close, spread=0.0), dip_window=288, sr_window=20, near_pct=0.01)
    last = df.iloc[-1]
    assert last["price_history_dip_288"] == pytest.approx(1.5 / 2.0 - 1)
    assert last["price_history_rally_288"] == pytest.approx(1.5 / 1.0 - 1)
    # over the last 20 bars: low = 1.5 (now), high = 2.0
    assert last["price_history_support_dist_20"] == pytest.approx(0.0)
    assert last["price_history_resistance_dist_20"] == pytest.approx(0.5 / 1.5)
    assert last["price_history_near_support"] == 1 and last["price_history_near_resistance"] == 0
    assert df["price_history_dip_288"].iloc[49] == pytest.approx(0.0)
    assert "testing support" in T.reading(last)


def test_input_unchanged_and_finite():
    m = make_market(700, seed=8)
    before = m.candles.copy()
    df = T.compute(m)
    pd.testing.assert_frame_equal(m.candles, before)
    assert np.isfinite(df.to_numpy()).all()
    assert (df["price_history_dip_288"] <= 0).all() and (df["price_history_rally_288"] >= 0).all()
