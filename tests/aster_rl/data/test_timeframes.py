import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.data.timeframes import align_closed, higher_timeframes, resample_candles, timeframe_to_timedelta


def _candles(n, start="2025-01-01 00:00", freq="5min", seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    close = 1 + np.cumsum(rng.normal(0, 0.01, n))
    return pd.DataFrame(
        {"open": close, "high": close + 0.01, "low": close - 0.01, "close": close, "volume": np.arange(n, dtype=float) + 1},
        index=idx,
    )


def test_timeframe_parsing():
    assert timeframe_to_timedelta("5m") == pd.Timedelta(minutes=5)
    assert timeframe_to_timedelta("4h") == pd.Timedelta(hours=4)
    assert timeframe_to_timedelta("1d") == pd.Timedelta(days=1)
    for bad in ("5", "m", "0m", "5x", "-5m"):
        with pytest.raises(DataError):
            timeframe_to_timedelta(bad)


def test_higher_timeframes_from_the_base():
    assert higher_timeframes("5m") == ["5m", "15m", "30m", "1h", "4h", "1d"]
    assert higher_timeframes("1h") == ["1h", "4h", "1d"]


def test_resample_keeps_only_complete_bars():
    c = _candles(12 * 3 - 1)  # three hours minus the last 5m bar
    hourly = resample_candles(c, "5m", "1h")
    assert list(hourly.index) == list(pd.date_range("2025-01-01", periods=2, freq="1h", tz="UTC"))
    first = c.iloc[:12]
    assert hourly.iloc[0]["open"] == first["open"].iloc[0]
    assert hourly.iloc[0]["close"] == first["close"].iloc[-1]
    assert hourly.iloc[0]["high"] == first["high"].max()
    assert hourly.iloc[0]["volume"] == first["volume"].sum()


def test_a_higher_bar_is_visible_only_from_the_base_bar_that_closes_with_it():
    c = _candles(36)
    hourly = resample_candles(c, "5m", "1h")
    aligned = align_closed(hourly[["close"]], c.index, "5m", "1h")
    # 00:00..00:50 see no closed hour; the 00:55 bar closes at 01:00 together with the first hour
    assert aligned.loc[: "2025-01-01 00:50", "close"].isna().all()
    assert aligned.loc["2025-01-01 00:55", "close"] == hourly.iloc[0]["close"]
    # 01:25 is inside the unfinished second hour: it still sees the first hour only
    assert aligned.loc["2025-01-01 01:25", "close"] == hourly.iloc[0]["close"]


def test_resampling_is_causal_under_truncation():
    c = _candles(300, seed=3)
    full = align_closed(resample_candles(c, "5m", "1h"), c.index, "5m", "1h")
    for n in (1, 11, 12, 13, 150, 299):
        part = align_closed(resample_candles(c.iloc[:n], "5m", "1h"), c.index[:n], "5m", "1h")
        pd.testing.assert_frame_equal(part, full.iloc[:n])
