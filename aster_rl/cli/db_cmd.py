"""``aster-rl db init`` / ``aster-rl db info``: create the schema, show what is stored."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("db", help="create the database schema or show what it holds")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("init", help="create the schema (idempotent) and print the database URL")
    actions.add_parser("info", help="row counts per table and stored candle series")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: AppConfig) -> int:
    return ACTIONS[args.action](args, config)


def init(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.storage import SCHEMA_VERSION, Database

    db = Database.from_config(config.data)
    db.init_schema()
    print(f"database ready (schema version {SCHEMA_VERSION}): {db.display_url}")
    return 0


def info(args: argparse.Namespace, config: AppConfig) -> int:
    from aster_rl.storage import Database, describe

    db = Database.from_config(config.data)
    summary = describe(db)
    print(f"database: {db.display_url}")
    for table, count in summary["tables"].items():
        print(f"  {table:<20} {count:>12,} rows")
    if summary["candles"]:
        print("candles:")
        for s in summary["candles"]:
            print(
                f"  {s['source']:<12} {s['symbol']:<18} {s['timeframe']:<4} {s['bars']:>10,} bars  "
                f"{s['first']:%Y-%m-%d %H:%M} .. {s['last']:%Y-%m-%d %H:%M} UTC"
            )
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace, AppConfig], int]] = {"init": init, "info": info}
