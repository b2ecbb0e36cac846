"""The pattern-library tentacle: which library patterns match at each bar, and how good they were.

Its only parameter, ``patterns``, is a frozen snapshot of the library's usable (active
and promoted) patterns — definition, win-rate lower bound and expectancy — as learned
on a training range (:meth:`aster_rl.patterns.library.PatternLibrary.tentacle_params`).
It is part of the feature schema, so a checkpoint records the statistics it was
trained with. The values at bar *t* depend only on the earlier tentacles' columns at
*t* (``context``) and on that snapshot: never on prices after *t*, and never on the
outcomes of the range the features are computed for.

Columns: ``available`` (1 when a library is loaded), ``any_match`` (0/1),
``match_count``, ``best_win_rate`` (the Wilson lower bound of the matching pattern with
the highest bound), ``best_expectancy_bps`` and ``best_side`` (+1 long, −1 short) of that
pattern. With no library (or no match) all values are 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aster_rl.patterns.language import Pattern
from aster_rl.tentacles.base import Tentacle

NAME = "pattern_library"
DEFAULTS: dict[str, Any] = {"patterns": ()}
COLUMNS = ("available", "any_match", "match_count", "best_win_rate", "best_expectancy_bps", "best_side")


def features(market, context: pd.DataFrame, patterns=()) -> pd.DataFrame:
    index = market.candles.index
    n = len(index)
    out = {c: np.zeros(n) for c in COLUMNS}
    if patterns:
        out["available"][:] = 1.0
        ctx = context.reindex(index) if not context.index.equals(index) else context
        for item in patterns:
            pattern = Pattern.from_dict(item["definition"])
            bound = float(item["win_rate_lower_bound"])
            hit = pattern.matches(ctx)
            out["match_count"] += hit
            better = hit & (bound > out["best_win_rate"])
            out["best_win_rate"][better] = bound
            out["best_expectancy_bps"][better] = float(item["expectancy"]) * 1e4
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


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=lambda p: 0, defaults=dict(DEFAULTS))
