"""The macro tentacle (placeholder until implemented: no columns)."""

import pandas as pd

from aster_rl.tentacles.base import Tentacle


def features(market, context, **params) -> pd.DataFrame:
    return pd.DataFrame(index=market.candles.index)


def reading(row: pd.Series) -> str:
    return "macro: not implemented"


TENTACLE = Tentacle(name="macro", features=features, reading=reading, warmup=lambda p: 0)
