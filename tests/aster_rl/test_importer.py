"""Candle-file import: every supported layout parses to the same frame; bad files fail on one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.paths import real_data_dir
from aster_rl.importer import infer_symbol_timeframe, read_candle_file
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
    with pytest.raises(DataError, match="the file name says 15m but the bars are mostly 5m apart .*--timeframe 5m"):
        read_candle_file(path)


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
