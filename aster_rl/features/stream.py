"""Incremental feature rows for live use: :class:`FeatureStream`, one per market and timeframe.

Each closed bar, ``stream.update(market)`` returns the float32 feature row of the newest
bar of ``market`` (the bundle as known at that bar's close: the full history or a
recent window that overlaps the previous call). It equals the batch row of
:func:`aster_rl.features.pipeline.build_features` within 1e-6 relative (1e-6 absolute near 0),
as tested in ``tests/aster_rl/features/test_feature_stream.py``.

What makes it cheap:

- **multi_timeframe keeps state.** A higher-timeframe bar closes when the base bar that
  opens at ``bucket + tf - base`` arrives (the rule of
  :func:`aster_rl.data.timeframes.resample_candles`), and its close is that base bar's close.
  Per timeframe the stream keeps the EMA of the closed bars' closes (the recursion of
  ``pandas.Series.ewm(span, adjust=False)``, step for step), the number of closed bars
  and the newest (trend, distance, available); a new bar updates a timeframe only when
  it closes one of its bars. The first update (or one whose window no longer overlaps
  the bars seen so far) starts the state from all the candles given, vectorized, so
  when those are the whole history the state is exactly the batch one.
- **The other tentacles run on a short trailing window**: the measured reference
  windows of :func:`aster_rl.features.pipeline.window_bars_for` for the tentacles with recursive
  state (market, indicators, regime), twice the warm-up (at least
  :data:`MIN_WINDOW_BARS`) for those whose row depends only on a bounded number of
  bars (:data:`SHORT_MEMORY`: rolling windows, a fast EMA), and
  :data:`CONTEXT_ROWS` for those that combine the earlier columns row by row
  (:data:`CONTEXT_READERS`).
- **Context is built only for the tentacles that read it** (strategy and
  pattern_library, as documented in :mod:`aster_rl.features.tentacles.base`), from the last
  rows of the earlier tentacles, in one array.

The stream only ever reads the ``market`` it is given, so a row never depends on a bar
after the one it is updating.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import FeaturesConfig
from aster_rl.errors import DataError
from aster_rl.features.brain import readings as tentacle_readings
from aster_rl.features.pipeline import (
    PIPELINE_VERSION,
    WINDOW_BARS,
    FeatureSchema,
    resolve_tentacles,
    window_bars_for,
)
from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import multi_timeframe as mtf
from aster_rl.features.tentacles._causal import as_ns, timeframe_ns
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

# Tentacles that combine the columns before them row by row (their docstrings say the row
# at t reads only the context at t): they run on CONTEXT_ROWS bars and are the only ones
# given a context.
CONTEXT_ROWS = 16
CONTEXT_READERS = ("pattern_library", "strategy")

# Tentacles whose row depends only on a bounded number of recent bars: rolling windows of
# at most their warm-up (orderflow, whales, price_history: 288-bar windows; macro: 288-bar
# windows and an EMA(50), which forgets its start as (49/51)^k, 1e-10 after 576 bars) or
# on the bar's time alone (btc_cycle). Twice the warm-up is enough; measured smallest
# windows meeting 1e-6 on 5m and 1m: 300 bars (100 for btc_cycle, 400 for macro).
SHORT_MEMORY = ("orderflow", "whales", "price_history", "btc_cycle", "macro")
MIN_WINDOW_BARS = 200


def stream_window_bars(name: str, tentacle: Tentacle, params: dict[str, Any], timeframe: str, window_bars: int = WINDOW_BARS) -> int:
    """Bars of history the stream gives tentacle ``name`` (the multi_timeframe tentacle keeps state instead)."""
    if name in CONTEXT_READERS:
        return CONTEXT_ROWS
    if name in SHORT_MEMORY:
        return max(2 * int(tentacle.warmup(params)), MIN_WINDOW_BARS)
    return window_bars_for(name, tentacle, params, timeframe, window_bars)


class _TimeframeTrend:
    """The newest closed bar of one higher timeframe: EMA state, bar count and its trend values."""

    __slots__ = ("alpha", "clip", "count", "deadband", "ema", "every_bar", "keep", "min_bars", "offset", "span", "tf_ns", "values")

    def __init__(self, base_ns: int, tf_ns: int, ema_span: int, min_bars: int, deadband: float, distance_clip: float):
        self.every_bar = tf_ns == base_ns  # the base timeframe itself: every bar is a closed bar
        self.tf_ns = tf_ns
        self.offset = tf_ns - base_ns  # a bar opening at bucket + offset closes the bucket
        # pandas' ewm(span=..., adjust=False): alpha = 1 / (1 + com) with com = (span - 1) / 2
        self.alpha = 1.0 / (1.0 + (ema_span - 1) / 2.0)
        self.keep = 1.0 - self.alpha
        self.span = ema_span
        self.min_bars = min_bars
        self.deadband = deadband
        self.clip = distance_clip
        self.ema = math.nan
        self.count = 0
        self.values = (0.0, 0.0, 0.0)  # trend, distance, available before any closed bar

    def closing(self, open_ns: np.ndarray) -> np.ndarray:
        """Which base bars close a bar of this timeframe."""
        if self.every_bar:
            return np.ones(len(open_ns), dtype=bool)
        return open_ns % self.tf_ns == self.offset

    def start(self, open_ns: np.ndarray, close: np.ndarray) -> None:
        """State after the base bars ``open_ns`` / ``close`` (the whole history given), vectorized."""
        closes = close[self.closing(open_ns)]
        self.count = len(closes)
        if self.count == 0:
            self.ema, self.values = math.nan, (0.0, 0.0, 0.0)
            return
        self.ema = float(pd.Series(closes).ewm(span=self.span, adjust=False).mean().iloc[-1])
        self._classify(float(closes[-1]))

    def push(self, open_ns: int, close: float) -> None:
        """One new base bar: updates the state when it closes a bar of this timeframe."""
        if not self.every_bar and open_ns % self.tf_ns != self.offset:
            return
        self.count += 1
        if self.count == 1:
            self.ema = close
        elif self.ema != close:  # as pandas, which leaves a constant series untouched
            self.ema = (self.keep * self.ema + self.alpha * close) / (self.keep + self.alpha)
        self._classify(close)

    def _classify(self, close: float) -> None:
        trend, distance, available = mtf.trend_of(close, self.ema, self.count, self.min_bars, self.deadband, self.clip)
        self.values = (float(trend), float(distance), float(available))


class _MultiTimeframeState:
    """The multi_timeframe tentacle's last ``keep_rows`` rows, updated bar by bar."""

    def __init__(self, base: str, params: dict[str, Any], keep_rows: int):
        p = {**mtf.DEFAULTS, **params}
        self.timeframes = mtf.considered_timeframes(base, p["timeframes"])
        base_ns = timeframe_ns(base)
        self.trends = [
            _TimeframeTrend(base_ns, timeframe_ns(tf), int(p["ema_span"]), int(p["min_bars"]), float(p["deadband"]), float(p["distance_clip"]))
            for tf in self.timeframes
        ]
        self.columns = [f"{mtf.NAME}_{kind}_{tf}" for tf in self.timeframes for kind in ("trend", "distance", "available")]
        self.columns += [f"{mtf.NAME}_{c}" for c in ("alignment", "bullish_count", "bearish_count", "considered")]
        self.keep_rows = keep_rows
        self.rows: deque[np.ndarray] = deque(maxlen=keep_rows)

    def start(self, open_ns: np.ndarray, close: np.ndarray) -> None:
        split = max(0, len(open_ns) - self.keep_rows)
        for t in self.trends:
            t.start(open_ns[:split], close[:split])
        self.rows.clear()
        self.push_many(open_ns[split:], close[split:])

    def push_many(self, open_ns: np.ndarray, close: np.ndarray) -> None:
        for o, c in zip(open_ns.tolist(), close.tolist()):
            for t in self.trends:
                t.push(o, c)
            self.rows.append(self._row())

    def _row(self) -> np.ndarray:
        values: list[float] = []
        bullish = bearish = considered = 0.0
        for t in self.trends:
            trend, distance, available = t.values
            values += (trend, distance, available)
            bullish += trend > 0
            bearish += trend < 0
            considered += available
        alignment = (bullish - bearish) / max(considered, 1.0) if considered > 0 else 0.0
        values += (alignment, bullish, bearish, considered)
        return np.array(values, dtype=float)

    def tail(self) -> np.ndarray:
        return np.array(self.rows, dtype=float).reshape(len(self.rows), len(self.columns))


class FeatureStream:
    """The feature row of each new closed bar, with the slow parts kept between bars.

    ``history_bars`` bounds the candles the multi_timeframe state starts from (None: all
    candles of the first ``market`` given); ``window_bars`` is the reference window of the
    tentacles with recursive state, as in :func:`aster_rl.features.pipeline.latest_features`.
    After the first update the caller may pass only a recent window, as long as it
    reaches back to the previous update's bar and holds :attr:`min_bars` bars.
    """

    def __init__(self, cfg: FeaturesConfig, timeframe: str, window_bars: int = WINDOW_BARS, history_bars: int | None = None):
        self.cfg = cfg
        self.timeframe = timeframe
        self.history_bars = history_bars
        self._selected = resolve_tentacles(cfg)
        self._plan: list[tuple[str, Tentacle, dict[str, Any], int]] = []
        self._mtf: _MultiTimeframeState | None = None
        for name, tentacle, params in self._selected:
            if tentacle.features is mtf.features:
                self._mtf = _MultiTimeframeState(timeframe, params, CONTEXT_ROWS)
                need = 0
            else:
                need = stream_window_bars(name, tentacle, params, timeframe, window_bars)
            self._plan.append((name, tentacle, params, need))
        # One window for all the short-memory tentacles: fewer cuts, same values.
        short = max((need for name, *_, need in self._plan if name in SHORT_MEMORY), default=0)
        self._plan = [(name, t, p, short if name in SHORT_MEMORY else need) for name, t, p, need in self._plan]
        self.min_bars = max((need for *_, need in self._plan), default=1)
        self.last_time: pd.Timestamp | None = None
        self.columns: list[str] = []
        self._counts: list[int] = []
        self._row: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state: the next update starts again from the candles it is given."""
        self.last_time = None
        self._row = None

    def update(self, market: MarketBundle) -> np.ndarray:
        """The float32 feature row of ``market``'s newest bar (a copy; the state moves to that bar)."""
        if market.timeframe != self.timeframe:
            raise DataError(f"FeatureStream for {self.timeframe} bars was given {market.timeframe} bars")
        candles = market.candles
        index = candles.index
        if len(index) == 0:
            raise DataError(f"{market.symbol} {market.timeframe}: no candles")
        newest = index[-1]
        last = self.last_time
        if last is not None and newest == last and self._row is not None:
            return self._row.copy()
        close = candles["close"].to_numpy(dtype=float)
        if last is None or newest < last or index[0] > last:
            start = 0 if self.history_bars is None else max(0, len(index) - int(self.history_bars))
            fresh = True
        else:
            start = int(index.searchsorted(last, side="right"))
            fresh = False
        new_close = close[start:]
        if not np.isfinite(new_close).all():
            bad = index[start + int(np.flatnonzero(~np.isfinite(new_close))[0])]
            raise DataError(f"{market.symbol} {market.timeframe}: close at {bad} is not finite")
        if self._mtf is not None:
            open_ns = as_ns(index[start:])
            if fresh:
                self._mtf.start(open_ns, new_close)
            else:
                self._mtf.push_many(open_ns, new_close)
        self.last_time = None  # a failure below leaves the state to be started again
        row = self._compute(market)
        self.last_time = newest
        self._row = row
        return row.copy()

    def _compute(self, market: MarketBundle) -> np.ndarray:
        index = market.candles.index
        n = len(index)
        names: list[list[str]] = []
        tails: list[np.ndarray] = []  # the last CONTEXT_ROWS rows of each tentacle
        # Cut the full market once, for the longest window; the shorter windows are cut from it.
        sizes = sorted({min(n, need) for *_, need in self._plan if need}, reverse=True)
        windows: dict[int, MarketBundle] = {}
        empty: dict[int, pd.DataFrame] = {}
        source = market
        for w in sizes:
            source = windows[w] = source.window(index[n - w], None)
        for name, tentacle, params, need in self._plan:
            if need == 0 and self._mtf is not None:  # the multi_timeframe tentacle: its state, not a window
                cols, values = self._mtf.columns, self._mtf.tail()
            else:
                w = min(n, need)
                recent = windows[w]
                if name in CONTEXT_READERS:
                    context = _context(names, tails, recent.candles.index)
                else:
                    context = empty.get(w)
                    if context is None:
                        context = empty[w] = pd.DataFrame(index=recent.candles.index)
                df = tentacle.features(recent, context, **params)
                if len(df) != w or (len(df.columns) and not str(df.columns[0]).startswith(f"{name}_")):
                    raise DataError(f"tentacle {name}: output is not aligned with the candles")
                cols, values = [str(c) for c in df.columns], df.to_numpy(dtype=float)[-CONTEXT_ROWS:]
            names.append(cols)
            tails.append(values)
        row = np.concatenate([v[-1] if len(v) else np.zeros(len(c)) for c, v in zip(names, tails)]) if tails else np.zeros(0)
        row32 = row.astype(np.float32)
        if not self.columns:
            self.columns = [c for cols in names for c in cols]
            self._counts = [len(c) for c in names]
        if not np.isfinite(row32).all():
            bad = [self.columns[j] for j in np.flatnonzero(~np.isfinite(row32))]
            raise DataError(f"feature row at {index[-1]}: non-finite values in {bad[:5]}")
        return row32

    @property
    def schema(self) -> FeatureSchema:
        """The schema of the rows (the same as :func:`aster_rl.features.pipeline.build_features` gives); after an update."""
        if not self.columns:
            raise DataError("FeatureStream.schema: call update() first")
        return FeatureSchema(
            names=tuple(self.columns),
            tentacles=tuple(name for name, _, _ in self._selected),
            params={name: p for name, _, p in self._selected},
            version={"pipeline": PIPELINE_VERSION, "tentacles": {name: t.version for name, t, _ in self._selected}},
            timeframe=self.timeframe,
            columns_per_tentacle=tuple(self._counts),
        )

    def readings(self) -> dict[str, str]:
        """Tentacle name -> its human sentence for the newest row."""
        if self._row is None:
            raise DataError("FeatureStream.readings: call update() first")
        row = pd.Series(self._row.astype(float), index=self.columns, name=self.last_time)
        return tentacle_readings(row, self.schema, {name: tentacle for name, tentacle, _, _ in self._plan})


def _context(names: list[list[str]], tails: list[np.ndarray], index: pd.DatetimeIndex) -> pd.DataFrame:
    """The earlier tentacles' columns on the last ``len(index)`` bars (NaN where a tentacle kept fewer rows)."""
    w = len(index)
    width = sum(len(c) for c in names)
    if width == 0:
        return pd.DataFrame(index=index)
    block = np.full((w, width), np.nan)
    col = 0
    for cols, values in zip(names, tails):
        k = min(w, len(values))
        if k:
            block[w - k :, col : col + len(cols)] = values[len(values) - k :]
        col += len(cols)
    return pd.DataFrame(block, index=index, columns=[c for cols in names for c in cols])
