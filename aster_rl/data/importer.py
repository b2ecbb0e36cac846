"""Candle files in, validated candle frames out: CSV, Parquet and freqtrade feather/json.

Accepted layouts:

- CSV with or without a header: ``timestamp,open,high,low,close,volume`` (timestamp in
  epoch s, ms, µs or an ISO date), or Binance's 12-column kline dump (``open_time, open,
  high, low, close, volume, close_time, quote_volume, trades, taker_buy_base,
  taker_buy_quote, ignore``); ``.csv.gz`` too.
- Parquet / freqtrade feather: columns ``date`` (or any timestamp alias, or a
  DatetimeIndex) and OHLCV.
- freqtrade json: a list of ``[ms, open, high, low, close, volume]``.

Every file is parsed and checked completely before anything is stored: UTF-8 text (or a
readable table), sorted, unique, no missing or infinite values, OHLC-consistent, one epoch
unit for every row, bars opening between 2009-01-01 and now plus one bar, on the
timeframe's grid, and mostly one timeframe apart (the timeframe stated, or else inferred
from that spacing). A bad file raises one DataError naming the file, the row (and line)
and the problem. Gaps are reported, never filled.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aster_rl.errors import DataError
from aster_rl.data.market import (
    CANDLE_COLUMNS,
    OPTIONAL_CANDLE_COLUMNS,
    find_gaps,
    validate_candles,
)
from aster_rl.data.timeframes import (
    LONGEST_TIMEFRAME,
    grid_origin,
    off_grid,
    timedelta_to_timeframe,
    timeframe_to_timedelta,
)

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
    rows: _Rows  # names a row of the file: rows(position) -> "row 57 (line 58)"

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


_SNIFF_BYTES = 1 << 16
_CONTROL_BYTES = bytes([*range(0x09), *range(0x0E, 0x20), 0x7F])  # no text file holds these; tab, CR, LF pass


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.lower().endswith((".gz", ".jsongz")):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid gzip file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _text_bytes(path: Path) -> bytes:
    """The file's bytes, checked to be UTF-8 text (a BOM is dropped); binary or otherwise encoded files are
    refused naming the line."""
    data = _read_bytes(path).removeprefix(codecs.BOM_UTF8)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path}: line 1: the file is UTF-16 text; save it as UTF-8")
    head = data[:_SNIFF_BYTES]  # a binary file shows itself early; a stray control byte later fails as a bad value
    control = re.search(b"[" + re.escape(_CONTROL_BYTES) + b"]", head)
    if control is not None:
        at = control.start()
        raise DataError(
            f"{path}: line {_line_of(data, at)}: byte 0x{data[at]:02x} is a control character; "
            f"this is a binary file, not text"
        )
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}: line {_line_of(data, e.start)}: byte 0x{data[e.start]:02x} is not UTF-8; "
                f"save the file as UTF-8 text"
            ) from None
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_long_line(text: str, fields: int) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count(",") + 1 > fields:
            return number
    return None


def _read_csv(path: Path) -> tuple[pd.DataFrame, _Rows]:
    data = _text_bytes(path)
    blank = re.match(rb"\s*", data)  # always matches, possibly empty
    start = blank.end() if blank is not None else 0
    skipped = data.count(b"\n", 0, start)  # blank lines before the first row
    end = len(data)
    while end > start and data[end - 1] in b" \t\r\n\x0b\x0c":  # trailing blank lines are no rows (bytes.rstrip copies)
        end -= 1
    body = data[start:end]
    newline = body.find(b"\n")
    first = body[: newline if newline >= 0 else len(body)].decode("utf-8").strip()
    if not first:
        raise DataError(f"{path}: the file is empty")
    fields = [f.strip().strip('"') for f in first.split(",")]
    has_header = len(fields) < 2 or not all(_is_number(f) for f in fields[1:6] if f)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(body), header=0 if has_header else None, index_col=False, encoding="utf-8",
                skipinitialspace=True, skip_blank_lines=False, low_memory=False,
            )
    except pd.errors.ParserWarning:
        line = _first_long_line(body.decode("utf-8"), len(fields))
        line = None if line is None else line + skipped
        where = f"line {line}" if line is not None else "a line"
        raise DataError(f"{path}: {where} has more fields than the {len(fields)} columns of the header") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as e:
        fields_error = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if fields_error:
            expected, line, seen = map(int, fields_error.groups())
            raise DataError(f"{path}: line {line + skipped}: {seen} fields, but {expected} columns before it") from None
        raise DataError(f"{path}: not a readable CSV ({str(e).strip().splitlines()[0] if str(e).strip() else e!r})") from None
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
    return frame, _Rows(path, skipped + (2 if has_header else 1))


def _read_json(path: Path) -> pd.DataFrame:
    try:
        payload = json.loads(_text_bytes(path).decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError, as is an over-long number
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if isinstance(payload, list) and not payload:
        raise DataError(f"{path}: the file holds no candles")
    if not isinstance(payload, list) or not isinstance(payload[0], (list, dict)):
        raise DataError(f"{path}: expected a list of [timestamp, open, high, low, close, volume] rows")
    kind = type(payload[0])
    odd = next((i for i, row in enumerate(payload) if type(row) is not kind), None)
    if odd is not None:
        raise DataError(f"{path}: row {odd + 1} is not a {kind.__name__} like the rows before it")
    if kind is dict:
        return pd.DataFrame.from_records(payload)
    width = len(payload[0])
    if width < len(PLAIN_COLUMNS):
        raise DataError(f"{path}: rows have {width} values; expected [timestamp, open, high, low, close, volume]")
    short = next((i for i, row in enumerate(payload) if len(row) < len(PLAIN_COLUMNS)), None)
    if short is not None:
        raise DataError(f"{path}: row {short + 1} has {len(payload[short])} values; expected at least 6")
    names = BINANCE_KLINE_COLUMNS if width == len(BINANCE_KLINE_COLUMNS) else PLAIN_COLUMNS
    return pd.DataFrame([row[: len(names)] for row in payload], columns=list(names))


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
        hint = "; separate the columns with commas" if frame.shape[1] == 1 and re.search(r"[;\t|]", str(frame.columns[0])) else ""
        raise DataError(f"{path}: no {names} column among {list(map(str, frame.columns))}{hint}")
    keep = [c for c in (*PLAIN_COLUMNS, *OPTIONAL_CANDLE_COLUMNS) if c in frame.columns]
    return frame[keep]


EARLIEST_BAR = pd.Timestamp("2009-01-01", tz="UTC")
_UNIT_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_UNIT_NS = (10**9, 10**6, 10**3, 1)
_UNIT_BOUNDS = (1e11, 1e14, 1e17)  # epoch numbers below 1e11 are seconds, below 1e14 ms, below 1e17 µs, else ns


def _as_date(ns: float) -> str:
    if not np.isfinite(ns) or not pd.Timestamp.min.value <= ns <= pd.Timestamp.max.value:
        return "beyond the calendar"
    return _show(pd.Timestamp(int(ns), tz="UTC"))


def _show(ts: pd.Timestamp) -> str:
    try:
        return f"{ts:%Y-%m-%d %H:%M:%S} UTC"
    except (ValueError, NotImplementedError):  # years before 1 or after 9999 have no strftime
        return str(ts)


def _out_of_range(stamp: pd.Timestamp | float, latest: pd.Timestamp) -> str:
    early = stamp < (EARLIEST_BAR.value if isinstance(stamp, float) else EARLIEST_BAR)
    if early:
        return "is before 2009-01-01; no real bar opens then"
    return f"is after {latest:%Y-%m-%d %H:%M} UTC, later than a bar can open now"


def _range_error(rows: _Rows, position: int, shown: object, ns: float, latest: pd.Timestamp) -> DataError:
    return rows.error(position, f"timestamp {shown} ({_as_date(ns)}) {_out_of_range(ns, latest)}")


def _check_range(ns: np.ndarray, raw: pd.Series, latest: pd.Timestamp, rows: _Rows) -> None:
    bad = ~((ns >= EARLIEST_BAR.value) & (ns <= latest.value))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise _range_error(rows, r, raw.iloc[r], float(ns[r]), latest)


def _numeric_ns(numbers: pd.Series, raw: pd.Series, latest: pd.Timestamp, rows: _Rows) -> np.ndarray:
    """Epoch numbers -> epoch ns; the unit (s, ms, µs or ns, told apart by size) is the same for every row."""
    values = numbers.to_numpy()
    floats = values.astype(float)
    units = np.searchsorted(_UNIT_BOUNDS, np.abs(floats), side="right")
    counts = np.bincount(units, minlength=len(_UNIT_NS))
    unit = int(units[0]) if counts[units[0]] == counts.max() else int(counts.argmax())  # ties: the first row's
    scaled = floats * _UNIT_NS[unit]
    bad = ~((scaled >= EARLIEST_BAR.value) & (scaled <= latest.value))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        if not np.isfinite(floats[r]):
            raise rows.error(r, f"timestamp {raw.iloc[r]} is not a finite number")
        own = floats[r] * _UNIT_NS[units[r]]
        if units[r] != unit and EARLIEST_BAR.value <= own <= latest.value:
            raise rows.error(
                r, f"timestamp {raw.iloc[r]} is in {_UNIT_NAMES[units[r]]} while the file's timestamps are in "
                f"{_UNIT_NAMES[unit]}; use one unit for the whole file",
            )
        raise _range_error(rows, r, raw.iloc[r], float(scaled[r]), latest)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype(np.int64) * _UNIT_NS[unit]
    ms = floats * 1e3 if unit == 0 else floats / (_UNIT_NS[1] // _UNIT_NS[unit])  # dividing keeps whole ms exact
    whole_ms = np.rint(ms)
    return whole_ms.astype(np.int64) * _UNIT_NS[1] + np.rint((ms - whole_ms) * _UNIT_NS[1]).astype(np.int64)


def _parse_timestamps(series: pd.Series, rows: _Rows, latest: pd.Timestamp) -> np.ndarray:
    """Bar open times as epoch ns, each between 2009-01-01 and ``latest``."""
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series.dtype):
        stamps = pd.DatetimeIndex(series)
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.notna().all():
            return _numeric_ns(numbers, series, latest, rows)
        if series.isna().any():
            raise rows.error(int(np.flatnonzero(series.isna().to_numpy())[0]), "timestamp is missing")
        if pd.notna(numbers.iloc[0]):
            bad = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise rows.error(bad, f"timestamp {series.iloc[bad]!r} is not a number like the rows before it")
        parsed = pd.to_datetime(series.astype(str).str.strip(), utc=True, format="ISO8601", errors="coerce")
        if parsed.isna().any():
            bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise rows.error(bad, f"timestamp {series.iloc[bad]!r} is neither an epoch number nor an ISO date")
        stamps = pd.DatetimeIndex(parsed)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    if stamps.hasnans:
        raise rows.error(int(np.flatnonzero(stamps.isna())[0]), "timestamp is missing")
    bad = ~((stamps >= EARLIEST_BAR) & (stamps <= latest))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise rows.error(r, f"timestamp {_show(stamps[r])} {_out_of_range(stamps[r], latest)}")
    return stamps.as_unit("ns").asi8


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
        count = int(missing.sum())
        raise rows.error(bad, f"{column} is {what}; {count} such row{'s' if count > 1 else ''}")
    return values


# ---------------------------------------------------------------- checks

def _check_order(ns: np.ndarray, rows: _Rows) -> None:
    if len(ns) < 2:
        return
    deltas = np.diff(ns)
    if (deltas < 0).any():
        r = int(np.flatnonzero(deltas < 0)[0]) + 1
        raise rows.error(r, f"timestamp {_as_date(ns[r])} is earlier than the row before it ({_as_date(ns[r - 1])}); sort the file")
    if (deltas == 0).any():
        r = int(np.flatnonzero(deltas == 0)[0]) + 1
        raise rows.error(r, f"repeats the timestamp {_as_date(ns[r])} of {rows(r - 1)}; remove the duplicate")


def _spacing(ns: np.ndarray) -> tuple[pd.Timedelta, float] | None:
    """The most common distance between consecutive bars (the shortest on a tie) and its share of all steps."""
    if len(ns) < 2:
        return None
    steps, counts = np.unique(np.diff(ns), return_counts=True)
    i = int(np.argmax(counts))
    return pd.Timedelta(int(steps[i]), unit="ns"), float(counts[i] / counts.sum())


def _describe_step(step: pd.Timedelta) -> str:
    return timedelta_to_timeframe(step) or str(step).removeprefix("0 days ")


def _settle_timeframe(ns: np.ndarray, stated: str | None, said_by: str, path: Path) -> str:
    """The stated timeframe when the bars' spacing agrees with it; inferred from the spacing when none is stated."""
    spacing = _spacing(ns)
    if spacing is None:
        if stated is None:
            raise DataError(f"{path}: one bar cannot tell the timeframe; pass --timeframe, e.g. 5m")
        return stated
    step, share = spacing
    inferred = timedelta_to_timeframe(step)
    if stated is None:
        if inferred is None:
            raise DataError(
                f"{path}: the bars are mostly {_describe_step(step)} apart ({share:.0%} of steps), which is no "
                f"timeframe (whole minutes, hours, days or weeks up to {LONGEST_TIMEFRAME})"
            )
        return inferred
    if step != timeframe_to_timedelta(stated):
        hint = f"; pass --timeframe {inferred}" if inferred else ""
        raise DataError(
            f"{path}: {said_by} says {stated} but the bars are mostly {_describe_step(step)} apart "
            f"({share:.0%} of steps){hint}"
        )
    return stated


def _check_grid(ns: np.ndarray, timeframe: str, rows: _Rows) -> None:
    bad = off_grid(ns, timeframe)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        step = timeframe_to_timedelta(timeframe).value
        offset = pd.Timedelta(int((ns[r] - grid_origin(timeframe).value) % step), unit="ns")
        raise rows.error(
            r, f"bar at {_as_date(ns[r])} is not on the {timeframe} grid ({_describe_step(offset)} past a bar "
            f"boundary); {int(bad.sum())} such bar{'s' if bad.sum() > 1 else ''}",
        )


def _check_ohlc(values: dict[str, np.ndarray], index: pd.DatetimeIndex, rows: _Rows) -> None:
    o, h, low, c, v = (values[k] for k in CANDLE_COLUMNS)
    problems = (
        (h < low, lambda r: f"high {h[r]} < low {low[r]}"),
        (low <= 0, lambda r: f"low {low[r]} is not positive"),
        (o > h, lambda r: f"open {o[r]} > high {h[r]}"),
        (c > h, lambda r: f"close {c[r]} > high {h[r]}"),
        (o < low, lambda r: f"open {o[r]} < low {low[r]}"),
        (c < low, lambda r: f"close {c[r]} < low {low[r]}"),
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

def read_candle_file(
    path: str | Path, symbol: str | None = None, timeframe: str | None = None, now: pd.Timestamp | None = None
) -> ImportedCandles:
    """Parse and fully validate one candle file.

    The symbol comes from the name unless given; the timeframe from ``timeframe``, else the name, else the
    bars' spacing, and a stated timeframe must match that spacing. Bars open between 2009-01-01 and
    ``now`` (default: the clock) plus one bar, on the timeframe's grid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    inferred_symbol, inferred_tf = infer_symbol_timeframe(path)
    said_by = "--timeframe" if timeframe else "the file name"
    symbol = symbol or inferred_symbol
    timeframe = timeframe or inferred_tf
    if symbol is None:
        raise DataError(f"{path}: cannot tell the symbol from the file name; pass --symbol, e.g. ASTER/USDT:USDT")
    if re.search(r"funding", _stem(path), re.IGNORECASE):
        raise DataError(f"{path}: the name says funding rates; data import stores candles only")
    if timeframe is not None:
        try:
            timeframe_to_timedelta(timeframe)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)

    raw, rows = _read_any(path)
    if raw.empty:
        raise DataError(f"{path}: the file holds no candles")
    frame = _canonical_columns(raw, path)
    ns = _parse_timestamps(frame["ts"], rows, latest=now + timeframe_to_timedelta(timeframe or LONGEST_TIMEFRAME))
    values: dict[str, np.ndarray] = {}
    for column in (*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS):
        if column in frame.columns:
            parsed = _numeric_column(frame, column, rows, required=column in CANDLE_COLUMNS)
            if parsed is not None:
                values[column] = parsed
    _check_order(ns, rows)
    timeframe = _settle_timeframe(ns, timeframe, said_by, path)
    _check_range(ns, frame["ts"], now + timeframe_to_timedelta(timeframe), rows)
    _check_grid(ns, timeframe, rows)
    index = pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True)).as_unit("us")
    _check_ohlc(values, index, rows)
    candles = validate_candles(pd.DataFrame(values, index=index), str(path))
    gaps = find_gaps(candles, timeframe)
    if len(gaps):
        logger.warning(
            "%s: %d gaps, %d missing %s bars (first missing bar %s); not filled",
            path, len(gaps), int(gaps["missing_bars"].sum()), timeframe, gaps["first_missing"].iloc[0],
        )
    logger.info("%s: %d %s bars of %s, %s .. %s", path, len(candles), timeframe, symbol, index[0], index[-1])
    return ImportedCandles(path=path, symbol=symbol, timeframe=timeframe, candles=candles, gaps=gaps, rows=rows)
