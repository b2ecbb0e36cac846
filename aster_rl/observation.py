"""The observation: a feature row plus the account state, built by the same code in the env,
the batched env, the backtester and the live runner.

Account state columns (all scale-free, float32):

- ``account_side``: +1 long, −1 short, 0 flat;
- ``account_leverage``: the position's leverage / ``max_leverage`` (0 when flat);
- ``account_upnl``: unrealized PnL / isolated margin (return on margin; 0 when flat);
- ``account_bars_in_trade``: ``log1p(bars) / log1p(1000)`` (about 1 after 1,000 bars);
- ``account_liq_distance``: |mark − liquidation price| / mark, clipped to [0, 1]; 1 when flat
  or when the position cannot be liquidated (liquidation price <= 0);
- ``account_equity_change``: log(equity / equity at the episode's start).
"""

from __future__ import annotations

import math

import numpy as np

ACCOUNT_COLUMNS = (
    "account_side",
    "account_leverage",
    "account_upnl",
    "account_bars_in_trade",
    "account_liq_distance",
    "account_equity_change",
)
N_ACCOUNT = len(ACCOUNT_COLUMNS)
_BARS_SCALE = 1.0 / math.log1p(1000.0)


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
    """Account state of N accounts as an ``(N, N_ACCOUNT)`` float32 array (inputs of shape (N,))."""
    side = np.asarray(side, dtype=np.float64)
    n = side.shape[0]
    if out is None:
        out = np.empty((n, N_ACCOUNT), dtype=np.float32)
    held = side != 0
    margin = np.asarray(margin, dtype=np.float64)
    mark = np.asarray(mark, dtype=np.float64)
    liq = np.asarray(liq_price, dtype=np.float64)
    out[:, 0] = side
    out[:, 1] = np.asarray(leverage, dtype=np.float64) / float(max_leverage)
    out[:, 2] = np.divide(upnl, margin, out=np.zeros(n), where=held & (margin > 0))
    out[:, 3] = np.log1p(np.asarray(bars_in_trade, dtype=np.float64)) * _BARS_SCALE
    dist = np.divide(np.abs(mark - liq), mark, out=np.ones(n), where=held & (liq > 0))
    out[:, 4] = np.clip(dist, 0.0, 1.0)
    eq = np.maximum(np.asarray(equity, dtype=np.float64), 1e-12)
    out[:, 5] = np.log(eq / np.asarray(start_equity, dtype=np.float64))
    return out


def book_state(book, mark, start_equity, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`account_state` read from an :class:`aster_rl.accounting.AccountBook`."""
    return account_state(
        book.side,
        book.lev,
        book.cfg.max_leverage,
        book.upnl,
        book.margin,
        book.bars,
        mark,
        book.liq,
        book.equity,
        start_equity,
        out=out,
    )


def build_observation(features_row: np.ndarray, account_state_row: np.ndarray) -> np.ndarray:
    """One observation: the feature row followed by the account state, as float32."""
    return np.concatenate((features_row, account_state_row), dtype=np.float32, casting="same_kind")
