"""Gymnasium environments over a feature matrix and the accounting core.

Importing ``envs`` registers ``aster_rl/Perp-v0`` (and the alias ``AsterFutures-v0``):
``gym.make("aster_rl/Perp-v0", features=..., prices=..., cfg=...)``.
"""

import gymnasium as gym

from envs.batched import BatchedPerpEnv
from envs.perp import PerpEnv

__all__ = ["BatchedPerpEnv", "PerpEnv"]

for _env_id in ("aster_rl/Perp-v0", "AsterFutures-v0"):
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point="envs.perp:PerpEnv")
