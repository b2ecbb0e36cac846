import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.multi_timeframe import considered_timeframes, history_bars, reading
from factories import make_candles, make_market

TENTACLE = TENTACLES["multi_timeframe"]


def candles_from_close(close: np.ndarray, start: str, timeframe: str = "5m") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(close), freq=pd.Timedelta(timeframe.replace("m", "min")), tz="UTC")
    open_ = np.concatenate(([close[0]], close[:-1]))
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.0001, "low": np.minimum(open_, close) * 0.9999, "close": close, "volume": 1.0},
        index=index,
    )


def test_5m_bar_in_an_unfinished_hour_sees_only_the_previous_closed_hour():
    # 30 hours of 5m bars: a slow rise up to 10:00 of the last day, then the 10:00 hour crashes.
    hours = 30
    n = hours * 12
    close = np.exp(0.001 * np.arange(n))
    start = pd.Timestamp("2025-03-01 05:00", tz="UTC")
    crash_start = start + pd.Timedelta(hours=hours - 1)
    assert crash_start == pd.Timestamp("2025-03-02 10:00", tz="UTC")
    candles = candles_from_close(close, str(start))
    in_crash = candles.index >= crash_start
    candles.loc[in_crash, ["open", "high", "low", "close"]] *= 0.5  # a -50% move inside the 10:00 hour
    candles.loc[in_crash, "high"] = candles.loc[in_crash, ["open", "close"]].max(axis=1) * 1.0001
    candles.iloc[np.flatnonzero(in_crash)[0], candles.columns.get_loc("open")] = close[np.flatnonzero(in_crash)[0] - 1]
    candles["high"] = candles[["open", "high", "close"]].max(axis=1)
    candles["low"] = candles[["open", "low", "close"]].min(axis=1)
    f = TENTACLE.compute(MarketBundle("X", "5m", candles), min_bars=5, ema_span=5)
    at = pd.Timestamp("2025-03-02 10:25", tz="UTC")
    assert f.loc[at, "multi_timeframe_trend_5m"] == -1  # the base timeframe sees the crash
    assert f.loc[at, "multi_timeframe_trend_1h"] == 1  # the 1h trend is still the closed 09:00 hour's
    assert f.loc[at, "multi_timeframe_available_1h"] == 1
    # The 09:00 hour's own distance, computed by hand from the closed hourly bars up to 09:00.
    hourly = candles["close"].loc[: pd.Timestamp("2025-03-02 09:55", tz="UTC")].resample("1h").last()
    ema = hourly.ewm(span=5, adjust=False).mean()
    assert np.isclose(f.loc[at, "multi_timeframe_distance_1h"], hourly.iloc[-1] / ema.iloc[-1] - 1)
    # The 10:55 bar closes the 10:00 hour: only now does the 1h trend turn.
    last = pd.Timestamp("2025-03-02 10:55", tz="UTC")
    assert f.loc[last, "multi_timeframe_trend_1h"] == -1
    assert f.loc[pd.Timestamp("2025-03-02 10:50", tz="UTC"), "multi_timeframe_trend_1h"] == 1


def test_alignment_counts_and_availability():
    n = 4 * 288
    candles = candles_from_close(np.exp(0.0005 * np.arange(n)), "2025-03-01")  # steady rise
    f = TENTACLE.compute(MarketBundle("X", "5m", candles))
    tfs = ["5m", "15m", "30m", "1h", "4h", "1d"]
    assert considered_timeframes("5m") == tfs
    assert [c for c in f.columns if c.startswith("multi_timeframe_trend_")] == [f"multi_timeframe_trend_{tf}" for tf in tfs]
    last = f.iloc[-1]
    # 1d needs 20 closed days: not available after 4 days; the other five are bullish.
    assert last["multi_timeframe_available_1d"] == 0 and last["multi_timeframe_trend_1d"] == 0
    assert last["multi_timeframe_considered"] == 5
    assert last["multi_timeframe_bullish_count"] == 5
    assert last["multi_timeframe_alignment"] == 1.0
    assert reading(last).startswith("5 of 5 timeframes bullish, 0 bearish (alignment +1.00)")
    assert "1d n/a" in reading(last)
    # Availability switches on after min_bars closed bars of each timeframe.
    first_1h = f.index[f["multi_timeframe_available_1h"] == 1][0]
    assert first_1h == candles.index[0] + pd.Timedelta(hours=20) - pd.Timedelta(minutes=5)
    assert f["multi_timeframe_alignment"].iloc[:19].eq(0).all()  # nothing available yet
    assert history_bars("5m") == 21 * 288


def test_mixed_alignment_and_1m_ladder():
    # A long fall, then a short rebound on 1m: low timeframes up, high ones down.
    close = np.concatenate((np.exp(-0.0004 * np.arange(3000)), np.exp(-0.0004 * 2999 + 0.002 * np.arange(1, 61))))
    candles = candles_from_close(close, "2025-03-01", "1m")
    f = TENTACLE.compute(MarketBundle("X", "1m", candles))
    last = f.iloc[-1]
    assert considered_timeframes("1m") == ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
    assert last["multi_timeframe_trend_1m"] == 1 and last["multi_timeframe_trend_1h"] == -1
    bull, bear, k = last["multi_timeframe_bullish_count"], last["multi_timeframe_bearish_count"], last["multi_timeframe_considered"]
    assert last["multi_timeframe_alignment"] == (bull - bear) / k
    assert -1 < last["multi_timeframe_alignment"] < 1


def test_finite_input_unchanged_and_other_bases():
    market = make_market(2000, seed=4, with_trades=False, with_book=False)
    before = market.candles.copy()
    f = TENTACLE.compute(market)
    pd.testing.assert_frame_equal(market.candles, before)
    assert np.isfinite(f.to_numpy()).all()
    assert set(np.unique(f.filter(like="_trend_").to_numpy())) <= {-1, 0, 1}
    assert ((f["multi_timeframe_alignment"] >= -1) & (f["multi_timeframe_alignment"] <= 1)).all()
    hourly = MarketBundle("X", "1h", make_candles(300, timeframe="1h"))
    assert [c for c in TENTACLE.compute(hourly).columns if "_trend_" in c] == ["multi_timeframe_trend_1h", "multi_timeframe_trend_4h", "multi_timeframe_trend_1d"]


MARKET = make_market(2400, seed=11, timeframe="5m", with_trades=False, with_book=False, start=pd.Timestamp("2025-03-01 00:35", tz="UTC"))
FULL = TENTACLE.compute(MARKET, min_bars=3)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=2400))
def test_truncate_and_recompute(n):
    part = TENTACLE.compute(MARKET.head(n), min_bars=3)
    pd.testing.assert_frame_equal(part, FULL.iloc[:n], rtol=1e-12, atol=1e-12)
