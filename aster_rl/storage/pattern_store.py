"""Persistence of the pattern library: the ``patterns`` and ``pattern_history`` tables.

A ``patterns`` row holds the derived figures in columns (for tables and queries) and, in
``definition`` (JSON), everything needed to rebuild the entry: the pattern, the running
statistics (counts, sums, per-regime and per-phase buckets), the mining figures and the
training trades. Every change is also an event in ``pattern_history``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from aster_rl.config import PatternsConfig
from aster_rl.errors import DataError, StorageError
from aster_rl.patterns.language import Pattern
from aster_rl.patterns.library import HistoryEvent, LibraryEntry, PatternLibrary
from aster_rl.patterns.stats import PatternStats, Status
from aster_rl.storage.database import Database
from aster_rl.storage.models import Pattern as PatternRow
from aster_rl.storage.models import PatternHistory, Prediction

logger = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fill_row(row: PatternRow, entry: LibraryEntry, trades: list[list[Any]] | None, ts_ms: int) -> None:
    s = entry.stats.summary()
    row.name = entry.name
    definition = {"pattern": entry.pattern.to_dict(), "stats": entry.stats.to_dict(), "meta": _clean(entry.meta)}
    if trades is not None:
        definition["trades"] = _clean(trades)
    elif isinstance(row.definition, dict) and "trades" in row.definition:
        definition["trades"] = row.definition["trades"]
    row.definition = definition
    row.side = entry.pattern.side
    row.profile = entry.pattern.profile
    row.trades = s["trades"]
    row.wins = s["wins"]
    row.losses = s["losses"]
    row.avg_win = s["avg_win"]
    row.avg_loss = s["avg_loss"]
    row.profit_factor = s["profit_factor"]
    row.expectancy = s["expectancy"]
    row.win_rate_lower_bound = s["win_rate_lower_bound"]
    row.best_regime = s["best_regime"]
    row.best_cycle_phase = s["best_cycle_phase"]
    row.status = str(entry.status)
    row.updated_at = ts_ms


def _entry_from_row(row: PatternRow, history: list[PatternHistory]) -> LibraryEntry:
    d = row.definition or {}
    try:
        pattern = Pattern.from_dict(d["pattern"])
        stats = PatternStats.from_dict(d.get("stats", {}))
    except (KeyError, ValueError) as e:
        raise StorageError(f"pattern {row.name!r}: stored definition is unreadable ({e})") from None
    events = tuple(HistoryEvent(int(h.ts), h.event, h.snapshot or {}) for h in history)
    try:
        trades = tuple((str(t[0]), str(t[1]), float(t[2]), str(t[3])) for t in d.get("trades") or ())
    except (IndexError, TypeError, ValueError) as e:
        raise StorageError(f"pattern {row.name!r}: stored training trades are unreadable ({e})") from None
    return LibraryEntry(pattern, stats, Status(row.status), dict(d.get("meta") or {}), events, trades)


def save_library(db: Database, library: PatternLibrary, trades: dict[str, list[list[Any]]] | None = None, *, replace_all: bool = True) -> int:
    """Write a freshly built library (e.g. a mining run): upsert every entry by name and
    append all its history events.

    ``trades``: per pattern name, its training trades ``[signal_time, exit_time, net_return, reason]``
    (default: the entry's own).
    ``replace_all``: drop the rows of patterns not in ``library`` (their history stays).
    Returns the number of patterns written.
    """
    db.ensure_checked()
    trades = trades or {}
    try:
        with db.session() as session:
            existing = {r.name: r for r in session.scalars(select(PatternRow))}
            if replace_all:
                stale = [name for name in existing if name not in library]
                if stale:
                    session.execute(delete(PatternRow).where(PatternRow.name.in_(stale)))
            for entry in library:
                ts_ms = entry.history[-1].ts_ms if entry.history else 0
                row = existing.get(entry.name)
                if row is None:
                    row = PatternRow()
                    session.add(row)
                own = [list(t) for t in entry.trades] or None
                _fill_row(row, entry, trades.get(entry.name, own), ts_ms)
                for ev in entry.history:
                    session.add(PatternHistory(pattern_name=entry.name, ts=ev.ts_ms, event=ev.event, snapshot=_clean(ev.snapshot)))
    except SQLAlchemyError as e:
        raise StorageError(f"cannot write the pattern library to {db.display_url}: {e}") from None
    logger.info("wrote %d patterns to %s", len(library), db.display_url)
    return len(library)


def load_library(db: Database, cfg: PatternsConfig) -> PatternLibrary:
    """The stored library (statuses as stored; history in time order)."""
    db.ensure_checked()
    try:
        with db.session() as session:
            rows = list(session.scalars(select(PatternRow).order_by(PatternRow.id)))
            hist: dict[str, list[PatternHistory]] = {}
            for h in session.scalars(select(PatternHistory).order_by(PatternHistory.ts, PatternHistory.id)):
                hist.setdefault(h.pattern_name, []).append(h)
            entries = [_entry_from_row(r, hist.get(r.name, [])) for r in rows]
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the pattern library from {db.display_url}: {e}") from None
    return PatternLibrary(cfg, entries)


def pattern_trades(db: Database, name: str) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """A pattern's training trades and its live/paper trades (``predictions`` rows naming it), each
    with the ``net_return`` its outcome added to the statistics (None while open)."""
    db.ensure_checked()
    with db.session() as session:
        row = session.scalars(select(PatternRow).where(PatternRow.name == name)).first()
        if row is None:
            raise DataError(f"no pattern named {name!r} in {db.display_url}; `aster-rl patterns list` lists them")
        training = list((row.definition or {}).get("trades") or [])
        # the net return each live outcome added to the statistics, by its close time
        counted = {
            int(h.ts): (h.snapshot or {}).get("net_return")
            for h in session.scalars(select(PatternHistory).where(PatternHistory.pattern_name == name))
            if (h.snapshot or {}).get("net_return") is not None
        }
        live = [
            {
                "ts": p.ts,
                "side": p.side,
                "status": p.status,
                "pnl_usd": p.pnl_usd,
                "net_return": counted.get(int(p.closed_at)) if p.closed_at is not None else None,
                "exit_reason": p.exit_reason,
                "closed_at": p.closed_at,
            }
            for p in session.scalars(select(Prediction).where(Prediction.pattern == name).order_by(Prediction.ts))
        ]
    return training, live


def record_outcome(
    db: Database,
    cfg: PatternsConfig,
    name: str,
    net_return: float,
    regime: str | None = None,
    phase: str | None = None,
    ts_ms: int | None = None,
) -> LibraryEntry:
    """A closed live/paper trade that matched ``name``: update the stored statistics and status."""
    db.ensure_checked()
    try:
        with db.session() as session:
            entry = apply_outcome(session, cfg, name, net_return, regime, phase, ts_ms)
            if entry is None:
                raise DataError(f"no pattern named {name!r} in {db.display_url}; `aster-rl patterns list` lists them")
    except SQLAlchemyError as e:
        raise StorageError(f"cannot update pattern {name!r} in {db.display_url}: {e}") from None
    return entry


def apply_outcome(
    session: Any,
    cfg: PatternsConfig,
    name: str,
    net_return: float,
    regime: str | None = None,
    phase: str | None = None,
    ts_ms: int | None = None,
) -> LibraryEntry | None:
    """:func:`record_outcome` inside the caller's transaction ``session`` (e.g. the live runner's
    bar, so the prediction's outcome and the pattern's update commit together).
    Returns the updated entry, or None when no pattern has that name."""
    row = session.scalars(select(PatternRow).where(PatternRow.name == name)).first()
    if row is None:
        return None
    library = PatternLibrary(cfg, [_entry_from_row(row, [])])
    entry = library.record_outcome(name, net_return, regime, phase, ts_ms)
    event = entry.history[-1]
    _fill_row(row, entry, None, event.ts_ms)
    session.add(PatternHistory(pattern_name=name, ts=event.ts_ms, event=event.event, snapshot=_clean(event.snapshot)))
    return entry
