"""Per-bar price arrays: what the accounting core reads, one entry per bar.

Built once from a :class:`~aster_rl.data.market.MarketBundle` (or from raw arrays), validated,
and read-only afterwards, so the env, the backtester and the paper broker index the very
same numbers.

- ``timestamps``: int64 nanoseconds of each bar's *open* (UTC).
- ``open high low close volume``: float64.
- ``atr``: Wilder ATR(14) at the bar's close (0 during the first ``period - 1`` bars).
- ``funding_rate``: the sum of the funding rates that settle inside the bar's interval
  ``[open, open + timeframe)``, 0 for bars without a settlement. A long pays
  ``rate * notional`` when the rate is positive.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from aster_rl.errors import DataError
from aster_rl.indicator_math import wilder_atr
from aster_rl.data.market import MarketBundle

logger = logging.getLogger(__name__)

_FIELDS = ("timestamps", "open", "high", "low", "close", "volume", "atr", "funding_rate")


@dataclass(frozen=True)
class PriceArrays:
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    atr: np.ndarray
    funding_rate: np.ndarray
    timeframe: str = "5m"

    def __post_init__(self) -> None:
        n = None
        for name in _FIELDS:
            arr = getattr(self, name)
            dtype = np.int64 if name == "timestamps" else np.float64
            arr = np.ascontiguousarray(arr, dtype=dtype)
            if arr.ndim != 1:
                raise DataError(f"PriceArrays.{name}: expected a 1-D array, got shape {arr.shape}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise DataError(f"PriceArrays.{name}: length {len(arr)} differs from timestamps' length {n}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name in _FIELDS[1:]:
            arr = getattr(self, name)
            bad = np.flatnonzero(~np.isfinite(arr))
            if len(bad):
                raise DataError(f"PriceArrays.{name}: {len(bad)} NaN/inf values, first at row {int(bad[0])}")
        for name in ("open", "high", "low", "close"):
            bad = np.flatnonzero(getattr(self, name) <= 0)
            if len(bad):
                raise DataError(
                    f"PriceArrays.{name}: non-positive price {getattr(self, name)[bad[0]]} at row {int(bad[0])}"
                )
        bad = np.flatnonzero(
            (self.low > np.minimum(self.open, self.close)) | (self.high < np.maximum(self.open, self.close))
        )
        if len(bad):
            r = int(bad[0])
            raise DataError(
                f"PriceArrays: row {r} is not OHLC-consistent (open={self.open[r]}, high={self.high[r]}, "
                f"low={self.low[r]}, close={self.close[r]}); need low <= open, close <= high"
            )
        bad = np.flatnonzero(self.volume < 0)
        if len(bad):
            raise DataError(f"PriceArrays.volume: negative volume at row {int(bad[0])}")
        bad = np.flatnonzero(self.atr < 0)
        if len(bad):
            raise DataError(f"PriceArrays.atr: negative ATR at row {int(bad[0])}")
        if n and n > 1 and np.any(np.diff(self.timestamps) <= 0):
            r = int(np.flatnonzero(np.diff(self.timestamps) <= 0)[0]) + 1
            raise DataError(f"PriceArrays.timestamps: row {r} is not later than the row before it")

    def __len__(self) -> int:
        return len(self.close)

    def slice(self, a: int, b: int) -> PriceArrays:
        """Bars ``a .. b - 1`` (views, no copy)."""
        return PriceArrays(
            self.timestamps[a:b], self.open[a:b], self.high[a:b], self.low[a:b], self.close[a:b],
            self.volume[a:b], self.atr[a:b], self.funding_rate[a:b], timeframe=self.timeframe,
        )

    @classmethod
    def from_arrays(
        cls,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray | None = None,
        *,
        timestamps: np.ndarray | None = None,
        funding_rate: np.ndarray | None = None,
        atr: np.ndarray | None = None,
        timeframe: str = "5m",
        atr_period: int = 14,
    ) -> PriceArrays:
        """Arrays given directly (tests, benchmarks, replay). Missing volume → 0, funding → 0,
        timestamps → consecutive bars of ``timeframe`` from the epoch, ATR → Wilder ATR."""
        from aster_rl.data.timeframes import timeframe_to_timedelta

        close = np.asarray(close, dtype=np.float64)
        n = len(close)
        if timestamps is None:
            step = int(timeframe_to_timedelta(timeframe).value)
            timestamps = np.arange(n, dtype=np.int64) * step
        if volume is None:
            volume = np.zeros(n)
        if funding_rate is None:
            funding_rate = np.zeros(n)
        if atr is None:
            atr = wilder_atr(np.asarray(high, float), np.asarray(low, float), close, atr_period)
        return cls(timestamps, open, high, low, close, volume, atr, funding_rate, timeframe)

    @classmethod
    def from_market(cls, bundle: MarketBundle, atr_period: int = 14) -> PriceArrays:
        from aster_rl.data.timeframes import timeframe_to_timedelta

        candles = bundle.candles
        if len(candles) == 0:
            raise DataError(f"{bundle.symbol} {bundle.timeframe}: no candles")
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in candles.columns]
        if missing:
            raise DataError(f"{bundle.symbol} {bundle.timeframe}: candles miss columns {missing}")
        ohlcv = {c: candles[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        for name, arr in ohlcv.items():
            bad = np.flatnonzero(~np.isfinite(arr))
            if len(bad):
                r = int(bad[0])
                raise DataError(
                    f"{bundle.symbol} {bundle.timeframe}: {len(bad)} NaN {name} values, first at row {r} "
                    f"({candles.index[r]}); re-fetch or fill the gaps"
                )
        timestamps = candles.index.as_unit("ns").asi8.astype(np.int64)
        tf_ns = int(timeframe_to_timedelta(bundle.timeframe).value)
        funding = np.zeros(len(candles))
        if bundle.funding is None or len(bundle.funding) == 0 or "funding_rate" not in bundle.funding.columns:
            warnings.warn(
                f"{bundle.symbol}: no funding series; funding is taken as zero", UserWarning, stacklevel=2
            )
            logger.warning("%s: no funding series; funding is taken as zero", bundle.symbol)
        else:
            f_ts = bundle.funding.index.as_unit("ns").asi8.astype(np.int64)
            rates = bundle.funding["funding_rate"].to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(rates))
            if len(bad):
                raise DataError(
                    f"{bundle.symbol} funding: NaN funding_rate at row {int(bad[0])} ({bundle.funding.index[bad[0]]})"
                )
            idx = np.searchsorted(timestamps, f_ts, side="right") - 1
            inside = (idx >= 0) & (f_ts < timestamps[np.clip(idx, 0, None)] + tf_ns)
            np.add.at(funding, idx[inside], rates[inside])
        atr = wilder_atr(ohlcv["high"], ohlcv["low"], ohlcv["close"], atr_period)
        return cls(
            timestamps,
            ohlcv["open"],
            ohlcv["high"],
            ohlcv["low"],
            ohlcv["close"],
            ohlcv["volume"],
            atr,
            funding,
            bundle.timeframe,
        )
