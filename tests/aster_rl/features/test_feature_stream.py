from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import FeaturesConfig
from aster_rl.errors import DataError
from aster_rl.features.stream import CONTEXT_ROWS, FeatureStream, _TimeframeTrend
from aster_rl.features.pipeline import build_features, latest_features
from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles._causal import as_ns, timeframe_ns
from aster_rl.data.timeframes import timeframe_to_timedelta
from factories import make_market

CFG = FeaturesConfig()
EVENTS = ("funding", "trades", "book")
COMPANIONS = ("btc", "eth")


def known_at(market: MarketBundle, k: int) -> MarketBundle:
    """``market.head(k)`` by binary search (the factories' frames are sorted): what is known at the close of bar k - 1."""
    last_open = market.candles.index[k - 1]
    close_time = last_open + timeframe_to_timedelta(market.timeframe)
    cut = {"candles": market.candles.iloc[:k]}
    for key in EVENTS:
        df = getattr(market, key)
        cut[key] = None if df is None else df.iloc[: int(df.index.searchsorted(close_time, side="left"))]
    for key in COMPANIONS:
        df = getattr(market, key)
        cut[key] = None if df is None else df.iloc[: int(df.index.searchsorted(last_open, side="right"))]
    return replace(market, **cut)


def assert_row_close(row, batch, columns, where=""):
    """Within 1e-6 relative, 1e-6 absolute near 0 (the stated tolerance of the incremental rows)."""
    row, batch = row.astype(float), batch.astype(float)
    err = np.abs(row - batch)
    bad = np.flatnonzero(err > 1e-6 * np.maximum(np.abs(batch), 1.0))
    assert not len(bad), (where, [(columns[j], row[j], batch[j]) for j in bad[:5]])


def drop_bars(market: MarketBundle, positions) -> MarketBundle:
    keep = np.ones(len(market.candles), dtype=bool)
    keep[list(positions)] = False
    return replace(market, candles=market.candles[keep])


def test_known_at_matches_head():
    m = make_market(300, seed=40)
    a, b = known_at(m, 123), m.head(123)
    for key in ("candles", *EVENTS, *COMPANIONS):
        pd.testing.assert_frame_equal(getattr(a, key), getattr(b, key))


def test_bar_by_bar_equals_batch_on_1h_with_every_source():
    m = make_market(900, seed=41, timeframe="1h")  # the 1d trend is available after 21 days (504 bars)
    batch = build_features(m, CFG)
    stream = FeatureStream(CFG, "1h")
    for k in range(batch.warmup + 1, len(m) + 1):  # every bar after the warm-up
        row = stream.update(known_at(m, k))
        assert row.dtype == np.float32 and row.shape == (len(batch.columns),)
        assert_row_close(row, batch.matrix[k - 1], batch.columns, where=k)
    assert stream.columns == batch.columns
    assert stream.schema == batch.schema and stream.schema.hash == batch.schema.hash
    frame = batch.frame().iloc[batch.warmup :]
    assert (frame["multi_timeframe_available_1d"] == 1).all() and frame["multi_timeframe_distance_1d"].nunique() > 5
    readings = stream.readings()
    assert list(readings) == list(batch.schema.tentacles) and readings == batch.readings(-1)


def test_bar_by_bar_and_in_chunks_equals_batch_on_5m():
    m = make_market(6000, seed=42)
    batch = build_features(m, CFG)
    day20 = 20 * 288  # the bar count at which the 20th daily bar has closed: the 1d trend turns on
    stream = FeatureStream(CFG, "5m")
    steps = list(range(batch.warmup + 1, day20 - 40, 29)) + list(range(day20 - 40, day20 + 40))  # chunks, then every bar
    for k in steps:
        assert_row_close(stream.update(known_at(m, k)), batch.matrix[k - 1], batch.columns, where=k)
    col = batch.columns.index("multi_timeframe_available_1d")
    assert batch.matrix[day20 - 2, col] == 0 and batch.matrix[day20 - 1, col] == 1


def test_a_gap_in_the_data():
    full = make_market(1100, seed=43, timeframe="1h")
    # 31 missing hours (a day's closing bar and several 4h closes among them), and one missing
    # 23:00 bar later: that day never completes.
    late_close = int(np.flatnonzero(full.candles.index.hour == 23)[-3])
    m = drop_bars(full, [*list(range(700, 731)), late_close])
    batch = build_features(m, CFG)
    stream = FeatureStream(CFG, "1h")
    for k in list(range(690, 745)) + list(range(745, len(m) + 1, 5)):  # every bar around the gap, then every 5th
        assert_row_close(stream.update(known_at(m, k)), batch.matrix[k - 1], batch.columns, where=k)


def test_1m_base_includes_its_own_timeframe():
    m = make_market(2400, seed=44, timeframe="1m")
    batch = build_features(m, CFG)
    assert "multi_timeframe_trend_1m" in batch.columns
    stream = FeatureStream(CFG, "1m")
    for k in range(2300, 2401):
        assert_row_close(stream.update(known_at(m, k)), batch.matrix[k - 1], batch.columns, where=k)


def test_the_stream_never_reads_a_bar_after_the_one_it_is_updating():
    m = make_market(900, seed=45, timeframe="1h")
    cut = 800
    # Every bar and event after the cut replaced by nonsense.
    rng = np.random.default_rng(0)
    scrambled = m.candles.copy()
    later = np.arange(len(scrambled)) >= cut
    scrambled.loc[later, ["open", "high", "low", "close"]] = rng.uniform(0.1, 10.0, (later.sum(), 4))
    scrambled.loc[later, "high"] = scrambled.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    scrambled.loc[later, "low"] = scrambled.loc[later, ["open", "high", "low", "close"]].min(axis=1)
    other = replace(m, candles=scrambled)
    a, b = FeatureStream(CFG, "1h"), FeatureStream(CFG, "1h")
    for k in range(760, cut + 1):
        ra, rb = a.update(known_at(m, k)), b.update(known_at(other, k))
        np.testing.assert_array_equal(ra, rb)
        if k % 20 == 0:  # truncate and recompute: the batch on the first k bars only
            assert_row_close(ra, build_features(m.head(k), CFG).matrix[-1], a.columns, where=k)
    assert not np.array_equal(a.update(known_at(m, cut + 1)), b.update(known_at(other, cut + 1)))


def test_recent_windows_after_the_first_update_give_the_same_rows():
    m = make_market(2100, seed=46, timeframe="1h")
    batch = build_features(m, CFG)
    full, windowed = FeatureStream(CFG, "1h"), FeatureStream(CFG, "1h")
    windowed.update(known_at(m, 2000))  # starts from the whole history once
    assert windowed.min_bars < 2000
    for k in range(2001, 2040):
        view = known_at(m, k)
        start = view.candles.index[-windowed.min_bars]
        recent = view.window(start, None)  # then only the bars the tentacles need
        np.testing.assert_array_equal(windowed.update(recent), full.update(view))
        assert_row_close(windowed.update(recent), batch.matrix[k - 1], batch.columns, where=k)


def test_repeat_restart_and_errors():
    m = make_market(1000, seed=47, timeframe="1h")
    batch = build_features(m, CFG)
    stream = FeatureStream(CFG, "1h")
    with pytest.raises(DataError, match="update"):
        stream.readings()
    first = stream.update(known_at(m, 900))
    again = stream.update(known_at(m, 900))  # the same bar: the same row
    np.testing.assert_array_equal(first, again)
    again[0] = 123.0  # rows are copies
    np.testing.assert_array_equal(stream.update(known_at(m, 900)), first)
    # back in time (a replay): starts again from what it is given
    assert_row_close(stream.update(known_at(m, 850)), batch.matrix[849], batch.columns)
    # a window that no longer reaches the last bar seen: starts again from it (multi_timeframe from that window only)
    later = known_at(m, 1000)
    row = stream.update(later.window(later.candles.index[-60], None))
    assert row.shape == (len(batch.columns),) and np.isfinite(row).all()
    assert stream.last_time == m.candles.index[-1]
    with pytest.raises(DataError, match="5m"):
        stream.update(make_market(300, seed=1))
    bad = known_at(m, 1000)
    candles = bad.candles.copy()
    candles.iloc[-1, candles.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="not finite"):
        FeatureStream(CFG, "1h").update(replace(bad, candles=candles))


def test_latest_features_is_a_fresh_stream_on_a_bounded_window():
    m = make_market(1000, seed=48, timeframe="1h")
    batch = build_features(m, CFG)
    row = latest_features(m, CFG)
    assert_row_close(row, batch.matrix[-1], batch.columns)
    np.testing.assert_array_equal(row, FeatureStream(CFG, "1h").update(m))


def test_timeframe_state_follows_pandas_ewm():
    rng = np.random.default_rng(3)
    index = pd.date_range("2025-03-01", periods=3000, freq="5min", tz="UTC")
    close = np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    close[100:140] = close[100]  # a constant stretch: pandas leaves the EMA untouched there
    open_ns = as_ns(index)
    for tf in ("5m", "1h", "4h"):
        state = _TimeframeTrend(timeframe_ns("5m"), timeframe_ns(tf), 20, 20, 0.0005, 1.0)
        state.start(open_ns[:700], close[:700])
        for o, c in zip(open_ns[700:].tolist(), close[700:].tolist()):
            state.push(o, c)
        hourly = pd.Series(close, index=index).resample(pd.Timedelta(tf.replace("m", "min"))).last()
        complete = pd.Series(index, index=index).resample(pd.Timedelta(tf.replace("m", "min"))).last()
        hourly = hourly[complete.to_numpy() == (complete.index + pd.Timedelta(tf.replace("m", "min")) - pd.Timedelta("5min")).to_numpy()]
        ema = hourly.ewm(span=20, adjust=False).mean()
        assert state.count == len(hourly)
        assert state.ema == pytest.approx(ema.iloc[-1], rel=1e-13)


def test_context_rows_cover_the_context_readers():
    stream = FeatureStream(CFG, "5m")
    needs = {name: need for name, *_, need in stream._plan}
    assert needs["strategy"] == CONTEXT_ROWS
    assert needs["multi_timeframe"] == 0  # kept as state
    assert stream.min_bars == max(needs.values())
