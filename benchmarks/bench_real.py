"""Real-data benchmark: train on ASTER/USDT 5m (Binance perp candles) up to 2025-10-31,
select on a validation slice of that period, evaluate on November 2025 beside the baselines.

Data: ``../shared/data/real`` beside the project (or ``ASTER_REAL_DATA``): ``ASTERUSDT_5m.csv``,
``BTCUSDT_5m.csv``, ``ETHUSDT_5m.csv`` with ``timestamp`` (ms) and OHLCV. These candles
have no taker-buy volume, trades, funding or book: those features fall back to neutral
values with their availability flags off, and funding is taken as zero. Skipped (exit 0)
when the folder is absent.

    .venv/bin/python benchmarks/bench_real.py [--timesteps 300000] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from aster_rl.config import AppConfig, replace
from aster_rl.data.market import MarketBundle
from aster_rl.paths import real_data_dir

from agents.data import build_dataset
from agents.evaluate import evaluate_policy
from agents.policy import load_policy
from agents.splits import Span, Splits
from agents.train import train
from aster_rl.cli.demo_cmd import DEMO_ENV, DEMO_EVAL, DEMO_TRAIN

DATA = real_data_dir()
TEST_START = pd.Timestamp("2025-11-01", tz="UTC")


def read_candles(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(df["timestamp"].astype("int64"), unit="ms", utc=True))
    return df[["open", "high", "low", "close", "volume"]].astype(float).set_index(index).sort_index()


def real_splits(index: pd.DatetimeIndex, warmup: int, episode_length: int, train_share: float = 0.75) -> Splits:
    purge = warmup + episode_length
    test_start = int(index.searchsorted(TEST_START))
    val_end = test_start - purge
    usable = val_end - warmup - purge
    n_train = int(usable * train_share)
    splits = Splits(Span(warmup, warmup + n_train), Span(warmup + n_train + purge, val_end), Span(test_start, len(index)),
                    purge, warmup)
    splits.check()
    return splits


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=DEMO_TRAIN["total_timesteps"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DATA / "ASTERUSDT_5m.csv").exists():
        print(f"skipped: no real data in {DATA}")
        return 0
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*no funding series.*")
    aster = read_candles(DATA / "ASTERUSDT_5m.csv")
    lo, hi = aster.index[0], aster.index[-1]
    companion = {k: read_candles(DATA / f"{k.upper()}USDT_5m.csv").loc[:hi] for k in ("btc", "eth")}
    market = MarketBundle(symbol="ASTER/USDT:USDT", timeframe="5m", candles=aster, btc=companion["btc"], eth=companion["eth"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(AppConfig(), env=DEMO_ENV, eval=DEMO_EVAL,
                      train={**DEMO_TRAIN, "name": "real", "seed": args.seed, "total_timesteps": args.timesteps,
                             "checkpoint_dir": tmp, "progress_bar": False})
        started = time.perf_counter()
        ds = build_dataset(cfg, market=market)
        splits = real_splits(ds.index, ds.warmup, cfg.env.episode_length)
        d = splits.to_dict(ds.index)
        print(f"ASTER 5m {lo:%Y-%m-%d} .. {hi:%Y-%m-%d}: {len(ds)} bars, {ds.matrix.shape[1]} features, warm-up {ds.warmup}")
        for name in ("train", "validation", "test"):
            print(f"  {name:<10} {d[name]['first_bar'][:16]} .. {d[name]['last_bar'][:16]} ({d[name]['bars']} bars)")
        result = train(cfg, ds, splits=splits, run_dir=Path(tmp) / "real")
        best = result.metrics["best_validation"]
        print(f"trained {result.metrics['timesteps']} steps in {result.metrics['train_seconds']:.0f} s; "
              f"best validation net return {best.get('net_return', float('nan')):+.2%} at {best.get('timesteps', 0):.0f} steps")
        if result.gate is not None:
            print(f"gate: {result.gate.line()}")
        report = evaluate_policy(load_policy(result.run_dir, schema=ds.schema), ds, cfg, splits, run_dir=result.run_dir)
        print(report.table())
        print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
