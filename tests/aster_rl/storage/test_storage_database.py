"""Database handle: schema creation, version checks, transactions."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from aster_rl.config import DataConfig
from aster_rl.errors import StorageError
from aster_rl.storage import SCHEMA_VERSION, Database, describe, upsert_candles
from factories import make_candles


def test_init_schema_is_idempotent_and_records_the_version(database_url):
    db = Database(database_url)
    db.init_schema()
    db.init_schema()
    fresh = Database(db.url)
    fresh.check_schema()
    with fresh.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalars().all() == [SCHEMA_VERSION]


def test_database_without_schema_is_a_clear_error(database_url):
    db = Database(database_url)
    with pytest.raises(StorageError, match=r"no aster_rl schema.*aster-rl db init"):
        db.check_schema()
    with pytest.raises(StorageError, match="aster-rl db init"):
        upsert_candles(db, "s", "X", "5m", make_candles(3))


def test_unknown_schema_version_is_a_clear_error(database_url):
    url = database_url
    Database(url).init_schema()
    with Database(url).engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 41})
    with pytest.raises(StorageError, match=f"schema version \\[{SCHEMA_VERSION + 41}\\].*version {SCHEMA_VERSION}"):
        Database(url).check_schema()
    with pytest.raises(StorageError, match="schema version"):
        Database(url).init_schema()


def test_a_database_with_the_dropped_regimes_and_btc_cycles_tables_still_opens(database_url):
    """Schema 3 databases made before those (never used) tables left the models keep working."""
    url = database_url
    Database(url).init_schema()
    with Database(url).engine.begin() as conn:
        conn.execute(text("CREATE TABLE regimes (id INTEGER PRIMARY KEY, ts BIGINT, symbol VARCHAR(64))"))
        conn.execute(text("CREATE TABLE btc_cycles (date DATE PRIMARY KEY, phase VARCHAR(64))"))
    db = Database(url)
    db.check_schema()
    db.init_schema()
    assert upsert_candles(db, "s", "X", "5m", make_candles(3)) == 3
    tables = set(inspect(db.engine).get_table_names())
    assert {"regimes", "btc_cycles", "candles"} <= tables


def test_from_config_creates_the_data_directory(tmp_path):
    cfg = DataConfig(data_dir=tmp_path / "nested" / "dir")
    db = Database.from_config(cfg)
    db.init_schema()
    assert (tmp_path / "nested" / "dir" / "aster_rl.db").is_file()
    assert db.url == cfg.resolved_database_url()


def test_invalid_url_is_a_storage_error():
    with pytest.raises(StorageError, match="not a valid SQLAlchemy URL"):
        Database("not a url")


def test_session_rolls_back_on_error(database_url):
    db = Database(database_url)
    db.init_schema()
    with pytest.raises(RuntimeError):
        with db.session() as session:
            upsert_candles(session, "s", "X", "5m", make_candles(10))
            raise RuntimeError("boom")
    assert describe(db)["tables"]["candles"] == 0
    with db.session() as session:
        upsert_candles(session, "s", "X", "5m", make_candles(10))
    assert describe(db)["tables"]["candles"] == 10


def test_failed_statement_becomes_storage_error_and_rolls_back(database_url):
    db = Database(database_url)
    db.init_schema()
    with pytest.raises(StorageError, match="rolled back"):
        with db.session() as session:
            upsert_candles(session, "s", "X", "5m", make_candles(10))
            session.execute(text("INSERT INTO no_such_table VALUES (1)"))
    assert describe(db)["tables"]["candles"] == 0
