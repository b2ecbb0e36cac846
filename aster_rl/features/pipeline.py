"""The feature pipeline: selected tentacles -> one float32 matrix with a schema.

- :func:`build_features` runs the tentacles chosen by ``FeaturesConfig`` in registry
  (pipeline) order, each seeing the columns of those before it as ``context``, and checks
  every output (aligned index, prefixed names, finite after the warm-up).
- :class:`FeatureSchema` (names, tentacles, resolved parameters, versions, timeframe and a
  stable hash) is saved with every checkpoint; :meth:`FeatureSchema.check_compatible`
  refuses a different one with the list of differences.
- Values are left unscaled here: the observation is normalized by statistics fitted on
  the training split only (stable-baselines3's ``VecNormalize``, saved with each run).
- :func:`latest_features` computes the newest row from a bounded recent window for live
  use; :data:`WINDOW_BARS` and :data:`TENTACLE_WINDOW_HOURS` are measured so that it equals
  the batch value (see ``tests/aster_rl/test_features.py`` and the module notes below).
  Bar after bar, :class:`aster_rl.features.stream.FeatureStream` does the same with the
  slow parts kept between bars.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import FeaturesConfig
from aster_rl.errors import ConfigError, DataError, SchemaMismatchError
from aster_rl.data.market import MarketBundle, validate_candles
from aster_rl.features.brain import readings as tentacle_readings
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.base import Tentacle
from aster_rl.data.timeframes import timeframe_to_timedelta

logger = logging.getLogger(__name__)

PIPELINE_VERSION = 1

# History used by latest_features, per tentacle: at least WINDOW_BARS bars, at least twice
# the tentacle's warm-up, and at least TENTACLE_WINDOW_HOURS of wall-clock time plus
# WINDOW_BARS for the tentacles listed there. Measured (benchmarks/measure_windows.py) on
# synthetic 5m and 1m markets with the error |window - batch| / max(|batch|, 1e-3) at three
# end points; the smallest window meeting 1e-6 was: market 300 bars at 5m and 1,500 at 1m
# (its 24h window), indicators 1,500 (the EMA(200) start-up error decays as (199/201)^k),
# orderflow / whales / price_history 300 (288-bar rolling windows), btc_cycle 100,
# regime 800, macro 400, multi_timeframe: see TENTACLE_WINDOW_HOURS.
WINDOW_BARS = 1_500

TENTACLE_WINDOW_HOURS: dict[str, float] = {
    "market": 24.0,
    # A 20-span EMA on closed daily bars forgets its start as (19/21)^days: about 180 days
    # of history bring the 1d trend distance within 1e-6: measured worst relative error
    # 7e-5 with 120 days, 2.6e-6 with 150 days, 2.3e-7 with 180 days on 5m bars.
    "multi_timeframe": 24.0 * 180,
    # The funding interval is the median of the last spacing_events (3) gaps between settlements:
    # 32 hours hold four settlements of an interval up to 8 h (every perp traded here: 4 h, 8 h).
    "clock": 32.0,
}

# Tentacles that only combine the columns before them, row by row: a short window is enough.
CONTEXT_ONLY_WINDOW_BARS: dict[str, int] = {"strategy": 16}


# ---------------------------------------------------------------- schema

def _jsonable(value: Any) -> Any:
    """Parameters as plain JSON values (tuples become lists, numpy scalars Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


@dataclass(frozen=True)
class FeatureSchema:
    """What a feature matrix's columns are: saved with checkpoints, compared on load."""

    names: tuple[str, ...]
    tentacles: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    version: dict[str, Any]
    timeframe: str
    columns_per_tentacle: tuple[int, ...]
    hash: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _jsonable(self.params))
        object.__setattr__(self, "version", _jsonable(self.version))
        object.__setattr__(self, "hash", self._digest())

    def _body(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "tentacles": list(self.tentacles),
            "params": self.params,
            "version": self.version,
            "timeframe": self.timeframe,
            "columns_per_tentacle": list(self.columns_per_tentacle),
        }

    def _digest(self) -> str:
        text = json.dumps(self._body(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {**self._body(), "hash": self.hash}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        try:
            schema = cls(
                names=tuple(data["names"]),
                tentacles=tuple(data["tentacles"]),
                params=data["params"],
                version=data["version"],
                timeframe=data["timeframe"],
                columns_per_tentacle=tuple(int(c) for c in data["columns_per_tentacle"]),
            )
        except KeyError as e:
            raise SchemaMismatchError(f"feature schema: missing field {e.args[0]!r}") from None
        stored = data.get("hash")
        if stored and stored != schema.hash:
            raise SchemaMismatchError(
                f"feature schema: stored hash {stored[:12]}… does not match its contents ({schema.hash[:12]}…); "
                "the schema file was edited or corrupted"
            )
        return schema

    def column_groups(self) -> dict[str, list[str]]:
        """Tentacle name -> its columns, in order."""
        out, start = {}, 0
        for name, count in zip(self.tentacles, self.columns_per_tentacle):
            out[name] = list(self.names[start : start + count])
            start += count
        return out

    def diff(self, other: FeatureSchema) -> list[str]:
        """How ``other`` differs from this schema, one human-readable line per difference."""
        lines: list[str] = []
        if self.version.get("pipeline") != other.version.get("pipeline"):
            lines.append(f"pipeline version {self.version.get('pipeline')} -> {other.version.get('pipeline')}")
        if self.timeframe != other.timeframe:
            lines.append(f"timeframe {self.timeframe} -> {other.timeframe}")
        lines += self._diff_tentacles(other) + self._diff_settings(other) + self._diff_columns(other)
        if not lines and self.hash != other.hash:
            lines.append(f"schema hash {self.hash[:12]}… -> {other.hash[:12]}…")
        return lines

    def _diff_tentacles(self, other: FeatureSchema) -> list[str]:
        """Tentacles missing, extra or in another order."""
        mine, theirs = list(self.tentacles), list(other.tentacles)
        lines = [f"tentacle {t!r} missing" for t in mine if t not in theirs]
        lines += [f"tentacle {t!r} extra" for t in theirs if t not in mine]
        if [t for t in mine if t in theirs] != [t for t in theirs if t in mine]:
            lines.append(f"tentacle order {mine} -> {theirs}")
        return lines

    def _diff_settings(self, other: FeatureSchema) -> list[str]:
        """Version and parameter changes of the tentacles both schemas have."""
        lines: list[str] = []
        my_versions = self.version.get("tentacles", {})
        their_versions = other.version.get("tentacles", {})
        for t in (t for t in self.tentacles if t in other.tentacles):
            if my_versions.get(t) != their_versions.get(t):
                lines.append(f"tentacle {t!r} version {my_versions.get(t)} -> {their_versions.get(t)}")
            a, b = self.params.get(t, {}), other.params.get(t, {})
            for key in sorted(set(a) | set(b)):
                if a.get(key, "<unset>") != b.get(key, "<unset>"):
                    lines.append(f"parameter {t}.{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
        return lines

    def _diff_columns(self, other: FeatureSchema) -> list[str]:
        """Columns missing, extra or moved."""
        lines: list[str] = []
        names_a, names_b = list(self.names), list(other.names)
        set_b, set_a = set(names_b), set(names_a)
        missing = [n for n in names_a if n not in set_b]
        extra = [n for n in names_b if n not in set_a]
        if missing:
            lines.append(f"missing columns ({len(missing)}): {', '.join(missing)}")
        if extra:
            lines.append(f"extra columns ({len(extra)}): {', '.join(extra)}")
        shared_a = [n for n in names_a if n in set_b]
        shared_b = [n for n in names_b if n in set_a]
        if shared_a != shared_b:
            moved = [f"{n} (position {names_a.index(n)} -> {names_b.index(n)})" for n, m in zip(shared_a, shared_b) if n != m]
            lines.append(f"reordered columns: {', '.join(moved[:10])}" + (" …" if len(moved) > 10 else ""))
        return lines

    def check_compatible(self, other: FeatureSchema) -> None:
        """Raise SchemaMismatchError listing every difference when ``other`` is not this schema."""
        if self.hash == other.hash:
            return
        problems = self.diff(other)
        raise SchemaMismatchError(
            f"feature schema mismatch ({len(problems)} difference{'s' if len(problems) != 1 else ''}): "
            + "; ".join(problems)
            + ". Rebuild the features with the checkpoint's configuration, or retrain."
        )


# ---------------------------------------------------------------- feature set

@dataclass(frozen=True)
class FeatureSet:
    matrix: np.ndarray  # float32 (T, F)
    index: pd.DatetimeIndex
    columns: list[str]
    schema: FeatureSchema
    warmup: int
    _readers: dict[str, Tentacle] = field(default_factory=dict, repr=False, compare=False)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.matrix, index=self.index, columns=self.columns)

    def readings(self, row_position: int) -> dict[str, str]:
        """Tentacle name -> its human sentence for the row at ``row_position`` (negative counts from the end)."""
        n = len(self.index)
        if not -n <= row_position < n:
            raise IndexError(f"row {row_position} outside 0..{n - 1}")
        row = pd.Series(self.matrix[row_position].astype(float), index=self.columns, name=self.index[row_position])
        return tentacle_readings(row, self.schema, self._readers)


def resolve_tentacles(cfg: FeaturesConfig) -> list[tuple[str, Tentacle, dict[str, Any]]]:
    """The selected tentacles in pipeline order, with their resolved parameters."""
    unknown = [t for t in cfg.tentacles if t not in TENTACLES]
    if unknown:
        raise ConfigError(f"features.tentacles: unknown tentacle(s) {unknown}; known: {list(TENTACLES)}")
    if len(set(cfg.tentacles)) != len(cfg.tentacles):
        raise ConfigError(f"features.tentacles: listed twice: {sorted({t for t in cfg.tentacles if cfg.tentacles.count(t) > 1})}")
    stray = sorted(set(cfg.params) - set(TENTACLES))
    if stray:
        raise ConfigError(f"features.params: unknown tentacle(s) {stray}; known: {list(TENTACLES)}")
    selected = set(cfg.tentacles)
    out = []
    for name, tentacle in TENTACLES.items():
        if name not in selected:
            continue
        overrides = dict(cfg.params.get(name, {}))
        if "whale_notional_usd" in tentacle.defaults and "whale_notional_usd" not in overrides:
            overrides["whale_notional_usd"] = cfg.whale_notional_usd
        if "funding_interval_hours" in tentacle.defaults and "funding_interval_hours" not in overrides:
            overrides["funding_interval_hours"] = cfg.funding_interval_hours
        out.append((name, tentacle, tentacle.params(overrides)))
    return out


def _run_tentacles(market: MarketBundle, selected, show_progress: bool = False) -> list[pd.DataFrame]:
    from aster_rl.progress import progress

    index = market.candles.index
    frames: list[pd.DataFrame] = []
    context = pd.DataFrame(index=index)
    bar = progress(selected, total=len(selected), desc="tentacles", enabled=None if show_progress else False)
    for name, tentacle, params in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(name)
        df = tentacle.features(market, context, **params)
        if not isinstance(df, pd.DataFrame) or len(df) != len(index) or not df.index.equals(index):
            raise DataError(f"tentacle {name}: output is not aligned with the candles ({len(df)} rows vs {len(index)})")
        bad = [c for c in df.columns if not str(c).startswith(f"{name}_")]
        if bad:
            raise DataError(f"tentacle {name}: columns {bad} lack the prefix '{name}_'")
        frames.append(df)
        if len(df.columns):
            context = pd.concat([context, df], axis=1) if len(context.columns) else df
    return frames


def build_features(market: MarketBundle, cfg: FeaturesConfig, progress: bool = False) -> FeatureSet:
    """Run the selected tentacles on ``market`` and assemble the float32 feature matrix."""
    validate_candles(market.candles, f"{market.symbol} {market.timeframe} candles")
    selected = resolve_tentacles(cfg)
    frames = _run_tentacles(market, selected, show_progress=progress)
    names = [str(c) for df in frames for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dupes:
        raise DataError(f"feature columns produced twice: {dupes}")
    n = len(market.candles)
    matrix = np.empty((n, len(names)), dtype=np.float32)
    col = 0
    for df in frames:
        for c in df.columns:
            matrix[:, col] = df[c].to_numpy(dtype=np.float64)
            col += 1
    warmup = max((t.warmup(p) for _, t, p in selected), default=0)
    _check_finite(matrix, names, warmup, market.candles.index)
    schema = FeatureSchema(
        names=tuple(names),
        tentacles=tuple(name for name, _, _ in selected),
        params={name: p for name, _, p in selected},
        version={"pipeline": PIPELINE_VERSION, "tentacles": {name: t.version for name, t, _ in selected}},
        timeframe=market.timeframe,
        columns_per_tentacle=tuple(len(df.columns) for df in frames),
    )
    return FeatureSet(
        matrix=matrix,
        index=market.candles.index,
        columns=names,
        schema=schema,
        warmup=int(warmup),
        _readers={name: t for name, t, _ in selected},
    )


def _check_finite(matrix: np.ndarray, names: list[str], warmup: int, index: pd.DatetimeIndex) -> None:
    tail = matrix[warmup:]
    if tail.size == 0:
        return
    ok = np.isfinite(tail)
    if ok.all():
        return
    bad_cols = np.flatnonzero(~ok.all(axis=0))
    details = []
    for j in bad_cols[:5]:
        r = int(np.flatnonzero(~ok[:, j])[0]) + warmup
        details.append(f"{names[j]} first at row {r} ({index[r]}, value {matrix[r, j]})")
    raise DataError(
        f"{len(bad_cols)} feature column(s) not finite after the warm-up of {warmup} bars: " + "; ".join(details)
    )


# ---------------------------------------------------------------- incremental

def window_bars_for(name: str, tentacle: Tentacle, params: dict[str, Any], timeframe: str, window_bars: int = WINDOW_BARS) -> int:
    """Bars of history latest_features gives tentacle ``name`` on ``timeframe``."""
    if name in CONTEXT_ONLY_WINDOW_BARS:
        return CONTEXT_ONLY_WINDOW_BARS[name]
    need = max(int(window_bars), 2 * int(tentacle.warmup(params)))
    hours = TENTACLE_WINDOW_HOURS.get(name)
    if hours is not None:
        bar_hours = timeframe_to_timedelta(timeframe) / pd.Timedelta(hours=1)
        need = max(need, int(math.ceil(hours / bar_hours)) + int(window_bars))
    return need


def latest_features(market: MarketBundle, cfg: FeaturesConfig, window_bars: int = WINDOW_BARS) -> np.ndarray:
    """The float32 feature row of the newest bar, from only the last bars of ``market``.

    Stateless: a fresh :class:`aster_rl.features.stream.FeatureStream` on the last
    :func:`window_bars_for` bars of the multi_timeframe tentacle (the other tentacles on
    their own trailing windows). The row equals the batch row within 1e-6 relative (1e-6
    absolute near 0) as measured in the tests and ``benchmarks/measure_windows.py``.
    For one row per closed bar, keep a ``FeatureStream`` instead: it carries the slow
    state from bar to bar.
    """
    from aster_rl.features.stream import FeatureStream

    if len(market.candles) == 0:
        raise DataError(f"{market.symbol} {market.timeframe}: no candles")
    history = max(
        (window_bars_for(name, t, p, market.timeframe, window_bars) for name, t, p in resolve_tentacles(cfg) if name == "multi_timeframe"),
        default=None,
    )
    return FeatureStream(cfg, market.timeframe, window_bars=window_bars, history_bars=history).update(market)
