"""The tentacles: one module each, listed explicitly in pipeline order.

A tentacle may read the columns of those before it (``context``); the strategy tentacle
therefore comes after btc_cycle, regime and multi_timeframe (and after the pattern
library once it exists).
"""

from aster_rl.features.tentacles import (
    btc_cycle,
    clock,
    indicators,
    macro,
    market,
    multi_timeframe,
    orderflow,
    pattern_library,
    price_history,
    regime,
    strategy,
    whales,
)
from aster_rl.features.tentacles.base import Tentacle

# Pipeline order. The pattern_library tentacle (matches of library patterns and their
# training-period win rates) goes right before strategy, which reads its columns:
#     ..., macro, pattern_library, strategy
PIPELINE = (
    market,
    clock,
    indicators,
    orderflow,
    whales,
    price_history,
    btc_cycle,
    regime,
    multi_timeframe,
    macro,
    pattern_library,
    strategy,
)

TENTACLES: dict[str, Tentacle] = {t.TENTACLE.name: t.TENTACLE for t in PIPELINE}
