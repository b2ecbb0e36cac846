"""The data a run trains and evaluates on: market bundle → feature matrix + price arrays.

The market comes from the database named by ``config.data`` (``data.source`` picks which
stored source). When the source is ``"synthetic"`` and nothing is stored yet, the
synthetic market of ``config.synth`` is generated and stored first, so the embedded
default works with no download.

When the observation includes the ``pattern_library`` tentacle, its snapshot is
``features.params.pattern_library`` if given (a trained run's config always gives it),
else the library stored in the database (:func:`with_pattern_library`). A run binds the
snapshot into its saved config and refuses one that learned from a bar after its
training split (:func:`bind_pattern_library`, :func:`check_run_pattern_library`); each
walk-forward fold mines its own on its training bars (:func:`fold_dataset`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import AppConfig, replace
from aster_rl.errors import DataError
from aster_rl.data.market import MarketBundle
from aster_rl.sim.prices import PriceArrays
from aster_rl.evaluation.support import TIME_INDEX_COLUMNS, ObservationSupport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """One market with its features and prices, aligned bar for bar; or several markets pooled
    (:func:`pool_datasets`): ``segments`` are each market's bars ``[start, end)``, in ``markets`` order."""

    market: MarketBundle
    features: Any  # aster_rl.features.pipeline.FeatureSet
    prices: PriceArrays
    segments: tuple[tuple[int, int], ...] = ()
    markets: tuple[str, ...] = ()

    @property
    def matrix(self) -> np.ndarray:
        return self.features.matrix

    @property
    def columns(self) -> list[str]:
        return list(self.features.columns)

    @property
    def warmup(self) -> int:
        return int(self.features.warmup)

    @property
    def schema(self) -> Any:
        return self.features.schema

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.market.candles.index

    def __len__(self) -> int:
        return len(self.prices)

    def column(self, name: str) -> np.ndarray | None:
        cols = self.columns
        return self.matrix[:, cols.index(name)] if name in cols else None


def store_synthetic_market(config: AppConfig) -> MarketBundle:
    """Generate ``config.synth``'s market and store it under source ``"synthetic"``."""
    from aster_rl.storage import Database, store_market
    from aster_rl.data.synthetic import synthesize

    bundle = synthesize(config.synth, timeframe=config.data.timeframe, symbol=config.data.symbol)
    db = Database.from_config(config.data)
    db.init_schema()
    store_market(db, bundle, "synthetic", config.data.btc_symbol, config.data.eth_symbol)
    logger.info("stored a synthetic market (%d bars, edge=%s) in %s", len(bundle), config.synth.edge, db.display_url)
    return bundle


def load_market_for(config: AppConfig, start=None, end=None) -> MarketBundle:
    """The market of ``config.data`` from the database (synthesized and stored first if empty)."""
    from aster_rl.storage import Database, load_market

    db = Database.from_config(config.data)
    db.init_schema()
    try:
        return load_market(db, config.data, start=start, end=end)
    except DataError:
        if config.data.source != "synthetic":
            raise
        logger.info("no synthetic market stored yet in %s: generating one from config.synth", db.display_url)
        store_synthetic_market(config)
        return load_market(db, config.data, start=start, end=end)


def fill_warmup(features: Any) -> Any:
    """Zeros for NaN/inf inside the warm-up rows (never observed: splits start after them)."""
    head = features.matrix[: features.warmup]
    if np.isfinite(head).all():
        return features
    matrix = features.matrix.copy()
    np.nan_to_num(matrix[: features.warmup], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return dataclasses.replace(features, matrix=matrix)


PATTERN_LIBRARY = "pattern_library"
# a column whose typical size differs more than this between pooled markets is not scale-free
# (prices differ ~1,000x between BTC and LTC; volatility-driven readings differ < 10x)
SCALE_RATIO = 50.0
WEEK = pd.Timedelta(days=7)


def with_pattern_library(config: AppConfig, params: dict[str, Any] | None = None) -> AppConfig:
    """``config`` with the pattern-library snapshot ``params`` (default: the stored library's, when the
    observation includes the tentacle and the config gives no snapshot)."""
    if PATTERN_LIBRARY not in config.features.tentacles:
        return config
    if params is None:
        if "patterns" in config.features.params.get(PATTERN_LIBRARY, {}):
            return config
        from aster_rl.storage import Database
        from aster_rl.storage.pattern_store import load_library

        db = Database.from_config(config.data)
        db.init_schema()
        library = load_library(db, config.patterns)
        params = library.tentacle_params()
        logger.info("pattern library: %d patterns from %s, mined %s .. %s", len(params["patterns"]), db.display_url,
                    params["mined_from"] or "?", params["mined_until"] or "?")
    return replace(config, features={"params": {**config.features.params, PATTERN_LIBRARY: params}})


def bind_pattern_library(config: AppConfig, dataset: Dataset, splits: Any) -> AppConfig:
    """The config a run trained on ``splits`` saves: its dataset's pattern-library snapshot written in,
    refused when the snapshot learned from a bar after the training split's last bar."""
    from aster_rl.patterns.library import check_mined_before

    if PATTERN_LIBRARY not in dataset.schema.tentacles:
        return config
    params = dataset.schema.params[PATTERN_LIBRARY]
    check_mined_before(params, dataset.index[splits.train.end - 1], f"training {config.train.name}")
    return with_pattern_library(config, params)


def check_run_pattern_library(run_dir: Any, schema: Any) -> None:
    """Refuse a trained run whose feature schema holds a pattern library that learned from a bar after
    its training bars (``splits.json``: the training split's last bar, or a retrained run's hold-out start)."""
    from agents.run_dir import RunDir
    from aster_rl.patterns.library import check_mined_before

    if PATTERN_LIBRARY not in schema.tentacles:
        return
    rd = RunDir(run_dir)
    d = rd.read_splits()
    train = d.get("train")
    if isinstance(train, dict) and train.get("last_bar"):
        last = pd.Timestamp(train["last_bar"])
    elif d.get("holdout_from"):  # a retrained run: every bar before its hold-out
        last = pd.Timestamp(d["holdout_from"], tz="UTC") - pd.Timedelta(1, "ns")
    else:
        raise DataError(f"{rd.name}: {rd.SPLITS} records no training split times; the run is incomplete")
    check_mined_before(schema.params[PATTERN_LIBRARY], last, f"run {rd.name}")


def mine_library(config: AppConfig, dataset: Dataset, start: int, end: int, *, naive: bool = False,
                 max_candidates: int = 20_000, progress: Any = None) -> tuple[Any, Any]:
    """Mine the pattern library on bars ``[start, end)`` of ``dataset`` (a training range): trades must
    close inside it. Returns the library and the mining result."""
    from aster_rl.patterns.library import PatternLibrary
    from aster_rl.patterns.miner import mine

    first_bar = max(dataset.warmup - start, 0)
    if end - start - first_bar < 2 * config.patterns.min_trades:
        raise DataError(f"the mining range {dataset.index[min(start, len(dataset) - 1)]} .. "
                        f"{dataset.index[max(end - 1, 0)]} has too few bars ({end - start})")
    frame = dataset.features.frame().iloc[start:end]
    result = mine(frame, dataset.prices.slice(start, end), config.patterns, config.env, first_bar=first_bar,
                  max_candidates=max_candidates, seed=config.train.seed, progress=progress)
    return PatternLibrary.from_mining(result, config.patterns, naive=naive), result


def build_dataset(config: AppConfig, market: MarketBundle | None = None, *, progress: bool = False) -> Dataset:
    """Features and prices for ``market`` (default: :func:`load_market_for`)."""
    from aster_rl.features.pipeline import build_features

    config = with_pattern_library(config)
    if market is None:
        market = load_market_for(config)
    features = build_features(market, config.features, progress=progress)
    prices = PriceArrays.from_market(market)
    if features.matrix.shape[0] != len(prices):
        raise DataError(
            f"features have {features.matrix.shape[0]} rows but the market has {len(prices)} bars; "
            "the feature pipeline must keep one row per candle"
        )
    features = fill_warmup(features)
    logger.info("dataset: %d bars x %d features, warm-up %d bars", len(prices), features.matrix.shape[1], features.warmup)
    return Dataset(market=market, features=features, prices=prices)


def fold_dataset(config: AppConfig, dataset, splits) -> tuple[AppConfig, Any, dict[str, Any]]:
    """A walk-forward fold's config and data: when the observation includes the pattern library, one
    mined on the fold's training bars (the features rebuilt with it), and the figures of that library."""
    if PATTERN_LIBRARY not in config.features.tentacles:
        return config, dataset, {}
    library, mined = mine_library(config, dataset, splits.train.start, splits.train.end)
    fold_config = with_pattern_library(config, library.tentacle_params())
    logger.info("walk-forward: %d patterns mined on %s .. %s", len(library), mined.start, mined.end)
    figures = {"patterns": len(library), "patterns_mined_from": str(mined.start), "patterns_mined_until": str(mined.end),
               "patterns_outcomes_until": str(mined.outcomes_until)}
    return fold_config, build_dataset(fold_config, market=dataset.market), figures


def training_segments(dataset: Dataset, span: Any) -> list[tuple[int, int]] | None:
    """The bars of ``span`` a pooled dataset trains on: each market's bars after its feature warm-up,
    cut to the span (None for one market: the span itself)."""
    if not dataset.segments:
        return None
    cut = [(max(a + dataset.warmup, span.start), min(b, span.end)) for a, b in dataset.segments]
    return [(a, b) for a, b in cut if b > a]


def training_rows(dataset: Dataset, span: Any) -> np.ndarray:
    """The feature rows of the training span ``span`` (of its segments, when pooled)."""
    segments = training_segments(dataset, span) or [(span.start, span.end)]
    return np.concatenate([dataset.matrix[a:b] for a, b in segments])


def scale_dependent(dataset: Dataset, span: Any, ratio: float = SCALE_RATIO) -> list[str]:
    """Columns of a pooled dataset whose typical size (median |value| over each market's training bars)
    differs by more than ``ratio`` between markets: a price level or a volume in units, not a scale-free
    reading. Empty for one market."""
    segments = training_segments(dataset, span)
    if not segments or len(segments) < 2:
        return []
    med = np.stack([np.median(np.abs(dataset.matrix[a:b]), axis=0) for a, b in segments])
    positive = (med > 0).all(axis=0)
    spread = np.where(positive, med.max(axis=0) / np.where(positive, med.min(axis=0), 1.0), 1.0)
    return [c for c, r in zip(dataset.columns, spread) if r > ratio]


def observation_support(dataset: Dataset, train_span: Any) -> ObservationSupport:
    """The observation's columns and their training ranges, fitted on ``train_span`` only:
    columns constant (or near-constant) over it, and time-index columns, are left out with a
    one-line notice (logged). A pooled dataset fits on its markets' training bars and leaves out
    the columns that are not scale-free across them (:func:`scale_dependent`), with a notice."""
    rows = training_rows(dataset, train_span)
    scaled = scale_dependent(dataset, train_span)
    if scaled:
        logger.info("left out of pooled training (not scale-free across %s): %s", "+".join(dataset.markets), ", ".join(scaled))
    support = ObservationSupport.fit(rows, dataset.columns, exclude=(*TIME_INDEX_COLUMNS, *scaled))
    if not support.kept:
        raise DataError(
            f"every one of the {len(dataset.columns)} feature columns is constant over the {len(rows)} training bars; "
            "use a longer training split"
        )
    if support.dropped:
        logger.info("%s", support.notice())  # train and demo print it; metrics.json keeps it
    return support


def pool_datasets(parts: list[tuple[str, Dataset]]) -> Dataset:
    """Several markets' datasets laid end to end as one (``(name, dataset)`` pairs, each built on its own
    bars: no feature crosses a seam). Every bar keeps its own prices, cost rows and funding. Refused
    unless the feature schemas are the same.

    The bar times must increase through the matrix, so the market whose data ends last keeps its dates
    and comes last; each earlier one is moved back by whole weeks (hour of day and weekday kept) to end
    before the next begins. No pooled bar time is later than the latest real one: ``index[-1]`` is the
    last bar any of the markets holds."""
    if len(parts) < 2:
        raise DataError(f"pooling needs at least two markets, got {len(parts)}")
    name0, first = parts[0]
    for name, d in parts[1:]:
        if d.schema.hash != first.schema.hash or d.prices.timeframe != first.prices.timeframe:
            diff = "; ".join(first.schema.diff(d.schema)) or f"timeframe {d.prices.timeframe} vs {first.prices.timeframe}"
            raise DataError(f"pooled markets {name0} and {name}: different feature schemas ({diff})")
    order = sorted(parts, key=lambda p: p[1].index[-1])
    bar = pd.Timedelta(int(np.diff(first.prices.timestamps[:2])[0]), "ns")
    shifts = [pd.Timedelta(0)] * len(order)
    next_first = order[-1][1].index[0]
    for i in range(len(order) - 2, -1, -1):
        d = order[i][1]
        weeks = max(0, -(-(d.index[-1] - next_first + bar) // WEEK))
        shifts[i] = -weeks * WEEK
        next_first = d.index[0] + shifts[i]
    fields = ("open", "high", "low", "close", "volume", "atr", "funding_rate", "half_spread", "sigma_daily", "volume_daily")
    prices = PriceArrays(
        np.concatenate([d.prices.timestamps + shift.value for (_, d), shift in zip(order, shifts)]),
        **{f: np.concatenate([getattr(d.prices, f) for _, d in order]) for f in fields},
        timeframe=first.prices.timeframe,
    )
    index = pd.DatetimeIndex(pd.to_datetime(prices.timestamps, unit="ns", utc=True))
    candles = pd.concat([d.market.candles for _, d in order]).set_axis(index)
    names = tuple(name for name, _ in order)
    features = dataclasses.replace(first.features, matrix=np.concatenate([d.matrix for _, d in order]), index=index,
                                   warmup=max(d.warmup for _, d in order))
    ends = np.cumsum([len(d) for _, d in order])
    segments = tuple((int(e - len(d)), int(e)) for e, (_, d) in zip(ends, order))
    market = MarketBundle(symbol="+".join(d.market.symbol for _, d in order), timeframe=first.market.timeframe, candles=candles)
    logger.info("pooled %s: %d bars (%s)", "+".join(names), len(prices), ", ".join(
        f"{n} {d.index[0]:%Y-%m-%d} .. {d.index[-1]:%Y-%m-%d}" + (f" moved {s.days} days" if s.value else "")
        for (n, d), s in zip(order, shifts)))
    return Dataset(market=market, features=features, prices=prices, segments=segments, markets=names)
