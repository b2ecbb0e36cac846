"""The multi_timeframe tentacle: the trend on every timeframe of the ladder, and their confluence.

For each timeframe of ``timeframes`` (default 1m, 5m, 15m, 30m, 1h, 4h, 1d) that is at
least the base timeframe and a whole multiple of it, the base candles are aggregated
into *complete* bars (:func:`aster_rl.data.timeframes.resample_candles`) and each base bar
sees only the newest bar of that timeframe that had closed when the base bar closed
(:func:`aster_rl.data.timeframes.align_closed`). A 5m bar at 10:25 therefore reads the
09:00–10:00 hour, never the unfinished 10:00 hour.

Trend on a timeframe: +1 when its close is above the EMA (``ema_span`` of that
timeframe's closes) by more than ``deadband``, −1 when below by more, else 0. It is
available once ``min_bars`` bars of that timeframe have closed; before that the trend
is 0 and ``multi_timeframe_available_<tf>`` is 0.

Alignment = (bullish − bearish) / number of available timeframes (0 when none), in −1..1.

``multi_timeframe_bullish_count``, ``_bearish_count`` and ``_considered`` count timeframes:
bounded by the ladder's length, but on a history shorter than ``min_bars`` of the slowest
timeframe they grow as the higher timeframes come online (a 6-week market trains with at
most 5 available and is tested with 6), so a count never seen in training is a matter of
elapsed history, not of the market. They are listed in :data:`HISTORY_COUNT_COLUMNS` and
left out of the policy's observation (``aster_rl.evaluation.support``) like the cycle's time
index; the per-timeframe trends and the alignment (a share, -1..1) carry the same
information scale-free. They stay in the matrix for the readings and the brain report.

The declared warm-up counts base bars for the base timeframe's own trend; higher
timeframes switch on later through their availability flags.
:func:`history_bars` gives the base bars needed until every timeframe is available.
"""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles.base import Tentacle
from aster_rl.data.timeframes import TIMEFRAME_LADDER, align_closed, higher_timeframes, resample_candles, timeframe_to_timedelta

logger = logging.getLogger(__name__)

NAME = "multi_timeframe"
DEFAULTS: dict[str, Any] = {
    "timeframes": TIMEFRAME_LADDER,
    "ema_span": 20,
    "min_bars": 20,
    "deadband": 0.0005,
    "distance_clip": 1.0,
}


# Counts of timeframes that grow with the available history: left out of the policy's observation.
HISTORY_COUNT_COLUMNS: tuple[str, ...] = (f"{NAME}_bullish_count", f"{NAME}_bearish_count", f"{NAME}_considered")


def considered_timeframes(base: str, timeframes: Sequence[str] = TIMEFRAME_LADDER) -> list[str]:
    """The timeframes of ``timeframes`` that are ≥ ``base`` and whole multiples of it."""
    return higher_timeframes(base, tuple(timeframes))


def history_bars(base: str, params: dict[str, Any] | None = None) -> int:
    """Base bars needed before the slowest timeframe has ``min_bars`` closed bars."""
    p = {**DEFAULTS, **(params or {})}
    tfs = considered_timeframes(base, p["timeframes"])
    if not tfs:
        return 0
    base_td = timeframe_to_timedelta(base)
    slowest = max(timeframe_to_timedelta(tf) for tf in tfs)
    return int((p["min_bars"] + 1) * (slowest // base_td))


def trend_of(close, ema, count, min_bars: int, deadband: float, distance_clip: float):
    """(trend, distance, available) of closed bars of one timeframe, from their close and EMA.

    ``count`` is the number of closed bars up to and including each one. Works on arrays
    (every closed bar) and on scalars (the newest closed bar, for incremental updates).
    """
    distance = np.clip(np.asarray(close, dtype=float) / ema - 1.0, -distance_clip, distance_clip)
    trend = np.where(distance > deadband, 1.0, np.where(distance < -deadband, -1.0, 0.0))
    available = (np.asarray(count) >= min_bars).astype(float)
    return trend * available, distance * available, available


def _trend_on(candles: pd.DataFrame, base: str, tf: str, index: pd.DatetimeIndex, ema_span: int, min_bars: int, deadband: float, distance_clip: float) -> pd.DataFrame:
    higher = resample_candles(candles[["open", "high", "low", "close", "volume"]], base, tf)
    close = higher["close"].astype(float)
    ema = close.ewm(span=ema_span, adjust=False).mean()
    trend, distance, available = trend_of(
        close.to_numpy(), ema.to_numpy(), np.arange(1, len(close) + 1), min_bars, deadband, distance_clip
    )
    per_tf = pd.DataFrame({"trend": trend, "distance": distance, "available": available}, index=higher.index)
    aligned = align_closed(per_tf, index, base, tf)
    return aligned.fillna(0.0)


def features(
    market: MarketBundle,
    context: pd.DataFrame,
    timeframes: Sequence[str] = TIMEFRAME_LADDER,
    ema_span: int = 20,
    min_bars: int = 20,
    deadband: float = 0.0005,
    distance_clip: float = 1.0,
) -> pd.DataFrame:
    candles = market.candles
    index = candles.index
    base = market.timeframe
    tfs = considered_timeframes(base, timeframes)
    out: dict[str, np.ndarray] = {}
    n = len(index)
    bullish = np.zeros(n)
    bearish = np.zeros(n)
    considered = np.zeros(n)
    for tf in tfs:
        per = _trend_on(candles, base, tf, index, ema_span, min_bars, deadband, distance_clip)
        trend = per["trend"].to_numpy(dtype=float)
        avail = per["available"].to_numpy(dtype=float)
        out[f"{NAME}_trend_{tf}"] = trend
        out[f"{NAME}_distance_{tf}"] = per["distance"].to_numpy(dtype=float)
        out[f"{NAME}_available_{tf}"] = avail
        bullish += trend > 0
        bearish += trend < 0
        considered += avail
    with np.errstate(divide="ignore", invalid="ignore"):
        alignment = np.where(considered > 0, (bullish - bearish) / np.maximum(considered, 1.0), 0.0)
    out[f"{NAME}_alignment"] = alignment
    out[f"{NAME}_bullish_count"] = bullish
    out[f"{NAME}_bearish_count"] = bearish
    out[f"{NAME}_considered"] = considered
    frame = pd.DataFrame(out, index=index)
    return frame


def _tf_of(column: str, prefix: str) -> str:
    return column[len(prefix):]


def reading(row: pd.Series) -> str:
    """``"5 of 7 timeframes bullish, 1 bearish (alignment +0.57): 1m up, 5m up, ..., 1d n/a"``."""
    bull = int(row.get(f"{NAME}_bullish_count", 0))
    bear = int(row.get(f"{NAME}_bearish_count", 0))
    considered = int(row.get(f"{NAME}_considered", 0))
    alignment = float(row.get(f"{NAME}_alignment", 0.0))
    prefix = f"{NAME}_trend_"
    parts = []
    for col in row.index:
        if isinstance(col, str) and col.startswith(prefix):
            tf = _tf_of(col, prefix)
            if float(row.get(f"{NAME}_available_{tf}", 1.0)) < 0.5:
                parts.append(f"{tf} n/a")
            else:
                t = float(row[col])
                parts.append(f"{tf} {'up' if t > 0 else 'down' if t < 0 else 'flat'}")
    detail = ", ".join(parts)
    return f"{bull} of {considered} timeframes bullish, {bear} bearish (alignment {alignment:+.2f})" + (f": {detail}" if detail else "")


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=lambda p: int({**DEFAULTS, **p}["min_bars"]), defaults=DEFAULTS)
