"""What every tentacle is: a named, pure, causal function from the market to feature columns.

``features(market, context, **params)`` returns a DataFrame on ``market.candles.index``,
columns prefixed ``<name>_``, finite scale-free values (neutral values plus an
``<name>_available`` flag when a source is missing, never NaN after the warm-up).
Row *t* depends only on data known at the close of bar *t*. ``context`` holds the
columns of the tentacles computed before this one in the pipeline (the strategy and
pattern-library tentacles read it; the others ignore it).
``reading(row)`` turns one row of those columns into a short human sentence.
``warmup(params)`` is the number of bars before the values are meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import pandas as pd

from aster_rl.data.market import MarketBundle

FeatureFn = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class Tentacle:
    name: str
    features: FeatureFn  # (market: MarketBundle, context: pd.DataFrame, **params) -> pd.DataFrame
    reading: Callable[[pd.Series], str]
    warmup: Callable[[dict[str, Any]], int]
    defaults: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``overrides``; unknown parameter names are errors."""
        from aster_rl.errors import ConfigError

        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ConfigError(f"features.params.{self.name}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}")
        return {**self.defaults, **overrides}

    def compute(self, market: MarketBundle, context: pd.DataFrame | None = None, **overrides: Any) -> pd.DataFrame:
        ctx = context if context is not None else pd.DataFrame(index=market.candles.index)
        return self.features(market, ctx, **self.params(overrides))
