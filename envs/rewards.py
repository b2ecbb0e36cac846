"""Reward functions, vectorized over accounts (arrays of shape (N,)).

- ``log_equity`` (default): ``log(equity_t / equity_{t-1})`` — the per-step change of the
  marked-to-market equity, so every fee, funding payment, slippage and liquidation loss
  is inside it.
- ``trade_outcome``: paid when a trade closes: the sum of ``pnl_usd / equity at entry``
  of the trades closed in the step (net of every cost); 0 on other steps.

Both then subtract the optional penalties:

- ``drawdown_penalty × (1 − equity / peak equity)`` each step;
- ``turnover_penalty × traded notional / equity before the step``;
- ``liquidation_penalty`` on a step where a liquidation happened.

The envs get the reward from their step kernel (``aster_rl.sim.kernels``, which
reads the choice and the penalties from ``EnvConfig``); :func:`step_rewards` runs the same
compiled formula over plain arrays.
"""

from __future__ import annotations

import numpy as np

from aster_rl.sim import kernels as K
from aster_rl.config import EnvConfig


def step_rewards(
    cfg: EnvConfig,
    prev_equity: np.ndarray,
    equity: np.ndarray,
    peak: np.ndarray,
    closed_return: np.ndarray,
    turnover: np.ndarray,
    liquidated: np.ndarray,
) -> np.ndarray:
    """Rewards of N accounts (float64, shape (N,))."""
    if cfg.reward not in K.REWARD_KINDS:  # pragma: no cover - pydantic restricts the literal
        raise ValueError(f"env.reward = {cfg.reward!r}: expected 'log_equity' or 'trade_outcome'")
    equity = np.ascontiguousarray(np.atleast_1d(np.asarray(equity, dtype=np.float64)))
    n = equity.shape[0]

    def vec(x, dtype=np.float64):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=dtype), (n,)))

    out = np.empty(n)
    K.rewards_arrays(
        K.REWARD_KINDS[cfg.reward], float(cfg.drawdown_penalty), float(cfg.turnover_penalty),
        float(cfg.liquidation_penalty), vec(prev_equity), equity, vec(peak), vec(closed_return), vec(turnover),
        vec(liquidated, np.int64), out,
    )
    return out
