"""``aster-rl db init`` / ``aster-rl db info``: create the schema, show what is stored."""

from __future__ import annotations

from aster_rl.config import AppConfig


def register(sub) -> None:
    p = sub.add_parser("db", help="create the database schema or show what it holds")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    dbsub.required = True
    init = dbsub.add_parser("init", help="create the schema (idempotent) and print the database URL")
    init.set_defaults(func=init_db)
    info = dbsub.add_parser("info", help="row counts per table and stored candle series")
    info.set_defaults(func=show_info)


def init_db(args, config: AppConfig) -> int:
    from aster_rl.storage import SCHEMA_VERSION, Database

    db = Database.from_config(config.data)
    db.init_schema()
    print(f"database ready (schema version {SCHEMA_VERSION}): {db.display_url}")
    return 0


def show_info(args, config: AppConfig) -> int:
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
