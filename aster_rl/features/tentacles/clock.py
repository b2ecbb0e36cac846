"""The clock tentacle: hour of day, day of week and the phase within the funding interval.

Columns (bounded cyclical encodings; row t uses only the bar's own times and funding
settlements known before its close):

- ``clock_hour_sin`` / ``clock_hour_cos``: the bar's open time of day (UTC, with minutes)
  on the 24-hour circle.
- ``clock_dow_sin`` / ``clock_dow_cos``: the bar's open day of week (Monday 0, with the
  time of day) on the 7-day circle.
- ``clock_funding_sin`` / ``clock_funding_cos``: the bar's close (the decision moment) on
  the funding-interval circle, measured from the newest settlement known at that close
  (from 00:00 UTC when none is known). The phase is (close - anchor) mod interval /
  interval: 0 right at a settlement, just below 1 just before the next, so the time to
  the next settlement is (1 - phase) x interval.
- ``clock_funding_interval_h``: the interval in use, hours / 24 (0.333 for 8 h, 0.167 for 4 h).

The interval is the spacing of the funding series when the market has one (the median of
the last ``spacing_events`` gaps between settlements known at the bar's close (one missing
settlement does not change it), rounded to
whole hours: Binance's BTC/ETH/LTC perps settle every 8 h, the ASTER perp every 4 h), else
``funding_interval_hours`` (``features.funding_interval_hours`` in the configuration).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aster_rl.features.tentacles._causal import as_ns, latest_before_close, timeframe_ns
from aster_rl.features.tentacles.base import Tentacle

NAME = "clock"
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
WEEK_NS = 7 * DAY_NS
# 1970-01-01 was a Thursday and 1970-01-05 a Monday: shift so that Monday 00:00 UTC is phase 0 of the week.
_MONDAY_OFFSET_NS = 4 * DAY_NS

DEFAULTS = {
    "funding_interval_hours": 8.0,
    "spacing_events": 3,  # the live window (pipeline.TENTACLE_WINDOW_HOURS) holds them for intervals <= 8 h
}


def _circle(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angle = 2.0 * np.pi * phase
    return np.sin(angle), np.cos(angle)


def funding_clock(funding: pd.DataFrame | None, bar_open_ns: np.ndarray, tf_ns: int, default_hours: float,
                  spacing_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(phase in [0, 1), interval in hours) per bar, from settlements known before each bar's close."""
    n = len(bar_open_ns)
    close_ns = bar_open_ns + tf_ns
    interval_h = np.full(n, float(default_hours))
    anchor = np.zeros(n, dtype=np.int64)
    if funding is not None and len(funding) and n:
        events = np.sort(as_ns(pd.DatetimeIndex(funding.index)))
        pos = latest_before_close(bar_open_ns, tf_ns, events)
        known = pos >= 0
        anchor[known] = events[pos[known]]
        if len(events) >= 2:
            gaps_h = np.diff(events) / HOUR_NS
            # median of the last ``spacing_events`` gaps ending at event i (gap i-1 is events[i] - events[i-1])
            med = pd.Series(gaps_h).rolling(max(1, int(spacing_events)), min_periods=1).median().to_numpy()
            spaced = pos >= 1
            hours = np.round(med[pos[spaced] - 1])
            ok = (hours >= 1) & (hours <= 24)
            idx = np.flatnonzero(spaced)[ok]
            interval_h[idx] = hours[ok]
    interval_ns = (interval_h * HOUR_NS).astype(np.int64)
    phase = np.mod(close_ns - anchor, interval_ns) / interval_ns
    return phase, interval_h


def features(market, context, *, funding_interval_hours, spacing_events) -> pd.DataFrame:
    index = market.candles.index
    open_ns = as_ns(index)
    hour_sin, hour_cos = _circle(np.mod(open_ns, DAY_NS) / DAY_NS)
    dow_sin, dow_cos = _circle(np.mod(open_ns - _MONDAY_OFFSET_NS, WEEK_NS) / WEEK_NS)
    phase, interval_h = funding_clock(market.funding, open_ns, timeframe_ns(market.timeframe),
                                      float(funding_interval_hours), int(spacing_events))
    fund_sin, fund_cos = _circle(phase)
    return pd.DataFrame(
        {
            f"{NAME}_hour_sin": hour_sin,
            f"{NAME}_hour_cos": hour_cos,
            f"{NAME}_dow_sin": dow_sin,
            f"{NAME}_dow_cos": dow_cos,
            f"{NAME}_funding_sin": fund_sin,
            f"{NAME}_funding_cos": fund_cos,
            f"{NAME}_funding_interval_h": interval_h / 24.0,
        },
        index=index,
    )


def phase_of_row(row: pd.Series) -> float:
    """The funding phase in [0, 1) back from its sin/cos columns."""
    return float(np.mod(np.arctan2(row[f"{NAME}_funding_sin"], row[f"{NAME}_funding_cos"]) / (2 * np.pi), 1.0))


def reading(row: pd.Series) -> str:
    minutes = int(round(np.mod(np.arctan2(row[f"{NAME}_hour_sin"], row[f"{NAME}_hour_cos"]) / (2 * np.pi), 1.0) * 1440)) % 1440
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    dow = int(np.mod(np.arctan2(row[f"{NAME}_dow_sin"], row[f"{NAME}_dow_cos"]) / (2 * np.pi), 1.0) * 7 + 1e-9) % 7
    interval = float(row[f"{NAME}_funding_interval_h"]) * 24
    to_next = (1.0 - phase_of_row(row)) * interval
    return f"Clock: {days[dow]} {minutes // 60:02d}:{minutes % 60:02d} UTC, next funding in {to_next:.1f}h (every {interval:.0f}h)"


def warmup(params: dict) -> int:
    """No warm-up: every value comes from the bar's own times."""
    return 0


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=warmup, defaults=DEFAULTS, version=1)
