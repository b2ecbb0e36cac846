"""The price_history tentacle: volume spikes, moon candles, dips, support and resistance.

Every window is trailing and includes bar t (it has closed). Columns:

- ``price_history_volume_spike``: 1 when volume / trailing median volume >= ``spike_ratio``;
  ``price_history_bars_since_spike``: bars since the last spike / ``spike_window``, capped at 1.
- ``price_history_return_z``: the bar's return (close / previous close - 1) over the trailing
  std of returns *before* it (``moon_window`` bars), clipped to +-``z_clip``.
- ``price_history_moon_candle``: 1 when the return >= ``moon_k`` x that std or >= ``moon_pct``;
  ``price_history_dump_candle``: the mirror image.
- ``price_history_dip_<w>``: close / trailing max high - 1 (<= 0): the drop from the rolling high.
- ``price_history_rally_<w>``: close / trailing min low - 1 (>= 0).
- ``price_history_support_dist_<n>`` / ``price_history_resistance_dist_<n>``: (close - min low)
  / close and (max high - close) / close over the last n bars; ``price_history_near_support`` /
  ``price_history_near_resistance``: 1 within ``near_pct`` of the level.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.features.tentacles._causal import rolling_median, safe_div
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

DEFAULTS = {
    "spike_window": 288,
    "spike_ratio": 2.0,
    "moon_window": 288,
    "moon_k": 4.0,
    "moon_pct": 0.05,
    "z_clip": 20.0,
    "dip_window": 288,
    "sr_window": 96,
    "near_pct": 0.005,
}


def volume_spikes(volume: np.ndarray, window: int, ratio: float) -> np.ndarray:
    """1 where volume / trailing median volume (``window`` bars, including this one) >= ``ratio``."""
    return (safe_div(volume, rolling_median(volume, window), 1.0) >= ratio).astype(float)


def bars_since(flags: np.ndarray, cap: int) -> np.ndarray:
    """Bars since the last 1 in ``flags`` (0 on the flagged bar), capped at ``cap``."""
    idx = np.arange(len(flags))
    last = np.maximum.accumulate(np.where(flags > 0, idx, -1)) if len(flags) else idx
    return np.where(last >= 0, np.minimum(idx - last, cap), cap).astype(float)


def return_zscore(close: np.ndarray, window: int, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """(bar return, return / trailing std of the previous ``window`` returns) — 0 until the std exists."""
    ret = np.zeros(len(close))
    ret[1:] = close[1:] / close[:-1] - 1.0
    prev_std = pd.Series(ret).rolling(window, min_periods=10).std(ddof=0).shift(1).to_numpy()
    return ret, np.clip(safe_div(ret, prev_std, 0.0), -clip, clip)


def moon_candles(ret: np.ndarray, z: np.ndarray, k: float, pct: float) -> tuple[np.ndarray, np.ndarray]:
    moon = (ret > 0) & ((z >= k) | (ret >= pct))
    dump = (ret < 0) & ((z <= -k) | (ret <= -pct))
    return moon.astype(float), dump.astype(float)


def features(
    market, context, *, spike_window, spike_ratio, moon_window, moon_k, moon_pct, z_clip, dip_window, sr_window, near_pct,
) -> pd.DataFrame:
    c = market.candles
    close, high, low = (c[k].to_numpy(dtype=float) for k in ("close", "high", "low"))
    volume = c["volume"].to_numpy(dtype=float)
    spike = volume_spikes(volume, spike_window, spike_ratio)
    ret, z = return_zscore(close, moon_window, z_clip)
    moon, dump = moon_candles(ret, z, moon_k, moon_pct)
    # Trailing max of high and min of low (as -max(-low)) in one rolling call per window.
    hl = pd.DataFrame({"high": high, "neg_low": -low})
    roll = {w: hl.rolling(w, min_periods=1).max().to_numpy() for w in {int(sr_window), int(dip_window)}}
    support, resistance = -roll[int(sr_window)][:, 1], roll[int(sr_window)][:, 0]
    support_dist = np.clip(safe_div(close - support, close), 0, None)
    resistance_dist = np.clip(safe_div(resistance - close, close), 0, None)
    out = {
        "price_history_volume_spike": spike,
        "price_history_bars_since_spike": bars_since(spike, spike_window) / spike_window,
        "price_history_return_z": z,
        "price_history_moon_candle": moon,
        "price_history_dump_candle": dump,
        f"price_history_dip_{dip_window}": np.clip(safe_div(close, roll[int(dip_window)][:, 0], 1.0) - 1.0, None, 0),
        f"price_history_rally_{dip_window}": np.clip(safe_div(close, -roll[int(dip_window)][:, 1], 1.0) - 1.0, 0, None),
        f"price_history_support_dist_{sr_window}": support_dist,
        f"price_history_resistance_dist_{sr_window}": resistance_dist,
        "price_history_near_support": (support_dist <= near_pct).astype(float),
        "price_history_near_resistance": (resistance_dist <= near_pct).astype(float),
    }
    return pd.DataFrame(out, index=c.index)


def _col(row: pd.Series, prefix: str) -> str:
    return next(k for k in row.index if k.startswith(prefix))


def reading(row: pd.Series) -> str:
    parts = []
    if row["price_history_moon_candle"] >= 0.5:
        parts.append(f"MOON CANDLE ({row['price_history_return_z']:+.1f} sigma)")
    elif row["price_history_dump_candle"] >= 0.5:
        parts.append(f"dump candle ({row['price_history_return_z']:+.1f} sigma)")
    if row["price_history_volume_spike"] >= 0.5:
        parts.append("volume SPIKE")
    dip = row[_col(row, "price_history_dip_")]
    parts.append(f"{dip * 100:.1f}% below the rolling high" if dip < -0.001 else "at the rolling high")
    s = row[_col(row, "price_history_support_dist_")]
    r = row[_col(row, "price_history_resistance_dist_")]
    parts.append(f"support {s * 100:.1f}% below, resistance {r * 100:.1f}% above")
    if row["price_history_near_support"] >= 0.5:
        parts.append("testing support (bounce zone)")
    elif row["price_history_near_resistance"] >= 0.5:
        parts.append("testing resistance")
    return "Price history: " + ", ".join(parts)


def warmup(params: dict) -> int:
    return int(max(params["spike_window"], params["moon_window"] + 1, params["dip_window"], params["sr_window"]))


TENTACLE = Tentacle(name="price_history", features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
