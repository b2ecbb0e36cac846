"""The tentacles: one module each, listed explicitly in pipeline order.

A tentacle may read the columns of those before it (``context``); the strategy tentacle
therefore comes after btc_cycle, regime and multi_timeframe.
"""

from aster_rl.tentacles import (
    btc_cycle,
    indicators,
    macro,
    market,
    multi_timeframe,
    orderflow,
    price_history,
    regime,
    strategy,
    whales,
)
from aster_rl.tentacles.base import Tentacle

TENTACLES: dict[str, Tentacle] = {
    t.TENTACLE.name: t.TENTACLE
    for t in (market, indicators, orderflow, whales, price_history, btc_cycle, regime, multi_timeframe, macro, strategy)
}
