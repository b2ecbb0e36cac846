"""Trade statistics of a pattern and the library's status rule.

A trade's outcome is its **net return**: the price move in the trade's direction as a
fraction of the entry notional, after taker fees, slippage and funding (leverage 1;
leverage scales it). A trade is a **win** when its net return is > 0, otherwise a loss.

- win rate = wins / trades; its **Wilson score lower bound** at ``confidence``
  (two-sided interval, 95% → z = 1.96):
  ``(p + z²/2n − z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)``, 0 when there are no trades;
- average win = mean net return of the wins; average loss = mean |net return| of the losses;
- profit factor = sum of wins / sum of |losses| (inf with wins and no losses, nan with neither);
- expectancy = mean net return per trade (after costs);
- best regime / best cycle phase = the regime (phase) whose trades have the highest Wilson
  lower bound (ties: more trades), so a regime seen in two lucky trades does not win.

Status (the seed's thresholds applied to the *lower bound*, not the raw rate):

- ``candidate``: fewer than ``min_trades`` trades — not enough evidence either way;
- ``demoted``: at least ``min_trades`` trades and (lower bound < ``demote_win_rate`` or
  expectancy ≤ 0);
- ``promoted``: at least ``min_trades`` trades, expectancy > 0 and lower bound ≥
  ``promote_win_rate``;
- ``active``: the rest — enough trades, expectancy > 0 and
  ``demote_win_rate`` ≤ lower bound < ``promote_win_rate``.

The status is a function of the statistics alone, re-evaluated after every update, so a
demoted pattern whose record recovers becomes active again. Active and promoted
patterns are the ones the pattern-library tentacle reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from statistics import NormalDist
from typing import Any
from collections.abc import Iterable

import numpy as np

CONFIDENCE = 0.95


class Status(str, Enum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    PROMOTED = "promoted"
    DEMOTED = "demoted"

    def __str__(self) -> str:
        return self.value


USABLE = (Status.ACTIVE, Status.PROMOTED)


def z_value(confidence: float = CONFIDENCE) -> float:
    """Two-sided normal quantile: 0.95 → 1.959964."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_lower_bound(wins: int, trades: int, confidence: float = CONFIDENCE) -> float:
    """Lower end of the Wilson score interval for ``wins`` successes in ``trades`` trials."""
    if trades < 0 or wins < 0 or wins > trades:
        raise ValueError(f"wilson_lower_bound: need 0 <= wins <= trades, got wins={wins}, trades={trades}")
    return float(wilson_lower_bounds(np.array([wins]), np.array([trades]), confidence)[0])


def wilson_lower_bounds(wins: np.ndarray, trades: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """:func:`wilson_lower_bound` element-wise (0 where there are no trades)."""
    z = z_value(confidence)
    n = np.asarray(trades, dtype=float)
    safe = np.maximum(n, 1.0)
    p = np.asarray(wins, dtype=float) / safe
    centre = p + z * z / (2 * safe)
    margin = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, np.maximum(0.0, (centre - margin) / (1 + z * z / safe)), 0.0)


@dataclass(frozen=True)
class Bucket:
    """Counts of the trades taken in one regime or cycle phase."""

    trades: int = 0
    wins: int = 0
    net_return_sum: float = 0.0

    def add(self, net_return: float) -> Bucket:
        return Bucket(self.trades + 1, self.wins + int(net_return > 0), self.net_return_sum + float(net_return))


@dataclass(frozen=True)
class PatternStats:
    """Running statistics of one pattern's closed trades (immutable; ``add`` returns a new one)."""

    trades: int = 0
    wins: int = 0
    gross_win: float = 0.0  # sum of the winning net returns
    gross_loss: float = 0.0  # sum of |losing net returns|
    by_regime: dict[str, Bucket] = field(default_factory=dict)
    by_phase: dict[str, Bucket] = field(default_factory=dict)
    confidence: float = CONFIDENCE

    # ------------------------------------------------------------ derived

    @property
    def losses(self) -> int:
        return self.trades - self.wins

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    @property
    def win_rate_lower_bound(self) -> float:
        return wilson_lower_bound(self.wins, self.trades, self.confidence)

    @property
    def avg_win(self) -> float:
        return self.gross_win / self.wins if self.wins else 0.0

    @property
    def avg_loss(self) -> float:
        return self.gross_loss / self.losses if self.losses else 0.0

    @property
    def profit_factor(self) -> float:
        if self.gross_loss > 0:
            return self.gross_win / self.gross_loss
        return math.inf if self.gross_win > 0 else math.nan

    @property
    def expectancy(self) -> float:
        return (self.gross_win - self.gross_loss) / self.trades if self.trades else 0.0

    @property
    def best_regime(self) -> str | None:
        return _best(self.by_regime, self.confidence)

    @property
    def best_cycle_phase(self) -> str | None:
        return _best(self.by_phase, self.confidence)

    # ------------------------------------------------------------ updates

    def add(self, net_return: float, regime: str | None = None, phase: str | None = None) -> PatternStats:
        """These statistics with one more closed trade."""
        r = float(net_return)
        if not math.isfinite(r):
            raise ValueError(f"trade net return must be finite, got {net_return!r}")
        win = r > 0
        by_regime = dict(self.by_regime)
        by_phase = dict(self.by_phase)
        if regime is not None:
            by_regime[str(regime)] = by_regime.get(str(regime), Bucket()).add(r)
        if phase is not None:
            by_phase[str(phase)] = by_phase.get(str(phase), Bucket()).add(r)
        return replace(
            self,
            trades=self.trades + 1,
            wins=self.wins + int(win),
            gross_win=self.gross_win + (r if win else 0.0),
            gross_loss=self.gross_loss + (0.0 if win else -r),
            by_regime=by_regime,
            by_phase=by_phase,
        )

    # ------------------------------------------------------------ serialization

    def summary(self) -> dict[str, Any]:
        """The derived figures (non-finite ones as None), as stored in the ``patterns`` row."""
        return {
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.win_rate,
            "win_rate_lower_bound": self.win_rate_lower_bound,
            "avg_win": self.avg_win,
            "avg_loss": self.avg_loss,
            "profit_factor": _finite_or_none(self.profit_factor),
            "expectancy": self.expectancy,
            "best_regime": self.best_regime,
            "best_cycle_phase": self.best_cycle_phase,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "trades": self.trades,
            "wins": self.wins,
            "gross_win": self.gross_win,
            "gross_loss": self.gross_loss,
            "by_regime": {k: [b.trades, b.wins, b.net_return_sum] for k, b in self.by_regime.items()},
            "by_phase": {k: [b.trades, b.wins, b.net_return_sum] for k, b in self.by_phase.items()},
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatternStats:
        return cls(
            trades=int(data.get("trades", 0)),
            wins=int(data.get("wins", 0)),
            gross_win=float(data.get("gross_win", 0.0)),
            gross_loss=float(data.get("gross_loss", 0.0)),
            by_regime={k: Bucket(int(v[0]), int(v[1]), float(v[2])) for k, v in (data.get("by_regime") or {}).items()},
            by_phase={k: Bucket(int(v[0]), int(v[1]), float(v[2])) for k, v in (data.get("by_phase") or {}).items()},
            confidence=float(data.get("confidence", CONFIDENCE)),
        )


def compute_stats(
    net_returns: Iterable[float],
    regimes: Iterable[str | None] | None = None,
    phases: Iterable[str | None] | None = None,
    confidence: float = CONFIDENCE,
) -> PatternStats:
    """Statistics of a list of closed trades (vectorized; equal to adding them one by one)."""
    r = np.asarray(list(net_returns) if not isinstance(net_returns, np.ndarray) else net_returns, dtype=float)
    if r.size and not np.isfinite(r).all():
        raise ValueError("compute_stats: net returns must be finite")
    win = r > 0
    stats = PatternStats(
        trades=int(r.size),
        wins=int(win.sum()),
        gross_win=float(r[win].sum()),
        gross_loss=float(-r[~win].sum()),
        by_regime=_buckets(r, regimes),
        by_phase=_buckets(r, phases),
        confidence=confidence,
    )
    return stats


def _buckets(r: np.ndarray, labels: Iterable[str | None] | None) -> dict[str, Bucket]:
    if labels is None:
        return {}
    labels = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels, dtype=object)
    if labels.shape != r.shape:
        raise ValueError(f"compute_stats: {labels.size} labels for {r.size} trades")
    out: dict[str, Bucket] = {}
    for key in dict.fromkeys(labels.tolist()):
        if key is None:
            continue
        sel = labels == key
        out[str(key)] = Bucket(int(sel.sum()), int((r[sel] > 0).sum()), float(r[sel].sum()))
    return out


def _best(buckets: dict[str, Bucket], confidence: float) -> str | None:
    if not buckets:
        return None
    return max(buckets, key=lambda k: (wilson_lower_bound(buckets[k].wins, buckets[k].trades, confidence), buckets[k].trades))


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def status_of(stats: PatternStats, min_trades: int, promote_win_rate: float, demote_win_rate: float) -> Status:
    """The library status of a pattern with these statistics (see the module docstring)."""
    code = status_codes(np.array([stats.trades]), np.array([stats.win_rate_lower_bound]), np.array([stats.expectancy]),
                        min_trades, promote_win_rate, demote_win_rate)
    return STATUS_ORDER[int(code[0])]


STATUS_ORDER = (Status.CANDIDATE, Status.ACTIVE, Status.PROMOTED, Status.DEMOTED)  # the codes of status_codes


def status_codes(
    trades: np.ndarray, bound: np.ndarray, expectancy: np.ndarray, min_trades: int, promote_win_rate: float, demote_win_rate: float
) -> np.ndarray:
    """The status rule element-wise, as indices into :data:`STATUS_ORDER`."""
    trades, bound, expectancy = (np.asarray(a, dtype=float) for a in (trades, bound, expectancy))
    code = np.where(bound >= promote_win_rate, 2, 1)
    code = np.where((expectancy <= 0) | (bound < demote_win_rate), 3, code)
    return np.where(trades < min_trades, 0, code)


def usable_mask(trades: np.ndarray, bound: np.ndarray, expectancy: np.ndarray, min_trades: int, promote_win_rate: float,
                demote_win_rate: float) -> np.ndarray:
    """Where the status is active or promoted (:data:`USABLE`)."""
    code = status_codes(trades, bound, expectancy, min_trades, promote_win_rate, demote_win_rate)
    return (code == 1) | (code == 2)
