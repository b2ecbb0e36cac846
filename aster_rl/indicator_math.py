"""Vectorized indicator arithmetic shared by the tentacles and the accounting core.

``ta`` computes some of these with per-row Python loops; these versions are vectorized
and tested against ``ta`` on the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range; the first bar has no previous close and uses high - low."""
    prev_close = np.concatenate(([np.nan], close[:-1]))
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    tr[0] = high[0] - low[0]
    return tr


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's average true range, seeded like ``ta.volatility.AverageTrueRange``.

    The first ``period - 1`` values are 0 (as ``ta`` gives); bar ``period - 1`` is the mean
    of the first ``period`` true ranges; after that ``atr = (atr_prev * (n - 1) + tr) / n``.
    Causal: row t uses bars 0..t only.
    """
    high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
    n = len(close)
    out = np.zeros(n)
    if n < period:
        return out
    tr = true_range(high, low, close)
    seed = tr[:period].mean()
    # The recursion atr_t = a*atr_{t-1} + (1-a)*tr_t is an EWM with alpha = 1/period, seeded at bar period-1.
    tail = np.concatenate(([seed], tr[period:]))
    ewm = pd.Series(tail).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    out[period - 1 :] = ewm
    return out
