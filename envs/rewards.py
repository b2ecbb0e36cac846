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
"""

from __future__ import annotations

import numpy as np

from aster_rl.config import EnvConfig

_EPS = 1e-12


def step_rewards(
    cfg: EnvConfig,
    prev_equity: np.ndarray,
    equity: np.ndarray,
    peak: np.ndarray,
    closed_return: np.ndarray,
    turnover: np.ndarray,
    liquidated: np.ndarray,
) -> np.ndarray:
    if cfg.reward == "log_equity":
        r = np.log(np.maximum(equity, _EPS) / np.maximum(prev_equity, _EPS))
    elif cfg.reward == "trade_outcome":
        r = np.array(closed_return, dtype=np.float64)
    else:  # pragma: no cover - pydantic restricts the literal
        raise ValueError(f"env.reward = {cfg.reward!r}: expected 'log_equity' or 'trade_outcome'")
    if cfg.drawdown_penalty:
        r -= cfg.drawdown_penalty * (1.0 - equity / np.maximum(peak, _EPS))
    if cfg.turnover_penalty:
        r -= cfg.turnover_penalty * turnover / np.maximum(prev_equity, _EPS)
    if cfg.liquidation_penalty:
        r -= cfg.liquidation_penalty * liquidated
    return r
