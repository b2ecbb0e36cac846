"""The master-brain report: every tentacle's reading for one bar, in one place.

Pure: market and features in, a :class:`BrainReport` out. ``to_dict()`` is JSON-ready
(the machine-readable context file); ``to_text()`` is the human report. The ``decision``
slot holds a policy's decision (side, leverage, profile, entry, stop, target, confidence =
P(side), the leverage and profile heads' probabilities, the policy's entropy, reasoning, and
whether the bar's inputs lie inside the policy's training support) when one is attached;
the report itself never decides.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aster_rl.config import FeaturesConfig
from aster_rl.errors import DataError
from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.btc_cycle import PHASES, days_of_row
from aster_rl.features.tentacles.regime import STATE_NAMES
from aster_rl.features.tentacles.strategy import PROFILES
from aster_rl.data.timeframes import timeframe_to_timedelta
from aster_rl.features.tentacles.base import Tentacle

if TYPE_CHECKING:
    from aster_rl.features.pipeline import FeatureSchema, FeatureSet

logger = logging.getLogger(__name__)

SIDE_NAMES = ("WAIT", "BUY", "SELL")


@dataclass(frozen=True)
class BrainDecision:
    """A trading decision for the report (filled by a policy, never by the report)."""

    side: str  # "BUY" / "WAIT" / "SELL"
    leverage: float
    profile: str  # "scalp" / "swing" / "position"
    entry: float | None = None
    stop: float | None = None
    target: float | None = None
    confidence: float | None = None  # P(side): the side head's probability of the chosen side
    reasoning: str = ""
    side_probabilities: tuple[float, ...] | None = None  # P(WAIT), P(BUY), P(SELL)
    leverage_probability: float | None = None  # the leverage head's probability of the chosen rung
    profile_probability: float | None = None  # the profile head's probability of the chosen profile
    entropy: float | None = None  # of the policy's whole action distribution, in nats
    # {"bar_outside": [columns of this bar outside the training range], "bars": n, "share": s,
    #  "top_columns": {column: share}, "since": ISO time}: the support check (aster_rl.evaluation.support)
    support: dict[str, Any] | None = None

    def policy_text(self) -> str:
        """``P(side) WAIT 30% / BUY 61% / SELL 9%; leverage 20x p=40%; profile swing p=55%; entropy 2.10 nats``."""
        parts = []
        if self.side_probabilities is not None:
            parts.append("P(side) " + " / ".join(f"{n} {100 * p:.0f}%" for n, p in zip(SIDE_NAMES, self.side_probabilities)))
        if self.side != "WAIT":
            if self.leverage_probability is not None:
                parts.append(f"leverage {self.leverage:g}x p={100 * self.leverage_probability:.0f}%")
            if self.profile_probability is not None:
                parts.append(f"profile {self.profile} p={100 * self.profile_probability:.0f}%")
        if self.entropy is not None:
            parts.append(f"entropy {self.entropy:.2f} nats")
        return "; ".join(parts)

    def support_text(self) -> str:
        """``this bar: 2 columns outside the training range (a, b); since 2025-10-01: 37.2% of 8,640 bars (a 30.1%)``."""
        s = self.support
        if not s:
            return ""
        outside = list(s.get("bar_outside") or [])
        head = (f"this bar: {len(outside)} column{'s' if len(outside) != 1 else ''} outside the training range"
                + (f" ({', '.join(outside[:5])}{', …' if len(outside) > 5 else ''})" if outside else ""))
        bars = int(s.get("bars") or 0)
        if bars:
            top = s.get("top_columns") or {}
            since = f" since {str(s['since'])[:16]}" if s.get("since") else ""
            head += (f"; bars{since}: {100 * float(s['share']):.1f}% of {bars:,} out of support"
                     + (" (" + ", ".join(f"{k} {100 * float(v):.1f}%" for k, v in top.items()) + ")" if top else ""))
        return head


@dataclass(frozen=True)
class BrainReport:
    symbol: str
    timeframe: str
    time: pd.Timestamp  # open time of the bar reported on
    close_time: pd.Timestamp
    price: float
    readings: dict[str, str]
    strategy: dict[str, Any] = field(default_factory=dict)
    regime: dict[str, Any] = field(default_factory=dict)
    cycle: dict[str, Any] = field(default_factory=dict)
    multi_timeframe: dict[str, Any] = field(default_factory=dict)
    decision: BrainDecision | None = None

    def with_decision(self, decision: BrainDecision | None) -> BrainReport:
        return replace(self, decision=decision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "time": self.time.isoformat(),
            "close_time": self.close_time.isoformat(),
            "price": self.price,
            "readings": dict(self.readings),
            "strategy": dict(self.strategy),
            "regime": dict(self.regime),
            "cycle": dict(self.cycle),
            "multi_timeframe": dict(self.multi_timeframe),
            "decision": None if self.decision is None else asdict(self.decision),
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BrainReport:
        decision = data.get("decision")
        return cls(
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            time=pd.Timestamp(data["time"]),
            close_time=pd.Timestamp(data["close_time"]),
            price=float(data["price"]),
            readings=dict(data["readings"]),
            strategy=dict(data.get("strategy", {})),
            regime=dict(data.get("regime", {})),
            cycle=dict(data.get("cycle", {})),
            multi_timeframe=dict(data.get("multi_timeframe", {})),
            decision=None if decision is None else _decision_from_dict(decision),
        )

    def to_text(self) -> str:
        when = self.time.strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"Master brain: {self.symbol} {self.timeframe}, bar {when} (closed {self.close_time.strftime('%Y-%m-%d %H:%M UTC')})",
            f"  Price       {self.price:.6g}",
        ]
        summary = (("Cycle", "btc_cycle"), ("Regime", "regime"), ("Timeframes", "multi_timeframe"), ("Strategy", "strategy"))
        for label, name in summary:
            if name in self.readings:
                lines.append(f"  {label:<11} {self.readings[name]}")
        others = {n: t for n, t in self.readings.items() if n not in {name for _, name in summary}}
        if others:
            lines.append("  Tentacles")
            width = max(len(n) for n in others)
            for name, text in others.items():
                lines.append(f"    {name:<{width}}  {text}")
        if self.decision is None:
            lines.append("  Decision    no policy checkpoint given")
        else:
            d = self.decision
            parts = [d.side] if d.side == "WAIT" else [d.side, f"{d.leverage:g}x", d.profile]
            for key in ("entry", "stop", "target"):
                value = getattr(d, key)
                if value is not None:
                    parts.append(f"{key} {value:.6g}")
            if d.confidence is not None:
                parts.append(f"P(side) {100 * d.confidence:.0f}%")
            lines.append("  Decision    " + ", ".join(parts))
            if d.policy_text():
                lines.append(f"  Policy      {d.policy_text()}")
            if d.support_text():
                lines.append(f"  Support     {d.support_text()}")
            if d.reasoning:
                lines.append(f"              {d.reasoning}")
        return "\n".join(lines)


def _decision_from_dict(data: dict[str, Any]) -> BrainDecision:
    d = dict(data)
    if d.get("side_probabilities") is not None:
        d["side_probabilities"] = tuple(float(p) for p in d["side_probabilities"])
    return BrainDecision(**d)


def _feature_frame(features: pd.DataFrame | FeatureSet) -> tuple[pd.DataFrame, FeatureSet | None]:
    """(DataFrame of feature values, the FeatureSet when one was given)."""
    from aster_rl.features.pipeline import FeatureSet

    if isinstance(features, pd.DataFrame):
        return features, None
    if isinstance(features, FeatureSet):
        return features.frame(), features
    raise TypeError(f"features: expected a DataFrame or a FeatureSet, got {type(features).__name__}")


def _compute_features(market: MarketBundle, cfg: FeaturesConfig) -> FeatureSet:
    from aster_rl.features.pipeline import build_features

    return build_features(market, cfg)


def _num(row: pd.Series, name: str, default: float = 0.0) -> float:
    value = row.get(name, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def readings(row: pd.Series, schema: FeatureSchema | None = None, readers: Mapping[str, Tentacle] | None = None) -> dict[str, str]:
    """Tentacle name -> its human sentence for one feature row (a Series named by column).

    With ``schema`` the row is the schema's tentacles' column blocks, in order; without, each
    tentacle of ``readers`` (default: every registered one) reads the columns named
    ``<tentacle>_*`` and is left out when there are none. ``readers`` supplies the tentacle
    objects (the resolved ones of a pipeline); a name it lacks falls back to the registry.
    A reading is prose for a report: one that fails is logged and becomes
    ``"<tentacle>: no reading (<error>)"``, never an exception.
    """
    readers = readers if readers is not None else TENTACLES
    blocks: list[tuple[str, pd.Series]] = []
    if schema is not None:
        start = 0
        for name, count in zip(schema.tentacles, schema.columns_per_tentacle):
            blocks.append((name, row.iloc[start : start + count]))
            start += count
    else:
        for name in readers:
            cols = [c for c in row.index if isinstance(c, str) and c.startswith(f"{name}_")]
            if cols:
                blocks.append((name, row[cols]))
    out: dict[str, str] = {}
    for name, block in blocks:
        tentacle = readers.get(name) or TENTACLES[name]
        try:
            out[name] = tentacle.reading(block.astype(float))
        except Exception as e:  # a reading is prose for a report: never let one break the others
            logger.warning("reading of tentacle %s failed at %s: %s", name, row.name, e)
            out[name] = f"{name}: no reading ({type(e).__name__})"
    return out


def brain_report(market: MarketBundle, features: pd.DataFrame | FeatureSet | None, at: pd.Timestamp | str | None, cfg: FeaturesConfig) -> BrainReport:
    """The report for the newest bar opening at or before ``at`` (the newest bar when ``at`` is None).

    ``features`` is a FeatureSet or a DataFrame of tentacle columns on ``market``'s index;
    with None the selected tentacles are computed on the history up to that bar.
    """
    candles = market.candles
    if len(candles) == 0:
        raise DataError(f"{market.symbol} {market.timeframe}: no candles to report on")
    if at is None:
        pos = len(candles) - 1
    else:
        ts = pd.Timestamp(at)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        pos = int(candles.index.searchsorted(ts, side="right")) - 1
        if pos < 0:
            raise DataError(f"--at {ts}: before the first bar ({candles.index[0]}); choose a time inside the data")
    bar_time = candles.index[pos]
    if features is None:
        features = _compute_features(market.until(bar_time), cfg)
    frame, feature_set = _feature_frame(features)
    if bar_time not in frame.index:
        raise DataError(f"features have no row for the bar {bar_time}; compute them on the same market")
    row_pos = int(frame.index.get_loc(bar_time))
    row = frame.iloc[row_pos]

    if feature_set is not None:
        texts = feature_set.readings(row_pos)
    else:
        names = [n for n in TENTACLES if n in set(cfg.tentacles)] if cfg.tentacles else list(TENTACLES)
        texts = readings(row, readers={n: TENTACLES[n] for n in names})

    strategy: dict[str, Any] = {}
    if "strategy_profile" in row.index:
        profile = int(round(_num(row, "strategy_profile")))
        strategy = {
            "profile": PROFILES[min(max(profile, 0), len(PROFILES) - 1)],
            "leverage_low": _num(row, "strategy_leverage_low"),
            "leverage_high": _num(row, "strategy_leverage_high"),
        }
    regime: dict[str, Any] = {}
    if "regime_state" in row.index:
        state = int(round(_num(row, "regime_state")))
        regime = {"state": STATE_NAMES[min(max(state, 0), len(STATE_NAMES) - 1)], "strength": _num(row, "regime_strength")}
    cycle: dict[str, Any] = {}
    if "btc_cycle_phase" in row.index:
        phase = int(round(_num(row, "btc_cycle_phase")))
        cycle = {
            "phase": PHASES[min(max(phase, 0), len(PHASES) - 1)],
            "days_since_halving": days_of_row(row) if "btc_cycle_years" in row.index else 0.0,
            "progress": _num(row, "btc_cycle_progress"),
        }
    mtf: dict[str, Any] = {}
    if "multi_timeframe_alignment" in row.index:
        prefix = "multi_timeframe_trend_"
        mtf = {
            "alignment": _num(row, "multi_timeframe_alignment"),
            "bullish": int(_num(row, "multi_timeframe_bullish_count")),
            "bearish": int(_num(row, "multi_timeframe_bearish_count")),
            "considered": int(_num(row, "multi_timeframe_considered")),
            "trends": {c[len(prefix):]: int(_num(row, c)) for c in row.index if isinstance(c, str) and c.startswith(prefix)},
        }
    return BrainReport(
        symbol=market.symbol,
        timeframe=market.timeframe,
        time=bar_time,
        close_time=bar_time + timeframe_to_timedelta(market.timeframe),
        price=float(np.asarray(candles["close"])[pos]),
        readings=texts,
        strategy=strategy,
        regime=regime,
        cycle=cycle,
        multi_timeframe=mtf,
    )
