"""Small causal helpers shared by the tentacles: event-to-bar assignment and safe ratios.

Timestamps are compared as int64 nanoseconds, whatever the unit of each index
(pandas 3 indexes may be in s, ms, us or ns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aster_rl.data.timeframes import timeframe_to_timedelta


def as_ns(index: pd.Index) -> np.ndarray:
    """Int64 nanoseconds since the epoch of a DatetimeIndex, whatever its unit."""
    if isinstance(index, pd.DatetimeIndex) and index.unit == "ns":
        return index.asi8
    return pd.DatetimeIndex(index).as_unit("ns").asi8


def timeframe_ns(timeframe: str) -> int:
    return int(timeframe_to_timedelta(timeframe).value)


def bars_for(hours: float, timeframe: str) -> int:
    """How many bars of ``timeframe`` span ``hours`` (at least one)."""
    return max(1, int(round(hours * 3_600e9 / timeframe_ns(timeframe))))


def bar_of_events(bar_open_ns: np.ndarray, tf_ns: int, event_ns: np.ndarray) -> np.ndarray:
    """Position of the bar whose ``[open, open + tf)`` holds each event; -1 when none does."""
    pos = np.searchsorted(bar_open_ns, event_ns, side="right") - 1
    ok = (pos >= 0) & (event_ns < bar_open_ns[np.clip(pos, 0, None)] + tf_ns) if len(bar_open_ns) else pos >= 0
    return np.where(ok, pos, -1)


def latest_before_close(bar_open_ns: np.ndarray, tf_ns: int, event_ns: np.ndarray) -> np.ndarray:
    """For each bar, the position of the newest event with timestamp < the bar's close; -1 when none.

    ``event_ns`` must be sorted ascending.
    """
    return np.searchsorted(event_ns, bar_open_ns + tf_ns, side="left") - 1


def safe_div(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``num / den`` where ``den`` is non-zero and finite; ``fill`` elsewhere."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, fill, dtype=float)
    ok = (den != 0) & np.isfinite(den) & np.isfinite(num)
    np.divide(num, den, out=out, where=ok)
    return out


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing median over ``window`` bars including the current one (shorter at the start)."""
    return pd.Series(values, dtype=float).rolling(window, min_periods=1).median().to_numpy()


def rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing sum over ``window`` bars, exact for integer-valued inputs (cumulative-sum difference)."""
    values = np.asarray(values, dtype=float)
    c = np.concatenate(([0.0], np.cumsum(values)))
    idx = np.arange(1, len(values) + 1)
    return c[idx] - c[np.maximum(idx - window, 0)]


def rolling_zscore(values: np.ndarray, window: int, min_periods: int = 2) -> np.ndarray:
    """(x - trailing mean) / trailing std over ``window`` bars including x; 0 where std is 0 or unknown."""
    s = pd.Series(values, dtype=float)
    roll = s.rolling(window, min_periods=min_periods)
    return safe_div(s.to_numpy() - roll.mean().to_numpy(), roll.std(ddof=0).to_numpy(), 0.0)


def rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and population std over exactly ``window`` bars (NaN before), two-pass per window.

    Unlike pandas' running-sum rolling variance, each value depends only on its own window,
    so a recent window recomputes it bit-for-bit; cost O(n * window).
    """
    x = np.asarray(values, dtype=float)
    mean = np.full(len(x), np.nan)
    std = np.full(len(x), np.nan)
    if len(x) >= window:
        view = np.lib.stride_tricks.sliding_window_view(x, window)
        m = view.mean(axis=1)
        mean[window - 1 :] = m
        std[window - 1 :] = np.sqrt(((view - m[:, None]) ** 2).mean(axis=1))
    return mean, std
