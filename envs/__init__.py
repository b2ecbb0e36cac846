"""Gymnasium environments over a feature matrix and the accounting core.

Importing ``envs`` registers ``AsterFutures-v0``: ``gym.make("AsterFutures-v0")`` trades the
embedded synthetic market; ``gym.make("AsterFutures-v0", market=..., config=...)`` a
:class:`~aster_rl.data.market.MarketBundle` with an :class:`~aster_rl.config.AppConfig`;
``gym.make("AsterFutures-v0", features=..., prices=..., cfg=...)`` a ready feature matrix.
"""

import gymnasium as gym

from envs.batched import BatchedPerpEnv
from envs.perp import PerpEnv

__all__ = ["ENV_ID", "BatchedPerpEnv", "PerpEnv"]

ENV_ID = "AsterFutures-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="envs.perp:PerpEnv")
