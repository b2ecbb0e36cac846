"""The whales tentacle (placeholder until implemented: no columns)."""

import pandas as pd

from aster_rl.tentacles.base import Tentacle


def features(market, context, **params) -> pd.DataFrame:
    return pd.DataFrame(index=market.candles.index)


def reading(row: pd.Series) -> str:
    return "whales: not implemented"


TENTACLE = Tentacle(name="whales", features=features, reading=reading, warmup=lambda p: 0)
