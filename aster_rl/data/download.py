"""Historical download from an exchange into the database, page by page, resumable.

Candles are paged with ``since`` (at most 1,500 bars a call). With bars already stored,
a run fetches the bars from ``since`` up to the oldest stored one (a backfill) and then
those from one bar after the newest stored one, so a second run fetches only what is new
and an interrupted run continues where it stopped; bars between the oldest and the newest
stored ones are taken as stored. Each page is stored in its own transaction as it arrives.
The still-forming candle (``open + timeframe > now``) is never stored; ``now`` is an
injectable clock. Funding history is paged the same way (at most 1,000 a call), its
settlement times snapped to the funding grid (:func:`snap_funding_times`); the order book
and recent trades are stored as a snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

import numpy as np
import pandas as pd

from aster_rl.errors import DataError
from aster_rl.storage import last_candle_time, load_funding, upsert_book_snapshots, upsert_candles, upsert_funding, upsert_trades
from aster_rl.storage.repository import first_candle_time
from aster_rl.data.timeframes import timeframe_to_ms

logger = logging.getLogger(__name__)

KLINES_PAGE = 1500
FUNDING_PAGE = 1000
FUNDING_JITTER = pd.Timedelta(seconds=1)  # settlement stamps further than this from the grid are refused

Clock = Callable[[], pd.Timestamp]


class MarketDataClient(Protocol):
    """What the download needs from :class:`aster_rl.exchange.client.ExchangeClient`."""

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
    resumed: bool  # the forward span started after already stored rows
    backfilled: int = 0  # new rows older than the oldest row stored before the run

    def summary(self) -> str:
        span = f"{self.first} .. {self.last}" if self.first is not None else "nothing new"
        what = f"{self.symbol} {self.timeframe}" if self.timeframe else self.symbol
        back = f", {self.backfilled} backfilled" if self.backfilled else ""
        return f"{self.kind} {what}: {self.fetched} fetched, {self.new} new{back} in {self.pages} pages ({span})"


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


def _pages(
    fetch: Callable[[int | None, int], pd.DataFrame], lo_ms: int, hi_ms: int, backward: bool, step_ms: int,
    pages_left: Callable[[], bool],
) -> Iterator[pd.DataFrame]:
    """The rows with time in ``[lo_ms, hi_ms]``, page by page: forward from ``lo_ms``
    (``fetch(since_ms, until_ms)``), or backward from ``hi_ms`` (``fetch(None, until_ms)``,
    the newest rows up to it), so that an interrupted backfill leaves the stored rows
    contiguous. Stops at the span's end, at a page with nothing in the span, or when
    ``pages_left()`` says so."""
    while lo_ms <= hi_ms and pages_left():
        page = fetch(None, hi_ms) if backward else fetch(lo_ms, hi_ms)
        if page.empty:
            return
        ms = page.index.as_unit("ms").asi8
        if backward and ms.min() > hi_ms:
            logger.warning("the exchange sent rows after the asked end (%s): it does not page backward; nothing "
                           "backfilled", pd.Timestamp(hi_ms, unit="ms", tz="UTC"))
        page = page[(ms >= lo_ms) & (ms <= hi_ms)]
        if page.empty:
            return
        yield page
        if backward:
            hi_ms = _ms(page.index[0]) - step_ms
        else:
            lo_ms = _ms(page.index[-1]) + step_ms


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

    With stored bars, first backfills what lies between ``since`` and the oldest of them
    (paging backward from it), then resumes from the newest + one bar; stores every page in
    its own transaction; a span stops when a page brings nothing, at its end, at the last
    closed bar, or after ``max_pages`` in all. ``progress=None`` shows a bar on a terminal only.
    """
    tf_ms = timeframe_to_ms(timeframe)
    if not 1 <= page_limit <= KLINES_PAGE:
        raise ValueError(f"page_limit={page_limit}: must be within 1..{KLINES_PAGE}")
    start, end = _requested_span(since, until)
    oldest = first_candle_time(db, source, symbol, timeframe)
    newest = last_candle_time(db, source, symbol, timeframe)
    now_ms = _ms(now())
    last_closed_open = (now_ms // tf_ms) * tf_ms - tf_ms  # newest bar with open + tf <= now (aligned grids)
    stop_ms = last_closed_open if end is None else min(_ms(end), last_closed_open)
    resumed = newest is not None and newest >= start
    forward_ms = _ms(newest) + tf_ms if resumed else _ms(start)
    spans = [(forward_ms, stop_ms, False)]
    if oldest is not None and start < oldest:
        spans.insert(0, (_ms(start), min(_ms(oldest) - tf_ms, stop_ms), True))
    spans = [span for span in spans if span[0] <= span[1]]
    requested_from = pd.Timestamp(spans[0][0] if spans else forward_ms, unit="ms", tz="UTC")
    expected = sum((hi - lo) // tf_ms + 1 for lo, hi, _ in spans)
    logger.info(
        "%s %s %s from %s (%s): about %d bars to fetch",
        source, symbol, timeframe, requested_from, "resuming" if resumed else "fresh", expected,
    )
    pages = fetched = new = backfilled = 0
    first = last = None

    def fetch(since_ms: int | None, until_ms: int) -> pd.DataFrame:
        nonlocal pages
        pages += 1
        page = client.fetch_klines(symbol, timeframe, since_ms, limit=page_limit, until_ms=until_ms)
        open_ms = page.index.as_unit("ms").asi8
        forming = (open_ms + tf_ms) > _ms(now())
        if forming.any():
            logger.debug("%s %s: dropped %d still-forming candle(s)", symbol, timeframe, int(forming.sum()))
        return page[~forming]

    bar = _progress_bar(progress, expected, f"{symbol} {timeframe}") if progress is not False else None
    try:
        for lo, hi, backward in spans:
            for page in _pages(fetch, lo, hi, backward, tf_ms, lambda: max_pages is None or pages < max_pages):
                added = upsert_candles(db, source, symbol, timeframe, page)
                fetched += len(page)
                new += added
                backfilled += added if backward else 0
                first = page.index[0] if first is None else min(first, page.index[0])
                last = page.index[-1] if last is None else max(last, page.index[-1])
                if bar is not None:
                    bar.update(len(page))
                logger.debug(
                    "%s %s: page %d, %d bars %s .. %s (%d new)",
                    symbol, timeframe, pages, len(page), page.index[0], page.index[-1], added,
                )
    finally:
        if bar is not None:
            bar.close()
    report = DownloadReport(
        "candles", symbol, timeframe, requested_from, pages, fetched, new, first, last, resumed, backfilled
    )
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
    """Download funding settlements in ``[since, until]``: those between ``since`` and the
    oldest stored one (a backfill, paged backward), then those after the newest. Settlement
    times are stored on the funding grid (:func:`snap_funding_times`); the exchange is paged
    by its own, jittered, times."""
    start, end = _requested_span(since, until)
    every = load_funding(db, source, symbol)  # a few settlements a day: small
    stored = every[(every.index >= start) & (every.index <= end)] if end is not None else every[every.index >= start]
    stop_ms = _ms(now()) if end is None else min(_ms(end), _ms(now()))
    jitter_ms = int(FUNDING_JITTER / pd.Timedelta(milliseconds=1))
    resumed = len(stored) > 0
    # past the newest stored settlement, however late the exchange stamped it
    forward_ms = _ms(stored.index[-1]) + jitter_ms + 1 if resumed else _ms(start)
    spans = [(forward_ms, stop_ms, False)]
    if resumed and stored.index[0] - _funding_grid(every.index) >= start:  # one may lie before the oldest
        spans.insert(0, (_ms(start), min(_ms(stored.index[0]) - jitter_ms - 1, stop_ms), True))
    spans = [span for span in spans if span[0] <= span[1]]
    requested_from = pd.Timestamp(spans[0][0] if spans else forward_ms, unit="ms", tz="UTC")
    known = every.index
    pages = fetched = new = backfilled = 0
    first = last = None

    def fetch(since_ms: int | None, until_ms: int) -> pd.DataFrame:
        nonlocal pages
        pages += 1
        return client.fetch_funding_history(symbol, since_ms, limit=FUNDING_PAGE, until_ms=until_ms)

    for lo, hi, backward in spans:
        for page in _pages(fetch, lo, hi, backward, 1, lambda: max_pages is None or pages < max_pages):
            times = snap_funding_times(page.index, _funding_grid(known.append(page.index)), f"funding {symbol}")
            known = known.append(times)
            page = page.set_axis(times)
            page = page[~page.index.duplicated(keep="last")]
            added = upsert_funding(db, source, symbol, page)
            new += added
            backfilled += added if backward else 0
            fetched += len(page)
            first = page.index[0] if first is None else min(first, page.index[0])
            last = page.index[-1] if last is None else max(last, page.index[-1])
    report = DownloadReport("funding", symbol, None, requested_from, pages, fetched, new, first, last, resumed, backfilled)
    logger.info("%s", report.summary())
    return report


def _funding_grid(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The funding interval read from settlement times: the greatest common divisor of their
    spacings, each rounded to whole hours (8h for an 8-hourly series, 4h for one that moved
    from 8h to 4h); 1h, the shortest funding interval of any venue, for fewer than two times."""
    ns = np.unique(pd.DatetimeIndex(times).as_unit("ns").asi8)
    hour = pd.Timedelta(hours=1).value
    hours = np.rint(np.diff(ns) / hour).astype(np.int64)
    hours = hours[hours > 0]
    return pd.Timedelta(int(np.gcd.reduce(hours)) * hour if len(hours) else hour, unit="ns")


def snap_funding_times(
    times: pd.DatetimeIndex, interval: pd.Timedelta | str | None = None, what: str = "funding"
) -> pd.DatetimeIndex:
    """Settlement times moved to the funding grid, the nearest multiple of ``interval`` from the
    epoch (read from the times themselves when None, see :func:`_funding_grid`).

    Exchanges stamp settlements a few milliseconds late (Binance: up to 29 ms); a time further
    than :data:`FUNDING_JITTER` from the grid is not jitter and raises a one-line DataError.
    """
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        raise DataError(f"{what}: settlement times need a timezone (UTC)")
    step = (_funding_grid(index) if interval is None else pd.Timedelta(interval)).value
    if step <= 0:
        raise DataError(f"{what}: funding interval {interval} must be positive")
    ns = index.as_unit("ns").asi8
    snapped = (ns + step // 2) // step * step
    off = np.abs(ns - snapped)
    too_far = off > FUNDING_JITTER.value
    if too_far.any():
        k = int(np.argmax(too_far))
        raise DataError(
            f"{what}: settlement at {index[k]} is {pd.Timedelta(int(off[k]), unit='ns')} off the "
            f"{pd.Timedelta(step, unit='ns')} funding grid, more than {FUNDING_JITTER} of jitter; "
            f"{int(too_far.sum())} such time(s)"
        )
    return pd.DatetimeIndex(pd.to_datetime(snapped, unit="ns", utc=True), name=index.name).as_unit(index.unit)


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

