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

The cost inputs of a market fill *inside* bar ``t`` (at its open, a stop or target in it, or
its close), each known at the close of bar ``t - 1`` (no look-ahead):

- ``sigma_daily``: the realized daily volatility ``√(mean(r²) × bars_per_day)`` over the log
  returns ``r_k = ln(close_k / close_{k-1})`` of the :data:`COST_WINDOW` (one day) of bars
  ending at ``t - 1`` (fewer at the start of the data; 0 at bar 0);
- ``volume_daily``: the daily traded value in quote currency, ``mean(volume_k × close_k) ×
  bars_per_day`` over the same bars (0 at bar 0: no impact term);
- ``half_spread``: the order book's half-spread ``(ask − bid) / (ask + bid)`` of the last book
  snapshot inside bar ``t - 1``, 0 when there is none (the accounting core then charges the
  tick floor alone). Live bars carry their own (``Bar.half_spread``) for the next bar's row.

The fill rule that reads them (half-spread + ``Y·σ_daily·√(Q / V_daily)``, the square-root
impact law of Almgren et al. 2005 and Tóth et al. 2011) is in :mod:`aster_rl.sim.accounting`.
:func:`trailing_costs` is the one computation, used here and by the live price buffer.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aster_rl.errors import DataError
from aster_rl.indicator_math import wilder_atr
from aster_rl.data.market import MarketBundle
from aster_rl.sim.kernels import jit

logger = logging.getLogger(__name__)

_FIELDS = ("timestamps", "open", "high", "low", "close", "volume", "atr", "funding_rate")
_COST_FIELDS = ("half_spread", "sigma_daily", "volume_daily")  # in the order of a cost row (kernels.COST_*)
COST_WINDOW = pd.Timedelta(days=1)  # the trailing window of sigma_daily and volume_daily


def cost_window(timeframe: str) -> tuple[int, float]:
    """(bars in :data:`COST_WINDOW`, bars per day) at ``timeframe``."""
    from aster_rl.data.timeframes import timeframe_to_timedelta

    bar = timeframe_to_timedelta(timeframe)
    return max(int(COST_WINDOW // bar), 1), pd.Timedelta(days=1) / bar


@jit
def trailing_costs(close, volume, window, bars_per_day, start, sigma_out, volume_out):
    """``sigma_daily`` and ``volume_daily`` (module docstring) of bars ``start .. len(close) - 1``
    into ``sigma_out`` / ``volume_out``; bar ``t`` reads only bars ``t - window .. t - 1``."""
    for t in range(start, close.shape[0]):
        a = max(t - window, 0)
        s2 = 0.0
        m = 0
        for k in range(max(a, 1), t):
            r = math.log(close[k] / close[k - 1])
            s2 += r * r
            m += 1
        sigma_out[t] = math.sqrt(s2 / m * bars_per_day) if m > 0 else 0.0
        q = 0.0
        for k in range(a, t):
            q += volume[k] * close[k]
        volume_out[t] = q / (t - a) * bars_per_day if t > a else 0.0


def book_half_spread(timestamps: np.ndarray, bar_ns: int, book: pd.DataFrame | None) -> np.ndarray:
    """Per bar ``t``: the half-spread the fills inside it pay, :func:`bar_half_spread` of bar ``t - 1``."""
    own = bar_half_spread(timestamps, bar_ns, book)
    out = np.zeros(len(timestamps))
    out[1:] = own[:-1]
    return out


def bar_half_spread(timestamps: np.ndarray, bar_ns: int, book: pd.DataFrame | None) -> np.ndarray:
    """Per bar: the half-spread ``(ask − bid) / (ask + bid)`` of the last valid book snapshot inside
    it (``timestamps``: bar opens in ns, each ``bar_ns`` long), 0 where there is none."""
    out = np.zeros(len(timestamps))
    if book is None or len(book) == 0 or not {"best_bid", "best_ask"} <= set(book.columns):
        return out
    bid = book["best_bid"].to_numpy(dtype=np.float64)
    ask = book["best_ask"].to_numpy(dtype=np.float64)
    ts = book.index.as_unit("ns").asi8.astype(np.int64)
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid)
    order = np.argsort(ts[ok], kind="stable")  # the last snapshot of a bar is written last
    ts, bid, ask = ts[ok][order], bid[ok][order], ask[ok][order]
    bar = np.searchsorted(timestamps, ts, side="right") - 1  # the bar the snapshot falls in
    inside = (bar >= 0) & (ts < timestamps[np.clip(bar, 0, None)] + bar_ns)
    out[bar[inside]] = (ask[inside] - bid[inside]) / (ask[inside] + bid[inside])
    return out


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
    # the cost rows (module docstring); None: half_spread 0 (no book), the others computed from the bars
    half_spread: np.ndarray | None = None
    sigma_daily: np.ndarray | None = None
    volume_daily: np.ndarray | None = None

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
        self._set_costs(len(self.close))

    def _set_costs(self, n: int) -> None:
        if self.sigma_daily is None or self.volume_daily is None:
            window, per_day = cost_window(self.timeframe)
            sigma, vol = np.zeros(n), np.zeros(n)
            trailing_costs(self.close, self.volume, window, per_day, 0, sigma, vol)
            if self.sigma_daily is None:
                object.__setattr__(self, "sigma_daily", sigma)
            if self.volume_daily is None:
                object.__setattr__(self, "volume_daily", vol)
        if self.half_spread is None:
            object.__setattr__(self, "half_spread", np.zeros(n))
        for name in _COST_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise DataError(f"PriceArrays.{name}: expected shape ({n},), got {arr.shape}")
            if not np.all(np.isfinite(arr) & (arr >= 0)):
                raise DataError(f"PriceArrays.{name}: needs finite values >= 0, first bad at row "
                                f"{int(np.flatnonzero(~(np.isfinite(arr) & (arr >= 0)))[0])}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        costs = np.ascontiguousarray(np.stack([getattr(self, f) for f in _COST_FIELDS], axis=1))
        costs.setflags(write=False)
        object.__setattr__(self, "_costs", costs)

    @property
    def costs(self) -> np.ndarray:
        """``(bars, N_COST)`` cost rows (half_spread, sigma_daily, volume_daily): what a fill in each bar pays."""
        c: np.ndarray = self.__dict__["_costs"]
        return c

    def __len__(self) -> int:
        return len(self.close)

    def slice(self, a: int, b: int) -> PriceArrays:
        """Bars ``a .. b - 1`` (views, no copy); the cost rows keep what the bars before ``a`` made them."""
        return PriceArrays(
            self.timestamps[a:b], self.open[a:b], self.high[a:b], self.low[a:b], self.close[a:b],
            self.volume[a:b], self.atr[a:b], self.funding_rate[a:b], timeframe=self.timeframe,
            half_spread=self._cost(a, b, "half_spread"), sigma_daily=self._cost(a, b, "sigma_daily"),
            volume_daily=self._cost(a, b, "volume_daily"),
        )

    def _cost(self, a: int, b: int, name: str) -> np.ndarray:
        arr: np.ndarray = getattr(self, name)
        return arr[a:b]

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
        half_spread: np.ndarray | None = None,
    ) -> PriceArrays:
        """Arrays given directly (tests, benchmarks, replay). Missing volume → 0, funding → 0,
        timestamps → consecutive bars of ``timeframe`` from the epoch, ATR → Wilder ATR, half-spread
        → 0; sigma_daily and volume_daily are computed from the bars."""
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
        return cls(timestamps, open, high, low, close, volume, atr, funding_rate, timeframe, half_spread=half_spread)

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
            half_spread=book_half_spread(timestamps, tf_ns, bundle.book),
        )
