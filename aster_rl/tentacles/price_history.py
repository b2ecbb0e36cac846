"""The price_history tentacle (placeholder until implemented: no columns)."""

import pandas as pd

from aster_rl.tentacles.base import Tentacle


def features(market, context, **params) -> pd.DataFrame:
    return pd.DataFrame(index=market.candles.index)


def reading(row: pd.Series) -> str:
    return "price_history: not implemented"


TENTACLE = Tentacle(name="price_history", features=features, reading=reading, warmup=lambda p: 0)
