"""The strategy tentacle: scalp, swing or position, and a leverage band, from the other tentacles.

It reads the columns computed before it (``context``): ``btc_cycle_phase``,
``multi_timeframe_alignment``, ``regime_state`` / ``regime_strength`` and, when the
pattern library is in the pipeline, its win-rate columns (``pattern_library_best_win_rate``
or else the largest ``pattern_library_*win_rate*`` value; 0 means no active match;
``pattern_library_available`` = 0 counts as no library).
A missing input counts as neutral (no bull cycle, no confluence, ranging, no pattern)
and the matching ``strategy_<input>_available`` flag is 0.

The seed's rules:

============ ========== ===================================================================
profile      leverage   when
============ ========== ===================================================================
0 SCALP      5–20x      volatile, ranging, low confluence (the fallback)
1 SWING      10–30x     good confluence and a trend or a clear pattern, not volatile
2 POSITION   25–50x     bull cycle + all timeframes aligned bullish + high-probability pattern
============ ========== ===================================================================

"Good confluence" is ``|alignment| ≥ swing_confluence``; "all aligned" is
``alignment ≥ position_alignment``; a "clear" pattern has a win rate ≥
``clear_pattern_win_rate`` (the seed's demotion line, 60%), a "high-probability" one ≥
``strong_pattern_win_rate`` (its promotion line, 80%).

The leverage band is the profile's band intersected with the cycle phase's aggression
band (accumulation 10–20x, bull phase 1 20–40x, parabolic 30–50x, distribution 10–20x,
bear 5–15x). When they do not overlap the profile's band wins, collapsed to its edge
nearest the cycle band (a scalp in the parabolic phase: 20–20x): the profile bounds
the risk, the cycle only says how far into it to go.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles.base import Tentacle
from aster_rl.features.tentacles.btc_cycle import BULL_PHASES, PHASE_AGGRESSION

logger = logging.getLogger(__name__)

NAME = "strategy"
SCALP, SWING, POSITION = 0, 1, 2
PROFILES = ("scalp", "swing", "position")
PROFILE_BANDS: tuple[tuple[int, int], ...] = ((5, 20), (10, 30), (25, 50))
MAX_LEVERAGE = 50.0
NEUTRAL_CYCLE_PHASE = 3  # when the cycle is unknown, use a defensive band (10-20x), not an aggressive one

DEFAULTS: dict[str, Any] = {
    "swing_confluence": 0.5,
    "position_alignment": 0.999,
    "clear_pattern_win_rate": 0.6,
    "strong_pattern_win_rate": 0.8,
}


def pattern_win_rate(context: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Best active pattern win rate per row (0 when none) and whether the pattern library is available.

    Availability is ``pattern_library_available`` when that column exists, else whether any
    win-rate column exists.
    """
    n = len(context)
    win_rate, exists = _pattern_columns(context, n)
    if "pattern_library_available" in context.columns:
        flag = context["pattern_library_available"].to_numpy(dtype=float)
        available = np.isfinite(flag) & (flag > 0.5)
    else:
        available = np.full(n, exists)
    return np.where(available, win_rate, 0.0), available


def _pattern_columns(context: pd.DataFrame, n: int) -> tuple[np.ndarray, bool]:
    if "pattern_library_best_win_rate" in context.columns:
        cols = ["pattern_library_best_win_rate"]
    else:
        cols = [c for c in context.columns if isinstance(c, str) and c.startswith("pattern_library_") and "win_rate" in c]
    if not cols:
        return np.zeros(n), False
    values = context[cols].to_numpy(dtype=float)
    values = np.where(np.isfinite(values), values, 0.0)
    return np.clip(values.max(axis=1), 0.0, 1.0), True


def cycle_band(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cycle phase's aggression band (low, high leverage) per row."""
    return (
        np.array([a[1] for a in PHASE_AGGRESSION], dtype=float)[phase],
        np.array([a[2] for a in PHASE_AGGRESSION], dtype=float)[phase],
    )


def leverage_band(profile: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Profile band ∩ cycle band; if disjoint, the profile band's edge nearest the cycle band."""
    p_lo = np.array([b[0] for b in PROFILE_BANDS], dtype=float)[profile]
    p_hi = np.array([b[1] for b in PROFILE_BANDS], dtype=float)[profile]
    c_lo, c_hi = cycle_band(phase)
    lo = np.maximum(p_lo, c_lo)
    hi = np.minimum(p_hi, c_hi)
    disjoint = lo > hi
    edge = np.where(c_lo > p_hi, p_hi, p_lo)  # cycle band entirely above -> top edge, else bottom edge
    return np.where(disjoint, edge, lo), np.where(disjoint, edge, hi)


def _column(context: pd.DataFrame, name: str, neutral: float) -> tuple[np.ndarray, bool]:
    if name not in context.columns:
        return np.full(len(context), neutral), False
    values = context[name].to_numpy(dtype=float)
    return np.where(np.isfinite(values), values, neutral), True


def features(
    market: MarketBundle,
    context: pd.DataFrame,
    swing_confluence: float = 0.5,
    position_alignment: float = 0.999,
    clear_pattern_win_rate: float = 0.6,
    strong_pattern_win_rate: float = 0.8,
) -> pd.DataFrame:
    index = market.candles.index
    ctx = context.reindex(index) if not context.index.equals(index) else context
    phase_raw, cycle_ok = _column(ctx, "btc_cycle_phase", NEUTRAL_CYCLE_PHASE)
    phase = np.clip(np.round(phase_raw), 0, len(PHASE_AGGRESSION) - 1).astype(int)
    alignment, mtf_ok = _column(ctx, "multi_timeframe_alignment", 0.0)
    regime_raw, regime_ok = _column(ctx, "regime_state", 0.0)
    regime = np.clip(np.round(regime_raw), 0, 3).astype(int)
    win_rate, patterns_ok = pattern_win_rate(ctx)

    bull = cycle_ok & np.isin(phase, BULL_PHASES)
    confluence = np.abs(alignment)
    volatile = regime == 3
    trending = (regime == 1) | (regime == 2)
    clear_pattern = win_rate >= clear_pattern_win_rate
    strong_pattern = win_rate >= strong_pattern_win_rate
    all_aligned = alignment >= position_alignment

    position = bull & all_aligned & strong_pattern
    swing = ~position & ~volatile & (confluence >= swing_confluence) & (trending | clear_pattern)
    profile = np.where(position, POSITION, np.where(swing, SWING, SCALP)).astype(int)

    lo, hi = leverage_band(profile, phase)
    c_lo, c_hi = cycle_band(phase)

    out: dict[str, np.ndarray] = {
        f"{NAME}_profile": profile.astype(float),
        f"{NAME}_scalp": (profile == SCALP).astype(float),
        f"{NAME}_swing": (profile == SWING).astype(float),
        f"{NAME}_position": (profile == POSITION).astype(float),
        f"{NAME}_leverage_low": lo,
        f"{NAME}_leverage_high": hi,
        f"{NAME}_leverage_low_norm": lo / MAX_LEVERAGE,
        f"{NAME}_leverage_high_norm": hi / MAX_LEVERAGE,
        f"{NAME}_cycle_leverage_low_norm": c_lo / MAX_LEVERAGE,
        f"{NAME}_cycle_leverage_high_norm": c_hi / MAX_LEVERAGE,
        f"{NAME}_bull_cycle": bull.astype(float),
        f"{NAME}_confluence": confluence,
        f"{NAME}_trending": trending.astype(float),
        f"{NAME}_volatile": volatile.astype(float),
        f"{NAME}_pattern_win_rate": win_rate,
        f"{NAME}_cycle_available": np.full(len(index), float(cycle_ok)),
        f"{NAME}_multi_timeframe_available": np.full(len(index), float(mtf_ok)),
        f"{NAME}_regime_available": np.full(len(index), float(regime_ok)),
        f"{NAME}_pattern_available": patterns_ok.astype(float),
    }
    return pd.DataFrame(out, index=index)


def reading(row: pd.Series) -> str:
    """``"SWING at 20-30x: trending, confluence 0.67, bull cycle (cycle band 20-40x), no pattern library"``."""
    profile = int(row[f"{NAME}_profile"])
    lo, hi = float(row[f"{NAME}_leverage_low"]), float(row[f"{NAME}_leverage_high"])
    reasons = []
    if float(row.get(f"{NAME}_volatile", 0.0)) > 0.5:
        reasons.append("volatile market")
    elif float(row.get(f"{NAME}_trending", 0.0)) > 0.5:
        reasons.append("trending market")
    elif float(row.get(f"{NAME}_regime_available", 1.0)) > 0.5:
        reasons.append("ranging market")
    else:
        reasons.append("regime unknown")
    if float(row.get(f"{NAME}_multi_timeframe_available", 1.0)) > 0.5:
        reasons.append(f"confluence {float(row.get(f'{NAME}_confluence', 0.0)):.2f}")
    else:
        reasons.append("no multi-timeframe data")
    c_lo = MAX_LEVERAGE * float(row.get(f"{NAME}_cycle_leverage_low_norm", 0.0))
    c_hi = MAX_LEVERAGE * float(row.get(f"{NAME}_cycle_leverage_high_norm", 0.0))
    if float(row.get(f"{NAME}_cycle_available", 1.0)) > 0.5:
        cycle = "bull cycle" if float(row.get(f"{NAME}_bull_cycle", 0.0)) > 0.5 else "no bull cycle"
        reasons.append(f"{cycle} (cycle band {c_lo:.0f}-{c_hi:.0f}x)")
    else:
        reasons.append(f"cycle unknown (defensive band {c_lo:.0f}-{c_hi:.0f}x)")
    if float(row.get(f"{NAME}_pattern_available", 0.0)) > 0.5:
        wr = float(row.get(f"{NAME}_pattern_win_rate", 0.0))
        reasons.append(f"best pattern win rate {100 * wr:.0f}%" if wr > 0 else "no pattern match")
    else:
        reasons.append("no pattern library")
    return f"{PROFILES[profile].upper()} at {lo:.0f}-{hi:.0f}x: " + ", ".join(reasons)


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=lambda p: 0, defaults=DEFAULTS)
