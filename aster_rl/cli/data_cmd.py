"""``aster-rl data synth|import|download``: synthesize, import or download market data into the database."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from aster_rl.config import AppConfig, replace
from aster_rl.errors import DataError


def register(sub) -> None:
    p = sub.add_parser("data", help="synthesize, import or download market data")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _register_synth(actions)
    _register_import(actions)
    _register_download(actions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    return ACTIONS[args.action](args, config)


def _register_synth(actions) -> None:
    p = actions.add_parser(
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


def _register_import(actions) -> None:
    p = actions.add_parser(
        "import",
        help="import candle files (CSV, Binance klines, Parquet, freqtrade feather/json)",
        description=(
            "Every file is parsed and validated before anything is written; then all of them are stored "
            "in one transaction, so a bad file leaves the database unchanged. Symbol and timeframe come from "
            "names like ASTERUSDT_5m.csv unless given (the timeframe otherwise from the bars' spacing, which must "
            "agree with it). A bar already stored with other values stops the import unless --replace."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="candle file(s) to import")
    p.add_argument("--symbol", help="market symbol, e.g. ASTER/USDT:USDT (default: from the file name)")
    p.add_argument(
        "--timeframe", help="bar length, e.g. 5m (default: from the file name, else from the bars' spacing)"
    )
    p.add_argument("--source", default="import", help="source label stored with the bars (default: import)")
    p.add_argument(
        "--replace", action="store_true",
        help="overwrite stored bars whose values differ from the file's (default: refuse the import, name the bar)",
    )


def _register_download(actions) -> None:
    p = actions.add_parser(
        "download",
        help="download candles, funding, book and trades from an exchange (ccxt)",
        description="Download closed candles through ccxt (Aster's raw klines keep trade counts and taker-buy volume), "
        "paged with since: a --since before the stored bars backfills them, then it resumes after the newest stored "
        "bar; then funding history (settlement times snapped to the funding grid) and a book/trades snapshot. "
        "Other ccxt exchange ids work too, e.g. --exchange binanceusdm --symbol BTC/USDT:USDT.",
    )
    p.add_argument("--symbol", help="unified ccxt symbol (default: data.symbol, e.g. ASTER/USDT:USDT)")
    p.add_argument("--timeframe", help="candle timeframe (default: data.timeframe)")
    p.add_argument("--since", metavar="DATE", help="first bar to download, UTC (default: data.since)")
    p.add_argument("--until", metavar="DATE", help="last bar open time to download, UTC (default: the newest closed bar)")
    p.add_argument("--exchange", metavar="ID", help="ccxt exchange id (default: data.exchange_id)")
    p.add_argument("--source", help="source name the rows are stored under (default: the exchange id)")
    funding = p.add_mutually_exclusive_group()
    funding.add_argument("--with-funding", dest="funding", action="store_true", default=True, help="also funding history (default)")
    funding.add_argument("--no-funding", dest="funding", action="store_false", help="candles only, no funding history")
    p.add_argument("--no-snapshot", dest="snapshot", action="store_false", help="skip the order-book / recent-trades snapshot")


def _synth_overrides(args: argparse.Namespace) -> dict:
    changes = {"n_bars": args.bars, "seed": args.seed, "start": args.start, "edge": args.edge}
    return {key: value for key, value in changes.items() if value is not None}


def synth(args: argparse.Namespace, config: AppConfig) -> int:
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


def import_files(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.data.importer import read_candle_file
    from aster_rl.storage import ChangedBar, Database, merge_candles
    from aster_rl.data.timeframes import timeframe_to_timedelta

    if args.timeframe is not None:
        try:
            timeframe_to_timedelta(args.timeframe)
        except DataError as e:
            raise DataError(f"--timeframe: {e}") from None
    parsed = [read_candle_file(f, symbol=args.symbol, timeframe=args.timeframe) for f in args.files]
    db = Database.from_config(config.data)
    db.init_schema()
    merged = []
    with db.session() as session:
        for p in parsed:
            try:
                merged.append(merge_candles(session, args.source, p.symbol, p.timeframe, p.candles, replace=args.replace))
            except ChangedBar as e:
                raise DataError(f"{p.path}: {p.rows(p.candles.index.get_loc(e.ts))}: {e}") from None
    for p, result in zip(parsed, merged):
        replaced = f", {result.changed:,} replaced" if args.replace else ""
        print(
            f"{p.path}: {len(p.candles):,} {p.timeframe} bars of {p.symbol} "
            f"({p.candles.index[0]:%Y-%m-%d %H:%M} .. {p.candles.index[-1]:%Y-%m-%d %H:%M} UTC), "
            f"{result.new:,} new{replaced}"
        )
        if len(p.gaps):
            first = p.gaps.iloc[0]
            print(
                f"  gaps: {len(p.gaps)} ({p.missing_bars:,} missing bars, first at "
                f"{first['first_missing']:%Y-%m-%d %H:%M} UTC); not filled"
            )
        else:
            print("  gaps: none")
    print(f"stored in {db.display_url} as source {args.source!r} (read it with --set data.source={args.source})")
    return 0


def download(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.data.download import download_candles, download_funding, download_snapshot
    from aster_rl.exchange.client import ExchangeClient
    from aster_rl.storage import Database

    data = config.data
    exchange_id = args.exchange or data.exchange_id
    symbol = args.symbol or data.symbol
    timeframe = args.timeframe or data.timeframe
    since = args.since or data.since
    source = args.source or exchange_id

    client = ExchangeClient.from_config(data, exchange_id=exchange_id)
    db = Database.from_config(data)
    db.init_schema()
    client.market(symbol)  # unknown symbols fail before anything is written

    report = download_candles(client, db, source, symbol, timeframe, since, args.until, progress=None, now=client.now)
    print(
        f"{symbol} {timeframe} from {exchange_id}: {report.fetched} bars fetched, {report.new} new"
        + (f" ({report.first:%Y-%m-%d %H:%M} .. {report.last:%Y-%m-%d %H:%M} UTC)" if report.first is not None else "")
        + (f", {report.backfilled} of them before the stored bars" if report.backfilled else "")
        + (", resumed after the stored bars" if report.resumed else "")
    )
    if args.funding:
        funding = download_funding(client, db, source, symbol, since, args.until, now=client.now)
        print(
            f"funding: {funding.fetched} settlements fetched, {funding.new} new"
            + (f", {funding.backfilled} of them before the stored ones" if funding.backfilled else "")
        )
    if args.snapshot:
        snap = download_snapshot(client, db, source, symbol)
        print(f"snapshot: {snap.book_rows} book row, {snap.trades_fetched} recent trades ({snap.trades_new} new)")
    print(f"stored as source {source!r} in database: {db.display_url}")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, AppConfig], int]] = {
    "synth": synth, "import": import_files, "download": download,
}
