"""The market tentacle (placeholder until implemented: no columns)."""

import pandas as pd

from aster_rl.tentacles.base import Tentacle


def features(market, context, **params) -> pd.DataFrame:
    return pd.DataFrame(index=market.candles.index)


def reading(row: pd.Series) -> str:
    return "market: not implemented"


TENTACLE = Tentacle(name="market", features=features, reading=reading, warmup=lambda p: 0)
