"""``aster-rl data download``: candles (and funding, book, trades) from a ccxt exchange into the database."""

from __future__ import annotations

import argparse
import logging

from aster_rl.config import AppConfig

logger = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
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
