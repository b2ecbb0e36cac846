"""The regime tentacle: trending up, trending down, ranging or volatile, with a strength.

Inputs are the base candles only. Three causal measurements:

- **ADX / DI** (Wilder, vectorized here: ``ta``'s ``ADXIndicator`` runs per-row Python
  loops; the tests show this version equals ``ta``'s once the different seeding has
  decayed, and that both are causal);
- **trend score**: (EMA fast − EMA slow) / ATR, the EMA spread in units of typical range;
- **volatility percentile**: realized volatility (std of log returns over
  ``vol_window`` bars) ranked against its own previous ``vol_lookback`` values
  (a rolling rank, never a whole-series statistic).

State (``regime_state``): 3 volatile when the volatility percentile is at least
``volatile_percentile``; else 1 / 2 trending up / down when ADX ≥ ``adx_trend`` and DI
and the trend score agree on the direction; else 0 ranging.
Strength (0..1): trending → ADX / 50; volatile → how far the percentile is into the
volatile zone; ranging → how far ADX is below the trend threshold.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.indicator_math import true_range, wilder_atr
from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

NAME = "regime"
RANGING, TRENDING_UP, TRENDING_DOWN, VOLATILE = 0, 1, 2, 3
# The states, in code order: readable names (readings, pattern names) and keys (tables, plots).
STATE_NAMES: tuple[str, ...] = ("ranging", "trending up", "trending down", "volatile")
STATE_KEYS: tuple[str, ...] = ("ranging", "trending_up", "trending_down", "volatile")

DEFAULTS: dict[str, Any] = {
    "adx_period": 14,
    "adx_trend": 25.0,
    "ema_fast": 20,
    "ema_slow": 50,
    "vol_window": 48,
    "vol_lookback": 576,
    "volatile_percentile": 0.9,
    "trend_score_clip": 10.0,
}


def wilder_adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ADX, +DI, −DI) in 0..100 with Wilder smoothing (EWM, alpha = 1/period, from the first bar).

    Causal: row t uses bars 0..t only. Bars without range give DI = 0 and DX = 0.
    """
    high, low, close = (np.asarray(a, dtype=float) for a in (high, low, close))
    n = len(close)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    up = np.diff(high, prepend=high[0])
    down = -np.diff(low, prepend=low[0])
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = true_range(high, low, close)
    alpha = 1.0 / period

    def smooth(x: np.ndarray) -> np.ndarray:
        return pd.Series(x).ewm(alpha=alpha, adjust=False).mean().to_numpy()

    # The three inputs smoothed in one call: pandas' EWM runs column by column, as on three Series.
    smoothed = pd.DataFrame({"tr": tr, "plus": plus_dm, "minus": minus_dm}).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    str_, plus_s, minus_s = smoothed[:, 0], smoothed[:, 1], smoothed[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        plus_di = np.where(str_ > 0, 100.0 * plus_s / str_, 0.0)
        minus_di = np.where(str_ > 0, 100.0 * minus_s / str_, 0.0)
        di_sum = plus_di + minus_di
        dx = np.where(di_sum > 0, 100.0 * np.abs(plus_di - minus_di) / di_sum, 0.0)
    adx = smooth(dx)
    return adx, plus_di, minus_di


def _warmup(params: dict[str, Any]) -> int:
    p = {**DEFAULTS, **params}
    return int(max(3 * p["adx_period"], 3 * p["ema_slow"], p["vol_window"] + p["vol_lookback"]))


def features(
    market: MarketBundle,
    context: pd.DataFrame,
    adx_period: int = 14,
    adx_trend: float = 25.0,
    ema_fast: int = 20,
    ema_slow: int = 50,
    vol_window: int = 48,
    vol_lookback: int = 576,
    volatile_percentile: float = 0.9,
    trend_score_clip: float = 10.0,
) -> pd.DataFrame:
    candles = market.candles
    index = candles.index
    high = candles["high"].to_numpy(dtype=float)
    low = candles["low"].to_numpy(dtype=float)
    close = candles["close"].to_numpy(dtype=float)
    n = len(close)

    adx, plus_di, minus_di = wilder_adx(high, low, close, adx_period)

    c = pd.Series(close)
    spread = c.ewm(span=ema_fast, adjust=False).mean() - c.ewm(span=ema_slow, adjust=False).mean()
    atr = wilder_atr(high, low, close, adx_period)
    with np.errstate(divide="ignore", invalid="ignore"):
        trend_score = np.where(atr > 0, spread.to_numpy() / atr, 0.0)
    trend_score = np.clip(np.nan_to_num(trend_score, nan=0.0, posinf=0.0, neginf=0.0), -trend_score_clip, trend_score_clip)

    log_ret = np.log(c).diff()
    vol = log_ret.rolling(vol_window, min_periods=vol_window).std()
    # Rank of the current volatility among its own last vol_lookback values (itself included).
    vol_pct = vol.rolling(vol_lookback, min_periods=vol_window).rank(pct=True).to_numpy()
    vol_known = np.isfinite(vol_pct)
    vol_pct = np.where(vol_known, vol_pct, 0.5)
    # A fresh rank with few points is coarse; before vol_window ranked values it is not used for the state.
    ranked = vol.notna().cumsum().to_numpy() >= vol_window

    volatile = ranked & (vol_pct >= volatile_percentile)
    trending = adx >= adx_trend
    up = trending & (plus_di > minus_di) & (trend_score > 0)
    down = trending & (minus_di > plus_di) & (trend_score < 0)
    state = np.full(n, RANGING, dtype=int)
    state[up] = TRENDING_UP
    state[down] = TRENDING_DOWN
    state[volatile] = VOLATILE

    trend_strength = np.clip(adx / 50.0, 0.0, 1.0)
    span = max(1.0 - volatile_percentile, 1e-9)
    vol_strength = np.clip((vol_pct - volatile_percentile) / span, 0.0, 1.0)
    range_strength = np.clip(1.0 - adx / adx_trend, 0.0, 1.0)
    strength = np.select(
        [state == VOLATILE, (state == TRENDING_UP) | (state == TRENDING_DOWN)],
        [vol_strength, trend_strength],
        default=range_strength,
    )

    out: dict[str, np.ndarray] = {
        f"{NAME}_state": state.astype(float),
        f"{NAME}_strength": strength,
    }
    for i, key in enumerate(STATE_KEYS):
        out[f"{NAME}_{key}"] = (state == i).astype(float)
    out[f"{NAME}_adx"] = adx / 100.0
    out[f"{NAME}_di_diff"] = (plus_di - minus_di) / 100.0
    out[f"{NAME}_trend_score"] = trend_score
    out[f"{NAME}_vol_percentile"] = vol_pct
    return pd.DataFrame(out, index=index)


def reading(row: pd.Series) -> str:
    """``"Trending up (strength 0.62): ADX 31, trend score +1.8 ATR, volatility percentile 55"``."""
    state = int(row[f"{NAME}_state"])
    strength = float(row[f"{NAME}_strength"])
    adx = 100.0 * float(row.get(f"{NAME}_adx", 0.0))
    score = float(row.get(f"{NAME}_trend_score", 0.0))
    pct = 100.0 * float(row.get(f"{NAME}_vol_percentile", 0.5))
    return (
        f"{STATE_NAMES[state].capitalize()} (strength {strength:.2f}): ADX {adx:.0f}, "
        f"trend score {score:+.1f} ATR, volatility percentile {pct:.0f}"
    )


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=_warmup, defaults=DEFAULTS)
