"""The btc_cycle tentacle: where the bar sits in Bitcoin's four-year halving cycle.

Days since the last halving are measured at the bar's *close* (``open + timeframe``),
so a bar is in the new cycle once it closes at or after the halving instant (00:00 UTC
of the halving date). Phases follow the seed's table:

=========================== ============ ==========================
phase                       days         aggression (leverage band)
=========================== ============ ==========================
0 POST_HALVING_ACCUMULATION 0 – 180      conservative, 10–20x
1 BULL_MARKET_PHASE_1       180 – 540    aggressive, 20–40x
2 BULL_MARKET_PARABOLIC     540 – 730    max aggression, 30–50x
3 DISTRIBUTION_TOP          730 – 900    defensive, 10–20x
4 BEAR_MARKET               900 +        cash heavy, 5–15x
=========================== ============ ==========================

Each lower bound belongs to its phase (day 180.0 is bull market phase 1). Before the
first listed halving the cycle is extrapolated one ``cycle_days`` backwards. Halving
dates are a parameter: add the next one when it is known.

The time since the halving enters the features as ``btc_cycle_years`` (days / 365.25:
0..4 within a cycle, still of order 1 when the next halving is not listed yet), never as
a raw day count, which would reach ~1460 in the observation; :func:`days_of_row` gives
the day count back for readings and reports.

``btc_cycle_years`` and ``btc_cycle_progress`` grow with the calendar for four years, and
``btc_cycle_phase_progress`` for the 180-370 days of a phase: on any history shorter than
that they are a clock (the test bars, later than the training bars, lie beyond the
training range on every bar), so they are listed in :data:`TIME_INDEX_COLUMNS` and left
out of the policy's default observation (``aster_rl.evaluation.support``); they stay in the feature
matrix for the readings and the brain report. What the policy may see of the cycle is the
phase and its one-hot columns: bounded, and not ordered in time within a phase; over a
training split inside one phase they are constant and the support check leaves them out.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles.base import Tentacle
from aster_rl.data.timeframes import timeframe_to_timedelta

logger = logging.getLogger(__name__)

NAME = "btc_cycle"
HALVINGS: tuple[str, ...] = ("2012-11-28", "2016-07-09", "2020-05-11", "2024-04-20")
CYCLE_DAYS = 1460.0
DAYS_PER_YEAR = 365.25

PHASES: tuple[str, ...] = (
    "POST_HALVING_ACCUMULATION",
    "BULL_MARKET_PHASE_1",
    "BULL_MARKET_PARABOLIC",
    "DISTRIBUTION_TOP",
    "BEAR_MARKET",
)
# Lower bound (days since halving) of each phase, in PHASES order.
PHASE_STARTS: tuple[float, ...] = (0.0, 180.0, 540.0, 730.0, 900.0)
# Short column suffixes for the one-hot phase columns.
PHASE_KEYS: tuple[str, ...] = ("accumulation", "bull_phase_1", "parabolic", "distribution", "bear")
# The seed's cycle-based aggression levels: (label, leverage low, leverage high).
PHASE_AGGRESSION: tuple[tuple[str, int, int], ...] = (
    ("conservative", 10, 20),
    ("aggressive", 20, 40),
    ("max aggression", 30, 50),
    ("defensive", 10, 20),
    ("cash heavy", 5, 15),
)
BULL_PHASES = (1, 2)

DEFAULTS: dict[str, Any] = {"halvings": HALVINGS, "cycle_days": CYCLE_DAYS}
# Columns that grow with the calendar (see the module notes): kept out of the observation.
TIME_INDEX_COLUMNS: tuple[str, ...] = (f"{NAME}_years", f"{NAME}_progress", f"{NAME}_phase_progress")


@dataclass(frozen=True)
class CyclePosition:
    """Where one instant sits in the halving cycle."""

    days: float
    phase: int
    phase_name: str
    progress: float

    @property
    def reading(self) -> str:
        return f"Day {int(self.days)} of the cycle: {phase_label(self.phase)}"


def phase_label(phase: int) -> str:
    """``1`` -> ``"bull market phase 1"``."""
    return PHASES[int(phase)].lower().replace("_", " ")


def _utc(ts: str | pd.Timestamp | dt.datetime) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _halving_ns(halvings: Iterable[str | pd.Timestamp], cycle_days: float) -> np.ndarray:
    stamps = sorted(_utc(h) for h in halvings)
    if not stamps:
        raise ValueError("btc_cycle: the list of halving dates is empty")
    anchors = [stamps[0] - pd.Timedelta(days=cycle_days), *stamps]
    return np.array([s.value for s in anchors], dtype=np.int64)


def days_since_halving(times: pd.DatetimeIndex | Sequence[pd.Timestamp], halvings: Iterable[str] = HALVINGS, cycle_days: float = CYCLE_DAYS) -> np.ndarray:
    """Days (float) from the newest halving at or before each instant."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    t = idx.tz_convert("UTC").as_unit("ns").asi8
    anchors = _halving_ns(halvings, cycle_days)
    pos = np.searchsorted(anchors, t, side="right") - 1
    pos = np.clip(pos, 0, len(anchors) - 1)  # before the extrapolated anchor: clamp (negative days -> 0)
    days = (t - anchors[pos]) / 86_400e9
    return np.maximum(days, 0.0)


def phase_of_days(days: np.ndarray | float) -> np.ndarray:
    """Phase index 0..4 for days since the halving (lower bounds inclusive)."""
    return np.searchsorted(np.asarray(PHASE_STARTS), np.asarray(days, dtype=float), side="right") - 1


def cycle_phase(ts: pd.Timestamp | str | dt.datetime, halvings: Iterable[str] = HALVINGS, cycle_days: float = CYCLE_DAYS) -> CyclePosition:
    """The cycle position of one instant, e.g. ``cycle_phase("2025-09-29")`` -> day 527, bull market phase 1."""
    days = float(days_since_halving(pd.DatetimeIndex([_utc(ts)]), halvings, cycle_days)[0])
    phase = int(phase_of_days(days))
    return CyclePosition(days=days, phase=phase, phase_name=PHASES[phase], progress=float(min(days / cycle_days, 1.0)))


def features(market: MarketBundle, context: pd.DataFrame, halvings: Iterable[str] = HALVINGS, cycle_days: float = CYCLE_DAYS) -> pd.DataFrame:
    """Cycle columns for every bar, from the bar's close time (no other data needed)."""
    index = market.candles.index
    close_times = index + timeframe_to_timedelta(market.timeframe)
    days = days_since_halving(close_times, halvings, cycle_days)
    phase = phase_of_days(days)
    starts = np.asarray((*PHASE_STARTS, cycle_days))
    lo = starts[phase]
    hi = np.maximum(starts[phase + 1], lo + 1.0)
    out = {
        f"{NAME}_years": days / DAYS_PER_YEAR,
        f"{NAME}_phase": phase.astype(float),
        f"{NAME}_progress": np.clip(days / cycle_days, 0.0, 1.0),
        f"{NAME}_phase_progress": np.clip((days - lo) / (hi - lo), 0.0, 1.0),
    }
    for i, key in enumerate(PHASE_KEYS):
        out[f"{NAME}_{key}"] = (phase == i).astype(float)
    return pd.DataFrame(out, index=index)


def days_of_row(row: pd.Series) -> float:
    """Days since the halving from a feature row's ``btc_cycle_years`` (rounded to 1e-3 days against float32 error)."""
    return round(float(row[f"{NAME}_years"]) * DAYS_PER_YEAR, 3)


def reading(row: pd.Series) -> str:
    """``"Day 527 of the cycle: bull market phase 1 (aggressive, 20-40x)"``."""
    days = days_of_row(row)
    phase = int(row[f"{NAME}_phase"])
    mood, lo, hi = PHASE_AGGRESSION[phase]
    return f"Day {int(days)} of the cycle: {phase_label(phase)} ({mood}, {lo}-{hi}x)"


TENTACLE = Tentacle(name=NAME, features=features, reading=reading, warmup=lambda p: 0, defaults=DEFAULTS, version=2)
