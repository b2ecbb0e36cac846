"""The macro tentacle: what BTC and ETH are doing, and how closely ASTER follows BTC.

The companions (``market.btc``, ``market.eth``) are candles on the base timeframe,
indexed by open time like the base candles. Each base bar takes the companion bar
with the same or the newest earlier open time (so a missing companion bar repeats the
previous close; after ``max_stale_bars`` base bars without a fresh companion bar it
counts as unavailable).

Per companion (``btc``, ``eth``): log returns over ``horizons`` base bars, the distance
of close from its EMA (``ema_span``) and its sign as the trend (−1, 0, 1), and a flag.
``macro_corr_btc``: rolling correlation of ASTER's and BTC's one-bar log returns over
``corr_window`` bars. A missing companion gives zeros and ``macro_<c>_available`` = 0;
``macro_available`` is 1 when at least one companion is available.
"""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles._causal import as_ns
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

NAME = "macro"
COMPANIONS = ("btc", "eth")
DEFAULTS: dict[str, Any] = {
    "horizons": (12, 48, 288),
    "ema_span": 50,
    "corr_window": 288,
    "max_stale_bars": 12,
    "deadband": 0.001,
}


def _warmup(params: dict[str, Any]) -> int:
    p = {**DEFAULTS, **params}
    return int(max(max(p["horizons"]), 3 * p["ema_span"], p["corr_window"]))


def _aligned_close(companion: pd.DataFrame | None, index: pd.DatetimeIndex, max_stale_bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Companion close per base bar (NaN where unknown) and whether it is fresh enough."""
    n = len(index)
    if companion is None or len(companion) == 0 or "close" not in companion.columns:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    comp = companion["close"].astype(float)
    if not comp.index.is_monotonic_increasing:
        comp = comp.sort_index(kind="stable")
    comp = comp[~comp.index.duplicated(keep="last")]
    # The newest companion bar opened at or before each base bar (a backward as-of join).
    comp_t, base_t = as_ns(comp.index), as_ns(index)
    pos = np.searchsorted(comp_t, base_t, side="right") - 1
    matched = pos >= 0
    close = np.where(matched, comp.to_numpy()[np.clip(pos, 0, None)], np.nan)
    # Staleness in base bars: base bars since the base bar that carries the matched companion bar.
    base_pos = np.arange(n)
    known = matched & np.isfinite(close) & (close > 0)
    first_base = np.searchsorted(base_t, np.where(known, comp_t[np.clip(pos, 0, None)], 0), side="left")
    fresh = known & ((base_pos - first_base) <= max_stale_bars)
    return np.where(known, close, np.nan), fresh


def _diff(x: np.ndarray, lag: int) -> np.ndarray:
    """``x[t] - x[t - lag]`` (pandas' ``x - x.shift(lag)``): NaN for the first ``lag`` bars."""
    out = np.full(len(x), np.nan)
    if 0 < lag < len(x):
        out[lag:] = x[lag:] - x[:-lag]
    return out


def features(
    market: MarketBundle,
    context: pd.DataFrame,
    horizons: Sequence[int] = (12, 48, 288),
    ema_span: int = 50,
    corr_window: int = 288,
    max_stale_bars: int = 12,
    deadband: float = 0.001,
) -> pd.DataFrame:
    index = market.candles.index
    n = len(index)
    with np.errstate(divide="ignore", invalid="ignore"):
        base_ret = _diff(np.log(market.candles["close"].to_numpy(dtype=float)), 1)
    out: dict[str, np.ndarray] = {}
    any_available = np.zeros(n, dtype=bool)
    for name in COMPANIONS:
        close, fresh = _aligned_close(getattr(market, name), index, max_stale_bars)
        s = pd.Series(close)
        with np.errstate(divide="ignore", invalid="ignore"):
            logc = np.log(close)
        for h in horizons:
            r = _diff(logc, int(h))
            out[f"{NAME}_{name}_return_{int(h)}"] = np.where(fresh & np.isfinite(r), r, 0.0)
        valid = np.cumsum(~np.isnan(close))
        ema = s.ewm(span=ema_span, adjust=False, ignore_na=True).mean().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = close / ema - 1.0
        ok = fresh & np.isfinite(dist)
        dist = np.where(ok, dist, 0.0)
        out[f"{NAME}_{name}_ema_distance"] = dist
        out[f"{NAME}_{name}_trend"] = np.where(dist > deadband, 1.0, np.where(dist < -deadband, -1.0, 0.0))
        ret1 = _diff(logc, 1)
        corr = pd.Series(base_ret).rolling(corr_window, min_periods=max(corr_window // 2, 2)).corr(pd.Series(ret1)).to_numpy()
        out[f"{NAME}_corr_{name}"] = np.where(fresh & np.isfinite(corr), np.clip(corr, -1.0, 1.0), 0.0)
        available = fresh & (valid >= 2)
        out[f"{NAME}_{name}_available"] = available.astype(float)
        any_available |= available
    out[f"{NAME}_available"] = any_available.astype(float)
    return pd.DataFrame(out, index=index)


def _pct(x: float) -> str:
    return f"{100.0 * (np.exp(x) - 1.0):+.1f}%"


def reading(row: pd.Series) -> str:
    """``"BTC +1.2% over 288 bars, above its EMA (up), ASTER-BTC correlation 0.45; ETH ..."``."""
    if float(row.get(f"{NAME}_available", 0.0)) < 0.5:
        return "No BTC/ETH data: macro context unavailable"
    parts = []
    for name in COMPANIONS:
        if float(row.get(f"{NAME}_{name}_available", 0.0)) < 0.5:
            parts.append(f"{name.upper()} n/a")
            continue
        prefix = f"{NAME}_{name}_return_"
        rets = sorted((int(c[len(prefix):]), float(row[c])) for c in row.index if isinstance(c, str) and c.startswith(prefix))
        trend = float(row.get(f"{NAME}_{name}_trend", 0.0))
        word = "up" if trend > 0 else "down" if trend < 0 else "flat"
        text = f"{name.upper()} trend {word}"
        if rets:
            h, r = rets[-1]
            text += f", {_pct(r)} over {h} bars"
        corr = row.get(f"{NAME}_corr_{name}")
        if corr is not None:
            text += f", correlation with ASTER {float(corr):+.2f}"
        parts.append(text)
    return "; ".join(parts)


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=_warmup, defaults=DEFAULTS)
