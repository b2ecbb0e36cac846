"""The pattern language: a small, serializable conjunction of conditions with a side and an exit profile.

A :class:`Condition` compares one feature column with a threshold (``>=``, ``<=`` or
``==``). A :class:`Pattern` is up to a handful of conditions on distinct columns, all of
which must hold at the close of bar *t*; it then enters ``side`` at the open of bar
*t + 1* with the stop and target of the exit profile ``profile`` (ATR multiples from
``EnvConfig.exit_profiles``).

Names are generated from the definition, in a canonical condition order, so equal
definitions have equal names and a name reads like the setup::

    volume ratio ≥ 2.1× & taker buy ≥ 0.75 → long/scalp

``to_dict`` / ``from_dict`` give the JSON form stored in the ``patterns`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from aster_rl.errors import DataError

Op = Literal[">=", "<=", "=="]
Side = Literal["long", "short"]
OPS: tuple[str, ...] = (">=", "<=", "==")
SIDES: tuple[str, ...] = ("long", "short")
OP_SYMBOLS = {">=": "≥", "<=": "≤", "==": "="}

# column -> (label, unit suffix); anything else is shown by its column name.
_LABELS: dict[str, tuple[str, str]] = {
    "market_volume_ratio": ("volume ratio", "×"),
    "orderflow_taker_buy_ratio": ("taker buy", ""),
    "indicators_rsi_14": ("RSI 14", ""),
    "multi_timeframe_alignment": ("timeframe alignment", ""),
    "regime_state": ("regime", ""),
    "btc_cycle_phase": ("cycle", ""),
}


def _category_label(column: str, value: float) -> str | None:
    """Readable names of the categorical columns' values (regime states, cycle phases)."""
    try:
        if column == "regime_state":
            from aster_rl.features.tentacles.regime import STATE_NAMES

            return STATE_NAMES[int(value)]
        if column == "btc_cycle_phase":
            from aster_rl.features.tentacles.btc_cycle import phase_label

            return phase_label(int(value))
    except (IndexError, ValueError, ImportError):
        return None
    return None


def format_threshold(value: float) -> str:
    """Up to six significant digits, no trailing zeros: 0.75, 2.13, 1e-05."""
    return format(float(value), ".6g")


@dataclass(frozen=True, order=True)
class Condition:
    column: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"condition on {self.column!r}: op {self.op!r} is not one of {OPS}")
        if not isinstance(self.column, str) or not self.column:
            raise ValueError("condition: column must be a non-empty string")
        if not np.isfinite(self.threshold):
            raise ValueError(f"condition on {self.column!r}: threshold must be finite, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def label(self) -> str:
        name, unit = _LABELS.get(self.column, (self.column, ""))
        if self.op == "==":
            category = _category_label(self.column, self.threshold)
            if category is not None:
                return f"{name} = {category}"
        return f"{name} {OP_SYMBOLS[self.op]} {format_threshold(self.threshold)}{unit}"

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Where the condition holds; NaN never satisfies a condition."""
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            if self.op == ">=":
                return values >= self.threshold
            if self.op == "<=":
                return values <= self.threshold
            return values == self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Condition:
        try:
            return cls(column=str(data["column"]), op=str(data["op"]), threshold=float(data["threshold"]))
        except KeyError as e:
            raise ValueError(f"condition {data!r}: missing key {e.args[0]!r} (need column, op, threshold)") from None


@dataclass(frozen=True)
class Pattern:
    """All ``conditions`` hold at a bar's close → enter ``side`` at the next open, exits by ``profile``."""

    conditions: tuple[Condition, ...]
    side: str
    profile: str

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("a pattern needs at least one condition")
        if self.side not in SIDES:
            raise ValueError(f"pattern side {self.side!r} is not one of {SIDES}")
        if not self.profile:
            raise ValueError("a pattern needs an exit profile name (e.g. 'scalp')")
        conditions = tuple(sorted(self.conditions))
        columns = [c.column for c in conditions]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"pattern conditions repeat column(s) {repeated}; use one condition per column")
        object.__setattr__(self, "conditions", conditions)

    @property
    def name(self) -> str:
        return " & ".join(c.label for c in self.conditions) + f" → {self.side}/{self.profile}"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.conditions)

    def __str__(self) -> str:
        return self.name

    def matches(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array over ``frame``'s rows: every condition holds at that bar's close."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"pattern {self.name!r}: feature columns {missing} are missing; build the features with the "
                f"tentacles that provide them (the library was learned on other features?)"
            )
        out = np.ones(len(frame), dtype=bool)
        for cond in self.conditions:
            out &= cond.mask(frame[cond.column].to_numpy())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "conditions": [c.to_dict() for c in self.conditions],
            "side": self.side,
            "profile": self.profile,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pattern:
        try:
            conditions = tuple(Condition.from_dict(c) for c in data["conditions"])
            return cls(conditions=conditions, side=str(data["side"]), profile=str(data["profile"]))
        except KeyError as e:
            raise ValueError(f"pattern {data!r}: missing key {e.args[0]!r} (need conditions, side, profile)") from None
