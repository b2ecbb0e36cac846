"""``aster-rl data import FILE...``: validate candle files completely, then store them in one transaction."""

from __future__ import annotations

from aster_rl.config import AppConfig
from aster_rl.errors import DataError


def register(dsub) -> None:
    p = dsub.add_parser(
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
    p.set_defaults(func=import_files)


def import_files(args, config: AppConfig) -> int:
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
