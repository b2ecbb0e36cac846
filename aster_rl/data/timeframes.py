"""Timeframe arithmetic and look-ahead-free resampling.

A candle is indexed by its *open* time; it is known once it has closed, at
``open + timeframe``. A higher-timeframe bar therefore becomes visible to a base bar
only when the base bar closes at or after the higher bar's close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.errors import DataError

_MINUTES = {"m": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
TIMEFRAME_LADDER = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
LONGEST_TIMEFRAME = "4w"
_LONGEST_MINUTES = 4 * _MINUTES["w"]
_FORM = "a whole number and one of m/h/d/w, e.g. '5m'"
_WEEK_ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: weekly bars open on Mondays
_EPOCH = pd.Timestamp(0, tz="UTC")


def parse_utc_time(text: str, what: str) -> pd.Timestamp:
    """A user-given time (``2025-04-01``, ``2025-04-01T12:00``, with or without a zone) as UTC;
    anything else is a one-line :class:`DataError` naming ``what`` (e.g. ``--start``)."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise DataError(f"{what} {text!r}: not a time; use e.g. 2025-04-01 or 2025-04-01T12:00 (UTC)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_RANGE_FORM = ("START-END, each side YYYYMMDD (or 10-digit Unix seconds, 13-digit milliseconds) and either side may be "
               "empty, e.g. 20250919-20251031 or 20250919-; UTC, the end excluded")


@dataclass(frozen=True)
class TimeRange:
    """Bars whose open time lies in ``[start, end)`` (UTC); a side that is None is open."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None
    text: str

    def __str__(self) -> str:
        return self.text

    def bar_span(self, index: pd.DatetimeIndex, what: str = "--timerange") -> tuple[int, int]:
        """Positions ``[lo, hi)`` of ``index`` (bar open times) inside the range; DataError naming the
        stored range when none is."""
        lo = 0 if self.start is None else int(index.searchsorted(self.start, side="left"))
        hi = len(index) if self.end is None else int(index.searchsorted(self.end, side="left"))
        if lo >= hi:
            stored = f"{index[0]:%Y-%m-%d %H:%M} .. {index[-1]:%Y-%m-%d %H:%M} UTC" if len(index) else "empty"
            raise DataError(f"{what} {self.text}: no stored bar lies in it; the stored market runs {stored}")
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        """The range as written in a run's files: its text and ISO bounds (``end`` excluded)."""
        return {"text": self.text, "start": None if self.start is None else self.start.isoformat(),
                "end": None if self.end is None else self.end.isoformat()}


def _range_side(digits: str, text: str, what: str) -> pd.Timestamp | None:
    if not digits:
        return None
    if len(digits) == 8:
        try:
            return pd.Timestamp(pd.to_datetime(digits, format="%Y%m%d"), tz="UTC")
        except (ValueError, OverflowError):
            raise DataError(f"{what} {text!r}: {digits} is not a calendar date; expected {_RANGE_FORM}") from None
    if len(digits) in (10, 13):
        return pd.Timestamp(int(digits), unit="s" if len(digits) == 10 else "ms", tz="UTC")
    raise DataError(f"{what} {text!r}: expected {_RANGE_FORM}")


def parse_timerange(text: str, what: str = "--timerange") -> TimeRange:
    """A time range in freqtrade's ``--timerange`` syntax (``20250919-20251031``, ``20250919-``,
    ``-20251031``; Unix seconds or milliseconds also) as a :class:`TimeRange` with the end excluded;
    anything else, or an end not after the start, is a one-line :class:`DataError` naming ``what``."""
    match = re.fullmatch(r"([0-9]*)-([0-9]*)", text) if isinstance(text, str) else None
    if match is None or not (match.group(1) or match.group(2)):
        raise DataError(f"{what} {text!r}: expected {_RANGE_FORM}")
    start, end = (_range_side(g, text, what) for g in match.groups())
    if start is not None and end is not None and end <= start:
        raise DataError(f"{what} {text!r}: the end {end:%Y-%m-%d %H:%M} is not after the start "
                        f"{start:%Y-%m-%d %H:%M} (the end is excluded)")
    return TimeRange(start, end, text)


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """``"5m"`` -> ``Timedelta("5min")``: whole minutes, hours, days or weeks from 1m to 4w; DataError otherwise."""
    match = re.fullmatch(r"([0-9]+)([mhdw])", timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise DataError(f"timeframe {timeframe!r}: expected {_FORM}")
    digits, unit = match.groups()
    if int(digits) == 0:
        raise DataError(f"timeframe {timeframe!r}: must be positive")
    if digits.startswith("0"):
        raise DataError(f"timeframe {timeframe!r}: write it without leading zeros, e.g. '{int(digits)}{unit}'")
    if len(digits) > 6 or int(digits) * _MINUTES[unit] > _LONGEST_MINUTES:
        raise DataError(f"timeframe {timeframe!r}: longer than {LONGEST_TIMEFRAME}, the longest bar supported")
    return pd.Timedelta(minutes=int(digits) * _MINUTES[unit])


def timeframe_to_ms(timeframe: str) -> int:
    return int(timeframe_to_timedelta(timeframe) / pd.Timedelta(milliseconds=1))


def timedelta_to_timeframe(step: pd.Timedelta) -> str | None:
    """``Timedelta("1h")`` -> ``"1h"`` (the largest whole unit); None when no timeframe is that long."""
    minutes, rest = divmod(step, pd.Timedelta(minutes=1))
    if rest != pd.Timedelta(0) or not 0 < minutes <= _LONGEST_MINUTES:
        return None
    for unit in ("w", "d", "h", "m"):
        if minutes % _MINUTES[unit] == 0:
            return f"{minutes // _MINUTES[unit]}{unit}"
    return None  # pragma: no cover - every whole minute count matches "m"


def grid_origin(timeframe: str) -> pd.Timestamp:
    """Where the timeframe's bars are counted from: the epoch, or a Monday for weekly bars."""
    return _WEEK_ORIGIN if timeframe_to_timedelta(timeframe) % pd.Timedelta(weeks=1) == pd.Timedelta(0) else _EPOCH


def off_grid(open_times_ns: np.ndarray, timeframe: str) -> np.ndarray:
    """True where an open time (epoch ns) is not a whole number of bars from :func:`grid_origin`."""
    step = timeframe_to_timedelta(timeframe).value
    return (np.asarray(open_times_ns, dtype=np.int64) - grid_origin(timeframe).value) % step != 0


def higher_timeframes(base: str, ladder: tuple[str, ...] = TIMEFRAME_LADDER) -> list[str]:
    """The ladder's timeframes that are at least ``base`` and whole multiples of it."""
    base_td = timeframe_to_timedelta(base)
    out = []
    for tf in ladder:
        td = timeframe_to_timedelta(tf)
        if td >= base_td and td % base_td == pd.Timedelta(0):
            out.append(tf)
    return out


def resample_candles(candles: pd.DataFrame, base: str, target: str) -> pd.DataFrame:
    """Aggregate base candles into *complete* ``target`` candles, indexed by open time.

    A target bucket is complete when its last base bar (opening at
    ``bucket + target - base``) is present; the still-forming bucket at the end is dropped.
    Sums are taken for volume-like columns, first/max/min/last for OHLC.
    """
    base_td, target_td = timeframe_to_timedelta(base), timeframe_to_timedelta(target)
    if target_td % base_td != pd.Timedelta(0):
        raise DataError(f"cannot resample {base} candles to {target}: not a whole multiple")
    if target_td == base_td:
        return candles.copy()
    bucket = candles.index.floor(target_td)
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    for col in ("quote_volume", "trades", "taker_buy_volume"):
        if col in candles.columns:
            agg[col] = "sum"
    grouped = candles.groupby(bucket)
    out = grouped.agg(agg)
    last_open = pd.Series(candles.index, index=candles.index).groupby(bucket).last()
    complete = last_open.to_numpy() == (out.index + target_td - base_td).to_numpy()
    out = out[complete]
    out.index.name = candles.index.name
    return out


def align_closed(higher: pd.DataFrame, base_index: pd.DatetimeIndex, base: str, target: str) -> pd.DataFrame:
    """Give each base bar the newest ``target`` bar that had closed when the base bar closed.

    Rows before the first closed higher bar are NaN (callers fill them with neutral values).
    """
    base_td, target_td = timeframe_to_timedelta(base), timeframe_to_timedelta(target)
    visible_from = higher.index + target_td - base_td  # open time of the base bar that closes with it
    right = higher.copy()
    right.index = visible_from
    right = right.sort_index()
    left = pd.DataFrame(index=base_index)
    merged = pd.merge_asof(left, right, left_index=True, right_index=True, direction="backward")
    merged.index = base_index
    return merged
