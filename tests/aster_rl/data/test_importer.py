"""Candle-file import: every supported layout parses to the same frame; bad files fail on one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.paths import real_data_dir
from aster_rl.data.importer import infer_symbol_timeframe, read_candle_file
from factories import make_candles

REAL = real_data_dir()
OHLCV = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_candles(200, seed=3)


def _ms(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ms").asi8


def _plain(ref: pd.DataFrame, stamps) -> pd.DataFrame:
    out = ref[OHLCV].reset_index(drop=True)
    out.insert(0, "timestamp", stamps)
    return out


def _binance(ref: pd.DataFrame) -> pd.DataFrame:
    ms = _ms(ref.index)
    return pd.DataFrame(
        {
            "open_time": ms,
            **{c: ref[c].to_numpy() for c in OHLCV},
            "close_time": ms + 299_999,
            "quote_volume": ref["quote_volume"].to_numpy(),
            "count": ref["trades"].astype(int).to_numpy(),
            "taker_buy_volume": ref["taker_buy_volume"].to_numpy(),
            "taker_buy_quote_volume": (ref["taker_buy_volume"] * ref["close"]).to_numpy(),
            "ignore": 0,
        }
    )


WRITERS = {
    "ms_header.csv": lambda r, p: _plain(r, _ms(r.index)).to_csv(p, index=False),
    "s_noheader.csv": lambda r, p: _plain(r, _ms(r.index) // 1000).to_csv(p, index=False, header=False),
    "us_header.csv": lambda r, p: _plain(r, _ms(r.index) * 1000).to_csv(p, index=False),
    "ns_header.csv": lambda r, p: _plain(r, _ms(r.index) * 1_000_000).to_csv(p, index=False),
    "s_float.csv": lambda r, p: _plain(r, _ms(r.index) / 1000.0).to_csv(p, index=False),
    "us_float.parquet": lambda r, p: _plain(r, _ms(r.index) * 1000.0).to_parquet(p),
    "ns_float.feather": lambda r, p: _plain(r, _ms(r.index) * 1e6).to_feather(p),
    "iso_header.csv": lambda r, p: _plain(r, r.index.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(p, index=False),
    "iso_noheader.csv": lambda r, p: _plain(r, r.index.strftime("%Y-%m-%d %H:%M:%S")).to_csv(p, index=False, header=False),
    "gzip.csv.gz": lambda r, p: _plain(r, _ms(r.index)).to_csv(p, index=False),
    "binance_noheader.csv": lambda r, p: _binance(r).to_csv(p, index=False, header=False),
    "binance_header.csv": lambda r, p: _binance(r).to_csv(p, index=False),
    "freqtrade.parquet": lambda r, p: r[OHLCV].rename_axis("date").reset_index().to_parquet(p),
    "indexed.parquet": lambda r, p: r[OHLCV].to_parquet(p),
    "freqtrade.feather": lambda r, p: r[OHLCV].rename_axis("date").reset_index().to_feather(p),
    "freqtrade.json": lambda r, p: p.write_text(
        json.dumps([[int(t), *row] for t, row in zip(_ms(r.index), r[OHLCV].to_numpy().tolist())])
    ),
}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_every_layout_parses_to_the_same_frame(tmp_path, reference, layout):
    path = tmp_path / f"ASTERUSDT_5m_{layout}"
    WRITERS[layout](reference, path)
    result = read_candle_file(path)
    assert result.symbol == "ASTER/USDT:USDT" and result.timeframe == "5m"
    assert str(result.candles.index.tz) == "UTC"
    assert list(result.candles.index) == list(reference.index)
    np.testing.assert_array_equal(result.candles[OHLCV].to_numpy(), reference[OHLCV].to_numpy())
    if layout.startswith("binance"):
        for col in ("quote_volume", "trades", "taker_buy_volume"):
            np.testing.assert_allclose(result.candles[col].to_numpy(), reference[col].to_numpy())
    else:
        assert list(result.candles.columns) == OHLCV
    assert result.gaps.empty


@pytest.mark.parametrize(
    "name, symbol, timeframe",
    [
        ("ASTERUSDT_5m.csv", "ASTER/USDT:USDT", "5m"),
        ("BTCUSDT-1h-2024-01.csv", "BTC/USDT:USDT", "1h"),
        ("ASTER_USDT_USDT-15m-futures.feather", "ASTER/USDT:USDT", "15m"),
        ("ETH_USDC-4h.json", "ETH/USDC:USDC", "4h"),
        ("candles.csv", None, None),
    ],
)
def test_symbol_and_timeframe_from_the_file_name(name, symbol, timeframe):
    assert infer_symbol_timeframe(name) == (symbol, timeframe)


def test_explicit_symbol_and_timeframe_win(tmp_path, reference):
    path = tmp_path / "candles.csv"
    WRITERS["ms_header.csv"](reference, path)
    with pytest.raises(DataError, match="--symbol"):
        read_candle_file(path)
    result = read_candle_file(path, symbol="XYZ/USDT:USDT", timeframe="5m")
    assert (result.symbol, result.timeframe) == ("XYZ/USDT:USDT", "5m")


def _corrupt_csv(tmp_path: Path, reference: pd.DataFrame, edit) -> Path:
    frame = _plain(reference, _ms(reference.index)).astype({"close": object})
    edit(frame)
    path = tmp_path / "ASTERUSDT_5m.csv"
    frame.to_csv(path, index=False)
    return path


CORRUPTIONS = {
    "before 2009": (lambda f: f.__setitem__("timestamp", f["timestamp"].where(f.index != 56, 1_000_000_000_000)), r"row 57 \(line 58\): timestamp 1000000000000 \(2001-09-09 01:46:40 UTC\) is before 2009-01-01"),
    "seconds among ms": (lambda f: f.__setitem__("timestamp", f["timestamp"].where(f.index != 56, f["timestamp"] // 1000)), r"row 57 \(line 58\): timestamp \d+ is in seconds while the file's timestamps are in milliseconds"),
    "off the grid": (lambda f: f.__setitem__("timestamp", f["timestamp"].where(f.index != 56, f["timestamp"] + 1)), r"row 57 \(line 58\): bar at .* is not on the 5m grid \(00:00:00.001000 past a bar boundary\); 1 such bar$"),
    "negative volume": (lambda f: f.__setitem__("volume", f["volume"].where(f.index != 56, -1.0)), r"row 57 \(line 58\).*volume -1.0 is negative"),
    "infinite": (lambda f: f.__setitem__("close", f["close"].where(f.index != 56, "inf")), r"row 57 \(line 58\): close is inf \(not finite\); 1 such row$"),
    "high below low": (lambda f: f.__setitem__("high", f["high"].where(f.index != 56, 1e-6)), r"row 57 \(line 58\).*high .* < low"),
    "not a number": (lambda f: f.__setitem__("close", f["close"].where(f.index != 56, "abc")), r"row 57 \(line 58\): close 'abc' is not a number"),
    "missing value": (lambda f: f.__setitem__("close", f["close"].where(f.index != 56, None)), r"row 57 \(line 58\): close is missing"),
    "duplicate": (lambda f: f.__setitem__("timestamp", f["timestamp"].where(f.index != 56, f["timestamp"].shift(1))), r"row 57 \(line 58\): repeats the timestamp"),
    "unsorted": (lambda f: f.__setitem__("timestamp", f["timestamp"].where(f.index != 56, f["timestamp"] - 3_600_000)), r"row 57 \(line 58\): timestamp .* earlier"),
    "bad timestamp": (lambda f: f.__setitem__("timestamp", f["timestamp"].astype(object).where(f.index != 56, "yesterday")), r"row 57 \(line 58\): timestamp 'yesterday'"),
}


@pytest.mark.parametrize("problem", sorted(CORRUPTIONS))
def test_corrupt_csv_names_file_row_and_problem(tmp_path, reference, problem):
    edit, pattern = CORRUPTIONS[problem]
    path = _corrupt_csv(tmp_path, reference, edit)
    with pytest.raises(DataError, match=pattern) as err:
        read_candle_file(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_wrong_timeframe_is_caught(tmp_path, reference):
    path = tmp_path / "ASTERUSDT_15m.csv"
    WRITERS["ms_header.csv"](reference, path)
    with pytest.raises(DataError, match=r"the file name says 15m but the bars are mostly 5m apart .*--timeframe 5m"):
        read_candle_file(path)
    with pytest.raises(DataError, match="--timeframe says 1h but the bars are mostly 5m apart"):
        read_candle_file(path, timeframe="1h")
    assert read_candle_file(path, timeframe="5m").timeframe == "5m"


def test_unknown_layouts_are_refused(tmp_path, reference):
    seven = tmp_path / "ASTERUSDT_5m.csv"
    _plain(reference, _ms(reference.index)).assign(extra=1).to_csv(seven, index=False, header=False)
    with pytest.raises(DataError, match="7 columns and no header"):
        read_candle_file(seven)
    nameless = tmp_path / "ASTERUSDT_5m_b.csv"
    reference[OHLCV].reset_index(drop=True).to_csv(nameless, index=False)
    with pytest.raises(DataError, match="no timestamp column"):
        read_candle_file(nameless)
    other = tmp_path / "ASTERUSDT_5m.xlsx"
    other.write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        read_candle_file(other)
    empty = tmp_path / "ASTERUSDT_5m_c.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_candle_file(empty)


def test_gaps_are_reported_never_filled(tmp_path, reference):
    holed = reference.drop(reference.index[[20, 21, 22, 150]])
    path = tmp_path / "ASTERUSDT_5m.csv"
    WRITERS["ms_header.csv"](holed, path)
    result = read_candle_file(path)
    assert len(result.candles) == len(holed)
    assert list(result.gaps["missing_bars"]) == [3, 1]
    assert result.gaps["first_missing"].iloc[0] == reference.index[20]
    assert result.missing_bars == 4


@pytest.mark.skipif(not REAL.is_dir(), reason="real data folder absent")
@pytest.mark.parametrize("name", sorted(p.name for p in REAL.glob("*.csv")) if REAL.is_dir() else [])
def test_real_files_import(name):
    result = read_candle_file(REAL / name)
    assert len(result.candles) > 1000
    assert result.symbol.endswith("/USDT:USDT") and result.timeframe in name
    assert result.candles.index.is_monotonic_increasing and result.candles.index.is_unique


def test_timeframe_from_the_spacing_when_neither_name_nor_argument_says(tmp_path, reference):
    path = tmp_path / "candles.csv"
    WRITERS["ms_header.csv"](reference, path)
    assert read_candle_file(path, symbol="XYZ/USDT:USDT").timeframe == "5m"
    hourly = tmp_path / "hourly.csv"
    WRITERS["ms_header.csv"](make_candles(30, timeframe="1h").drop(make_candles(30, timeframe="1h").index[[3, 9]]), hourly)
    assert read_candle_file(hourly, symbol="XYZ/USDT:USDT").timeframe == "1h"
    odd = tmp_path / "odd.csv"
    _plain(reference, int(_ms(reference.index)[0]) + 17_000 * np.arange(len(reference))).to_csv(odd, index=False)
    with pytest.raises(DataError, match=r"mostly 00:00:17 apart .* which is no timeframe"):
        read_candle_file(odd, symbol="XYZ/USDT:USDT")
    one = tmp_path / "one.csv"
    WRITERS["ms_header.csv"](reference.iloc[:1], one)
    with pytest.raises(DataError, match="one bar cannot tell the timeframe"):
        read_candle_file(one, symbol="XYZ/USDT:USDT")


def test_bars_may_open_until_now_plus_one_bar(tmp_path, reference):
    path = tmp_path / "ASTERUSDT_5m.csv"
    WRITERS["ms_header.csv"](reference, path)
    last = reference.index[-1]
    assert len(read_candle_file(path, now=last - pd.Timedelta(minutes=5)).candles) == len(reference)
    with pytest.raises(DataError, match=r"row 200 \(line 201\): .* is after .* UTC, later than a bar can open now"):
        read_candle_file(path, now=last - pd.Timedelta(minutes=6))


def test_weekly_bars_open_on_mondays(tmp_path):
    mondays = make_candles(20, timeframe="1w", start=pd.Timestamp("2024-01-01", tz="UTC"))  # a Monday
    path = tmp_path / "BTCUSDT_1w.csv"
    WRITERS["ms_header.csv"](mondays, path)
    assert len(read_candle_file(path).candles) == 20
    thursdays = mondays.set_axis(mondays.index + pd.Timedelta(days=3))
    WRITERS["ms_header.csv"](thursdays, path)
    with pytest.raises(DataError, match=r"row 1 \(line 2\): bar at 2024-01-04 00:00:00 UTC is not on the 1w grid \(3d past"):
        read_candle_file(path)


def test_datetimes_far_outside_the_range_are_refused_not_overflowed(tmp_path, reference):
    late = reference[OHLCV].iloc[:3].set_axis(pd.DatetimeIndex(["2300-01-01", "2300-01-01 00:05", "2300-01-01 00:10"]).as_unit("us"))
    path = tmp_path / "ASTERUSDT_5m.parquet"
    late.rename_axis("date").reset_index().to_parquet(path)
    with pytest.raises(DataError, match=r"row 1: timestamp 2300-01-01 00:00:00 UTC is after"):
        read_candle_file(path)
    early = tmp_path / "ASTERUSDT_5m_iso.csv"
    _plain(reference.iloc[:3], ["2008-12-31T23:50:00Z", "2008-12-31T23:55:00Z", "2009-01-01T00:00:00Z"]).to_csv(early, index=False)
    with pytest.raises(DataError, match=r"row 1 \(line 2\): timestamp 2008-12-31 23:50:00 UTC is before 2009-01-01"):
        read_candle_file(early)


def test_blank_lines_and_long_lines_are_named_by_line(tmp_path, reference):
    path = tmp_path / "ASTERUSDT_5m.csv"
    WRITERS["ms_header.csv"](reference, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:10], "", *lines[10:]]) + "\n\n")
    with pytest.raises(DataError, match=r"row 10 \(line 11\): timestamp is missing"):
        read_candle_file(path)
    path.write_text("\n".join([*lines[:10], lines[10] + ",1", *lines[11:]]) + "\n")
    with pytest.raises(DataError, match=r"line 11: 7 fields, but 6 columns"):
        read_candle_file(path)
    path.write_text("\n\n" + "\n".join(lines) + "\n")  # leading blank lines are skipped but counted
    WRITERS["ms_header.csv"](reference, path)
    assert len(read_candle_file(path).candles) == len(reference)


@pytest.mark.parametrize(
    "content, pattern",
    [
        (bytes(range(256)), r"line 1: byte 0x00 .*binary file"),
        ("timestamp,open\n1,caf\xe9\n".encode("latin-1"), r"line 2: byte 0xe9 is not UTF-8"),
        (b"", "the file is empty"),
    ],
)
def test_files_that_are_not_utf8_text_are_refused(tmp_path, content, pattern):
    path = tmp_path / "ASTERUSDT_5m.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        read_candle_file(path)
    gz = tmp_path / "ASTERUSDT_5m.csv.gz"
    gz.write_bytes(content)
    with pytest.raises(DataError, match="not a valid gzip file" if content else "the file is empty"):
        read_candle_file(gz)


def test_funding_rate_files_are_not_candles(tmp_path):
    path = tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="funding rates; data import stores candles only"):
        read_candle_file(path)


@pytest.mark.skipif(not (REAL / "binance-futures").is_dir(), reason="real data folder absent")
@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in (REAL / "binance-futures").glob("*.feather") if "funding" not in p.name)
    if (REAL / "binance-futures").is_dir() else [],
)
def test_real_freqtrade_feather_files_import(name):
    result = read_candle_file(REAL / "binance-futures" / name)
    assert result.symbol.endswith("/USDT:USDT") and result.timeframe in name
    assert len(result.candles) > 1000 and result.candles.index.is_unique
    assert result.candles.index[0] == pd.Timestamp("2023-01-01", tz="UTC")


@pytest.mark.parametrize(
    "first, pattern",
    [
        ("-2025-01-01", r"row 1 \(line 2\): timestamp -2025-01-01 .* is before 2009-01-01"),
        ("0001-01-01", r"row 1 \(line 2\): timestamp 1-01-01 00:00:00 UTC is before 2009-01-01"),
        ("99999-01-01", r"row 1 \(line 2\): timestamp '99999-01-01' is neither"),
        ("2300-01-01T00:00:00Z", r"row 1 \(line 2\): timestamp 2300-01-01 00:00:00 UTC is after"),
    ],
)
def test_odd_iso_dates_are_named_by_row(tmp_path, first, pattern):
    path = tmp_path / "ASTERUSDT_5m.csv"
    path.write_text(f"timestamp,open,high,low,close,volume\n{first},1,2,0.5,1.5,10\n2025-01-01T00:05:00Z,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError, match=pattern):
        read_candle_file(path)
