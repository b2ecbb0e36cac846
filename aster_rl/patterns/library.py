"""The pattern library: named patterns with running statistics, a status and a history.

It is built from a mining result (statistics of the training range's trades), then
updated by closed live or paper trades that matched a pattern: each update adds the
trade to the statistics, re-evaluates the status with :func:`~aster_rl.patterns.stats.status_of`
and appends an event (``updated``, or ``promoted`` / ``demoted`` / ``activated`` /
``candidate`` when the status changes) to the pattern's history.

``tentacle_params()`` gives the frozen snapshot the pattern-library tentacle reads
(definitions, lower bounds, expectancies of the usable patterns), so features are
computed from statistics known before the range they are applied to.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import pandas as pd

from aster_rl.config import PatternsConfig
from aster_rl.errors import DataError
from aster_rl.patterns.language import Pattern
from aster_rl.patterns.stats import USABLE, PatternStats, Status, status_of

logger = logging.getLogger(__name__)

STATUS_EVENTS = {
    Status.PROMOTED: "promoted",
    Status.DEMOTED: "demoted",
    Status.ACTIVE: "activated",
    Status.CANDIDATE: "candidate",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class HistoryEvent:
    ts_ms: int
    event: str  # created / updated / promoted / demoted / activated / candidate
    snapshot: dict[str, Any]


@dataclass(frozen=True)
class LibraryEntry:
    pattern: Pattern
    stats: PatternStats
    status: Status
    meta: dict[str, Any] = field(default_factory=dict)  # mining figures: p_value, t_stat, range
    history: tuple[HistoryEvent, ...] = ()

    @property
    def name(self) -> str:
        return self.pattern.name

    def snapshot(self) -> dict[str, Any]:
        return {"status": str(self.status), **self.stats.summary(), "stats": self.stats.to_dict(), **self.meta}


class PatternLibrary:
    """An in-memory library; :mod:`aster_rl.storage.pattern_store` persists it."""

    def __init__(self, cfg: PatternsConfig, entries: list[LibraryEntry] | None = None) -> None:
        self.cfg = cfg
        self._entries: dict[str, LibraryEntry] = {}
        for e in entries or []:
            self._entries[e.name] = e

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LibraryEntry]:
        return iter(self._entries.values())

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> LibraryEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise DataError(f"no pattern named {name!r} in the library ({len(self)} patterns; `aster-rl patterns` lists them)") from None

    def status_for(self, stats: PatternStats) -> Status:
        c = self.cfg
        return status_of(stats, c.min_trades, c.promote_win_rate, c.demote_win_rate)

    def add(self, pattern: Pattern, stats: PatternStats, meta: dict[str, Any] | None = None, ts_ms: int | None = None) -> LibraryEntry:
        """Add (or replace) a pattern with statistics; records a ``created`` event."""
        status = self.status_for(stats)
        entry = LibraryEntry(pattern, stats, status, dict(meta or {}))
        event = HistoryEvent(ts_ms if ts_ms is not None else _now_ms(), "created", entry.snapshot())
        entry = replace(entry, history=(event,))
        self._entries[entry.name] = entry
        return entry

    @classmethod
    def from_mining(cls, result, cfg: PatternsConfig, naive: bool = False) -> "PatternLibrary":
        """The corrected (or, with ``naive``, the uncorrected) patterns of a mining result."""
        lib = cls(cfg)
        chosen = result.naive if naive else result.corrected
        for m in chosen:
            meta = {
                "p_value": m.p_value,
                "t_stat": m.t_stat,
                "p_permutation": m.p_permutation,
                "selection": "naive" if naive else "benjamini_hochberg",
                "trained_from": str(result.start) if result.start is not None else None,
                "trained_until": str(result.end) if result.end is not None else None,
            }
            lib.add(m.pattern, m.stats, meta)
        return lib

    def record_outcome(
        self,
        name: str,
        net_return: float,
        regime: str | None = None,
        phase: str | None = None,
        ts_ms: int | None = None,
    ) -> LibraryEntry:
        """A closed trade that matched ``name``: update its statistics, re-evaluate its status."""
        old = self.get(name)
        stats = old.stats.add(net_return, regime, phase)
        status = self.status_for(stats)
        event_name = STATUS_EVENTS[status] if status != old.status else "updated"
        entry = replace(old, stats=stats, status=status)
        event = HistoryEvent(ts_ms if ts_ms is not None else _now_ms(), event_name, {**entry.snapshot(), "net_return": float(net_return)})
        entry = replace(entry, history=old.history + (event,))
        self._entries[name] = entry
        if status != old.status:
            logger.info("pattern %r: %s -> %s after %d trades", name, old.status, status, stats.trades)
        return entry

    def usable(self) -> list[LibraryEntry]:
        """Active and promoted patterns, the ones the tentacle reports."""
        return [e for e in self if e.status in USABLE]

    def tentacle_params(self) -> dict[str, Any]:
        """Parameters of the pattern-library tentacle: a frozen, JSON-able snapshot of the usable patterns."""
        return {
            "patterns": [
                {
                    "definition": e.pattern.to_dict(),
                    "name": e.name,
                    "win_rate_lower_bound": e.stats.win_rate_lower_bound,
                    "expectancy": e.stats.expectancy,
                }
                for e in self.usable()
            ]
        }

    def table(self) -> pd.DataFrame:
        rows = []
        for e in self:
            s = e.stats
            rows.append(
                {
                    "name": e.name,
                    "status": str(e.status),
                    "trades": s.trades,
                    "win_rate": s.win_rate,
                    "win_rate_lb": s.win_rate_lower_bound,
                    "profit_factor": s.profit_factor,
                    "expectancy": s.expectancy,
                    "best_regime": s.best_regime,
                    "best_cycle_phase": s.best_cycle_phase,
                }
            )
        return pd.DataFrame(rows)
