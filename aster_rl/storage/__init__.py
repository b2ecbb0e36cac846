"""Storage: the SQLAlchemy database (SQLite by default, PostgreSQL by URL) and its market-data API.

This package is the only part of the project that imports SQLAlchemy.
"""

from aster_rl.storage.database import Database, display_url
from aster_rl.storage.models import SCHEMA_VERSION
from aster_rl.storage.repository import (
    CandleMerge,
    ChangedBar,
    describe,
    last_candle_time,
    load_book,
    load_candles,
    load_funding,
    load_market,
    load_trades,
    merge_candles,
    store_market,
    upsert_book_snapshots,
    upsert_candles,
    upsert_funding,
    upsert_trades,
)

__all__ = [
    "SCHEMA_VERSION",
    "CandleMerge",
    "ChangedBar",
    "Database",
    "describe",
    "display_url",
    "last_candle_time",
    "load_book",
    "load_candles",
    "load_funding",
    "load_market",
    "load_trades",
    "merge_candles",
    "store_market",
    "upsert_book_snapshots",
    "upsert_candles",
    "upsert_funding",
    "upsert_trades",
]
