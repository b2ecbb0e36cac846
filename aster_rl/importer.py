"""Candle files in, validated candle frames out: CSV, Parquet and freqtrade feather/json.

Accepted layouts:

- CSV with or without a header: ``timestamp,open,high,low,close,volume`` (timestamp in
  epoch s, ms, µs or an ISO date), or Binance's 12-column kline dump (``open_time, open,
  high, low, close, volume, close_time, quote_volume, trades, taker_buy_base,
  taker_buy_quote, ignore``); ``.csv.gz`` too.
- Parquet / freqtrade feather: columns ``date`` (or any timestamp alias, or a
  DatetimeIndex) and OHLCV.
- freqtrade json: a list of ``[ms, open, high, low, close, volume]``.

Every file is parsed and checked completely before anything is stored: sorted, unique,
OHLC-consistent, no missing values, bars at least one timeframe apart. A bad file raises
one DataError naming the file, the row and the problem. Gaps are reported, never filled.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.errors import DataError
from aster_rl.market import CANDLE_COLUMNS, OPTIONAL_CANDLE_COLUMNS, find_gaps, validate_candles
from aster_rl.timeframes import timeframe_to_timedelta

logger = logging.getLogger(__name__)

BINANCE_KLINE_COLUMNS = (
    "ts", "open", "high", "low", "close", "volume",
    "close_time", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
PLAIN_COLUMNS = ("ts", "open", "high", "low", "close", "volume")

_ALIASES = {
    "ts": ("ts", "timestamp", "time", "date", "datetime", "open_time", "opentime", "open time", "unix", "t"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "quote volume", "quote_av"),
    "trades": ("trades", "count", "number_of_trades", "num_trades", "trade_count"),
    "taker_buy_volume": ("taker_buy_volume", "taker_buy_base", "taker_buy_base_asset_volume", "tb_base_av"),
}
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB")
_SUFFIXES = (".csv.gz", ".csv", ".txt", ".parquet", ".pq", ".feather", ".json.gz", ".jsongz", ".json")
_NAME_NOISE = {"futures", "future", "spot", "swap", "perp", "mark", "index", "klines", "kline", "candles", "ohlcv"}


@dataclass(frozen=True)
class ImportedCandles:
    """A parsed, validated candle file."""

    path: Path
    symbol: str
    timeframe: str
    candles: pd.DataFrame
    gaps: pd.DataFrame  # first_missing, missing_bars (find_gaps)

    @property
    def missing_bars(self) -> int:
        return int(self.gaps["missing_bars"].sum()) if len(self.gaps) else 0


# ---------------------------------------------------------------- names

def _stem(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def infer_symbol_timeframe(path: str | Path) -> tuple[str | None, str | None]:
    """``ASTERUSDT_5m.csv`` -> ``("ASTER/USDT:USDT", "5m")``; freqtrade ``ASTER_USDT_USDT-5m-futures.feather`` too.

    Inferred symbols are perpetuals (``BASE/QUOTE:QUOTE``); None where the name says nothing.
    """
    tokens = [t for t in re.split(r"[_\-\s.]+", _stem(Path(path))) if t]
    timeframe = None
    symbol_tokens: list[str] = []
    for i, token in enumerate(tokens):
        if re.fullmatch(r"\d+[mhdw]", token):
            timeframe = token
            symbol_tokens = tokens[:i]
            break
    else:
        symbol_tokens = tokens
    symbol_tokens = [t.upper() for t in symbol_tokens if t.lower() not in _NAME_NOISE and not t.isdigit()]
    symbol = None
    if len(symbol_tokens) >= 2:
        base, quote = symbol_tokens[0], symbol_tokens[1]
        settle = symbol_tokens[2] if len(symbol_tokens) >= 3 else quote
        symbol = f"{base}/{quote}:{settle}"
    elif len(symbol_tokens) == 1:
        pair = symbol_tokens[0]
        for quote in _QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                symbol = f"{pair[: -len(quote)]}/{quote}:{quote}"
                break
    return symbol, timeframe


# ---------------------------------------------------------------- reading

class _Rows:
    """Names a data row of a file: ``row 57 (line 58)`` for text files, ``row 57`` otherwise."""

    def __init__(self, path: Path, first_line: int | None) -> None:
        self.path = path
        self.first_line = first_line

    def __call__(self, position: int) -> str:
        row = f"row {position + 1}"
        return row if self.first_line is None else f"{row} (line {position + self.first_line})"

    def error(self, position: int, problem: str) -> DataError:
        return DataError(f"{self.path}: {self(position)}: {problem}")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[pd.DataFrame, _Rows]:
    with _open_text(path) as fh:
        first = fh.readline().strip()
    if not first:
        raise DataError(f"{path}: the file is empty")
    fields = [f.strip().strip('"') for f in first.split(",")]
    has_header = not all(_is_number(f) for f in fields[1:6] if f)
    try:
        frame = pd.read_csv(
            path, header=0 if has_header else None, encoding="utf-8-sig", skipinitialspace=True, low_memory=False
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if not has_header:
        if frame.shape[1] == len(PLAIN_COLUMNS):
            frame.columns = list(PLAIN_COLUMNS)
        elif frame.shape[1] == len(BINANCE_KLINE_COLUMNS):
            frame.columns = list(BINANCE_KLINE_COLUMNS)
        else:
            raise DataError(
                f"{path}: {frame.shape[1]} columns and no header; expected 6 (timestamp,open,high,low,close,volume) "
                f"or Binance's 12 kline columns, or a header naming the columns"
            )
    return frame, _Rows(path, 2 if has_header else 1)


def _read_json(path: Path) -> pd.DataFrame:
    try:
        with _open_text(path) as fh:
            payload = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if isinstance(payload, list) and payload and isinstance(payload[0], list):
        width = len(payload[0])
        if width < 6:
            raise DataError(f"{path}: rows have {width} values; expected [timestamp, open, high, low, close, volume]")
        names = BINANCE_KLINE_COLUMNS if width == len(BINANCE_KLINE_COLUMNS) else PLAIN_COLUMNS
        try:
            return pd.DataFrame([row[: len(names)] for row in payload], columns=list(names))
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: rows of unequal length ({e})") from None
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return pd.DataFrame.from_records(payload)
    if isinstance(payload, list) and not payload:
        raise DataError(f"{path}: the file holds no candles")
    raise DataError(f"{path}: expected a list of [timestamp, open, high, low, close, volume] rows")


def _read_table(path: Path, reader: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    try:
        frame = reader(path)
    except (OSError, ValueError, ImportError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names="ts")
    return frame


def _read_any(path: Path) -> tuple[pd.DataFrame, _Rows]:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return _read_csv(path)
    if name.endswith((".parquet", ".pq")):
        return _read_table(path, pd.read_parquet), _Rows(path, None)
    if name.endswith(".feather"):
        return _read_table(path, pd.read_feather), _Rows(path, None)
    if name.endswith((".json", ".json.gz", ".jsongz")):
        return _read_json(path), _Rows(path, None)
    raise DataError(f"{path}: unknown file type; expected .csv, .csv.gz, .parquet, .feather or .json")


# ---------------------------------------------------------------- columns and values

def _canonical_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    lookup = {alias: canonical for canonical, aliases in _ALIASES.items() for alias in aliases}
    renamed: dict[str, str] = {}
    for column in frame.columns:
        key = str(column).strip().lower()
        canonical = lookup.get(key)
        if canonical is not None and canonical not in renamed.values():
            renamed[column] = canonical
    frame = frame.rename(columns=renamed)
    missing = [c for c in PLAIN_COLUMNS if c not in frame.columns]
    if missing:
        names = "timestamp" if missing == ["ts"] else ", ".join("timestamp" if m == "ts" else m for m in missing)
        raise DataError(f"{path}: no {names} column among {list(map(str, frame.columns))}")
    keep = [c for c in (*PLAIN_COLUMNS, *OPTIONAL_CANDLE_COLUMNS) if c in frame.columns]
    return frame[keep]


_UNIT_FACTORS_MS = ((1e17, 1e-6), (1e14, 1e-3), (1e11, 1.0), (0.0, 1e3))  # ns, µs, ms, s -> ms


def _numeric_timestamps(values: np.ndarray) -> np.ndarray:
    """Epoch numbers of any unit (s, ms, µs, ns, told apart by size) -> epoch ms."""
    magnitude = np.abs(values)
    factor = np.select([magnitude >= lo for lo, _ in _UNIT_FACTORS_MS], [f for _, f in _UNIT_FACTORS_MS])
    return np.round(values * factor).astype(np.int64)


def _parse_timestamps(series: pd.Series, rows: _Rows) -> pd.DatetimeIndex:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series.dtype):
        stamps = pd.DatetimeIndex(series)
        stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
        if stamps.hasnans:
            raise rows.error(int(np.flatnonzero(stamps.isna())[0]), "timestamp is missing")
        return stamps.as_unit("us")
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().all():
        ms = _numeric_timestamps(numbers.to_numpy(dtype=float))
        return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).as_unit("us")
    if series.isna().any():
        raise rows.error(int(np.flatnonzero(series.isna().to_numpy())[0]), "timestamp is missing")
    if pd.notna(numbers.iloc[0]):
        bad = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise rows.error(bad, f"timestamp {series.iloc[bad]!r} is not a number like the rows before it")
    parsed = pd.to_datetime(series.astype(str).str.strip(), utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise rows.error(bad, f"timestamp {series.iloc[bad]!r} is neither an epoch number nor an ISO date")
    return pd.DatetimeIndex(parsed).as_unit("us")


def _numeric_column(frame: pd.DataFrame, column: str, rows: _Rows, required: bool) -> np.ndarray | None:
    raw = frame[column]
    values = raw.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(raw.dtype) else None
    if values is None:
        coerced = pd.to_numeric(raw, errors="coerce")
        not_number = coerced.isna() & raw.notna()
        if not_number.any():
            bad = int(np.flatnonzero(not_number.to_numpy())[0])
            raise rows.error(bad, f"{column} {raw.iloc[bad]!r} is not a number")
        values = coerced.to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    if missing.all() and not required:
        return None
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        what = "missing" if np.isnan(values[bad]) else f"{values[bad]} (not finite)"
        raise rows.error(bad, f"{column} is {what}; {int(missing.sum())} such rows")
    return values


# ---------------------------------------------------------------- checks

def _check_order(index: pd.DatetimeIndex, timeframe: str, rows: _Rows) -> None:
    ms = index.as_unit("ms").asi8
    if len(ms) < 2:
        return
    deltas = np.diff(ms)
    if (deltas < 0).any():
        r = int(np.flatnonzero(deltas < 0)[0]) + 1
        raise rows.error(r, f"timestamp {index[r]} is earlier than the row before it ({index[r - 1]}); sort the file")
    if (deltas == 0).any():
        r = int(np.flatnonzero(deltas == 0)[0]) + 1
        raise rows.error(r, f"repeats the timestamp {index[r]} of {rows(r - 1)}; remove the duplicate")
    step_ms = int(timeframe_to_timedelta(timeframe) / pd.Timedelta(milliseconds=1))
    if (deltas < step_ms).any():
        r = int(np.flatnonzero(deltas < step_ms)[0]) + 1
        raise rows.error(
            r, f"bar at {index[r]} opens {pd.Timedelta(milliseconds=int(deltas[r - 1]))} after the previous one, "
            f"less than the {timeframe} timeframe; pass the right --timeframe"
        )


def _check_ohlc(values: dict[str, np.ndarray], index: pd.DatetimeIndex, rows: _Rows) -> None:
    o, h, l, c, v = (values[k] for k in CANDLE_COLUMNS)
    problems = (
        (h < l, lambda r: f"high {h[r]} < low {l[r]}"),
        (l <= 0, lambda r: f"low {l[r]} is not positive"),
        (o > h, lambda r: f"open {o[r]} > high {h[r]}"),
        (c > h, lambda r: f"close {c[r]} > high {h[r]}"),
        (o < l, lambda r: f"open {o[r]} < low {l[r]}"),
        (c < l, lambda r: f"close {c[r]} < low {l[r]}"),
        (v < 0, lambda r: f"volume {v[r]} is negative"),
    )
    first_bad, message = len(o), ""
    for mask, describe in problems:
        hits = np.flatnonzero(mask)
        if len(hits) and hits[0] < first_bad:
            first_bad, message = int(hits[0]), describe(int(hits[0]))
    if message:
        raise rows.error(first_bad, f"{index[first_bad]}: {message}; need 0 < low <= open, close <= high")


# ---------------------------------------------------------------- entry point

def read_candle_file(path: str | Path, symbol: str | None = None, timeframe: str | None = None) -> ImportedCandles:
    """Parse and fully validate one candle file; symbol/timeframe come from the name unless given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    inferred_symbol, inferred_tf = infer_symbol_timeframe(path)
    symbol = symbol or inferred_symbol
    timeframe = timeframe or inferred_tf
    if symbol is None:
        raise DataError(f"{path}: cannot tell the symbol from the file name; pass --symbol, e.g. ASTER/USDT:USDT")
    if timeframe is None:
        raise DataError(f"{path}: cannot tell the timeframe from the file name; pass --timeframe, e.g. 5m")
    try:
        timeframe_to_timedelta(timeframe)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None

    raw, rows = _read_any(path)
    if raw.empty:
        raise DataError(f"{path}: the file holds no candles")
    frame = _canonical_columns(raw, path)
    index = _parse_timestamps(frame["ts"], rows)
    values: dict[str, np.ndarray] = {}
    for column in (*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS):
        if column in frame.columns:
            parsed = _numeric_column(frame, column, rows, required=column in CANDLE_COLUMNS)
            if parsed is not None:
                values[column] = parsed
    _check_order(index, timeframe, rows)
    _check_ohlc(values, index, rows)
    candles = validate_candles(pd.DataFrame(values, index=index), str(path))
    gaps = find_gaps(candles, timeframe)
    if len(gaps):
        logger.warning(
            "%s: %d gaps, %d missing %s bars (first missing bar %s); not filled",
            path, len(gaps), int(gaps["missing_bars"].sum()), timeframe, gaps["first_missing"].iloc[0],
        )
    logger.info("%s: %d %s bars of %s, %s .. %s", path, len(candles), timeframe, symbol, index[0], index[-1])
    return ImportedCandles(path=path, symbol=symbol, timeframe=timeframe, candles=candles, gaps=gaps)
