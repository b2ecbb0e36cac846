"""The whales tentacle: large trades (notional > ``whale_notional_usd``, $5k by default).

A trade with timestamp ``ts`` belongs to the bar whose ``[open, open + tf)`` holds it
(trades outside every bar, e.g. in a data gap, are left out). Columns:

- ``whales_count``: whale trades in the bar; ``whales_count_sum_<w>``: over the last w bars.
- ``whales_net_notional_ratio``: (whale buy - whale sell notional) / the bar's quote volume,
  clipped to -1..1; ``whales_net_notional_ratio_sum_<w>``: the same over the last w bars
  (divided by their quote volume).
- ``whales_skew``: (buy - sell) / (buy + sell) whale notional, -1..1 (0 without whales);
  ``whales_skew_sum_<w>``: the same over the last w bars.
- ``whales_available``: 1 from the first bar with a trade record on (0 without a trade feed).
- ``whales_proxy_size_ratio``: volume per trade / its trailing median, from the kline's
  ``trades`` count (1 when absent); ``whales_proxy_available``. Large average trades are a
  whale footprint when the trade feed is missing.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.features.tentacles._causal import as_ns, bar_of_events, rolling_sum, safe_div, timeframe_ns
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

DEFAULTS = {
    "whale_notional_usd": 5_000.0,
    "sum_window": 12,
    "proxy_window": 288,
}


def trade_notional(trades: pd.DataFrame) -> np.ndarray:
    if "notional_usd" in trades.columns:
        return trades["notional_usd"].to_numpy(dtype=float)
    return trades["price"].to_numpy(dtype=float) * trades["amount"].to_numpy(dtype=float)


def whale_flows(trades: pd.DataFrame | None, bar_index: pd.DatetimeIndex, timeframe: str, threshold: float):
    """Per bar: (count, buy notional, sell notional, available) of trades above ``threshold``."""
    n = len(bar_index)
    count, buy, sell, avail = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    if trades is None or n == 0:
        return count, buy, sell, avail
    if len(trades):
        opens = as_ns(bar_index)
        pos = bar_of_events(opens, timeframe_ns(timeframe), as_ns(trades.index))
        inside = pos >= 0
        if inside.any():
            avail[int(pos[inside].min()):] = 1.0
        notional = trade_notional(trades)
        big = inside & np.isfinite(notional) & (notional > threshold)
        is_buy = trades["side"].astype(str).str.lower().to_numpy() == "buy"
        count = np.bincount(pos[big], minlength=n).astype(float)
        buy = np.bincount(pos[big & is_buy], weights=notional[big & is_buy], minlength=n).astype(float)
        sell = np.bincount(pos[big & ~is_buy], weights=notional[big & ~is_buy], minlength=n).astype(float)
    return count, buy, sell, avail


def quote_volume(candles: pd.DataFrame) -> np.ndarray:
    if "quote_volume" in candles.columns:
        qv = candles["quote_volume"].to_numpy(dtype=float)
        fallback = candles["volume"].to_numpy(dtype=float) * candles["close"].to_numpy(dtype=float)
        return np.where(np.isfinite(qv), qv, fallback)
    return candles["volume"].to_numpy(dtype=float) * candles["close"].to_numpy(dtype=float)


def volume_per_trade_ratio(candles: pd.DataFrame, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(volume per trade / trailing median, available); 1 and 0 without a ``trades`` column."""
    n = len(candles)
    if "trades" not in candles.columns:
        return np.ones(n), np.zeros(n)
    trades = candles["trades"].to_numpy(dtype=float)
    ok = np.isfinite(trades) & (trades > 0)
    per_trade = np.where(ok, safe_div(candles["volume"].to_numpy(dtype=float), trades, np.nan), np.nan)
    median = pd.Series(per_trade).rolling(window, min_periods=1).median().to_numpy()
    ratio = safe_div(per_trade, median, 1.0)
    return np.where(ok, ratio, 1.0), ok.astype(float)


def features(market, context, *, whale_notional_usd, sum_window, proxy_window) -> pd.DataFrame:
    c = market.candles
    count, buy, sell, avail = whale_flows(market.trades, c.index, market.timeframe, float(whale_notional_usd))
    qv = quote_volume(c)
    net = buy - sell
    out = {
        "whales_count": count,
        f"whales_count_sum_{sum_window}": rolling_sum(count, sum_window),
        "whales_net_notional_ratio": np.clip(safe_div(net, qv), -1, 1),
        f"whales_net_notional_ratio_sum_{sum_window}": np.clip(
            safe_div(rolling_sum(net, sum_window), rolling_sum(qv, sum_window)), -1, 1
        ),
        "whales_skew": np.clip(safe_div(net, buy + sell), -1, 1),
        f"whales_skew_sum_{sum_window}": np.clip(
            safe_div(rolling_sum(net, sum_window), rolling_sum(buy + sell, sum_window)), -1, 1
        ),
        "whales_available": avail,
    }
    ratio, proxy_ok = volume_per_trade_ratio(c, proxy_window)
    out["whales_proxy_size_ratio"] = ratio
    out["whales_proxy_available"] = proxy_ok
    return pd.DataFrame(out, index=c.index)


def reading(row: pd.Series) -> str:
    if row["whales_available"] >= 0.5:
        n = int(round(row["whales_count"]))
        sums = [k for k in row.index if k.startswith("whales_count_sum_")]
        recent = f", {int(round(row[sums[0]]))} in the last {sums[0].rsplit('_', 1)[1]} bars" if sums else ""
        skew = row["whales_skew"]
        if n == 0:
            text = f"no whale trades this bar{recent}"
        else:
            side = "buying" if skew > 0.2 else "selling" if skew < -0.2 else "mixed"
            share = row["whales_net_notional_ratio"] * 100
            text = f"{n} whale trade{'s' if n != 1 else ''} ({side}, net {share:+.1f}% of volume){recent}"
    else:
        text = "no trade feed"
    if row["whales_proxy_available"] >= 0.5:
        r = row["whales_proxy_size_ratio"]
        text += f"; volume per trade {r:.1f}x median" + (" (large players)" if r >= 2 else "")
    return "Whales: " + text


def warmup(params: dict) -> int:
    return int(max(params["sum_window"], params["proxy_window"]))


TENTACLE = Tentacle(name="whales", features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
