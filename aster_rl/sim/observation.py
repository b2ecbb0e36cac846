"""The observation: a feature row plus the account state, built by the same code in the env,
the batched env, the backtester and the live runner.

Account state columns (all scale-free, float32):

- ``account_side``: +1 long, −1 short, 0 flat;
- ``account_leverage``: the position's leverage / ``max_leverage`` (0 when flat);
- ``account_upnl``: unrealized PnL / isolated margin (return on margin; 0 when flat);
- ``account_bars_in_trade``: ``log1p(bars) / log1p(1000)`` (about 1 after 1,000 bars);
- ``account_liq_distance``: |mark − liquidation price| / mark, clipped to [0, 1]; 1 when flat
  or when the position cannot be liquidated (liquidation price <= 0);
- ``account_equity_change``: log(equity / reference equity), the reference being the
  equity at the start of the current block of ``env.episode_length`` steps (the episode's
  start in training; every ``episode_length`` bars in a backtest or a paper session). A
  fixed reference (the first bar's equity) would drift over a long backtest or a live
  session far beyond anything a training episode showed; the block keeps the column on
  the horizon the policy was trained on. :func:`account_state` takes that reference as
  ``start_equity``; :class:`EquityReference` keeps it for code outside the accounting
  core (a broker that reads its equity from the exchange).

The arithmetic is compiled once, in :mod:`aster_rl.sim.kernels`: the envs' step
kernel writes these columns straight into the observation, and :func:`account_state`
runs the same code over plain arrays.
"""

from __future__ import annotations

import numpy as np

from aster_rl.sim.kernels import N_ACCOUNT, account_state_arrays

ACCOUNT_COLUMNS = (
    "account_side",
    "account_leverage",
    "account_upnl",
    "account_bars_in_trade",
    "account_liq_distance",
    "account_equity_change",
)
if len(ACCOUNT_COLUMNS) != N_ACCOUNT:  # pragma: no cover - a layout edit missed one side
    raise ImportError("aster_rl.sim.observation: ACCOUNT_COLUMNS and the kernels' N_ACCOUNT differ")


def _vec(x, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)))


def account_state(
    side,
    leverage,
    max_leverage: float,
    upnl,
    margin,
    bars_in_trade,
    mark,
    liq_price,
    equity,
    start_equity,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Account state of N accounts as an ``(N, N_ACCOUNT)`` float32 array (inputs of shape (N,);
    ``mark`` and ``start_equity`` may be scalars)."""
    side = np.atleast_1d(np.asarray(side, dtype=np.float64))
    n = side.shape[0]
    if out is None:
        out = np.empty((n, N_ACCOUNT), dtype=np.float32)
    target = out if out.dtype == np.float32 and out.flags.c_contiguous else np.empty((n, N_ACCOUNT), np.float32)
    account_state_arrays(
        _vec(side, n), _vec(leverage, n), float(max_leverage), _vec(upnl, n), _vec(margin, n),
        _vec(bars_in_trade, n), _vec(mark, n), _vec(liq_price, n), _vec(equity, n), _vec(start_equity, n), target,
    )
    if target is not out:
        out[...] = target
    return out


class EquityReference:
    """The equity-change reference outside the accounting core, by the step kernel's rule: the
    equity at the start of the current block of ``block`` (= ``env.episode_length``) bars."""

    def __init__(self, block: int, equity: float) -> None:
        self.block = max(int(block), 1)
        self.steps = 0
        self.value = float(equity)

    def step(self, equity: float) -> float:
        """Count one bar, run to its end at ``equity``; the reference of the next observation."""
        self.steps += 1
        if self.steps % self.block == 0:
            self.value = float(equity)
        return self.value


def build_observation(features_row: np.ndarray, account_state_row: np.ndarray) -> np.ndarray:
    """One observation: the feature row followed by the account state, as float32."""
    return np.concatenate((features_row, account_state_row), dtype=np.float32, casting="same_kind")
