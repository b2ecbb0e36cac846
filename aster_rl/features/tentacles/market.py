"""The market tentacle: returns, the 24h change and range position, volume ratio, funding.

Columns (row t uses bars 0..t and funding settled before bar t's close):

- ``market_return_<h>``: close / close h bars earlier - 1 (0 until h bars exist).
- ``market_change_24h``: close / close 24 hours earlier - 1 (0 until then).
- ``market_range_pos_24h``: where the close sits in the trailing 24h low..high range, 0..1
  (0.5 when the range is empty).
- ``market_volume_ratio``: volume / trailing median volume (``volume_window`` bars).
- ``market_funding_rate_bps``: the newest settled funding rate, in basis points; a rate
  settled at time ``ts`` belongs to the bar holding ``ts`` and is carried forward after it.
- ``market_funding_trend_bps``: that rate minus the mean of the last ``funding_trend_events``
  settlements (bps).
- ``market_funding_available``: 1 once a funding settlement is known, else 0 (rates 0).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from aster_rl.features.tentacles._causal import as_ns, bars_for, latest_before_close, rolling_median, safe_div, timeframe_ns
from aster_rl.features.tentacles.base import Tentacle

logger = logging.getLogger(__name__)

DEFAULTS = {
    "horizons": (1, 6, 12, 48),
    "day_hours": 24.0,
    "volume_window": 288,
    "funding_trend_events": 6,
}


def returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """close / close ``horizon`` bars earlier - 1; 0 for the first ``horizon`` bars."""
    out = np.zeros(len(close))
    if horizon < len(close):
        out[horizon:] = close[horizon:] / close[:-horizon] - 1.0
    return out


def range_position(close: np.ndarray, high: np.ndarray, low: np.ndarray, window: int) -> np.ndarray:
    """(close - trailing min low) / (trailing max high - trailing min low), 0.5 for an empty range."""
    hi = pd.Series(high).rolling(window, min_periods=1).max().to_numpy()
    lo = pd.Series(low).rolling(window, min_periods=1).min().to_numpy()
    return np.clip(safe_div(close - lo, hi - lo, 0.5), 0.0, 1.0)


def funding_at_bars(funding: pd.DataFrame | None, bar_index: pd.DatetimeIndex, timeframe: str, trend_events: int):
    """(rate, trend, available) per bar from settlements known before each bar's close."""
    n = len(bar_index)
    rate, trend, avail = np.zeros(n), np.zeros(n), np.zeros(n)
    if funding is None or len(funding) == 0 or n == 0:
        return rate, trend, avail
    events = funding["funding_rate"].astype(float)
    events = events[np.isfinite(events.to_numpy())].sort_index()
    if len(events) == 0:
        return rate, trend, avail
    event_rate = events.to_numpy()
    event_trend = event_rate - pd.Series(event_rate).rolling(trend_events, min_periods=1).mean().to_numpy()
    pos = latest_before_close(as_ns(bar_index), timeframe_ns(timeframe), as_ns(events.index))
    known = pos >= 0
    rate[known] = event_rate[pos[known]]
    trend[known] = event_trend[pos[known]]
    avail[known] = 1.0
    return rate, trend, avail


def features(market, context, *, horizons, day_hours, volume_window, funding_trend_events) -> pd.DataFrame:
    c = market.candles
    close, high, low = (c[k].to_numpy(dtype=float) for k in ("close", "high", "low"))
    volume = c["volume"].to_numpy(dtype=float)
    day = bars_for(day_hours, market.timeframe)
    out = {f"market_return_{h}": returns(close, int(h)) for h in horizons}
    out["market_change_24h"] = returns(close, day)
    out["market_range_pos_24h"] = range_position(close, high, low, day)
    out["market_volume_ratio"] = safe_div(volume, rolling_median(volume, volume_window), 1.0)
    rate, trend, avail = funding_at_bars(market.funding, c.index, market.timeframe, int(funding_trend_events))
    out["market_funding_rate_bps"] = rate * 1e4
    out["market_funding_trend_bps"] = trend * 1e4
    out["market_funding_available"] = avail
    return pd.DataFrame(out, index=c.index)


def reading(row: pd.Series) -> str:
    parts = [f"24h {row['market_change_24h'] * 100:+.1f}%"]
    pos = row["market_range_pos_24h"]
    where = "near the 24h high" if pos >= 0.8 else "near the 24h low" if pos <= 0.2 else "mid-range"
    parts.append(f"{where} ({pos * 100:.0f}% of the range)")
    vr = row["market_volume_ratio"]
    parts.append(f"volume {vr:.1f}x median" + (" (SPIKE!)" if vr >= 2 else ""))
    if row["market_funding_available"] >= 0.5:
        f = row["market_funding_rate_bps"]
        side = "longs pay" if f > 0 else "shorts pay" if f < 0 else "flat"
        trend = row["market_funding_trend_bps"]
        direction = "rising" if trend > 0.05 else "falling" if trend < -0.05 else "steady"
        parts.append(f"funding {f / 100:+.4f}% ({side}, {direction})")
    else:
        parts.append("funding unknown")
    return "Market: " + ", ".join(parts)


def warmup(params: dict) -> int:
    """Bars before every column is meaningful (the 24h window counted at a 5m base)."""
    day_5m = int(round(params["day_hours"] * 12))
    return int(max(max(params["horizons"]), day_5m, params["volume_window"]))


TENTACLE = Tentacle(name="market", features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
