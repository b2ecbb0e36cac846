"""``aster-rl data synth``: synthesize the seeded ASTER market and store it in the database."""

from __future__ import annotations

import argparse
import logging

from aster_rl.config import AppConfig, replace

logger = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="synthesize the seeded ASTER market (the embedded default) and store it",
        description="Synthesize the seeded, deterministic ASTER market (candles, funding, large trades, "
        "book snapshots, BTC/ETH) from config.synth and store it in the database as source 'synthetic'.",
    )
    p.add_argument("--bars", type=int, metavar="N", help="number of bars (default: synth.n_bars)")
    p.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    p.add_argument("--start", metavar="DATE", help="first bar's open time, UTC (default: synth.start)")
    edge = p.add_mutually_exclusive_group()
    edge.add_argument("--edge", choices=("planted", "null"), help="planted edge or none (default: synth.edge)")
    edge.add_argument("--null", action="store_const", const="null", dest="edge", help="shorthand for --edge null")
    p.set_defaults(func=run)


def _synth_overrides(args: argparse.Namespace) -> dict:
    changes = {"n_bars": args.bars, "seed": args.seed, "start": args.start, "edge": args.edge}
    return {key: value for key, value in changes.items() if value is not None}


def run(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.storage import Database, store_market
    from aster_rl.data.synthetic import synthesize_with_truth

    changes = _synth_overrides(args)
    if changes:
        config = replace(config, synth=changes)
    cfg, data = config.synth, config.data
    bundle, signals = synthesize_with_truth(cfg, timeframe=data.timeframe, symbol=data.symbol)
    db = Database.from_config(data)
    db.init_schema()
    new = store_market(db, bundle, source="synthetic", btc_symbol=data.btc_symbol, eth_symbol=data.eth_symbol)
    candles = bundle.candles
    print(
        f"synthesized {len(candles)} {data.timeframe} bars of {bundle.symbol} "
        f"({candles.index[0]:%Y-%m-%d %H:%M} .. {candles.index[-1]:%Y-%m-%d %H:%M} UTC), "
        f"seed {cfg.seed}, {cfg.edge} edge, {len(signals)} signal bars"
    )
    print("stored as source 'synthetic': " + ", ".join(f"{part} {count} new rows" for part, count in new.items()))
    if new.get("candles", 0) < len(candles):
        print(
            f"note: {len(candles) - new.get('candles', 0)} of these bars were already stored and were kept as they "
            f"were; use a fresh data.data_dir to store a different market (seed, edge or start)"
        )
    print(f"database: {db.display_url}")
    return 0
