"""The indicators tentacle: RSI, EMA distances, MACD, Bollinger bands, ATR%, candles, wicks.

RSI, EMA and MACD are ``ta``'s formulas (``RSIIndicator``, ``EMAIndicator``, ``MACD``)
written out on numpy arrays with the same pandas EWM calls, so the values are ``ta``'s
bit for bit (tested) without its wrappers' Series copies. Bollinger bands are computed here with a two-pass std per window
(``_causal.rolling_mean_std``, tested equal to ``ta.volatility.BollingerBands``): pandas'
running-sum rolling std carries rounding from the whole history, so on flat stretches
%B from a recent window differed from the batch value by 2e-4. ATR comes from
:func:`aster_rl.indicator_math.wilder_atr` (vectorized, equal to ``ta``'s loop). Values before an indicator's own warm-up are
neutral (RSI 50, distances 0, %B 0.5) instead of NaN.

Columns: ``indicators_rsi_<n>``, ``indicators_ema_dist_<p>`` (close / EMA - 1),
``indicators_macd`` / ``_macd_signal`` / ``_macd_hist`` (divided by close),
``indicators_bb_pband`` (%B: 0 at the lower band, 1 at the upper), ``indicators_bb_width``
((upper - lower) / middle), ``indicators_atr_pct`` (ATR / close), candle patterns as 0/1
(``_doji``, ``_hammer``, ``_shooting_star``, ``_bullish_engulfing``, ``_bearish_engulfing``)
and the wick/body shares of the bar's range (``_upper_wick``, ``_lower_wick``, ``_body``).

``volatility_ratio_window`` (default 0: off) makes the two volatility levels scale-free in
time: with ``w`` > 0, ``indicators_bb_width`` and ``indicators_atr_pct`` are each divided by
their own trailing median over ``w`` bars (including the bar; a ratio near 1). The levels
follow the market's volatility regime: on the ASTER perp, listed in September 2025 with a
launch-time volatility that November never reached again, November's ATR% lay below its
whole training range on 31% of bars; the ratio compares each bar with its recent past only.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.indicator_math import wilder_atr
from aster_rl.features.tentacles._causal import rolling_mean_std, rolling_median, safe_div
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

DEFAULTS = {
    "rsi_period": 14,
    "ema_periods": (9, 21, 50, 200),
    "macd_fast": 12,
    "macd_slow": 26,
    "macd_signal": 9,
    "bb_window": 20,
    "bb_std": 2.0,
    "atr_period": 14,
    "doji_body": 0.1,  # body <= this share of the range
    "wick_body_ratio": 2.0,  # hammer / shooting star: long wick >= ratio x body
    "volatility_ratio_window": 0,  # > 0: bb_width and atr_pct over their trailing median of this many bars
}


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    """``ta.utils._ema``: EWM(span, adjust=False) with ``span`` bars before the first value (NaN before)."""
    return pd.Series(values).ewm(span=span, min_periods=span, adjust=False).mean().to_numpy()


def rsi(close: pd.Series | np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder RSI as ``ta.momentum.RSIIndicator``; 50 before ``period`` bars exist."""
    c = np.asarray(close, dtype=float)
    diff = np.empty(len(c))
    diff[:1] = np.nan
    diff[1:] = c[1:] - c[:-1]
    up = np.where(diff > 0, diff, 0.0)
    down = -np.where(diff < 0, diff, 0.0)
    # Both smoothed in one call: pandas' EWM runs column by column, as on two Series.
    ema = pd.DataFrame({"up": up, "down": down}).ewm(alpha=1 / period, min_periods=period, adjust=False).mean().to_numpy()
    emaup, emadn = ema[:, 0], ema[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(emadn == 0, 100.0, 100 - (100 / (1 + emaup / emadn)))
    return np.where(np.isfinite(values), values, 50.0)


def ema_distance(close: np.ndarray, period: int) -> np.ndarray:
    """close / EMA(period) - 1 as ``ta.trend.EMAIndicator``; 0 before ``period`` bars exist."""
    ema = _ema(close, period)
    return safe_div(close - ema, ema, 0.0)


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MACD, signal, histogram) as ``ta.trend.MACD`` (NaN before their warm-up)."""
    line = _ema(close, fast) - _ema(close, slow)
    sig = _ema(line, signal)
    return line, sig, line - sig


def bollinger(close: np.ndarray, window: int = 20, n_std: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, lower, middle) bands as ``ta.volatility.BollingerBands`` (population std; NaN before ``window``)."""
    mid, std = rolling_mean_std(close, window)
    return mid + n_std * std, mid - n_std * std, mid


def candle_shapes(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Upper wick, lower wick and body as shares of the high-low range (0 for a flat bar)."""
    rng = h - low
    return {
        "upper_wick": safe_div(h - np.maximum(o, c), rng),
        "lower_wick": safe_div(np.minimum(o, c) - low, rng),
        "body": safe_div(np.abs(c - o), rng),
    }


def candle_patterns(o, h, low, c, doji_body: float = 0.1, wick_body_ratio: float = 2.0) -> dict[str, np.ndarray]:
    """Classic single- and two-bar patterns as 0/1 (row t uses bars t-1 and t)."""
    o, h, low, c = (np.asarray(a, dtype=float) for a in (o, h, low, c))
    rng = h - low
    body = np.abs(c - o)
    upper = h - np.maximum(o, c)
    lower = np.minimum(o, c) - low
    has_range = rng > 0
    doji = has_range & (body <= doji_body * rng)
    # A small body at one end of the bar with a long wick on the other side.
    hammer = has_range & ~doji & (lower >= wick_body_ratio * body) & (upper <= 0.5 * body + 0.1 * rng)
    shooting = has_range & ~doji & (upper >= wick_body_ratio * body) & (lower <= 0.5 * body + 0.1 * rng)
    po = np.concatenate(([np.nan], o[:-1]))
    pc = np.concatenate(([np.nan], c[:-1]))
    prev_bear, prev_bull = pc < po, pc > po
    bull_engulf = prev_bear & (c > o) & (o <= pc) & (c >= po) & (body > np.abs(pc - po))
    bear_engulf = prev_bull & (c < o) & (o >= pc) & (c <= po) & (body > np.abs(pc - po))
    as01 = lambda m: np.asarray(m, dtype=float)  # noqa: E731
    return {
        "doji": as01(doji),
        "hammer": as01(hammer),
        "shooting_star": as01(shooting),
        "bullish_engulfing": as01(bull_engulf),
        "bearish_engulfing": as01(bear_engulf),
    }


def features(
    market, context, *, rsi_period, ema_periods, macd_fast, macd_slow, macd_signal, bb_window, bb_std, atr_period,
    doji_body, wick_body_ratio, volatility_ratio_window,
) -> pd.DataFrame:
    cdl = market.candles
    o, h, low, c = (cdl[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    out: dict[str, np.ndarray] = {f"indicators_rsi_{rsi_period}": rsi(c, rsi_period)}
    for p in ema_periods:
        out[f"indicators_ema_dist_{p}"] = ema_distance(c, int(p))
    line, sig, hist = macd(c, macd_fast, macd_slow, macd_signal)
    for name, values in (("macd", line), ("macd_signal", sig), ("macd_hist", hist)):
        out[f"indicators_{name}"] = np.nan_to_num(safe_div(values, c, 0.0), nan=0.0)
    upper, lower, mid = bollinger(c, bb_window, bb_std)
    out["indicators_bb_pband"] = safe_div(c - lower, upper - lower, 0.5)
    out["indicators_bb_width"] = safe_div(upper - lower, mid, 0.0)
    out["indicators_atr_pct"] = safe_div(wilder_atr(h, low, c, atr_period), c, 0.0)
    if volatility_ratio_window:
        for name in ("indicators_bb_width", "indicators_atr_pct"):
            out[name] = safe_div(out[name], rolling_median(out[name], int(volatility_ratio_window)), 1.0)
    for name, values in candle_patterns(o, h, low, c, doji_body, wick_body_ratio).items():
        out[f"indicators_{name}"] = values
    for name, values in candle_shapes(o, h, low, c).items():
        out[f"indicators_{name}"] = values
    return pd.DataFrame(out, index=cdl.index)


def _rsi_column(row: pd.Series) -> str:
    return next(k for k in row.index if k.startswith("indicators_rsi_"))


def reading(row: pd.Series) -> str:
    r = row[_rsi_column(row)]
    zone = "overbought" if r >= 70 else "oversold" if r <= 30 else "neutral"
    parts = [f"RSI {r:.0f}, {zone}"]
    emas = sorted((int(k.rsplit("_", 1)[1]), row[k]) for k in row.index if k.startswith("indicators_ema_dist_"))
    if emas:
        above = sum(1 for _, d in emas if d > 0)
        parts.append(f"close above {above} of {len(emas)} EMAs")
    hist = row["indicators_macd_hist"]
    parts.append("MACD " + ("bullish" if hist > 0 else "bearish" if hist < 0 else "flat"))
    parts.append(f"Bollinger %B {row['indicators_bb_pband']:.2f}")
    atr = row["indicators_atr_pct"]
    parts.append(f"ATR {atr * 100:.2f}%" if atr < 0.5 else f"ATR {atr:.2f}x its recent median")
    names = [n.replace("_", " ") for n in ("doji", "hammer", "shooting_star", "bullish_engulfing", "bearish_engulfing")
             if row[f"indicators_{n}"] >= 0.5]
    if names:
        parts.append("candle: " + ", ".join(names))
    if row["indicators_lower_wick"] >= 0.5:
        parts.append("long lower wick")
    elif row["indicators_upper_wick"] >= 0.5:
        parts.append("long upper wick")
    return "Indicators: " + "; ".join(parts)


def warmup(params: dict) -> int:
    return int(max(
        params["rsi_period"] + 1,
        max(params["ema_periods"]),
        params["macd_slow"] + params["macd_signal"],
        params["bb_window"],
        params["atr_period"],
        params.get("volatility_ratio_window", 0),
    ))


TENTACLE = Tentacle(name="indicators", features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
