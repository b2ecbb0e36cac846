"""Idempotent upserts, all-or-nothing market storage, and loading bundles back."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import DataConfig
from aster_rl.errors import DataError
from aster_rl.storage import (
    CandleMerge,
    ChangedBar,
    Database,
    describe,
    last_candle_time,
    load_book,
    load_candles,
    load_funding,
    load_market,
    load_trades,
    merge_candles,
    store_market,
    upsert_candles,
    upsert_trades,
)
from aster_rl.storage import repository
from aster_rl.data.timeframes import resample_candles
from factories import make_candles, make_market

SOURCE = "synthetic"


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    """A fresh database, on SQLite and on PostgreSQL."""
    database = Database(database_url)
    database.init_schema()
    yield database
    database.dispose()


def test_same_bars_twice_keep_one_copy(db):
    candles = make_candles(300, seed=1)
    assert upsert_candles(db, SOURCE, "X", "5m", candles) == 300
    assert upsert_candles(db, SOURCE, "X", "5m", candles) == 0
    assert upsert_candles(db, SOURCE, "X", "5m", make_candles(400, seed=1)) == 100
    stored = load_candles(db, SOURCE, "X", "5m")
    assert len(stored) == 400 and stored.index.is_unique
    assert describe(db)["tables"]["candles"] == 400


def test_existing_bars_are_kept_not_overwritten(db):
    candles = make_candles(50, seed=2)
    upsert_candles(db, SOURCE, "X", "5m", candles)
    changed = candles.assign(close=candles["close"] * 1.0, volume=candles["volume"] + 1)
    assert upsert_candles(db, SOURCE, "X", "5m", changed) == 0
    np.testing.assert_array_equal(load_candles(db, SOURCE, "X", "5m")["volume"], candles["volume"])


def test_candles_round_trip_with_and_without_optional_columns(db):
    full = make_candles(120, seed=3)
    upsert_candles(db, SOURCE, "FULL", "5m", full)
    pd.testing.assert_frame_equal(load_candles(db, SOURCE, "FULL", "5m"), full, check_freq=False)
    plain = full[["open", "high", "low", "close", "volume"]]
    upsert_candles(db, SOURCE, "PLAIN", "5m", plain)
    loaded = load_candles(db, SOURCE, "PLAIN", "5m")
    assert list(loaded.columns) == list(plain.columns)
    assert str(loaded.index.tz) == "UTC"
    assert load_candles(db, SOURCE, "NONE", "5m").empty


def test_series_are_kept_apart_by_source_symbol_and_timeframe(db):
    candles = make_candles(20)
    upsert_candles(db, "a", "X", "5m", candles)
    upsert_candles(db, "b", "X", "5m", candles.iloc[:5])
    upsert_candles(db, "a", "Y", "5m", candles.iloc[:7])
    assert len(load_candles(db, "a", "X", "5m")) == 20
    assert len(load_candles(db, "b", "X", "5m")) == 5
    assert len(load_candles(db, "a", "Y", "5m")) == 7
    assert load_candles(db, "a", "X", "15m").empty


def test_time_range_and_last_candle_time(db):
    candles = make_candles(100)
    assert last_candle_time(db, SOURCE, "X", "5m") is None
    upsert_candles(db, SOURCE, "X", "5m", candles)
    assert last_candle_time(db, SOURCE, "X", "5m") == candles.index[-1]
    part = load_candles(db, SOURCE, "X", "5m", start=candles.index[10], end=candles.index[19])
    assert list(part.index) == list(candles.index[10:20])
    by_string = load_candles(db, SOURCE, "X", "5m", start=str(candles.index[90]))
    assert len(by_string) == 10


def test_invalid_candles_are_refused_and_nothing_stored(db):
    candles = make_candles(30)
    candles.iloc[12, candles.columns.get_loc("high")] = candles["low"].iloc[12] / 2
    with pytest.raises(DataError, match="row 12"):
        upsert_candles(db, SOURCE, "X", "5m", candles)
    assert load_candles(db, SOURCE, "X", "5m").empty


def test_events_round_trip(db):
    market = make_market(200, seed=4)
    store_market(db, market, SOURCE)
    funding = load_funding(db, SOURCE, market.symbol)
    pd.testing.assert_frame_equal(funding, market.funding, check_freq=False, check_index_type=False)
    book = load_book(db, SOURCE, market.symbol)
    np.testing.assert_allclose(book.to_numpy(), market.book.to_numpy())
    assert list(book.index) == list(market.book.index)
    trades = load_trades(db, SOURCE, market.symbol)
    assert len(trades) == len(market.trades)
    np.testing.assert_allclose(np.sort(trades["price"].to_numpy()), np.sort(market.trades["price"].to_numpy()))
    assert set(trades["side"]) <= {"buy", "sell"}


def test_trades_keyed_by_trade_id(db):
    idx = pd.DatetimeIndex(["2025-03-01 00:00:01", "2025-03-01 00:00:01", "2025-03-01 00:00:02"], tz="UTC")
    trades = pd.DataFrame(
        {"trade_id": ["1", "2", "3"], "price": [1.0, 1.1, 1.2], "amount": [5.0, 6.0, 7.0], "side": ["buy", "sell", "buy"]},
        index=idx,
    )
    assert upsert_trades(db, SOURCE, "X", trades) == 3
    assert upsert_trades(db, SOURCE, "X", trades.iloc[1:]) == 0
    assert list(load_trades(db, SOURCE, "X")["trade_id"]) == ["1", "2", "3"]
    with pytest.raises(DataError, match="side 'long'"):
        upsert_trades(db, SOURCE, "X", trades.assign(trade_id=["7", "8", "9"], side=["buy", "long", "buy"]))


def test_store_market_twice_keeps_one_copy(db):
    market = make_market(150, seed=5)
    first = store_market(db, market, SOURCE)
    assert first["candles"] == 150 and first["btc"] == 150 and first["funding"] == len(market.funding)
    again = store_market(db, market, SOURCE)
    assert set(again.values()) == {0}


def test_failure_mid_store_market_leaves_nothing_written(db, monkeypatch):
    market = make_market(150, seed=6)

    def broken_book(*args, **kwargs):
        raise RuntimeError("disk full while writing the order book")

    monkeypatch.setattr(repository, "_insert_book", broken_book)
    with pytest.raises(RuntimeError, match="disk full"):
        store_market(db, market, SOURCE)
    assert set(describe(db)["tables"].values()) == {0, 1}  # only schema_version has a row
    assert describe(db)["tables"]["candles"] == 0 and describe(db)["tables"]["funding_rates"] == 0


def test_bad_part_late_in_store_market_leaves_nothing_written(db):
    market = make_market(100, seed=7)
    bad_eth = market.eth.copy()
    bad_eth.iloc[50, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        store_market(db, market.__class__(**{**market.__dict__, "eth": bad_eth}), SOURCE)
    assert describe(db)["tables"]["candles"] == 0


def _cfg(**kw) -> DataConfig:
    return DataConfig(source=SOURCE, **kw)


def test_load_market_round_trip(db):
    market = make_market(300, seed=8)
    store_market(db, market, SOURCE)
    loaded = load_market(db, _cfg())
    assert loaded.symbol == market.symbol and loaded.timeframe == "5m"
    pd.testing.assert_frame_equal(loaded.candles, market.candles, check_freq=False)
    pd.testing.assert_frame_equal(loaded.btc, market.btc, check_freq=False)
    pd.testing.assert_frame_equal(loaded.eth, market.eth, check_freq=False)
    assert len(loaded.trades) == len(market.trades) and len(loaded.book) == len(market.book)


def test_load_market_window_matches_bundle_window(db):
    market = make_market(300, seed=9)
    store_market(db, market, SOURCE)
    a, b = market.candles.index[40], market.candles.index[139]
    loaded = load_market(db, _cfg(), start=a, end=b)
    expected = market.window(a, b)
    assert list(loaded.candles.index) == list(expected.candles.index)
    assert list(loaded.funding.index) == list(expected.funding.index)
    assert list(loaded.book.index) == list(expected.book.index)
    assert len(loaded.trades) == len(expected.trades)


def test_load_market_missing_parts_are_none(db):
    market = make_market(100, seed=10, with_trades=False, with_book=False, with_funding=False, with_macro=False)
    store_market(db, market, SOURCE)
    loaded = load_market(db, _cfg())
    assert loaded.funding is None and loaded.trades is None and loaded.book is None
    assert loaded.btc is None and loaded.eth is None


def test_load_market_without_candles_says_how_to_get_some(db):
    with pytest.raises(DataError, match=r"synthetic.*ASTER/USDT:USDT|ASTER/USDT:USDT.*synthetic") as err:
        load_market(db, _cfg())
    assert "aster-rl data synth" in str(err.value) and "data import" in str(err.value)


def test_load_market_resamples_to_complete_higher_bars_only(db):
    market = make_market(300, seed=11)  # 300 5m bars = 25 hours
    store_market(db, market, SOURCE)
    hourly = load_market(db, _cfg(), timeframe="1h")
    expected = resample_candles(market.candles, "5m", "1h")
    pd.testing.assert_frame_equal(hourly.candles, expected, check_freq=False)
    assert hourly.timeframe == "1h"
    # truncate and recompute: as known at the close of bar ``cut``, only hours closed by then exist
    for position in (11, 12, 59, 100, 143, 299):
        cut = market.candles.index[position]
        partial = load_market(db, _cfg(), end=cut, timeframe="1h")
        closed = expected[expected.index + pd.Timedelta("1h") <= cut + pd.Timedelta("5min")]
        pd.testing.assert_frame_equal(partial.candles, closed, check_freq=False)
        assert partial.book.index[-1] < cut + pd.Timedelta("5min")
    # a start inside an hour starts at the next whole hour
    late = load_market(db, _cfg(), start=market.candles.index[3], timeframe="1h")
    assert late.candles.index[0] == market.candles.index[0] + pd.Timedelta("1h")
    with pytest.raises(DataError, match="whole multiple"):
        load_market(db, _cfg(), timeframe="7m")


def test_load_market_skips_a_higher_bar_the_stored_bars_begin_inside(db):
    candles = make_candles(36, seed=12).iloc[6:]  # stored from 00:30: the first hour lacks half its bars
    upsert_candles(db, SOURCE, _cfg().symbol, "5m", candles)
    hourly = load_market(db, _cfg(), timeframe="1h").candles
    assert hourly.index[0] == candles.index[0].ceil("1h")
    assert hourly.iloc[0]["open"] == candles.loc[hourly.index[0], "open"]
    assert hourly.iloc[0]["volume"] == pytest.approx(candles.loc[hourly.index[0] :].iloc[:12]["volume"].sum())


def test_merge_refuses_a_changed_bar_and_writes_nothing(db):
    candles = make_candles(100, seed=21)
    assert merge_candles(db, SOURCE, "X", "5m", candles) == CandleMerge(new=100, changed=0)
    assert merge_candles(db, SOURCE, "X", "5m", candles) == CandleMerge(new=0, changed=0)
    longer = pd.concat([candles, make_candles(5, seed=22, start=candles.index[-1] + pd.Timedelta(minutes=5))])
    changed = longer.copy()
    changed.iloc[[30, 60], changed.columns.get_loc("low")] *= 0.99
    with pytest.raises(ChangedBar) as err:
        merge_candles(db, SOURCE, "X", "5m", changed)
    e = err.value
    assert (e.ts, e.column, e.bars) == (candles.index[30], "low", 2)
    assert (e.stored, e.new) == (float(candles["low"].iloc[30]), float(changed["low"].iloc[30]))
    assert "--replace" in str(e) and "2 bars differ" in str(e)
    pd.testing.assert_frame_equal(load_candles(db, SOURCE, "X", "5m"), candles, check_freq=False)  # the 5 new bars too


def test_merge_with_replace_overwrites_and_counts(db):
    candles = make_candles(100, seed=23)
    merge_candles(db, SOURCE, "X", "5m", candles)
    changed = candles.copy()
    changed.iloc[[3, 4, 5], changed.columns.get_loc("volume")] += 1.0
    assert merge_candles(db, SOURCE, "X", "5m", changed, replace=True) == CandleMerge(new=0, changed=3)
    pd.testing.assert_frame_equal(load_candles(db, SOURCE, "X", "5m"), changed, check_freq=False)
    assert merge_candles(db, SOURCE, "X", "5m", changed) == CandleMerge(new=0, changed=0)


def test_merge_compares_optional_columns_and_ignores_parser_noise(db):
    plain = make_candles(50, seed=24)[["open", "high", "low", "close", "volume"]]
    merge_candles(db, SOURCE, "X", "5m", plain)
    with pytest.raises(ChangedBar, match="quote_volume stored None"):
        merge_candles(db, SOURCE, "X", "5m", plain.assign(quote_volume=1.0))
    noisy = plain.assign(close=np.nextafter(plain["close"].to_numpy(), np.inf))  # one ulp, as another parser reads it
    assert merge_candles(db, SOURCE, "X", "5m", noisy) == CandleMerge(new=0, changed=0)


def test_merge_leaves_other_series_alone(db):
    candles = make_candles(40, seed=25)
    merge_candles(db, SOURCE, "X", "5m", candles)
    other = candles.assign(high=candles["high"] * 2)
    assert merge_candles(db, SOURCE, "Y", "5m", other) == CandleMerge(new=40, changed=0)
    assert merge_candles(db, "other", "X", "5m", other) == CandleMerge(new=40, changed=0)
