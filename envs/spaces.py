"""The envs' spaces and action masks, built here once for ``PerpEnv`` and ``BatchedPerpEnv``.

- observation: ``Box(-inf, inf, (n_features + N_ACCOUNT,), float32)``, the feature row then
  the account state (:mod:`aster_rl.sim.observation`);
- action: ``MultiDiscrete([3, len(leverages), len(exit_profiles)])``: side (WAIT / BUY /
  SELL), leverage index, exit profile index.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from aster_rl.config import EnvConfig
from aster_rl.sim.accounting import AccountBook
from aster_rl.sim.observation import N_ACCOUNT

N_SIDES = 3  # WAIT, BUY, SELL


def observation_space(n_features: int) -> spaces.Box:
    """The observation of a feature matrix with ``n_features`` columns."""
    return spaces.Box(-np.inf, np.inf, (n_features + N_ACCOUNT,), np.float32)


def action_space(cfg: EnvConfig) -> spaces.MultiDiscrete:
    """(side, leverage index, exit profile index) over ``cfg``'s ladders."""
    return spaces.MultiDiscrete([N_SIDES, len(cfg.leverages), len(cfg.exit_profiles)])


def action_masks(book: AccountBook) -> np.ndarray:
    """``(N, 3 + n_leverages + n_profiles)`` valid choices per account, concatenated per action
    dimension (sb3-contrib MaskablePPO style).

    BUY is masked while long and SELL while short (they would be WAIT); leverages the brackets
    cannot carry for the account's current equity are masked (the first stays valid).
    """
    cfg = book.cfg
    side = book.side
    sides = np.stack([np.ones(book.n, dtype=bool), side <= 0, side >= 0], axis=1)
    allowed = np.minimum(book.allowed_leverage(cfg.margin_fraction * book.equity), cfg.max_leverage)
    levs = np.asarray(cfg.leverages, dtype=np.float64)[None, :] <= allowed[:, None]
    levs[:, 0] = True
    profs = np.ones((book.n, len(cfg.exit_profiles)), dtype=bool)
    return np.concatenate((sides, levs, profs), axis=1)
