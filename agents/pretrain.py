"""Pretraining on several shared real markets pooled, then fine-tuning on the target market.

- :func:`pooled_dataset`: each market's dataset built on its own bars (its contract's feature
  settings), then laid end to end (:func:`agents.data.pool_datasets`). The env trades every
  market with the finest price tick and quantity step among them (the per-bar cost rows and
  funding are each market's own).
- :func:`pretrain_splits`: every market's bars after its warm-up train, except the market laid
  last: its own train / validation / test cut (:func:`agents.splits.make_splits`) gives the
  validation that chooses the kept model, and the test bars are left unread. Episodes never
  cross from one market into the next (``BatchedPerpEnv(segments=...)``).
- :func:`pretrain`: that run, named ``<train.name>_pretrain``.
- ``train.init_from = <run dir>`` (:func:`initial_state`, read by :func:`agents.train.train`): the
  run starts from that run's policy weights (its best model, else its last) and observation
  statistics, and observes that run's columns instead of fitting its own selection. Refused
  unless every bar that run's data holds is before the first training bar (no look-ahead), and
  unless its feature schema is the target's. The fine-tuned run's ``support.json`` keeps those
  columns with ranges spanning both runs' training bars; the target's training bars outside
  the pretraining support are reported (logged, and in ``metrics.json``'s support notice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aster_rl.config import AppConfig, replace
from aster_rl.data.real import CONTRACTS, contract_settings, real_market
from aster_rl.errors import ConfigError, DataError
from aster_rl.evaluation.support import ColumnStats, ObservationSupport
from aster_rl.sim.observation import N_ACCOUNT

from agents.data import Dataset, build_dataset, pool_datasets, training_rows
from agents.run_dir import RunDir
from agents.run_files import check_run, load_weights, read_norm_arrays, read_policy_payload, vec_normalize_from
from agents.splits import SPLIT_NAMES, Span, Splits, make_splits

logger = logging.getLogger(__name__)


def market_names(markets: Any) -> tuple[str, ...]:
    """``"BTC,ETH"`` or a sequence of names as upper-case real market names, each checked."""
    names = tuple(m.strip().upper() for m in (markets.split(",") if isinstance(markets, str) else markets) if m.strip())
    unknown = [m for m in names if m not in CONTRACTS]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise DataError(f"pretraining markets {','.join(names) or '(none)'}: expected two or more distinct names "
                        f"of {', '.join(CONTRACTS)}")
    return names


def pretrain_config(config: AppConfig, markets: tuple[str, ...]) -> AppConfig:
    """``config`` for pretraining on ``markets``: the finest tick and step among them, runs named
    ``<name>_pretrain``, no initial run."""
    env = {"price_tick": min(CONTRACTS[m]["price_tick"] for m in markets),
           "qty_step": min(CONTRACTS[m]["qty_step"] for m in markets)}
    return replace(config, env=env, train={"name": f"{config.train.name}_pretrain", "pretrain_markets": markets,
                                           "init_from": None})


def pooled_dataset(config: AppConfig, markets: tuple[str, ...], data_dir: str | Path | None = None) -> Dataset:
    """The shared real ``markets``, each with its own contract's feature settings, pooled."""
    parts = []
    for name in markets:
        cfg = replace(config, features=contract_settings(name)["features"])
        parts.append((name, build_dataset(cfg, market=real_market(name, data_dir))))
    return pool_datasets(parts)


def pretrain_splits(config: AppConfig, pooled: Dataset) -> Splits:
    """Training on every market but the last whole, and on the last one's training split; validation
    and test are the last market's (:func:`agents.splits.make_splits` on its bars)."""
    if len(pooled.segments) < 2:
        raise DataError("pretraining splits need a pooled dataset")
    a, b = pooled.segments[-1]
    last = make_splits(b, warmup=pooled.warmup, episode_length=config.env.episode_length,
                       train_fraction=config.train.train_fraction, validation_fraction=config.train.validation_fraction,
                       offset=a)
    splits = Splits(Span(pooled.segments[0][0] + pooled.warmup, last.train.end), last.validation, last.test,
                    last.purge, last.warmup)
    splits.check()
    return splits


def check_before(last_bar: pd.Timestamp, first_train_bar: pd.Timestamp, what: str) -> None:
    """Refuse pretraining data that reach the target's first training bar (look-ahead)."""
    if not last_bar < first_train_bar:
        raise DataError(f"{what}: its data reach {last_bar:%Y-%m-%d %H:%M}, not before the first training bar "
                        f"{first_train_bar:%Y-%m-%d %H:%M}; starting from it would look ahead")


def pretrain(config: AppConfig, markets: Any, data_dir: str | Path | None = None, *, before: pd.Timestamp | None = None,
             run_dir: Path | None = None, progress_bar: bool = False) -> Any:
    """Pretrain on the pooled ``markets``; the :class:`agents.train.TrainResult`. With ``before`` (the target's first
    training bar), refused unless every pooled bar is earlier."""
    from agents.train import train

    names = market_names(markets)
    cfg = pretrain_config(config, names)
    pooled = pooled_dataset(cfg, names, data_dir)
    if before is not None:
        check_before(pooled.index[-1], before, f"pretraining on {'+'.join(names)}")
    return train(cfg, pooled, splits=pretrain_splits(cfg, pooled), run_dir=run_dir, progress_bar=progress_bar)


def pretrain_for(config: AppConfig, first_train_bar: pd.Timestamp, *, progress_bar: bool = False) -> Any:
    """Pretraining on ``train.pretrain_markets`` for a run whose first training bar is ``first_train_bar``."""
    if config.train.init_from is not None:
        raise ConfigError("train.pretrain_markets and train.init_from: give one (pretraining makes the run to start from)")
    return pretrain(config, config.train.pretrain_markets, before=first_train_bar, progress_bar=progress_bar)


def fine_tune_config(config: AppConfig, pretrained: Path) -> AppConfig:
    """``config`` starting from the run ``pretrained``."""
    return replace(config, train={"init_from": str(pretrained), "pretrain_markets": ()})


def data_last_bar(rd: RunDir) -> pd.Timestamp:
    """The latest bar a run's splits record (its data's last bar)."""
    d = rd.read_splits()
    bars = [pd.Timestamp(d[n]["last_bar"]) for n in SPLIT_NAMES if isinstance(d.get(n), dict) and d[n].get("last_bar")]
    if not bars:
        raise DataError(f"{rd.name}: {rd.SPLITS} records no split times; the run is incomplete")
    return max(bars)


@dataclass(frozen=True)
class InitialState:
    """What a run starting from another run takes from it."""

    run_dir: Path
    support: ObservationSupport  # the other run's columns, with ranges over both runs' training bars
    payload: dict[str, Any]  # policy and optimizer state
    norm: dict[str, np.ndarray]  # VecNormalize statistics

    def normalizer(self, venv: Any) -> Any:
        return vec_normalize_from(self.norm, venv, training=True)

    def load_into(self, model: Any) -> None:
        load_weights(model.policy, self.payload, self.run_dir)


def merged_support(pre: ObservationSupport, own: ObservationSupport) -> ObservationSupport:
    """``pre``'s columns kept and left out, with ranges spanning both supports' training bars."""
    stats = tuple(ColumnStats(p.name, min(p.low, o.low), max(p.high, o.high), o.var, o.mode_share, p.kept, p.reason)
                  for p, o in zip(pre.stats, own.stats))
    return ObservationSupport(columns=pre.columns, stats=stats, train_bars=pre.train_bars + own.train_bars,
                              near_constant_share=pre.near_constant_share)


def initial_state(config: AppConfig, dataset: Dataset, splits: Splits) -> InitialState | None:
    """The state ``train.init_from`` names (None when it names none), checked against the training data."""
    if config.train.init_from is None:
        return None
    rd = RunDir(config.train.init_from)
    if not rd.path.is_dir():
        raise DataError(f"train.init_from = {rd.path}: no such run directory")
    which = check_run(rd.path, "best")
    check_before(data_last_bar(rd), dataset.index[splits.train.start], f"train.init_from {rd.name}")
    rd.load_schema().check_compatible(dataset.schema)
    pre = ObservationSupport.load(rd.path)
    if pre is None:
        raise DataError(f"train.init_from {rd.name}: no support statistics; the run is incomplete")
    rows = training_rows(dataset, splits.train)
    own = ObservationSupport.fit(rows, dataset.columns)
    norm = read_norm_arrays(rd.normalizer(which))
    if norm["obs_mean"].shape != (len(pre.kept) + N_ACCOUNT,):
        raise DataError(f"train.init_from {rd.name}: statistics of shape {norm['obs_mean'].shape} for "
                        f"{len(pre.kept)} observed columns")
    alone = [c for c in pre.kept if c in own.dropped]
    logger.info("starting from %s (%s model): its %d observation columns; training bars %s%s", rd.name, which,
                len(pre.kept), pre.report(rows).line().replace("out of training support", "outside its support"),
                f"; {len(alone)} of its columns constant over them: {', '.join(alone)}" if alone else "")
    return InitialState(rd.path, merged_support(pre, own), read_policy_payload(rd.policy(which)), norm)
