"""Timeframe arithmetic and look-ahead-free resampling.

A candle is indexed by its *open* time; it is known once it has closed, at
``open + timeframe``. A higher-timeframe bar therefore becomes visible to a base bar
only when the base bar closes at or after the higher bar's close.
"""

from __future__ import annotations

import pandas as pd

from aster_rl.errors import DataError

_UNITS = {"m": "min", "h": "h", "d": "D", "w": "W"}
TIMEFRAME_LADDER = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """``"5m"`` -> ``Timedelta("5min")``; raises DataError on anything else."""
    if not isinstance(timeframe, str) or len(timeframe) < 2 or timeframe[-1] not in _UNITS:
        raise DataError(f"timeframe {timeframe!r}: expected a number and one of m/h/d/w, e.g. '5m'")
    try:
        count = int(timeframe[:-1])
    except ValueError:
        raise DataError(f"timeframe {timeframe!r}: expected a number and one of m/h/d/w, e.g. '5m'") from None
    if count <= 0:
        raise DataError(f"timeframe {timeframe!r}: must be positive")
    unit = timeframe[-1]
    if unit == "w":
        return pd.Timedelta(weeks=count)
    return pd.Timedelta(count, unit=_UNITS[unit])


def timeframe_to_ms(timeframe: str) -> int:
    return int(timeframe_to_timedelta(timeframe) / pd.Timedelta(milliseconds=1))


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
