"""Where the live runner's closed bars come from.

- :class:`ReplaySource`: stored history fed bar by bar as if live, as fast as possible or
  at a set pace (seconds per bar). Bars before the replay range are the warm-up history.
- :class:`ExchangeSource`: polls the exchange through :class:`aster_rl.exchange.client.ExchangeClient`
  and :mod:`aster_rl.data.download` (which stores every closed candle and funding settlement
  in the database first), then reads the new closed bars back from the database. Between
  bars it reports the last traded price about every ``poll_interval_s`` seconds, for the
  paper broker's stop / target watch. With ``websocket=True`` a ccxt.pro candle stream
  (:class:`aster_rl.exchange.watcher.CandleWatcher`) tells it sooner that a bar has closed; the
  bar itself still comes through the same REST download, which stays the fallback.
  Which candle has closed is decided by the exchange's clock (:class:`ExchangeClock`: the
  server time measured as an offset from this machine's clock, measured again now and
  then), as ``aster-rl data download`` does: a local clock running ahead would otherwise
  take the still-forming candle for a closed one, and stored bars are never overwritten.
  A poll that fails (the exchange after its client's retries, or the database) is tried
  again after ``retry_backoff_s``, doubling per failure up to ``max_backoff_s``; the runner
  is still called between tries (kill switch, stale data) and told of the failure.

Both give the market *as known at a bar's close* for the features: the whole history
(:meth:`market_at`, to start the runner's feature stream) or only its last bars
(:meth:`recent_market`, bar after bar).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aster_rl.config import DataConfig
from aster_rl.config import replace as replace_config
from aster_rl.errors import DataError, ExchangeError, StorageError
from aster_rl.interfaces import BarSource, ErrorCallback, TickCallback
from aster_rl.live.bars import Bar
from aster_rl.live.risk import brief
from aster_rl.data.market import OPTIONAL_CANDLE_COLUMNS, MarketBundle
from aster_rl.sim.prices import PriceArrays, bar_half_spread
from aster_rl.data.timeframes import timeframe_to_timedelta

if TYPE_CHECKING:
    from aster_rl.exchange.watcher import CandleWatcher

logger = logging.getLogger(__name__)

Clock = Callable[[], pd.Timestamp]


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class ExchangeClock:
    """The exchange's clock without a request per reading: this machine's UTC clock plus the
    offset to the exchange's server time (:meth:`aster_rl.exchange.client.ExchangeClient.now`),
    measured at the first reading and again every ``refresh_s`` seconds.

    The offset is taken against the local time *after* the server's reply, so the estimate
    is never ahead of the exchange (it may lag by the round trip): a candle is taken for
    closed a few milliseconds late rather than while it still forms. A failed measurement
    keeps the last offset (zero before the first) and is tried again at the next reading.
    """

    def __init__(
        self,
        client: Any,  # aster_rl.exchange.client.ExchangeClient
        *,
        refresh_s: float = 300.0,
        local: Clock = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.refresh_s = float(refresh_s)
        self._local = local
        self._monotonic = monotonic
        self.offset = pd.Timedelta(0)  # exchange minus local
        self.measured_at: float | None = None  # monotonic time of the last measurement
        self.measurements = 0

    def measure(self) -> pd.Timedelta:
        """Ask the exchange for its time now; returns the new offset."""
        from aster_rl.errors import ExchangeError

        try:
            server = self.client.now()
        except ExchangeError as e:
            logger.warning("exchange clock: no server time (%s); keeping the offset %s", e, self.offset)
            return self.offset
        after = self._local()
        self.offset = server - after
        self.measured_at = self._monotonic()
        self.measurements += 1
        if abs(self.offset) > pd.Timedelta(seconds=1):
            logger.info("exchange clock: the exchange's clock is %+.3f s from this machine's", self.offset.total_seconds())
        return self.offset

    def __call__(self) -> pd.Timestamp:
        if self.measured_at is None or self._monotonic() - self.measured_at >= self.refresh_s:
            self.measure()
        return self._local() + self.offset


@dataclass(frozen=True)
class SourceBar:
    bar: Bar
    last: bool = False  # the source has no bar after this one (end of a replay)


def bars_from_market(market: MarketBundle, prices: PriceArrays | None = None) -> list[Bar]:
    """Every candle of ``market`` as a :class:`Bar` (funding per bar as the accounting core sums it)."""
    if prices is None:
        with warnings.catch_warnings():  # a window without a settlement has no funding rows: zero is right there
            warnings.simplefilter("ignore", UserWarning)
            prices = PriceArrays.from_market(market)
    candles = market.candles
    extras = [c for c in OPTIONAL_CANDLE_COLUMNS if c in candles.columns]
    extra_values = {c: candles[c].to_numpy(dtype=np.float64) for c in extras}
    half_spread = bar_half_spread(prices.timestamps, int(timeframe_to_timedelta(market.timeframe).value), market.book)
    out = []
    for i, ts in enumerate(candles.index):
        out.append(
            Bar(
                time=ts,
                open=float(prices.open[i]),
                high=float(prices.high[i]),
                low=float(prices.low[i]),
                close=float(prices.close[i]),
                volume=float(prices.volume[i]),
                funding_rate=float(prices.funding_rate[i]),
                extra=tuple((c, float(extra_values[c][i])) for c in extras),
                half_spread=float(half_spread[i]),
            )
        )
    return out


class ReplaySource(BarSource):
    """Stored history replayed bar by bar: bars with open time in ``[start, end)`` are streamed.

    ``pace_s`` = 0 replays as fast as possible; otherwise each bar is handed out
    ``pace_s`` seconds after the previous one. The replay clock is the streamed bar's close.
    """

    kind = "replay"

    def __init__(
        self,
        market: MarketBundle,
        start: int | pd.Timestamp | str | None = None,
        end: int | pd.Timestamp | str | None = None,
        *,
        pace_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if len(market) < 2:
            raise DataError(f"replay: {len(market)} stored bars; need at least two")
        if pace_s < 0:
            raise ValueError(f"pace_s = {pace_s}: must be >= 0")
        self.market = market
        self.timeframe = market.timeframe
        self.symbol = market.symbol
        self.prices = PriceArrays.from_market(market)
        self._bars = bars_from_market(market, self.prices)
        index = market.candles.index
        self.start = self._position(start, index, 0, "start")
        self.end = self._position(end, index, len(index), "end")
        if self.end - self.start < 2:
            raise DataError(
                f"replay range {index[min(self.start, len(index) - 1)]} .. {index[min(self.end, len(index)) - 1]}: "
                f"{self.end - self.start} bars; need at least two"
            )
        self.pace_s = float(pace_s)
        self._sleep = sleep
        self._tf = timeframe_to_timedelta(self.timeframe)
        self._clock = index[self.start]
        self.resume_after: pd.Timestamp | None = None

    @staticmethod
    def _position(value, index: pd.DatetimeIndex, default: int, name: str) -> int:
        if value is None:
            return default
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            pos = int(value)
            if not 0 <= pos <= len(index):
                raise DataError(f"replay {name} = {pos}: outside 0..{len(index)}")
            return pos
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError) as e:
            raise DataError(f"replay {name} = {value!r}: not a date (use e.g. 2025-03-20 or 2025-03-20T12:00Z)") from e
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(index.searchsorted(ts, side="left"))

    def history(self) -> list[Bar]:
        """Bars before the replay range (warm-up), oldest first."""
        return self._bars[: self.start]

    def bars(self, on_tick: TickCallback | None = None, on_error: ErrorCallback | None = None) -> Generator[SourceBar]:
        """The replay range's bars, one after the other (no time between them: ``on_tick`` and
        ``on_error`` are never called)."""
        first = self.start
        if self.resume_after is not None:  # a restarted session continues after its last processed bar
            first = max(first, int(self.market.candles.index.searchsorted(self.resume_after, side="right")))
        for i in range(first, self.end):
            if self.pace_s > 0 and i > first:
                self._sleep(self.pace_s)
            self._clock = self._bars[i].time + self._tf
            yield SourceBar(self._bars[i], last=i == self.end - 1)

    def bars_between(self, after: pd.Timestamp, upto: pd.Timestamp) -> list[Bar]:
        """Stored bars with open time in ``(after, upto]`` (used to rebuild the price buffer on restart)."""
        idx = self.market.candles.index
        a, b = int(idx.searchsorted(after, side="right")), int(idx.searchsorted(upto, side="right"))
        return self._bars[a:b]

    def market_at(self, last_open: pd.Timestamp) -> MarketBundle:
        return self.market.until(last_open)

    def recent_market(self, last_open: pd.Timestamp, bars: int, since: pd.Timestamp | None = None) -> MarketBundle:
        """The market known at ``last_open``'s close, cut to its last ``bars`` bars (and back to the bar
        opening at ``since`` when that is earlier): what a :class:`~aster_rl.features.stream.FeatureStream`
        needs after its first update."""
        index = self.market.candles.index
        pos = int(index.searchsorted(last_open, side="right")) - 1
        if pos < 0:
            raise DataError(f"replay: no stored bar at or before {last_open}")
        first = index[max(0, pos - max(int(bars), 1) + 1)]
        if since is not None and since < first:
            first = since
        return self.market.window(first, last_open)

    def now(self) -> pd.Timestamp:
        return self._clock

    def last_price(self) -> float | None:
        return None  # replay has no price between bars: stops and targets are checked on each bar


class ExchangeSource(BarSource):
    """Closed bars polled from the exchange and stored in the database first.

    ``clock``: what time it is on the exchange; by default an :class:`ExchangeClock` on
    ``client`` (re-measured every ``clock_refresh_s`` seconds)."""

    kind = "exchange"

    def __init__(
        self,
        client: Any,  # aster_rl.exchange.client.ExchangeClient
        db: Any,  # aster_rl.storage.Database
        data_cfg: DataConfig,
        *,
        source_name: str | None = None,
        history_bars: int = 1_000,
        poll_interval_s: float = 1.0,
        clock: Clock | None = None,
        clock_refresh_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        companions: bool = True,
        websocket: bool = False,
        ws_client_factory: Callable[[], Any] | None = None,
        ws_retry_s: float = 5.0,
        ws_max_retry_s: float = 300.0,
        retry_backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.client = client
        self.db = db
        self.data_cfg = data_cfg
        self.symbol = data_cfg.symbol
        self.timeframe = data_cfg.timeframe
        self.source_name = source_name or data_cfg.exchange_id
        self.history_bars = int(history_bars)
        self.poll_interval_s = float(poll_interval_s)
        self._clock = clock if clock is not None else ExchangeClock(client, refresh_s=clock_refresh_s)
        self._sleep = sleep
        self._tf = timeframe_to_timedelta(self.timeframe)
        self.companions = companions
        self.last_emitted: pd.Timestamp | None = None
        self.resume_after: pd.Timestamp | None = None
        self._cfg = replace_config(data_cfg, source=self.source_name)
        self._market_id: str | None = None
        self.websocket = bool(websocket)
        self._ws_client_factory = ws_client_factory
        self._ws_retry_s = float(ws_retry_s)
        self._ws_max_retry_s = float(ws_max_retry_s)
        self.watcher: CandleWatcher | None = None  # while bars() runs with websocket=True
        self.early_polls = 0  # polls started by the websocket before the clock reached the bar's close
        self.retry_backoff_s = float(retry_backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.failed_polls = 0  # polls that failed (each retried after a backoff)

    # ------------------------------------------------------------ downloading

    def _exchange_now(self) -> pd.Timestamp:
        """The clock, or later when the websocket has already shown a candle opening after it
        (the exchange's own clock is then ahead: the candles before that one are closed)."""
        now = self._clock()
        seen = self.watcher.latest_open_ms if self.watcher is not None else None
        if seen is not None:
            now = max(now, pd.Timestamp(seen, unit="ms", tz="UTC"))
        return now

    def _download(self, since: pd.Timestamp) -> None:
        from aster_rl.data.download import download_candles, download_funding

        symbols = [self.symbol]
        if self.companions:
            symbols += [self.data_cfg.btc_symbol, self.data_cfg.eth_symbol]
        for sym in symbols:
            try:
                download_candles(self.client, self.db, self.source_name, sym, self.timeframe, since, now=self._exchange_now)
            except DataError:
                if sym == self.symbol:
                    raise
                logger.warning("companion %s: no candles from the exchange; macro features use neutral values", sym)
        download_funding(self.client, self.db, self.source_name, self.symbol, since - pd.Timedelta(hours=8), now=self._exchange_now)

    def _load(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MarketBundle:
        from aster_rl.storage import load_market

        return load_market(self.db, self._cfg, start=start, end=end)

    def history(self) -> list[Bar]:
        """Download (and store) the last ``history_bars`` closed bars; return them as bars."""
        now = self._clock()
        since = now.floor(self._tf) - self._tf * (self.history_bars + 1)
        self._download(since)
        market = self._load(since, None)
        bars = bars_from_market(market)
        if bars:
            self.last_emitted = bars[-1].time
        logger.info("exchange source: %d bars of history up to %s", len(bars), self.last_emitted)
        return bars

    def bars_between(self, after: pd.Timestamp, upto: pd.Timestamp) -> list[Bar]:
        market = self._load(after + self._tf, upto)
        return bars_from_market(market)

    def poll_new_bars(self) -> list[Bar]:
        """Download once; the closed bars stored after the last one handed out."""
        start = self.last_emitted + self._tf if self.last_emitted is not None else self._clock().floor(self._tf) - self._tf * 2
        self._download(start)
        try:
            # load from a little earlier so the funding sum and ATR context of the new bars are right
            market = self._load(start - self._tf * 20, None)
        except DataError:
            return []
        bars = [b for b in bars_from_market(market) if self.last_emitted is None or b.time > self.last_emitted]
        if bars:
            self.last_emitted = bars[-1].time
        return bars

    def bars(self, on_tick: TickCallback | None = None, on_error: ErrorCallback | None = None) -> Generator[SourceBar]:
        """New closed bars as they close. Between bars ``on_tick(price, now)`` is called about
        every ``poll_interval_s``; returning False ends the stream.

        A failed poll is logged in one line, reported as ``on_error(error, attempt)`` and tried
        again after a backoff, with ``on_tick`` called while waiting.

        With the websocket on, a candle opening at the next bar's close ends the wait at once
        (the REST download then fetches the closed bar); a websocket poll that found nothing
        new waits one ``poll_interval_s`` before the next, so REST is never hammered."""
        self._start_watcher()
        try:
            early = hold = False
            failures = 0
            while True:
                try:
                    new = self.poll_new_bars()
                except (ExchangeError, StorageError, DataError) as e:
                    failures += 1
                    self.failed_polls += 1
                    delay = min(self.max_backoff_s, self.retry_backoff_s * 2 ** (failures - 1))
                    logger.warning("exchange source: no new bars (%s); try %d failed, next in %.0f s", brief(e), failures, delay)
                    if on_error is not None:
                        on_error(e, failures)
                    if not self._wait_until(self._clock() + pd.Timedelta(seconds=delay), on_tick):
                        return
                    continue
                if failures:
                    logger.warning("exchange source: bars again after %d failed tries", failures)
                    failures = 0
                for bar in new:
                    yield SourceBar(bar)
                hold = early and not new  # the websocket ran ahead of REST: pause once before polling again
                early = False
                next_close = (self.last_emitted + 2 * self._tf) if self.last_emitted is not None else self._clock()
                next_close_ms = int(next_close.value // 1_000_000)
                while self._clock() < next_close:
                    if not hold and self._ws_closed(next_close_ms):
                        early = True
                        self.early_polls += 1
                        break
                    if on_tick is not None:
                        price = self.last_price()
                        if not on_tick(price, self._clock()):
                            return
                    self._pause(self.poll_interval_s, None if hold else next_close_ms)
                    hold = False
                if on_tick is not None and not on_tick(None, self._clock()):
                    return
        finally:
            self.close()

    def _wait_until(self, until: pd.Timestamp, on_tick: TickCallback | None) -> bool:
        """Wait (ticking) until the clock reaches ``until``; False when ``on_tick`` ended the stream."""
        while True:
            if on_tick is not None and not on_tick(self.last_price(), self._clock()):
                return False
            left = (until - self._clock()).total_seconds()
            if left <= 0:
                return True
            self._sleep(min(self.poll_interval_s, left))

    # ------------------------------------------------------------ websocket hint

    def _start_watcher(self) -> None:
        if not self.websocket or self.watcher is not None:
            return
        from aster_rl.exchange.watcher import CandleWatcher, make_pro_exchange

        factory = self._ws_client_factory or (lambda: make_pro_exchange(self.data_cfg))
        self.watcher = CandleWatcher(
            factory, self.symbol, self.timeframe, retry_s=self._ws_retry_s, max_retry_s=self._ws_max_retry_s
        ).start()

    def _ws_closed(self, close_ms: int) -> bool:
        """The websocket has shown a candle opening at or after ``close_ms``."""
        seen = self.watcher.latest_open_ms if self.watcher is not None else None
        return seen is not None and seen >= close_ms

    def _pause(self, seconds: float, close_ms: int | None) -> None:
        """``sleep(seconds)``; with a live websocket and a ``close_ms``, a wall-clock wait that a
        candle opening at ``close_ms`` (or the socket going down) ends early."""
        watcher = self.watcher
        if close_ms is not None and watcher is not None and watcher.live:
            watcher.wait_for_open(close_ms, seconds)
        else:
            self._sleep(seconds)

    def close(self) -> None:
        """Stop the websocket watcher, if any (bars() does this when it ends)."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.close()

    def market_at(self, last_open: pd.Timestamp) -> MarketBundle:
        from aster_rl.features.pipeline import TENTACLE_WINDOW_HOURS, WINDOW_BARS

        hours = max(TENTACLE_WINDOW_HOURS.values(), default=0.0)
        start = last_open - max(pd.Timedelta(hours=hours), self._tf * WINDOW_BARS) - self._tf * WINDOW_BARS
        return self._load(start, last_open)

    def recent_market(self, last_open: pd.Timestamp, bars: int, since: pd.Timestamp | None = None) -> MarketBundle:
        """The stored market of the last ``bars`` bars up to ``last_open`` (and back to ``since`` when earlier)."""
        first = last_open - self._tf * (max(int(bars), 1) - 1)
        if since is not None and since < first:
            first = since
        return self._load(first, last_open)

    def now(self) -> pd.Timestamp:
        return self._clock()

    def last_price(self) -> float | None:
        """The last traded price (ticker), or None when the exchange does not answer."""
        from aster_rl.errors import ExchangeError

        try:
            if self._market_id is None:
                self._market_id = self.client.market(self.symbol)["id"]
            ex = self.client.exchange
            reply = self.client.call("ticker price", ex.fapiPublicGetV3TickerPrice, {"symbol": self._market_id})
            row = reply[0] if isinstance(reply, list) else reply
            return float(row["price"])
        except (ExchangeError, KeyError, TypeError, ValueError, AttributeError) as e:
            logger.warning("exchange source: no ticker price (%s)", e)
            return None
