"""Bars as the live runner sees them, and the growing price buffer the paper broker steps on.

:class:`LivePrices` holds the same fields as :class:`aster_rl.sim.prices.PriceArrays` in
arrays that grow as closed bars arrive; the Wilder ATR is updated incrementally with the
very arithmetic of :func:`aster_rl.indicator_math.wilder_atr` (bit-for-bit equal, tested),
so the paper broker and the backtester read identical numbers; the fill-cost inputs
(sigma_daily, volume_daily) come from the one :func:`aster_rl.sim.prices.trailing_costs`, and a
bar's half-spread is the previous bar's ``Bar.half_spread`` (0 without a book: the tick floor),
as :func:`aster_rl.sim.prices.book_half_spread` has it. It also keeps the
accounting core's price matrix (:func:`aster_rl.sim.accounting.price_matrix`'s layout), filled
one row per appended bar, so the core steps over the buffer without copying the history:
the work per bar does not grow with the number of bars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aster_rl.sim import kernels as K
from aster_rl.sim.prices import cost_window, trailing_costs
from aster_rl.errors import DataError

logger = logging.getLogger(__name__)

ATR_PERIOD = 14
_FIELDS = ("timestamps", "open", "high", "low", "close", "volume", "atr", "funding_rate")
_PX_COLUMNS = (  # field -> column of the accounting core's price matrix
    ("open", K.PX_OPEN), ("high", K.PX_HIGH), ("low", K.PX_LOW), ("close", K.PX_CLOSE),
    ("volume", K.PX_VOLUME), ("funding_rate", K.PX_FUNDING), ("atr", K.PX_ATR),
)


@dataclass(frozen=True)
class Bar:
    """One closed bar: open time (UTC), OHLCV, the funding settling inside it, extra kline columns."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    funding_rate: float = 0.0
    extra: tuple[tuple[str, float], ...] = ()
    half_spread: float = 0.0  # the book's half-spread of the last snapshot inside the bar (0: none); prices the next bar

    @property
    def ts_ns(self) -> int:
        return int(self.time.value)

    @property
    def ts_ms(self) -> int:
        return int(self.time.value // 1_000_000)

    def check(self) -> None:
        vals = (self.open, self.high, self.low, self.close, self.volume, self.funding_rate, self.half_spread)
        if not np.isfinite(vals).all() or self.half_spread < 0:
            raise DataError(f"bar {self.time}: NaN/inf in {vals}")
        if not (0 < self.low <= min(self.open, self.close) and self.high >= max(self.open, self.close)) or self.volume < 0:
            raise DataError(
                f"bar {self.time}: not OHLC-consistent (open={self.open}, high={self.high}, low={self.low}, "
                f"close={self.close}, volume={self.volume})"
            )


class LivePrices:
    """Per-bar arrays like ``PriceArrays``, appended to one closed bar at a time."""

    def __init__(self, timeframe: str, capacity: int = 4096, atr_period: int = ATR_PERIOD) -> None:
        self.timeframe = timeframe
        self.atr_period = int(atr_period)
        self._n = 0
        self._cap = max(16, int(capacity))
        self._arrays = {f: np.zeros(self._cap, dtype=np.int64 if f == "timestamps" else np.float64) for f in _FIELDS}
        self._px = np.zeros((self._cap, K.PX_COLS), dtype=np.float64)  # the core's price matrix, row per bar
        self._tr: list[float] = []  # first true ranges, until the ATR is seeded
        self._cost_window = cost_window(timeframe)
        self._half_spread = 0.0  # the last bar's book half-spread: the next bar's fills pay it

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> np.ndarray:
        if name in _FIELDS:
            return self.__dict__["_arrays"][name][: self.__dict__["_n"]]
        raise AttributeError(name)

    def _grow(self) -> None:
        self._cap *= 2
        for f, arr in self._arrays.items():
            new = np.zeros(self._cap, dtype=arr.dtype)
            new[: self._n] = arr[: self._n]
            self._arrays[f] = new
        px = np.zeros((self._cap, K.PX_COLS), dtype=np.float64)
        px[: self._n] = self._px[: self._n]
        self._px = px

    @property
    def matrix(self) -> np.ndarray:
        """The bars so far as the accounting core's ``(bars, PX_COLS)`` price matrix (a view, no copy;
        equal to ``price_matrix`` of the same bars). A view taken before the buffer grows keeps the
        old storage: take it again after appending."""
        return self._px[: self._n]

    def append(self, bar: Bar) -> int:
        """Add the next closed bar; returns its index."""
        bar.check()
        a = self._arrays
        n = self._n
        if n and bar.ts_ns <= a["timestamps"][n - 1]:
            raise DataError(f"bar {bar.time} is not later than the previous bar {pd.Timestamp(int(a['timestamps'][n - 1]), tz='UTC')}")
        if n == self._cap:
            self._grow()
        a["timestamps"][n] = bar.ts_ns
        a["open"][n], a["high"][n], a["low"][n], a["close"][n] = bar.open, bar.high, bar.low, bar.close
        a["volume"][n] = bar.volume
        a["funding_rate"][n] = bar.funding_rate
        h, low = float(bar.high), float(bar.low)
        if n == 0:
            tr = h - low
        else:
            pc = float(a["close"][n - 1])
            tr = float(np.fmax(h - low, np.fmax(abs(h - pc), abs(low - pc))))
        p = self.atr_period
        if n < p - 1:
            self._tr.append(tr)
            a["atr"][n] = 0.0
        elif n == p - 1:
            self._tr.append(tr)
            a["atr"][n] = np.asarray(self._tr).mean()
            self._tr = []
        else:
            alpha = 1.0 / p
            om = 1.0 - alpha
            a["atr"][n] = (om * a["atr"][n - 1] + alpha * tr) / (om + alpha)
        row = self._px[n]
        for f, col in _PX_COLUMNS:
            row[col] = a[f][n]
        row[K.PX_HALF_SPREAD] = self._half_spread
        self._half_spread = float(bar.half_spread)
        window, per_day = self._cost_window
        trailing_costs(a["close"][: n + 1], a["volume"][: n + 1], window, per_day, n,
                       self._px[:, K.PX_SIGMA_DAILY], self._px[:, K.PX_VOLUME_DAILY])
        self._n = n + 1
        return n

    def snapshot(self) -> PricesSnapshot:
        """The bars so far as a ``PriceArrays``-like object (views, no copy) for the accounting core."""
        return PricesSnapshot(self)


class PricesSnapshot:
    """``len()`` and the ``PriceArrays`` field names over the first ``n`` bars of a :class:`LivePrices`."""

    def __init__(self, prices: LivePrices) -> None:
        n = len(prices)
        self.timeframe = prices.timeframe
        for f in _FIELDS:
            setattr(self, f, prices._arrays[f][:n])
        self.costs = prices._px[:n, K.PX_HALF_SPREAD : K.PX_HALF_SPREAD + K.N_COST]  # the cost rows (see sim.prices)
        self._n = n

    def __len__(self) -> int:
        return self._n
