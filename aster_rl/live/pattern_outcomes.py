"""The live runner's link to the pattern library: which pattern an entry matched, and the
trade's outcome as the library measures it.

When a session starts, the runner loads the stored library once (:meth:`PatternMatcher.load`);
only **active and promoted** patterns are used, those the pattern-library tentacle reports. A
pattern that refers to a feature column the runner's schema does not have is skipped
with a warning (the library was learned on other features). The set (definitions and
bounds) is kept in the session's stored state (:meth:`PatternMatcher.snapshot`), so a
restart matches exactly as the uninterrupted session would, even after live outcomes
changed statuses in the library meanwhile; a new session reads the library again. When the runner opens a
position, :meth:`PatternMatcher.match` looks at the decision bar's feature row: of the
usable patterns with the entry's side whose conditions all hold, the one with the
highest win-rate lower bound (ties: the first in library order), as the tentacle's
"best matching pattern". Its name is stored on the prediction, with the regime and BTC
cycle phase of that bar (``regime_state`` / ``btc_cycle_phase`` columns, when present)
kept in the runner's state until the trade closes.

When the trade closes, its outcome carries :func:`outcome_update` and
:func:`aster_rl.storage.live_store.record_bar` applies it to the pattern named on the
prediction in the same transaction that writes the outcome, only when that prediction
goes from not closed to win / loss, so a restart never counts a trade twice.

**Net return** (the miner's definition, :mod:`aster_rl.patterns.outcomes`): the trade's
PnL in USD after fees, slippage and funding over its entry notional (quantity × entry
price), i.e. the price move in the trade's direction after costs, independent of the
leverage used (PnL over margin would be leverage × that and not comparable with the
mined statistics).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np

from aster_rl.config import PatternsConfig
from aster_rl.patterns.language import Pattern

logger = logging.getLogger(__name__)

REGIME_COLUMN = "regime_state"
PHASE_COLUMN = "btc_cycle_phase"
INTENT_SIDES = {"open_long": "long", "open_short": "short"}


@dataclass(frozen=True)
class _Usable:
    name: str
    pattern: Pattern
    bound: float
    checks: tuple[tuple[Any, int], ...]  # (condition, column position in the feature row)


def _label(names: Sequence[str], value: float) -> str | None:
    if not np.isfinite(value) or not 0 <= int(value) < len(names):
        return None
    return str(names[int(value)])


class PatternMatcher:
    """The usable patterns of the stored library, resolved against a feature schema."""

    def __init__(self, patterns: list[tuple[str, Pattern, float]], columns: Sequence[str], cfg: PatternsConfig) -> None:
        self.cfg = cfg
        pos = {c: i for i, c in enumerate(columns)}
        self.patterns: list[_Usable] = []
        for name, pattern, bound in patterns:
            missing = [c for c in pattern.columns if c not in pos]
            if missing:
                logger.warning("pattern %r is not matched live: feature columns %s are not in the runner's schema", name, missing)
                continue
            checks = tuple((cond, pos[cond.column]) for cond in pattern.conditions)
            self.patterns.append(_Usable(name, pattern, float(bound), checks))
        self._regime = pos.get(REGIME_COLUMN)
        self._phase = pos.get(PHASE_COLUMN)

    @classmethod
    def load(cls, db: Any, cfg: PatternsConfig, columns: Sequence[str]) -> PatternMatcher | None:
        """The stored library's active and promoted patterns; None when there are none."""
        from aster_rl.storage.pattern_store import load_library

        usable = [(e.name, e.pattern, e.stats.win_rate_lower_bound) for e in load_library(db, cfg).usable()]
        if not usable:
            return None
        matcher = cls(usable, columns, cfg)
        logger.info("pattern library: %d of %d usable patterns can be matched live", len(matcher.patterns), len(usable))
        return matcher if matcher.patterns else None

    def snapshot(self) -> list[dict[str, Any]]:
        """The matched patterns as JSON (for the runner's stored state)."""
        return [{"name": p.name, "definition": p.pattern.to_dict(), "bound": p.bound} for p in self.patterns]

    @classmethod
    def from_snapshot(cls, items: list[dict[str, Any]], cfg: PatternsConfig, columns: Sequence[str]) -> PatternMatcher | None:
        if not items:
            return None
        matcher = cls([(i["name"], Pattern.from_dict(i["definition"]), float(i["bound"])) for i in items], columns, cfg)
        return matcher if matcher.patterns else None

    def __len__(self) -> int:
        return len(self.patterns)

    def match(self, row: np.ndarray, intent: str) -> dict[str, Any] | None:
        """The best usable pattern matching ``row`` for an entry ``intent`` (open_long / open_short),
        with the bar's regime and cycle phase; None when no pattern matches."""
        side = INTENT_SIDES.get(intent)
        if side is None:
            return None
        best: _Usable | None = None
        for p in self.patterns:
            if p.pattern.side != side or (best is not None and p.bound <= best.bound):
                continue
            if all(bool(cond.mask(np.array([row[i]]))[0]) for cond, i in p.checks):
                best = p
        if best is None:
            return None
        return {"pattern": best.name, "regime": self.regime(row), "phase": self.phase(row)}

    def regime(self, row: np.ndarray) -> str | None:
        if self._regime is None:
            return None
        from aster_rl.features.tentacles.regime import STATE_NAMES

        return _label(STATE_NAMES, float(row[self._regime]))

    def phase(self, row: np.ndarray) -> str | None:
        if self._phase is None:
            return None
        from aster_rl.features.tentacles.btc_cycle import PHASES

        return _label(PHASES, float(row[self._phase]))


def net_return(trade: dict[str, Any]) -> float | None:
    """PnL after costs over the entry notional (see the module docstring); None if not computable."""
    try:
        notional = float(trade["qty"]) * float(trade["entry_price"])
        r = float(trade["pnl_usd"]) / notional if notional > 0 else math.nan
    except (KeyError, TypeError, ValueError):
        return None
    return r if math.isfinite(r) else None


def outcome_update(trade: dict[str, Any], context: dict[str, Any] | None, cfg: PatternsConfig) -> dict[str, Any] | None:
    """What a closed trade adds to the statistics of the pattern named on its prediction."""
    r = net_return(trade)
    if r is None:
        return None
    ctx = context or {}
    return {"net_return": r, "regime": ctx.get("regime"), "phase": ctx.get("phase"), "cfg": cfg}
