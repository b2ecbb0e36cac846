"""Historical download from an exchange into the database, page by page, resumable.

Candles are paged with ``since`` (at most 1,500 bars a call), starting one bar after
the newest stored bar, so a second run fetches only what is new and an interrupted run
continues where it stopped. Each page is stored in its own transaction as it arrives.
The still-forming candle (``open + timeframe > now``) is never stored; ``now`` is an
injectable clock. Funding history is paged the same way (at most 1,000 a call); the
order book and recent trades are stored as a snapshot.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import pandas as pd

from aster_rl.errors import DataError
from aster_rl.storage import last_candle_time, load_funding, upsert_book_snapshots, upsert_candles, upsert_funding, upsert_trades
from aster_rl.timeframes import timeframe_to_ms

logger = logging.getLogger(__name__)

KLINES_PAGE = 1500
FUNDING_PAGE = 1000

Clock = Callable[[], pd.Timestamp]


class MarketDataClient(Protocol):
    """What the download needs from :class:`aster_rl.exchange.ExchangeClient`."""

    def fetch_klines(
        self, symbol: str, timeframe: str, since_ms: int | None, limit: int = ..., until_ms: int | None = ...
    ) -> pd.DataFrame: ...

    def fetch_funding_history(
        self, symbol: str, since_ms: int | None, limit: int = ..., until_ms: int | None = ...
    ) -> pd.DataFrame: ...

    def fetch_recent_trades(self, symbol: str, limit: int = ..., since_ms: int | None = ...) -> pd.DataFrame: ...

    def fetch_order_book_snapshot(self, symbol: str, depth: int = ...) -> pd.DataFrame: ...


@dataclass(frozen=True)
class DownloadReport:
    """What one download run did."""

    kind: str  # "candles" or "funding"
    symbol: str
    timeframe: str | None
    requested_from: pd.Timestamp  # where this run started asking (after resuming)
    pages: int
    fetched: int  # rows received and kept (closed, in range)
    new: int  # rows that were not stored before
    first: pd.Timestamp | None  # first and last row received
    last: pd.Timestamp | None
    resumed: bool  # started after already stored rows

    def summary(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing new"
        what = f"{self.symbol} {self.timeframe}" if self.timeframe else self.symbol
        return f"{self.kind} {what}: {self.fetched} fetched, {self.new} new in {self.pages} pages ({span})"


def to_timestamp(value: pd.Timestamp | str | int | None, name: str) -> pd.Timestamp | None:
    """A UTC timestamp from a date string, a Timestamp or integer milliseconds."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return pd.Timestamp(int(value), unit="ms", tz="UTC")
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}={value!r}: not a date; use e.g. 2025-09-19 or 2025-09-19T12:00Z") from e
    if ts is pd.NaT:
        raise DataError(f"{name}={value!r}: not a date; use e.g. 2025-09-19")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _requested_span(
    since: pd.Timestamp | str | int | None, until: pd.Timestamp | str | int | None
) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """``(since, until)`` as UTC timestamps; ``since`` is required and not after ``until``."""
    start = to_timestamp(since, "since")
    if start is None:
        raise DataError("since is required: the first date to download, e.g. 2025-09-19")
    end = to_timestamp(until, "until")
    if end is not None and end < start:
        raise DataError(f"until={end} is before since={start}")
    return start, end


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _progress_bar(enabled: bool | None, total: int | None, desc: str) -> Any:
    from aster_rl.progress import progress as make_bar

    return make_bar(total=total, desc=desc, enabled=enabled)


def download_candles(
    client: MarketDataClient,
    db: Any,
    source: str,
    symbol: str,
    timeframe: str,
    since: pd.Timestamp | str | int,
    until: pd.Timestamp | str | int | None = None,
    progress: bool | None = False,
    *,
    now: Clock = _utc_now,
    max_pages: int | None = None,
    page_limit: int = KLINES_PAGE,
) -> DownloadReport:
    """Download closed candles with open time in ``[since, until]`` into ``db``.

    Resumes from the newest stored bar + one bar; stores every page in its own
    transaction; stops when a page brings nothing new, at ``until``, at the last closed
    bar, or after ``max_pages``. ``progress=None`` shows a bar on a terminal only.
    """
    tf_ms = timeframe_to_ms(timeframe)
    if not 1 <= page_limit <= KLINES_PAGE:
        raise ValueError(f"page_limit={page_limit}: must be within 1..{KLINES_PAGE}")
    start, end = _requested_span(since, until)
    last_stored = last_candle_time(db, source, symbol, timeframe)
    resumed = last_stored is not None and last_stored >= start
    if resumed:
        start = last_stored + pd.Timedelta(milliseconds=tf_ms)
    cursor = _ms(start)
    requested_from = start
    now_ms = _ms(now())
    last_closed_open = (now_ms // tf_ms) * tf_ms - tf_ms  # newest bar with open + tf <= now (aligned grids)
    stop_ms = last_closed_open if end is None else min(_ms(end), last_closed_open)
    expected = max(0, (stop_ms - cursor) // tf_ms + 1)
    logger.info(
        "%s %s %s from %s (%s): about %d bars to fetch",
        source, symbol, timeframe, requested_from, "resuming" if resumed else "fresh", expected,
    )
    pages = fetched = new = 0
    first = last = None
    bar = _progress_bar(progress, expected, f"{symbol} {timeframe}") if progress is not False else None
    try:
        while cursor <= stop_ms and (max_pages is None or pages < max_pages):
            page = client.fetch_klines(symbol, timeframe, cursor, limit=page_limit, until_ms=stop_ms)
            pages += 1
            if page.empty:
                break
            open_ms = page.index.as_unit("ms").asi8
            clock_ms = _ms(now())
            keep = (open_ms >= cursor) & (open_ms <= stop_ms) & (open_ms + tf_ms <= clock_ms)
            dropped_forming = int(((open_ms + tf_ms) > clock_ms).sum())
            if dropped_forming:
                logger.debug("%s %s: dropped %d still-forming candle(s)", symbol, timeframe, dropped_forming)
            page = page[keep]
            if page.empty:
                break
            added = upsert_candles(db, source, symbol, timeframe, page)
            fetched += len(page)
            new += added
            first = page.index[0] if first is None else first
            last = page.index[-1]
            cursor = _ms(last) + tf_ms
            if bar is not None:
                bar.update(len(page))
            logger.debug("%s %s: page %d, %d bars up to %s (%d new)", symbol, timeframe, pages, len(page), last, added)
    finally:
        if bar is not None:
            bar.close()
    report = DownloadReport("candles", symbol, timeframe, requested_from, pages, fetched, new, first, last, resumed)
    logger.info("%s", report.summary())
    return report


def download_funding(
    client: MarketDataClient,
    db: Any,
    source: str,
    symbol: str,
    since: pd.Timestamp | str | int,
    until: pd.Timestamp | str | int | None = None,
    *,
    now: Clock = _utc_now,
    max_pages: int | None = None,
) -> DownloadReport:
    """Download funding settlements in ``[since, until]``, resuming after the newest stored one."""
    start, end = _requested_span(since, until)
    stored = load_funding(db, source, symbol, start=start)
    resumed = len(stored) > 0
    if resumed:
        start = stored.index[-1] + pd.Timedelta(milliseconds=1)
    requested_from = start
    cursor = _ms(start)
    stop_ms = _ms(now()) if end is None else min(_ms(end), _ms(now()))
    pages = fetched = new = 0
    first = last = None
    while cursor <= stop_ms and (max_pages is None or pages < max_pages):
        page = client.fetch_funding_history(symbol, cursor, limit=FUNDING_PAGE, until_ms=stop_ms)
        pages += 1
        if page.empty:
            break
        ms = page.index.as_unit("ms").asi8
        page = page[(ms >= cursor) & (ms <= stop_ms)]
        if page.empty:
            break
        new += upsert_funding(db, source, symbol, page)
        fetched += len(page)
        first = page.index[0] if first is None else first
        last = page.index[-1]
        cursor = _ms(last) + 1
    report = DownloadReport("funding", symbol, None, requested_from, pages, fetched, new, first, last, resumed)
    logger.info("%s", report.summary())
    return report


@dataclass(frozen=True)
class SnapshotReport:
    symbol: str
    book_rows: int
    trades_fetched: int
    trades_new: int

    def summary(self) -> str:
        return f"snapshot {self.symbol}: {self.book_rows} book row, {self.trades_fetched} trades ({self.trades_new} new)"


def download_snapshot(
    client: MarketDataClient, db: Any, source: str, symbol: str, *, trades_limit: int = 1000, depth: int = 100
) -> SnapshotReport:
    """Store one order-book summary row and the recent public trades (for the whale tentacle)."""
    book = client.fetch_order_book_snapshot(symbol, depth=depth)
    book_rows = upsert_book_snapshots(db, source, symbol, book)
    trades = client.fetch_recent_trades(symbol, limit=trades_limit)
    trades_new = upsert_trades(db, source, symbol, trades) if len(trades) else 0
    report = SnapshotReport(symbol, book_rows, len(trades), trades_new)
    logger.info("%s", report.summary())
    return report


def expected_bars(since: pd.Timestamp, until: pd.Timestamp, timeframe: str) -> int:
    """Bars with open time in ``[since, until]`` on the timeframe grid."""
    tf_ms = timeframe_to_ms(timeframe)
    return max(0, math.floor((_ms(until) - _ms(since)) / tf_ms) + 1)
