"""Training support of the observation: which feature columns the policy sees, and whether a
bar's values lie inside the range the policy was trained on.

- :meth:`ObservationSupport.fit` measures every feature column over the training split:
  minimum, maximum, variance, and the share of bars holding its most common value.
- A column is **left out of the observation** when it is (near-)constant over the training
  split, i.e. when at least :data:`NEAR_CONSTANT_SHARE` of the training bars hold one value
  or its standard deviation is below :data:`NEAR_CONSTANT_STD` × max(1, |mean|): the policy
  cannot learn what such a column means, and ``VecNormalize`` (variance ≈ 0) would map any
  other value to its clip (±10). Columns in :data:`TIME_INDEX_COLUMNS` (monotonic in time,
  unbounded) are left out as well.
- A bar is **out of support** when any kept column lies outside its training
  [min, max] (with a tolerance of 1e-6 of the range). :meth:`ObservationSupport.report`
  gives the share of such bars and the columns most often responsible.

The account-state columns (``aster_rl.sim.observation``) are always kept and not checked: they
are bounded by construction (the equity change is measured from the start of the current
block of ``episode_length`` bars, as in a training episode).

Saved with each run as ``support.json`` (plain JSON, no pickle).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aster_rl.errors import DataError, SchemaMismatchError
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.features.tentacles.btc_cycle import TIME_INDEX_COLUMNS as _CYCLE_TIME_INDEX
from aster_rl.features.tentacles.multi_timeframe import HISTORY_COUNT_COLUMNS as _MTF_HISTORY_COUNTS

logger = logging.getLogger(__name__)

SUPPORT_FILE = "support.json"
SUPPORT_VERSION = 1
# A column is near-constant over training when this share of its bars hold one value
# (fewer than 1 bar in 1,000 differs) ...
NEAR_CONSTANT_SHARE = 0.999
# ... or when its standard deviation is below this multiple of max(1, |mean|).
NEAR_CONSTANT_STD = 1e-6
# Out of support: beyond [min, max] by more than this share of the training range (float32 noise).
RANGE_TOLERANCE = 1e-6
# Columns that measure elapsed time or grow with the available history: never in the default observation.
TIME_INDEX_COLUMNS: tuple[str, ...] = tuple(_CYCLE_TIME_INDEX) + tuple(_MTF_HISTORY_COUNTS)
TOP_COLUMNS = 5


@dataclass(frozen=True)
class ColumnStats:
    """One feature column over the training split."""

    name: str
    low: float
    high: float
    var: float
    mode_share: float  # share of training bars holding the most common value
    kept: bool
    reason: str = ""  # why it was left out ("" when kept)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": self.low, "max": self.high, "var": self.var,
                "mode_share": self.mode_share, "kept": self.kept, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnStats:
        return cls(name=str(d["name"]), low=float(d["min"]), high=float(d["max"]), var=float(d["var"]),
                   mode_share=float(d["mode_share"]), kept=bool(d["kept"]), reason=str(d.get("reason", "")))


@dataclass(frozen=True)
class SupportReport:
    """How many bars had a kept column outside its training range, and which columns."""

    bars: int
    outside_bars: int
    top: tuple[tuple[str, float], ...]  # (column, share of bars outside), largest first

    @property
    def share(self) -> float:
        return self.outside_bars / self.bars if self.bars else float("nan")

    def line(self) -> str:
        """``out of training support: 12.5% of 8,000 bars (market_vol_ratio 10.2%, ...)``."""
        if not self.bars:
            return "out of training support: no bars checked"
        text = f"out of training support: {self.share:.1%} of {self.bars:,} bars"
        if self.top:
            text += " (" + ", ".join(f"{name} {share:.1%}" for name, share in self.top) + ")"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"bars": self.bars, "outside_bars": self.outside_bars, "share": self.share,
                "top_columns": {name: share for name, share in self.top}}


def _mode_share(x: np.ndarray) -> float:
    if x.size == 0:
        return float("nan")
    _, counts = np.unique(x, return_counts=True)
    return float(counts.max() / x.size)


@dataclass(frozen=True)
class ObservationSupport:
    """The feature columns of a run's observation and their training ranges."""

    columns: tuple[str, ...]  # every feature column of the feature schema, in matrix order
    stats: tuple[ColumnStats, ...]  # one per column, same order
    train_bars: int
    near_constant_share: float = NEAR_CONSTANT_SHARE
    _keep: np.ndarray = field(init=False, repr=False, compare=False)
    _low: np.ndarray = field(init=False, repr=False, compare=False)
    _high: np.ndarray = field(init=False, repr=False, compare=False)
    _tol: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.stats) != len(self.columns):
            raise DataError(f"support: {len(self.stats)} column statistics for {len(self.columns)} columns")
        keep = np.array([i for i, s in enumerate(self.stats) if s.kept], dtype=np.int64)
        low = np.array([self.stats[i].low for i in keep], dtype=np.float64)
        high = np.array([self.stats[i].high for i in keep], dtype=np.float64)
        object.__setattr__(self, "_keep", keep)
        object.__setattr__(self, "_low", low)
        object.__setattr__(self, "_high", high)
        object.__setattr__(self, "_tol", RANGE_TOLERANCE * np.maximum(high - low, 1e-12))

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        matrix: np.ndarray,
        columns: Sequence[str],
        *,
        exclude: Iterable[str] = TIME_INDEX_COLUMNS,
        near_constant_share: float = NEAR_CONSTANT_SHARE,
    ) -> ObservationSupport:
        """Statistics of the training rows ``matrix`` (bars × columns); constant, near-constant
        and ``exclude``-d columns are left out."""
        m = np.asarray(matrix, dtype=np.float64)
        columns = [str(c) for c in columns]
        if m.ndim != 2 or m.shape[1] != len(columns):
            raise DataError(f"support: matrix of shape {m.shape} for {len(columns)} columns")
        if m.shape[0] == 0:
            raise DataError("support: the training split has no bars")
        if not np.isfinite(m).all():
            raise DataError("support: the training rows hold NaN/inf")
        excluded = set(exclude)
        stats = []
        for j, name in enumerate(columns):
            x = m[:, j]
            mean, var = float(x.mean()), float(x.var())
            share = _mode_share(x)
            reason = ""
            if name in excluded:
                reason = "time index (grows with elapsed time or history)"
            elif x.min() == x.max():
                reason = f"constant ({x[0]:g}) over training"
            elif share >= near_constant_share:
                reason = f"near-constant over training ({share:.2%} of bars hold one value)"
            elif math.sqrt(var) < NEAR_CONSTANT_STD * max(1.0, abs(mean)):
                reason = f"near-constant over training (std {math.sqrt(var):.2g})"
            stats.append(ColumnStats(name, float(x.min()), float(x.max()), var, share, not reason, reason))
        return cls(columns=tuple(columns), stats=tuple(stats), train_bars=int(m.shape[0]),
                   near_constant_share=float(near_constant_share))

    # ------------------------------------------------------------------ the observation
    @property
    def kept(self) -> list[str]:
        return [s.name for s in self.stats if s.kept]

    @property
    def dropped(self) -> dict[str, str]:
        """Left-out column -> reason."""
        return {s.name: s.reason for s in self.stats if not s.kept}

    @property
    def keep_index(self) -> np.ndarray:
        return self._keep.copy()

    def notice(self) -> str:
        """One line naming the left-out columns (empty when none)."""
        d = self.dropped
        if not d:
            return ""
        return (f"left out of the observation ({len(d)} of {len(self.columns)} feature columns, constant or a time index "
                f"over the {self.train_bars:,} training bars): " + ", ".join(d))

    def select_features(self, matrix: np.ndarray) -> np.ndarray:
        """The kept columns of a full feature matrix (bars × all columns)."""
        m = np.asarray(matrix)
        if m.shape[-1] != len(self.columns):
            raise SchemaMismatchError(f"support: {m.shape[-1]} feature columns, the run has {len(self.columns)}")
        return np.ascontiguousarray(m[..., self._keep])

    def select(self, obs: np.ndarray) -> np.ndarray:
        """The policy's observation from a full one (all feature columns + account state).
        An observation already of the policy's width passes unchanged."""
        obs = np.asarray(obs)
        width = obs.shape[-1]
        if width == len(self._keep) + N_ACCOUNT:
            return obs
        if width != len(self.columns) + N_ACCOUNT:
            raise SchemaMismatchError(
                f"observation of width {width}: expected {len(self.columns)} feature columns + {N_ACCOUNT} account "
                f"columns (or the {len(self._keep)} kept + {N_ACCOUNT})"
            )
        return np.concatenate((obs[..., self._keep], obs[..., len(self.columns):]), axis=-1)

    # ------------------------------------------------------------------ support check
    def outside(self, features: np.ndarray) -> np.ndarray:
        """Bool (bars × kept columns): value outside its training [min, max]. ``features`` are
        full feature rows (all columns) or full observations (with the account state)."""
        f = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if f.shape[1] not in (len(self.columns), len(self.columns) + N_ACCOUNT):
            raise SchemaMismatchError(f"support: rows of {f.shape[1]} values for {len(self.columns)} feature columns")
        x = f[:, self._keep]
        return (x < self._low - self._tol) | (x > self._high + self._tol) | ~np.isfinite(x)

    def outside_columns(self, row: np.ndarray) -> list[str]:
        """Names of the kept columns of one row that lie outside their training range."""
        flags = self.outside(row)[0]
        names = self.kept
        return [names[j] for j in np.flatnonzero(flags)]

    def report(self, features: np.ndarray, top: int = TOP_COLUMNS) -> SupportReport:
        """Share of rows with any kept column outside its training range, and the ``top`` columns."""
        flags = self.outside(features) if len(features) else np.zeros((0, len(self._keep)), dtype=bool)
        return report_from_counts(len(flags), int(flags.any(axis=1).sum()), flags.sum(axis=0), self.kept, top)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SUPPORT_VERSION,
            "train_bars": self.train_bars,
            "near_constant_share": self.near_constant_share,
            "near_constant_std": NEAR_CONSTANT_STD,
            "columns": [s.to_dict() for s in self.stats],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObservationSupport:
        try:
            stats = tuple(ColumnStats.from_dict(c) for c in d["columns"])
            return cls(columns=tuple(s.name for s in stats), stats=stats, train_bars=int(d["train_bars"]),
                       near_constant_share=float(d.get("near_constant_share", NEAR_CONSTANT_SHARE)))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"support statistics: malformed ({type(e).__name__}: {e})") from None

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / SUPPORT_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> ObservationSupport | None:
        """The run's support statistics, or None for a run saved without them."""
        path = Path(run_dir) / SUPPORT_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data)


def report_from_counts(bars: int, outside_bars: int, per_column: np.ndarray, names: Sequence[str], top: int = TOP_COLUMNS) -> SupportReport:
    counts = np.asarray(per_column, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")[:top]
    tops = tuple((str(names[j]), float(counts[j] / bars)) for j in order if bars and counts[j] > 0)
    return SupportReport(bars=int(bars), outside_bars=int(outside_bars), top=tops)


class SupportTally:
    """Running out-of-support counts, one bar at a time (the live runner)."""

    def __init__(self, support: ObservationSupport) -> None:
        self.support = support
        self.bars = 0
        self.outside_bars = 0
        self.per_column = np.zeros(len(support.kept), dtype=np.int64)
        self._last: list[str] = []

    def update(self, row: np.ndarray) -> list[str]:
        """Count one bar (a full feature row or observation); the kept columns outside their range."""
        flags = self.support.outside(row)[0]
        self.bars += 1
        self.outside_bars += int(flags.any())
        self.per_column += flags
        names = self.support.kept
        return [names[j] for j in np.flatnonzero(flags)]

    def report(self, top: int = TOP_COLUMNS) -> SupportReport:
        return report_from_counts(self.bars, self.outside_bars, self.per_column, self.support.kept, top)

    def check(self, row: np.ndarray, when: Any) -> list[str]:
        """:meth:`update`, logged: a warning when the set of columns outside their training range
        changes (a bar leaves or enters the support), with the share so far; debug otherwise."""
        before = self._last
        outside = self._last = self.update(row)
        if outside != before:
            what = "outside the training support: " + ", ".join(outside[:TOP_COLUMNS]) if outside else "back inside the training support"
            logger.warning("bar %s: %s; %s", when, what, self.report().line())
        elif outside:
            logger.debug("bar %s: outside the training support: %s", when, ", ".join(outside[:TOP_COLUMNS]))
        return outside


def support_of(policy: Any) -> ObservationSupport | None:
    """A policy's training support (the optional ``support`` attribute of a loaded run), or None."""
    support = getattr(policy, "support", None)
    return support if isinstance(support, ObservationSupport) else None


def policy_support_report(policy: Any, features: np.ndarray) -> SupportReport | None:
    """Out-of-support share of the feature rows ``features`` for ``policy`` (None without support statistics)."""
    support = support_of(policy)
    return None if support is None else support.report(features)
