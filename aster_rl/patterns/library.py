"""The pattern library: named patterns with running statistics, a status and a history.

It is built from a mining result (statistics of the training range's trades), then
updated by closed live or paper trades that matched a pattern: each update adds the
trade to the statistics, re-evaluates the status with :func:`~aster_rl.patterns.stats.status_of`
and appends an event (``updated``, or ``promoted`` / ``demoted`` / ``activated`` /
``candidate`` when the status changes) to the pattern's history.

``tentacle_params()`` gives the frozen snapshot the pattern-library tentacle reads: the
definitions, each pattern's training trades (exit time and net return) and the mined
range (:class:`MinedRange`). The tentacle computes each bar's statistics from the trades
that closed by that bar only. :func:`check_mined_before` refuses a snapshot mined (or
using an outcome that closed) after a run's last training bar.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any
from collections.abc import Iterator, Sequence

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
class MinedRange:
    """The bars a library was mined on: first and last bar, and the bar in which the latest
    outcome the miner used closed (never after ``last_bar``)."""

    first_bar: pd.Timestamp
    last_bar: pd.Timestamp
    outcomes_until: pd.Timestamp

    def to_meta(self) -> dict[str, str]:
        return {"trained_from": str(self.first_bar), "trained_until": str(self.last_bar), "outcomes_until": str(self.outcomes_until)}

    @classmethod
    def from_meta(cls, metas: list[dict[str, Any]]) -> MinedRange | None:
        """The range covering every entry's recorded range; None if any entry records none."""
        keys = ("trained_from", "trained_until", "outcomes_until")
        if not metas or any(not m.get(k) for m in metas for k in keys):
            return None
        ts = {k: [pd.Timestamp(m[k]) for m in metas] for k in keys}
        return cls(min(ts["trained_from"]), max(ts["trained_until"]), max(ts["outcomes_until"]))


@dataclass(frozen=True)
class LibraryEntry:
    pattern: Pattern
    stats: PatternStats
    status: Status
    meta: dict[str, Any] = field(default_factory=dict)  # mining figures: p_value, t_stat, range
    history: tuple[HistoryEvent, ...] = ()
    trades: tuple[tuple[str, str, float, str], ...] = ()  # training trades: signal time, exit bar time, net return, reason

    @property
    def name(self) -> str:
        return self.pattern.name

    def snapshot(self) -> dict[str, Any]:
        return {"status": str(self.status), **self.stats.summary(), "stats": self.stats.to_dict(), **self.meta}


class PatternLibrary:
    """An in-memory library; :mod:`aster_rl.storage.pattern_store` persists it."""

    def __init__(self, cfg: PatternsConfig, entries: list[LibraryEntry] | None = None, mined: MinedRange | None = None) -> None:
        self.cfg = cfg
        self._entries: dict[str, LibraryEntry] = {}
        for e in entries or []:
            self._entries[e.name] = e
        self.mined = mined if mined is not None else MinedRange.from_meta([e.meta for e in self])

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
            raise DataError(f"no pattern named {name!r} in the library ({len(self)} patterns; `aster-rl patterns list` lists them)") from None

    def status_for(self, stats: PatternStats) -> Status:
        c = self.cfg
        return status_of(stats, c.min_trades, c.promote_win_rate, c.demote_win_rate)

    def add(
        self,
        pattern: Pattern,
        stats: PatternStats,
        meta: dict[str, Any] | None = None,
        ts_ms: int | None = None,
        trades: Sequence[tuple[str, str, float, str]] | None = None,
    ) -> LibraryEntry:
        """Add (or replace) a pattern with statistics (and its training trades); records a ``created`` event."""
        status = self.status_for(stats)
        entry = LibraryEntry(pattern, stats, status, dict(meta or {}), trades=tuple(trades or ()))
        event = HistoryEvent(ts_ms if ts_ms is not None else _now_ms(), "created", entry.snapshot())
        entry = replace(entry, history=(event,))
        self._entries[entry.name] = entry
        return entry

    @classmethod
    def from_mining(cls, result, cfg: PatternsConfig, naive: bool = False) -> PatternLibrary:
        """The corrected (or, with ``naive``, the uncorrected) patterns of a mining result."""
        mined = None
        if result.start is not None and result.end is not None:
            mined = MinedRange(result.start, result.end, result.outcomes_until if result.outcomes_until is not None else result.start)
        lib = cls(cfg, mined=mined)
        chosen = result.naive if naive else result.corrected
        for m in chosen:
            meta = {
                "p_value": m.p_value,
                "t_stat": m.t_stat,
                "p_permutation": m.p_permutation,
                "selection": "naive" if naive else "benjamini_hochberg",
                **(mined.to_meta() if mined is not None else {}),
            }
            trades = [(str(t.signal_time), str(t.exit_time), float(t.net_return), t.reason) for t in result.trades_frame(m).itertuples()]
            lib.add(m.pattern, m.stats, meta, trades=trades)
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
        entry = replace(entry, history=(*old.history, event))
        self._entries[name] = entry
        if status != old.status:
            logger.info("pattern %r: %s -> %s after %d trades", name, old.status, status, stats.trades)
        return entry

    def usable(self) -> list[LibraryEntry]:
        """Active and promoted patterns, the ones the tentacle reports."""
        return [e for e in self if e.status in USABLE]

    def tentacle_params(self) -> dict[str, Any]:
        """Parameters of the pattern-library tentacle: a frozen, JSON-able snapshot of the patterns
        with training trades (their exit times and net returns), the mined range and the status thresholds."""
        patterns = []
        for e in self:
            if not e.trades:
                continue
            outcomes = sorted((int(pd.Timestamp(t[1]).value // 1_000_000), float(t[2])) for t in e.trades)
            patterns.append({"name": e.name, "definition": e.pattern.to_dict(), "outcomes": [list(o) for o in outcomes]})
        m = self.mined
        return {
            "patterns": patterns,
            "mined_from": str(m.first_bar) if m else "",
            "mined_until": str(m.last_bar) if m else "",
            "outcomes_until": str(m.outcomes_until) if m else "",
            "min_trades": self.cfg.min_trades,
            "promote_win_rate": self.cfg.promote_win_rate,
            "demote_win_rate": self.cfg.demote_win_rate,
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


def check_mined_before(params: dict[str, Any], last_train_bar: pd.Timestamp, where: str) -> None:
    """Refuse a pattern-library snapshot (:meth:`PatternLibrary.tentacle_params`) that learned from a bar
    after ``last_train_bar`` (its mined range or an outcome it used); one with no patterns learned nothing."""
    if not params.get("patterns"):
        return
    until, outcomes = params.get("mined_until"), params.get("outcomes_until")
    if not until or not outcomes:
        raise DataError(f"{where}: the pattern library records no mined range; mine it again with `aster-rl patterns mine`")
    last = pd.Timestamp(last_train_bar)
    if max(pd.Timestamp(until), pd.Timestamp(outcomes)) > last:
        raise DataError(
            f"{where}: the pattern library was mined up to {until} (outcomes up to {outcomes}), past the training split's "
            f"last bar {last}; mine it on the training bars only (`aster-rl patterns mine` does by default)"
        )
