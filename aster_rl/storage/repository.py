"""Idempotent writes and typed reads of market data (DataFrames in market.py's conventions).

Every write function takes a :class:`Database` (one transaction of its own) or an open
``Session`` (joins the caller's transaction), and returns the number of *new* rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from aster_rl.config import DataConfig
from aster_rl.errors import DataError, StorageError
from aster_rl.data.market import BOOK_COLUMNS, CANDLE_COLUMNS, OPTIONAL_CANDLE_COLUMNS, MarketBundle, validate_candles
from aster_rl.storage.bulk import bulk_insert_new, fetch_rows
from aster_rl.storage.database import Database
from aster_rl.storage.models import Base, Candle, CandleSeries, FundingRate, OrderBookSnapshot, Trade
from aster_rl.data.timeframes import resample_candles, timeframe_to_timedelta

logger = logging.getLogger(__name__)

TimeLike: TypeAlias = pd.Timestamp | str | int | None
Target = Database | Session


# ---------------------------------------------------------------- helpers

@contextmanager
def _connection(target: Target) -> Iterator[Connection]:
    """A connection inside one transaction: the database's own, or the caller's session."""
    try:
        if isinstance(target, Session):
            yield target.connection()
            return
        target.ensure_checked()
        with target.session() as session:
            yield session.connection()
    except SQLAlchemyError as e:
        raise StorageError(f"database write/read failed: {e}") from e


def _index_ms(frame: pd.DataFrame, where: str) -> list[int]:
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise DataError(f"{where}: index must be a tz-aware UTC DatetimeIndex")
    return idx.tz_convert("UTC").as_unit("ms").asi8.tolist()


def _floats(frame: pd.DataFrame, column: str, where: str, nullable: bool = False) -> list[float | None]:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values.tolist()
    if not nullable:
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: column {column!r} has {int(bad.sum())} missing/non-finite values, first at row {r}")
    return [None if b else v for v, b in zip(values.tolist(), bad.tolist())]


def _require(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}")


def _to_ms(value: TimeLike) -> int | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)  # Timestamp.value is always nanoseconds


def _time_index(ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ms, dtype=np.int64), unit="ms", utc=True)).as_unit("us")


def _read(target: Target, stmt) -> list[tuple]:
    with _connection(target) as conn:
        return [tuple(r) for r in conn.execute(stmt).all()]


def _between(stmt, column, start_ms: int | None, end_ms: int | None, end_inclusive: bool = True):
    if start_ms is not None:
        stmt = stmt.where(column >= start_ms)
    if end_ms is not None:
        stmt = stmt.where(column <= end_ms if end_inclusive else column < end_ms)
    return stmt


# ---------------------------------------------------------------- candles

def _series_id(conn: Connection, source: str, symbol: str, timeframe: str) -> int | None:
    """The id of the (source, symbol, timeframe) series; None when it is not stored."""
    t = CandleSeries.__table__
    stmt = select(t.c.id).where(t.c.source == source, t.c.symbol == symbol, t.c.timeframe == timeframe)
    found = conn.execute(stmt).scalar_one_or_none()
    return None if found is None else int(found)


def _new_or_stored_series_id(conn: Connection, source: str, symbol: str, timeframe: str) -> int:
    """The id of the (source, symbol, timeframe) series, created when it is not stored yet."""
    found = _series_id(conn, source, symbol, timeframe)
    if found is not None:
        return found
    t = CandleSeries.__table__
    bulk_insert_new(conn, t, {"source": [source], "symbol": [symbol], "timeframe": [timeframe]}, ("source", "symbol", "timeframe"))
    stmt = select(t.c.id).where(t.c.source == source, t.c.symbol == symbol, t.c.timeframe == timeframe)
    return int(conn.execute(stmt).scalar_one())


def _candle_columns(candles: pd.DataFrame, where: str) -> dict[str, list[Any]]:
    """The bars column-wise as stored: ``ts`` (epoch ms), OHLCV, and the optional columns present."""
    columns: dict[str, list[Any]] = {"ts": _index_ms(candles, where)}
    for col in CANDLE_COLUMNS:
        columns[col] = _floats(candles, col, where)
    for col in OPTIONAL_CANDLE_COLUMNS:
        if col in candles.columns:
            columns[col] = _floats(candles, col, where, nullable=True)
    return columns


def _insert_candles(conn: Connection, source: str, symbol: str, timeframe: str, candles: pd.DataFrame) -> int:
    where = f"candles {source} {symbol} {timeframe}"
    timeframe_to_timedelta(timeframe)
    validate_candles(candles, where)
    n = len(candles)
    if n == 0:
        return 0
    series = _new_or_stored_series_id(conn, source, symbol, timeframe)
    columns = {"series_id": [series] * n, **_candle_columns(candles, where)}
    new = bulk_insert_new(conn, Candle.__table__, columns, ("series_id", "ts"))
    logger.debug("%s: %d bars, %d new", where, n, new)
    return new


def upsert_candles(db: Target, source: str, symbol: str, timeframe: str, candles: pd.DataFrame) -> int:
    """Store bars keyed by (source, symbol, timeframe, open time); existing bars are kept as they are.

    For files a user imports, :func:`merge_candles` refuses (or replaces) a stored bar with other values.
    """
    with _connection(db) as conn:
        return _insert_candles(conn, source, symbol, timeframe, candles)


class ChangedBar(DataError):
    """A bar to store differs from the stored bar with the same open time."""

    def __init__(self, message: str, ts: pd.Timestamp, column: str, stored: float | None, new: float | None, bars: int):
        super().__init__(message)
        self.ts, self.column, self.stored, self.new, self.bars = ts, column, stored, new, bars


@dataclass(frozen=True)
class CandleMerge:
    """What :func:`merge_candles` did: bars added, and stored bars overwritten (only with ``replace``)."""

    new: int
    changed: int


_SAME_RTOL = 1e-12  # values this close are the same number read by another parser


@dataclass(frozen=True)
class _Comparison:
    """Which of the bars to store are stored already, and which of those differ (first differing column each)."""

    stored: np.ndarray  # bool per bar
    changed: np.ndarray  # positions of bars stored with other values, in time order
    columns: list[str]  # the first differing column of each changed bar
    old: np.ndarray  # stored values of that column, per changed bar


def _compare_stored(conn: Connection, series: int, candles: pd.DataFrame, ts: np.ndarray) -> _Comparison:
    table = Candle.__table__
    names = [c for c in (*CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS) if c in candles.columns]
    stmt = select(table.c.ts, *(table.c[c] for c in names)).where(
        table.c.series_id == series, table.c.ts >= int(ts.min()), table.c.ts <= int(ts.max())
    )
    rows = fetch_rows(conn, stmt)
    stored = np.zeros(len(ts), dtype=bool)
    if not rows:
        return _Comparison(stored, np.empty(0, dtype=np.int64), [], np.empty(0))
    found = np.array(rows, dtype=float).reshape(len(rows), len(names) + 1)
    positions = pd.Index(ts).get_indexer(found[:, 0].astype(np.int64))
    found, positions = found[positions >= 0], positions[positions >= 0]
    stored[positions] = True
    new = candles[names].to_numpy(dtype=float)[positions]
    differs = ~np.isclose(found[:, 1:], new, rtol=_SAME_RTOL, atol=0.0, equal_nan=True)
    hit = np.flatnonzero(differs.any(axis=1))
    hit = hit[np.argsort(positions[hit], kind="stable")]
    first = differs[hit].argmax(axis=1)
    return _Comparison(stored, positions[hit], [names[j] for j in first], found[hit, 1 + first])


def merge_candles(
    db: Target, source: str, symbol: str, timeframe: str, candles: pd.DataFrame, replace: bool = False
) -> CandleMerge:
    """Store bars; a stored bar with other values raises :class:`ChangedBar` (nothing written), or is overwritten
    with ``replace``. Identical bars are left alone, so importing the same file twice adds nothing."""
    where = f"candles {source} {symbol} {timeframe}"
    timeframe_to_timedelta(timeframe)
    validate_candles(candles, where)
    if len(candles) == 0:
        return CandleMerge(0, 0)
    ts = np.asarray(_index_ms(candles, where), dtype=np.int64)
    with _connection(db) as conn:
        series = _new_or_stored_series_id(conn, source, symbol, timeframe)
        seen = _compare_stored(conn, series, candles, ts)
        changed = len(seen.changed)
        if changed and not replace:
            r, column = int(seen.changed[0]), seen.columns[0]
            old = None if np.isnan(seen.old[0]) else float(seen.old[0])
            value = float(candles[column].iloc[r])
            new = None if np.isnan(value) else value
            raise ChangedBar(
                f"bar {candles.index[r]:%Y-%m-%d %H:%M} UTC differs from the one stored for {symbol} {timeframe} "
                f"(source {source!r}): {column} stored {old}, new {new}; "
                f"{_bars(changed)} differ{'s' if changed == 1 else ''}; pass --replace to overwrite",
                candles.index[r], column, old, new, changed,
            )
        if changed:
            _update_candles(conn, series, _candle_columns(candles.iloc[seen.changed], where))
        fresh = candles[~seen.stored]
        columns = {"series_id": [series] * len(fresh), **_candle_columns(fresh, where)}
        new_bars = bulk_insert_new(conn, Candle.__table__, columns, ("series_id", "ts")) if len(fresh) else 0
    logger.debug("%s: %d bars, %d new, %d replaced", where, len(candles), new_bars, changed)
    return CandleMerge(new_bars, changed)


def _bars(n: int) -> str:
    return f"{n:,} bar" if n == 1 else f"{n:,} bars"


def _update_candles(conn: Connection, series: int, columns: dict[str, list[Any]]) -> None:
    """Overwrite stored bars (given column-wise with ``ts``) with new values."""
    table = Candle.__table__
    names = [c for c in columns if c != "ts"]
    stmt = (
        update(table)
        .where(table.c.series_id == bindparam("b_series"), table.c.ts == bindparam("b_ts"))
        .values({c: bindparam(f"b_{c}") for c in names})
    )
    rows = [
        {"b_series": series, "b_ts": ts, **{f"b_{c}": columns[c][i] for c in names}}
        for i, ts in enumerate(columns["ts"])
    ]
    conn.execute(stmt, rows)


def last_candle_time(db: Target, source: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
    """Open time of the newest stored bar, or None."""
    with _connection(db) as conn:
        series = _series_id(conn, source, symbol, timeframe)
        ms = None if series is None else conn.execute(select(func.max(Candle.ts)).where(Candle.series_id == series)).scalar_one()
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def first_candle_time(db: Target, source: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
    """Open time of the oldest stored bar, or None."""
    with _connection(db) as conn:
        series = _series_id(conn, source, symbol, timeframe)
        ms = None if series is None else conn.execute(select(func.min(Candle.ts)).where(Candle.series_id == series)).scalar_one()
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def load_candles(
    db: Target, source: str, symbol: str, timeframe: str, start: TimeLike = None, end: TimeLike = None
) -> pd.DataFrame:
    """Bars with open time in ``[start, end]``; optional columns only when stored for every bar."""
    cols = ("ts", *CANDLE_COLUMNS, *OPTIONAL_CANDLE_COLUMNS)
    table = Candle.__table__
    with _connection(db) as conn:
        series = _series_id(conn, source, symbol, timeframe)
        stmt = select(*(table.c[c] for c in cols)).where(table.c.series_id == (-1 if series is None else series))
        stmt = _between(stmt, table.c.ts, _to_ms(start), _to_ms(end)).order_by(table.c.ts)
        rows = [tuple(r) for r in conn.execute(stmt).all()]
    frame = pd.DataFrame.from_records(rows, columns=list(cols), coerce_float=True)
    out = pd.DataFrame(index=_time_index(frame["ts"].to_numpy()))
    for col in CANDLE_COLUMNS:
        out[col] = frame[col].to_numpy(dtype=float)
    for col in OPTIONAL_CANDLE_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        if len(values) and np.isfinite(values).all():
            out[col] = values
        elif len(values) and np.isfinite(values).any():
            logger.warning("%s %s %s: %s stored for only some bars; column left out", source, symbol, timeframe, col)
    return out


# ---------------------------------------------------------------- funding

def _insert_funding(conn: Connection, source: str, symbol: str, funding: pd.DataFrame) -> int:
    where = f"funding {source} {symbol}"
    _require(funding, ["funding_rate"], where)
    n = len(funding)
    columns: dict[str, list[Any]] = {
        "source": [source] * n,
        "symbol": [symbol] * n,
        "ts": _index_ms(funding, where),
        "funding_rate": _floats(funding, "funding_rate", where),
    }
    if "mark_price" in funding.columns:
        columns["mark_price"] = _floats(funding, "mark_price", where, nullable=True)
    return bulk_insert_new(conn, FundingRate.__table__, columns, ("source", "symbol", "ts"))


def upsert_funding(db: Target, source: str, symbol: str, funding: pd.DataFrame) -> int:
    """Store funding settlements keyed by (source, symbol, settlement time)."""
    with _connection(db) as conn:
        return _insert_funding(conn, source, symbol, funding)


def load_funding(db: Target, source: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
    table = FundingRate.__table__
    stmt = select(table.c.ts, table.c.funding_rate, table.c.mark_price).where(
        table.c.source == source, table.c.symbol == symbol
    )
    rows = _read(db, _between(stmt, table.c.ts, _to_ms(start), _to_ms(end)).order_by(table.c.ts))
    frame = pd.DataFrame.from_records(rows, columns=["ts", "funding_rate", "mark_price"])
    out = pd.DataFrame({"funding_rate": frame["funding_rate"].to_numpy(dtype=float)}, index=_time_index(frame["ts"]))
    mark = pd.to_numeric(frame["mark_price"], errors="coerce").to_numpy(dtype=float)
    if len(mark) and np.isfinite(mark).all():
        out["mark_price"] = mark
    return out


# ---------------------------------------------------------------- trades

def _insert_trades(conn: Connection, source: str, symbol: str, trades: pd.DataFrame) -> int:
    where = f"trades {source} {symbol}"
    _require(trades, ["price", "amount", "side"], where)
    if "trade_id" not in trades.columns:
        trades = trades.assign(trade_id=_derived_trade_ids(trades, where))
    sides = trades["side"].astype(str).str.lower()
    bad = ~sides.isin(["buy", "sell"])
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: row {r} has side {trades['side'].iloc[r]!r}; expected 'buy' or 'sell'")
    ids = trades["trade_id"].astype(str)
    if ids.duplicated().any():
        r = int(np.flatnonzero(ids.duplicated().to_numpy())[0])
        raise DataError(f"{where}: row {r} repeats trade_id {ids.iloc[r]!r}")
    n = len(trades)
    columns: dict[str, list[Any]] = {
        "source": [source] * n,
        "symbol": [symbol] * n,
        "trade_id": ids.tolist(),
        "ts": _index_ms(trades, where),
        "price": _floats(trades, "price", where),
        "amount": _floats(trades, "amount", where),
        "side": sides.tolist(),
    }
    if "notional_usd" in trades.columns:
        columns["notional_usd"] = _floats(trades, "notional_usd", where, nullable=True)
    return bulk_insert_new(conn, Trade.__table__, columns, ("source", "symbol", "trade_id"))


def _derived_trade_ids(trades: pd.DataFrame, where: str) -> list[str]:
    """``<ts_ms>-<k>`` (k-th trade within that millisecond) for trade frames without exchange ids."""
    ms = pd.Series(_index_ms(trades, where))
    k = ms.groupby(ms).cumcount()
    logger.debug("%s: no trade_id column; deriving ids from time and order", where)
    return (ms.astype(str) + "-" + k.astype(str)).tolist()


def upsert_trades(db: Target, source: str, symbol: str, trades: pd.DataFrame) -> int:
    """Store trades keyed by (source, symbol, trade_id); without a ``trade_id`` column, ids are derived from time."""
    with _connection(db) as conn:
        return _insert_trades(conn, source, symbol, trades)


def load_trades(db: Target, source: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
    table = Trade.__table__
    cols = ["ts", "trade_id", "price", "amount", "side", "notional_usd"]
    stmt = select(*(table.c[c] for c in cols)).where(table.c.source == source, table.c.symbol == symbol)
    stmt = _between(stmt, table.c.ts, _to_ms(start), _to_ms(end)).order_by(table.c.ts, table.c.trade_id)
    frame = pd.DataFrame.from_records(_read(db, stmt), columns=cols)
    out = pd.DataFrame(
        {
            "trade_id": frame["trade_id"].astype(str).to_numpy(),
            "price": frame["price"].to_numpy(dtype=float),
            "amount": frame["amount"].to_numpy(dtype=float),
            "side": frame["side"].astype(str).to_numpy(),
        },
        index=_time_index(frame["ts"]),
    )
    notional = pd.to_numeric(frame["notional_usd"], errors="coerce").to_numpy(dtype=float)
    if len(notional) and np.isfinite(notional).all():
        out["notional_usd"] = notional
    return out


# ---------------------------------------------------------------- order book

def _insert_book(conn: Connection, source: str, symbol: str, book: pd.DataFrame) -> int:
    where = f"order book {source} {symbol}"
    _require(book, BOOK_COLUMNS, where)
    n = len(book)
    columns: dict[str, list[Any]] = {"source": [source] * n, "symbol": [symbol] * n, "ts": _index_ms(book, where)}
    for col in BOOK_COLUMNS:
        columns[col] = _floats(book, col, where)
    return bulk_insert_new(conn, OrderBookSnapshot.__table__, columns, ("source", "symbol", "ts"))


def upsert_book_snapshots(db: Target, source: str, symbol: str, book: pd.DataFrame) -> int:
    """Store order-book snapshots keyed by (source, symbol, snapshot time)."""
    with _connection(db) as conn:
        return _insert_book(conn, source, symbol, book)


def load_book(db: Target, source: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
    table = OrderBookSnapshot.__table__
    cols = ["ts", *BOOK_COLUMNS]
    stmt = select(*(table.c[c] for c in cols)).where(table.c.source == source, table.c.symbol == symbol)
    stmt = _between(stmt, table.c.ts, _to_ms(start), _to_ms(end)).order_by(table.c.ts)
    frame = pd.DataFrame.from_records(_read(db, stmt), columns=cols)
    return pd.DataFrame(
        {c: frame[c].to_numpy(dtype=float) for c in BOOK_COLUMNS}, index=_time_index(frame["ts"])
    )


# ---------------------------------------------------------------- whole markets

def store_market(
    db: Target,
    bundle: MarketBundle,
    source: str,
    btc_symbol: str = "BTC/USDT:USDT",
    eth_symbol: str = "ETH/USDT:USDT",
) -> dict[str, int]:
    """Store every part of ``bundle`` in ONE transaction; return new rows per part."""
    tf = bundle.timeframe
    new: dict[str, int] = {}
    with _connection(db) as conn:
        new["candles"] = _insert_candles(conn, source, bundle.symbol, tf, bundle.candles)
        if bundle.funding is not None:
            new["funding"] = _insert_funding(conn, source, bundle.symbol, bundle.funding)
        if bundle.trades is not None:
            new["trades"] = _insert_trades(conn, source, bundle.symbol, bundle.trades)
        if bundle.book is not None:
            new["book"] = _insert_book(conn, source, bundle.symbol, bundle.book)
        if bundle.btc is not None:
            new["btc"] = _insert_candles(conn, source, btc_symbol, tf, bundle.btc)
        if bundle.eth is not None:
            new["eth"] = _insert_candles(conn, source, eth_symbol, tf, bundle.eth)
    logger.info("stored %s %s from %s: %s new rows", bundle.symbol, tf, source, new)
    return new


def load_market(
    db: Target,
    data_cfg: DataConfig,
    start: TimeLike = None,
    end: TimeLike = None,
    timeframe: str | None = None,
) -> MarketBundle:
    """The market of ``data_cfg`` (source, symbol, base timeframe) as known from ``start`` to the close of the
    base bar opening at ``end``: base bars opening in ``[start, end]`` and the events of those bars.

    With ``timeframe`` above the base, candles (and BTC/ETH) are resampled from those base bars into
    complete higher bars only (a higher bar still open at ``end`` is absent; ``start``, or the first stored
    bar when ``start`` is None, is rounded up to a whole higher bar). Missing parts are None.
    """
    source, symbol, base = data_cfg.source, data_cfg.symbol, data_cfg.timeframe
    target = timeframe or base
    base_td, target_td = timeframe_to_timedelta(base), timeframe_to_timedelta(target)
    if target_td < base_td or target_td % base_td != pd.Timedelta(0):
        raise DataError(f"cannot build {target} bars from stored {base} bars: need a whole multiple of {base}")
    start_ts = None if start is None else pd.Timestamp(_to_ms(start), unit="ms", tz="UTC")
    end_ts = None if end is None else pd.Timestamp(_to_ms(end), unit="ms", tz="UTC")
    if start_ts is not None and target != base:
        start_ts = start_ts.ceil(target_td)  # never start inside a higher bar
    base_end = end_ts  # base bars opening after ``end`` are unknown, so a higher bar they would close is dropped
    base_candles = load_candles(db, source, symbol, base, start_ts, base_end)
    if start_ts is None and target != base and not base_candles.empty:
        start_ts = base_candles.index[0].ceil(target_td)  # stored bars may begin inside a higher bar
        base_candles = base_candles.loc[start_ts:]

    def candles_of(sym: str) -> pd.DataFrame | None:
        frame = base_candles if sym == symbol else load_candles(db, source, sym, base, start_ts, base_end)
        if frame.empty:
            return None
        return frame if target == base else resample_candles(frame, base, target)

    candles = candles_of(symbol)
    if candles is None or candles.empty:
        span = f" between {start_ts} and {end_ts}" if start_ts is not None or end_ts is not None else ""
        raise DataError(
            f"no {base} candles for {symbol} from source {source!r}{span}; store some with "
            f"`aster-rl data synth`, `aster-rl data import FILE` or `aster-rl data download` "
            f"(and set data.source to where they came from)"
        )
    events_end = None if base_end is None else base_end + base_td - pd.Timedelta(milliseconds=1)

    def events(loader) -> pd.DataFrame | None:
        frame = loader(db, source, symbol, start_ts, events_end)
        return None if frame.empty else frame

    return MarketBundle(
        symbol=symbol,
        timeframe=target,
        candles=candles,
        funding=events(load_funding),
        trades=events(load_trades),
        book=events(load_book),
        btc=candles_of(data_cfg.btc_symbol),
        eth=candles_of(data_cfg.eth_symbol),
    )


# ---------------------------------------------------------------- overview

def describe(db: Database) -> dict[str, Any]:
    """Row counts per table, and per (source, symbol, timeframe) for candles with first/last bar."""
    db.ensure_checked()
    tables: dict[str, int] = {}
    with _connection(db) as conn:
        for name, table in Base.metadata.tables.items():
            tables[name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        t, s = Candle.__table__, CandleSeries.__table__
        stmt = (
            select(s.c.source, s.c.symbol, s.c.timeframe, func.count(), func.min(t.c.ts), func.max(t.c.ts))
            .join_from(s, t, t.c.series_id == s.c.id)
            .group_by(s.c.source, s.c.symbol, s.c.timeframe)
            .order_by(s.c.source, s.c.symbol, s.c.timeframe)
        )
        series = [
            {
                "source": src,
                "symbol": sym,
                "timeframe": tf,
                "bars": int(count),
                "first": pd.Timestamp(int(lo), unit="ms", tz="UTC"),
                "last": pd.Timestamp(int(hi), unit="ms", tz="UTC"),
            }
            for src, sym, tf, count, lo, hi in conn.execute(stmt).all()
        ]
    return {"tables": tables, "candles": series}
