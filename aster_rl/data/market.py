"""The market bundle: everything the tentacles may look at, as plain DataFrames.

Conventions (checked by :func:`validate_candles`):

- ``candles``: tz-aware UTC ``DatetimeIndex`` of bar *open* times, sorted and unique;
  float columns ``open high low close volume`` and, when the source has them,
  ``quote_volume trades taker_buy_volume``. Only closed bars.
- ``funding``: index = settlement time (UTC); column ``funding_rate`` (per interval,
  a long pays ``rate * notional`` at that time), optional ``mark_price``.
- ``trades``: index = trade time; columns ``price amount side`` (``side`` is the taker's,
  ``"buy"``/``"sell"``), optional ``notional_usd``.
- ``book``: index = snapshot time; columns ``best_bid best_ask bid_depth_usd ask_depth_usd
  largest_bid_usd largest_ask_usd``.
- ``btc`` / ``eth``: candles of the companion markets, same conventions.

An event with timestamp ``ts`` belongs to the bar whose interval ``[open, open + tf)``
contains it, so it is known at that bar's close.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aster_rl.errors import DataError

CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
OPTIONAL_CANDLE_COLUMNS = ("quote_volume", "trades", "taker_buy_volume")
BOOK_COLUMNS = ("best_bid", "best_ask", "bid_depth_usd", "ask_depth_usd", "largest_bid_usd", "largest_ask_usd")
_NS_PER_TICK = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}  # nanoseconds per tick of a DatetimeIndex unit


@dataclass(frozen=True)
class MarketBundle:
    symbol: str
    timeframe: str
    candles: pd.DataFrame
    funding: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    book: pd.DataFrame | None = None
    btc: pd.DataFrame | None = None
    eth: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.candles)

    def head(self, n: int) -> MarketBundle:
        """The bundle as it was known at the close of candle ``n - 1`` (for look-ahead tests)."""
        if n <= 0:
            raise DataError("MarketBundle.head: n must be positive")
        cut = self.candles.index[min(n, len(self.candles)) - 1]
        return self.until(cut)

    def until(self, last_open: pd.Timestamp) -> MarketBundle:
        """Everything known at the close of the candle that opened at ``last_open``."""
        from aster_rl.data.timeframes import timeframe_to_timedelta

        close_time = last_open + timeframe_to_timedelta(self.timeframe)
        candles = self.candles.loc[:last_open]

        def events(df: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if df is None else df.loc[df.index < close_time]

        def companion(df: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if df is None else df.loc[:last_open]

        return replace(
            self,
            candles=candles,
            funding=events(self.funding),
            trades=events(self.trades),
            book=events(self.book),
            btc=companion(self.btc),
            eth=companion(self.eth),
        )

    def window(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MarketBundle:
        """Bars with open time in ``[start, end]`` and the events of those bars.

        ``None`` stands for the first / last bar. Events are the rows with time in
        ``[start, end + timeframe)``, the companions' bars those opening in ``[start, end]``.
        Each frame is cut by binary search on its sorted time index (O(log n), so a short
        window of a long history costs no full scan); a frame found out of order is cut by
        a mask instead.
        """
        from aster_rl.data.timeframes import timeframe_to_timedelta

        idx = self.candles.index
        lo = start if start is not None else (idx[0] if len(idx) else None)
        hi = end if end is not None else (idx[-1] if len(idx) else None)
        close_time = None if hi is None else hi + timeframe_to_timedelta(self.timeframe)
        return replace(
            self,
            candles=_rows_between(self.candles, lo, hi, closed=True),
            funding=_rows_between(self.funding, lo, close_time, closed=False),
            trades=_rows_between(self.trades, lo, close_time, closed=False),
            book=_rows_between(self.book, lo, close_time, closed=False),
            btc=_rows_between(self.btc, lo, hi, closed=True),
            eth=_rows_between(self.eth, lo, hi, closed=True),
        )


def _rows_between(df: pd.DataFrame | None, lo: pd.Timestamp | None, hi: pd.Timestamp | None, closed: bool) -> pd.DataFrame | None:
    """Rows of ``df`` with time in ``[lo, hi]`` (``closed``) or ``[lo, hi)``; a None bound is open."""
    if df is None or len(df) == 0:
        return df
    idx = df.index
    if isinstance(idx, pd.DatetimeIndex) and idx.is_monotonic_increasing:  # cached on the index
        ticks, per_tick = idx.asi8, _NS_PER_TICK[idx.unit]
        # In the index's unit t: t >= lo <=> t >= ceil(lo); t <= hi <=> t <= floor(hi); t < hi <=> t < ceil(hi).
        a = 0 if lo is None else int(np.searchsorted(ticks, -(-pd.Timestamp(lo).value // per_tick), side="left"))
        if hi is None:
            b = len(ticks)
        elif closed:
            b = int(np.searchsorted(ticks, pd.Timestamp(hi).value // per_tick, side="right"))
        else:
            b = int(np.searchsorted(ticks, -(-pd.Timestamp(hi).value // per_tick), side="left"))
        return df.iloc[a : max(a, b)]
    keep = np.ones(len(idx), dtype=bool)
    if lo is not None:
        keep &= np.asarray(idx >= lo)
    if hi is not None:
        keep &= np.asarray(idx <= hi) if closed else np.asarray(idx < hi)
    return df.loc[keep]


def validate_candles(candles: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check the candle conventions; raise one DataError naming ``where``, the row and the problem."""
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; need {list(CANDLE_COLUMNS)}")
    idx = candles.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        raise DataError(f"{where}: index must be a tz-aware UTC DatetimeIndex of bar open times")
    if len(idx) and not idx.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(idx.asi8) < 0)) + 1
        raise DataError(f"{where}: row {bad} ({idx[bad]}) is earlier than the row before it; sort the data")
    if idx.has_duplicates:
        bad = int(np.argmax(idx.duplicated()))
        raise DataError(f"{where}: row {bad} repeats the timestamp {idx[bad]}")
    values = candles[list(CANDLE_COLUMNS)].to_numpy(dtype=float)
    nan_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(nan_rows):
        r = int(nan_rows[0])
        raise DataError(f"{where}: {len(nan_rows)} rows with NaN/inf OHLCV, first at row {r} ({idx[r]})")
    o, h, low, c, v = values.T
    inconsistent = np.flatnonzero((low > np.minimum(o, c)) | (h < np.maximum(o, c)) | (low <= 0) | (v < 0))
    if len(inconsistent):
        r = int(inconsistent[0])
        raise DataError(
            f"{where}: row {r} ({idx[r]}) is not OHLC-consistent "
            f"(open={o[r]}, high={h[r]}, low={low[r]}, close={c[r]}, volume={v[r]}); need 0 < low <= open, close <= high"
        )
    return candles


def find_gaps(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Missing stretches: one row per gap with its first missing bar and the number of bars missing."""
    from aster_rl.data.timeframes import timeframe_to_timedelta

    step = timeframe_to_timedelta(timeframe)
    idx = candles.index
    if len(idx) < 2:
        return pd.DataFrame(columns=["first_missing", "missing_bars"])
    deltas = idx[1:] - idx[:-1]
    where = np.flatnonzero(deltas > step)
    return pd.DataFrame(
        {
            "first_missing": idx[where] + step,
            "missing_bars": ((deltas[where] / step).astype(int) - 1),
        }
    )
