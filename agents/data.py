"""The data a run trains and evaluates on: market bundle → feature matrix + price arrays.

The market comes from the database named by ``config.data`` (``data.source`` picks which
stored source). When the source is ``"synthetic"`` and nothing is stored yet, the
synthetic market of ``config.synth`` is generated and stored first, so the embedded
default works with no download.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import AppConfig
from aster_rl.errors import DataError
from aster_rl.market import MarketBundle
from aster_rl.prices import PriceArrays
from aster_rl.support import ObservationSupport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """One market with its features and prices, aligned bar for bar."""

    market: MarketBundle
    features: Any  # aster_rl.features.FeatureSet
    prices: PriceArrays

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
    from aster_rl.synthetic import synthesize

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


def build_dataset(config: AppConfig, market: MarketBundle | None = None, *, progress: bool = False) -> Dataset:
    """Features and prices for ``market`` (default: :func:`load_market_for`)."""
    from aster_rl.features import build_features

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


def observation_support(dataset: Dataset, train_span: Any) -> ObservationSupport:
    """The observation's columns and their training ranges, fitted on ``train_span`` only:
    columns constant (or near-constant) over it, and time-index columns, are left out with a
    one-line notice (logged)."""
    rows = dataset.matrix[train_span.start : train_span.end]
    support = ObservationSupport.fit(rows, dataset.columns)
    if not support.kept:
        raise DataError(
            f"every one of the {len(dataset.columns)} feature columns is constant over the {len(rows)} training bars; "
            "use a longer training split"
        )
    if support.dropped:
        logger.warning("%s", support.notice())
    return support
