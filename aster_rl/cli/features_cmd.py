"""``aster-rl features``: build the feature matrix from the database and export it with its schema."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from aster_rl.config import AppConfig
from aster_rl.data.timeframes import parse_utc_time
from aster_rl.errors import DataError

logger = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("features", help="build the feature matrix for the configured symbol/timeframe and export it")
    p.add_argument("--start", metavar="TIME", help="first bar (UTC), e.g. 2025-03-01")
    p.add_argument("--end", metavar="TIME", help="last bar (UTC), e.g. 2025-04-01T12:00")
    p.add_argument("--out", metavar="PATH", help="output .parquet or .csv (default: <data_dir>/features_<symbol>_<tf>.parquet)")
    p.set_defaults(func=run)


def default_path(config: AppConfig) -> Path:
    symbol = "".join(ch for ch in config.data.symbol.split(":")[0] if ch.isalnum())
    return config.data.data_dir / f"features_{symbol}_{config.data.timeframe}.parquet"


def run(args, config: AppConfig) -> int:
    from aster_rl.features.pipeline import build_features
    from aster_rl.storage import Database, load_market

    out = Path(args.out) if args.out else default_path(config)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(f"--out {out}: use a .parquet or .csv file name")
    start = parse_utc_time(args.start, "--start") if args.start else None
    end = parse_utc_time(args.end, "--end") if args.end else None
    market = load_market(Database.from_config(config.data), config.data, start, end)
    if market.candles is None or len(market.candles) == 0:
        raise DataError(
            f"no {config.data.symbol} {config.data.timeframe} candles from source {config.data.source!r} in the database "
            "for that range; run `aster-rl data synth` or `aster-rl data download` first"
        )
    t0 = time.perf_counter()
    fs = build_features(market, config.features, progress=True)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = fs.frame()
    frame.index.name = "open_time"
    if out.suffix.lower() == ".csv":
        frame.to_csv(out)
    else:
        frame.to_parquet(out)
    schema_path = out.with_name(out.stem + ".schema.json")
    schema_path.write_text(json.dumps({**fs.schema.to_dict(), "warmup": fs.warmup}, indent=2) + "\n")
    logger.info("features built in %.2f s", seconds)
    print(
        f"features: {fs.matrix.shape[0]} bars x {fs.matrix.shape[1]} columns "
        f"({fs.index[0]} .. {fs.index[-1]}), warm-up {fs.warmup} bars, built in {seconds:.1f} s"
    )
    print(f"wrote {out}")
    print(f"schema {fs.schema.hash[:12]} -> {schema_path}")
    return 0
