"""Out-of-support share on the real ASTER 5m candles: train up to 2025-10-31, test November 2025.

Builds the features as ``bench_real`` does (default tentacles, BTC/ETH companions), fits the
training support on the same train split (``bench_real.real_splits``) and prints the share of
November bars with a kept column outside its training range, and every kept column's own share.
``--tentacles`` chooses the tentacle list (e.g. ``--tentacles market,clock,indicators``);
``--param tentacle.key=JSON`` sets one tentacle parameter (repeatable), e.g.
``--param 'multi_timeframe.timeframes=["5m","15m","30m","1h","4h"]'``.

    PYTHONPATH=$PWD python benchmarks/measure_support.py [--all-columns]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from aster_rl.config import AppConfig, replace
from aster_rl.data.market import MarketBundle
from aster_rl.evaluation.support import ObservationSupport

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import DATA, TEST_START, read_candles, real_splits

from agents.data import build_dataset
from aster_rl.cli.demo_cmd import DEMO_ENV


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tentacles", default="", help="comma-separated tentacle list (default: the configured one)")
    parser.add_argument("--param", action="append", default=[], help="tentacle.key=JSON (repeatable)")
    parser.add_argument("--all-columns", action="store_true", help="print every kept column's share, not only those > 0")
    args = parser.parse_args()
    if not (DATA / "ASTERUSDT_5m.csv").exists():
        print(f"skipped: no real data in {DATA}")
        return 0
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*no funding series.*")
    aster = read_candles(DATA / "ASTERUSDT_5m.csv")
    hi = aster.index[-1]
    btc, eth = (read_candles(DATA / f"{k}USDT_5m.csv").loc[:hi] for k in ("BTC", "ETH"))
    market = MarketBundle(symbol="ASTER/USDT:USDT", timeframe="5m", candles=aster, btc=btc, eth=eth)
    cfg = replace(AppConfig(), env=DEMO_ENV)
    if args.tentacles:
        cfg = replace(cfg, features={"tentacles": tuple(t.strip() for t in args.tentacles.split(",") if t.strip())})
    params: dict[str, dict] = {}
    for item in args.param:
        key, _, value = item.partition("=")
        tentacle, _, name = key.partition(".")
        params.setdefault(tentacle, {})[name] = json.loads(value)
    if params:
        cfg = replace(cfg, features={"params": params})
        print(f"params: {params}")
    ds = build_dataset(cfg, market=market)
    splits = real_splits(ds.index, ds.warmup, cfg.env.episode_length)
    train_rows = ds.matrix[splits.train.start : splits.train.end]
    test_rows = ds.matrix[splits.test.start : splits.test.end]
    support = ObservationSupport.fit(train_rows, ds.columns)
    report = support.report(test_rows, top=10)
    print(f"tentacles: {', '.join(cfg.features.tentacles)}")
    print(f"train {ds.index[splits.train.start]:%Y-%m-%d %H:%M} .. {ds.index[splits.train.end - 1]:%Y-%m-%d %H:%M} "
          f"({len(train_rows)} bars); test from {TEST_START:%Y-%m-%d} ({len(test_rows)} bars)")
    print(f"{len(support.kept)} of {len(ds.columns)} columns kept; left out: {', '.join(support.dropped) or 'none'}")
    print(report.line())
    flags = support.outside(test_rows)
    shares = flags.mean(axis=0)
    for j in np.argsort(-shares, kind="stable"):
        if shares[j] > 0 or args.all_columns:
            name = support.kept[j]
            col = test_rows[:, ds.columns.index(name)]
            s = support.stats[ds.columns.index(name)]
            print(f"  {name:<44} {shares[j]:6.1%}  train [{s.low:.4g}, {s.high:.4g}]  test [{col.min():.4g}, {col.max():.4g}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
