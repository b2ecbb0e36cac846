"""The orderflow tentacle: taker-buy pressure from klines, book imbalance and large resting orders.

Columns:

- ``orderflow_taker_buy_ratio``: taker_buy_volume / volume of the bar (0.5 when unknown).
- ``orderflow_taker_buy_mean_<w>``: its trailing mean; ``orderflow_taker_buy_z_<z>``: its
  trailing z-score. ``orderflow_taker_available``: 1 when the kline has taker-buy volume.
- From the order-book snapshot assigned to the bar (the newest with timestamp < the bar's
  close, and not older than ``book_max_age_minutes``): ``orderflow_book_imbalance``
  ((bid depth - ask depth) / total, -1..1), ``orderflow_spread_bps``,
  ``orderflow_large_bid_share`` / ``orderflow_large_ask_share`` (largest resting order /
  its side's depth, 0..1), ``orderflow_book_imbalance_mean_<w>`` (trailing mean over the
  bars with a snapshot) and ``orderflow_book_available``. Without a snapshot: 0 and flag 0.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.features.tentacles._causal import as_ns, latest_before_close, rolling_sum, rolling_zscore, safe_div, timeframe_ns
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

DEFAULTS = {
    "mean_window": 12,
    "z_window": 288,
    "book_max_age_minutes": 60.0,
}


def taker_buy_ratio(candles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ratio, available) per bar; 0.5 and 0 where the kline has no taker-buy volume."""
    n = len(candles)
    if "taker_buy_volume" not in candles.columns:
        return np.full(n, 0.5), np.zeros(n)
    tb = candles["taker_buy_volume"].to_numpy(dtype=float)
    vol = candles["volume"].to_numpy(dtype=float)
    avail = (np.isfinite(tb) & (vol > 0)).astype(float)
    return np.clip(safe_div(tb, vol, 0.5), 0.0, 1.0) * avail + 0.5 * (1 - avail), avail


def book_at_bars(book: pd.DataFrame | None, bar_index: pd.DatetimeIndex, timeframe: str, max_age_minutes: float):
    """Book columns per bar from the newest snapshot strictly before each bar's close."""
    n = len(bar_index)
    cols = {k: np.zeros(n) for k in ("imbalance", "spread_bps", "large_bid", "large_ask", "available")}
    if book is None or len(book) == 0 or n == 0:
        return cols
    book = book.sort_index()
    snap_ns = as_ns(book.index)
    tf = timeframe_ns(timeframe)
    opens = as_ns(bar_index)
    pos = latest_before_close(opens, tf, snap_ns)
    fresh = pos >= 0
    fresh[fresh] = (opens[fresh] + tf - snap_ns[pos[fresh]]) <= max_age_minutes * 60e9
    p = pos[fresh]
    bid_d = book["bid_depth_usd"].to_numpy(dtype=float)[p]
    ask_d = book["ask_depth_usd"].to_numpy(dtype=float)[p]
    bid, ask = book["best_bid"].to_numpy(dtype=float)[p], book["best_ask"].to_numpy(dtype=float)[p]
    cols["imbalance"][fresh] = np.clip(safe_div(bid_d - ask_d, bid_d + ask_d), -1, 1)
    cols["spread_bps"][fresh] = np.clip(safe_div(ask - bid, 0.5 * (ask + bid)), 0, None) * 1e4
    cols["large_bid"][fresh] = np.clip(safe_div(book["largest_bid_usd"].to_numpy(dtype=float)[p], bid_d), 0, 1)
    cols["large_ask"][fresh] = np.clip(safe_div(book["largest_ask_usd"].to_numpy(dtype=float)[p], ask_d), 0, 1)
    cols["available"][fresh] = 1.0
    return cols


def features(market, context, *, mean_window, z_window, book_max_age_minutes) -> pd.DataFrame:
    c = market.candles
    ratio, avail = taker_buy_ratio(c)
    out = {
        "orderflow_taker_buy_ratio": ratio,
        f"orderflow_taker_buy_mean_{mean_window}": pd.Series(ratio).rolling(mean_window, min_periods=1).mean().to_numpy(),
        f"orderflow_taker_buy_z_{z_window}": rolling_zscore(ratio, z_window),
        "orderflow_taker_available": avail,
    }
    book = book_at_bars(market.book, c.index, market.timeframe, book_max_age_minutes)
    out["orderflow_book_imbalance"] = book["imbalance"]
    out[f"orderflow_book_imbalance_mean_{mean_window}"] = safe_div(
        rolling_sum(book["imbalance"], mean_window), rolling_sum(book["available"], mean_window), 0.0
    )
    out["orderflow_spread_bps"] = book["spread_bps"]
    out["orderflow_large_bid_share"] = book["large_bid"]
    out["orderflow_large_ask_share"] = book["large_ask"]
    out["orderflow_book_available"] = book["available"]
    return pd.DataFrame(out, index=c.index)


def reading(row: pd.Series) -> str:
    parts = []
    if row["orderflow_taker_available"] >= 0.5:
        r = row["orderflow_taker_buy_ratio"]
        side = "buyers aggressive" if r >= 0.55 else "sellers aggressive" if r <= 0.45 else "balanced"
        parts.append(f"taker buys {r * 100:.0f}% of volume ({side})")
    else:
        parts.append("taker flow unknown")
    if row["orderflow_book_available"] >= 0.5:
        imb = row["orderflow_book_imbalance"]
        pressure = "bid pressure" if imb > 0.1 else "ask pressure" if imb < -0.1 else "balanced book"
        parts.append(f"book imbalance {imb:+.2f} ({pressure}), spread {row['orderflow_spread_bps']:.1f} bps")
        if row["orderflow_large_bid_share"] >= 0.25:
            parts.append("large resting bid")
        if row["orderflow_large_ask_share"] >= 0.25:
            parts.append("large resting ask")
    else:
        parts.append("no order book")
    return "Order flow: " + ", ".join(parts)


def warmup(params: dict) -> int:
    return int(max(params["mean_window"], params["z_window"]))


TENTACLE = Tentacle(name="orderflow", features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
