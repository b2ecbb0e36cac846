"""The pattern-library tentacle: which library patterns match at each bar, and how good they were by then.

Its parameters are a frozen snapshot of a mined library
(:meth:`aster_rl.patterns.library.PatternLibrary.tentacle_params`): each pattern's
definition and training trades (the bar time in which each closed and its net return),
the mined range and the library's status thresholds. It is part of the feature schema,
so a checkpoint records the library it was trained with.

At bar *t* a pattern's statistics are those of its trades that closed by bar *t*
(exit bar time <= *t*): inside the mined range a bar never sees the win rate of a trade
that closed after it, and after the range every bar sees the statistics frozen at its
end. A pattern counts at *t* when its status from those statistics is active or promoted
(:func:`aster_rl.patterns.stats.usable_mask`) and its conditions hold on the earlier
tentacles' columns at *t* (``context``). Never a price after *t*.

Columns: ``available`` (1 when a library with patterns is loaded), ``any_match`` (0/1),
``match_count``, ``best_win_rate`` (the Wilson lower bound of the matching pattern with
the highest bound), ``best_expectancy_bps`` and ``best_side`` (+1 long, −1 short) of that
pattern. With no library (or no match) all values are 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aster_rl.errors import ConfigError
from aster_rl.patterns.language import Pattern
from aster_rl.patterns.stats import usable_mask, wilson_lower_bounds
from aster_rl.features.tentacles.base import Tentacle

NAME = "pattern_library"
DEFAULTS: dict[str, Any] = {
    "patterns": (),
    "mined_from": "",
    "mined_until": "",
    "outcomes_until": "",
    "min_trades": 30,
    "promote_win_rate": 0.8,
    "demote_win_rate": 0.6,
}
COLUMNS = ("available", "any_match", "match_count", "best_win_rate", "best_expectancy_bps", "best_side")


def stats_as_of(bar_ms: np.ndarray, outcomes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar (open times in ms): trades closed by then, their Wilson lower bound and mean net return."""
    o = np.asarray(outcomes, dtype=float).reshape(-1, 2)
    o = o[np.argsort(o[:, 0], kind="stable")]
    k = np.searchsorted(o[:, 0], bar_ms, side="right")
    wins = np.r_[0, np.cumsum(o[:, 1] > 0)][k]
    total = np.r_[0.0, np.cumsum(o[:, 1])][k]
    return k, wilson_lower_bounds(wins, k), np.where(k > 0, total / np.maximum(k, 1), 0.0)


def features(market, context: pd.DataFrame, patterns=(), mined_from="", mined_until="", outcomes_until="",
             min_trades=30, promote_win_rate=0.8, demote_win_rate=0.6) -> pd.DataFrame:
    index = market.candles.index
    n = len(index)
    out = {c: np.zeros(n) for c in COLUMNS}
    if patterns:
        out["available"][:] = 1.0
        ctx = context.reindex(index) if not context.index.equals(index) else context
        bar_ms = index.as_unit("ms").asi8
        for item in patterns:
            if "outcomes" not in item or "definition" not in item:
                raise ConfigError(
                    f"features.params.{NAME}: pattern {item.get('name', '?')!r} lacks its definition or training outcomes; "
                    "take the snapshot from the mined library (PatternLibrary.tentacle_params)"
                )
            pattern = Pattern.from_dict(item["definition"])
            trades, bound, expectancy = stats_as_of(bar_ms, item["outcomes"])
            hit = pattern.matches(ctx) & usable_mask(trades, bound, expectancy, min_trades, promote_win_rate, demote_win_rate)
            out["match_count"] += hit
            better = hit & (bound > out["best_win_rate"])
            out["best_win_rate"][better] = bound[better]
            out["best_expectancy_bps"][better] = expectancy[better] * 1e4
            out["best_side"][better] = 1.0 if pattern.side == "long" else -1.0
        out["any_match"] = (out["match_count"] > 0).astype(float)
    return pd.DataFrame({f"{NAME}_{c}": v for c, v in out.items()}, index=index)


def reading(row: pd.Series) -> str:
    if not row.get(f"{NAME}_available", 0):
        return "pattern library: none loaded"
    count = int(row.get(f"{NAME}_match_count", 0))
    if count == 0:
        return "pattern library: no active pattern matches"
    side = "long" if row.get(f"{NAME}_best_side", 0) > 0 else "short"
    return (
        f"pattern library: {count} match(es), best {side} with win rate ≥ "
        f"{row.get(f'{NAME}_best_win_rate', 0):.0%} and {row.get(f'{NAME}_best_expectancy_bps', 0):.1f} bps per trade"
    )


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=lambda p: 0, defaults=dict(DEFAULTS), version=2)
