"""SQLite under concurrent writers (WAL, busy timeout, short errors) and the live session lease (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from aster_rl.errors import StorageError
from aster_rl.storage import Database, live_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
from live_helpers import LockHolder


def _db(tmp_path, **kw) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'l.db'}", **kw)
    db.init_schema()
    return db


def test_sqlite_files_run_in_wal_with_a_busy_timeout(tmp_path):
    db = _db(tmp_path, busy_timeout_s=12.5)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 12_500
    memory = Database("sqlite://")  # no file: no WAL, no pragmas
    with memory.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "memory"


def test_a_write_waits_for_another_process_write_transaction(tmp_path):
    db = _db(tmp_path, busy_timeout_s=10)
    holder = LockHolder(tmp_path / "l.db", 1.5)
    live_store.record_bar(db, "s", state={"n": 1})
    waited = time.monotonic() - holder.since
    holder.wait()
    assert waited > 1.0  # it waited for the lock instead of failing
    assert live_store.load_state(db, "s") == {"n": 1}


def test_a_lock_past_the_busy_timeout_is_one_short_line_without_sql_or_values(tmp_path):
    db = _db(tmp_path, busy_timeout_s=0.3)
    observation = [0.123456789 + i for i in range(50)]
    holder = LockHolder(tmp_path / "l.db", 2.0)
    with pytest.raises(StorageError) as err:
        live_store.record_bar(db, "s", state={"n": 1}, prediction={
            "ts": 1, "run_id": "r", "model_version": "m", "schema_hash": "h", "observation": observation, "side": "BUY",
        })
    holder.wait()
    message = str(err.value)
    assert "database is locked" in message
    assert "\n" not in message and len(message) < 300
    assert "INSERT" not in message and "SQL" not in message and "0.123456789" not in message


def test_lease_one_holder_renewal_expiry_takeover_release(database_url):
    db = Database(database_url)
    db.init_schema()
    t0 = 1_700_000_000_000
    first = live_store.acquire_lease(db, "s", timeout_s=60, now_ms=t0)
    assert first.pid == os.getpid() and first.host == socket.gethostname()
    with pytest.raises(live_store.LeaseHeld, match=f"pid {os.getpid()} on host {socket.gethostname()}, lease renewed 30 s ago"):
        live_store.acquire_lease(db, "s", timeout_s=60, now_ms=t0 + 30_000)
    live_store.renew_lease(db, first, t0 + 50_000)
    with pytest.raises(live_store.LeaseHeld, match="renewed 60 s ago"):  # renewed at +50 s: still live at +110 s
        live_store.acquire_lease(db, "s", timeout_s=60, now_ms=t0 + 110_000)
    other = live_store.acquire_lease(db, "s", timeout_s=60, now_ms=t0 + 111_000, pid=4242, host="elsewhere")  # expired
    assert live_store.lease_of(db, "s")["pid"] == 4242
    with pytest.raises(live_store.LeaseLost, match="pid 4242 on host elsewhere"):
        live_store.renew_lease(db, first, t0 + 112_000)
    with pytest.raises(live_store.LeaseLost):  # a bar's transaction stores nothing without the lease
        live_store.record_bar(db, "s", state={"who": "first"}, lease=first, now_ms=t0 + 113_000)
    assert live_store.load_state(db, "s") is None
    live_store.release_lease(db, first)  # not the holder: nothing happens
    assert live_store.lease_of(db, "s")["pid"] == 4242
    live_store.release_lease(db, other)
    assert live_store.lease_of(db, "s") is None
    live_store.acquire_lease(db, "s", timeout_s=60, now_ms=t0 + 114_000)


def test_two_processes_racing_for_a_lease_one_wins(database_url):
    db = Database(database_url)
    db.init_schema()
    script = (
        "import sys; from aster_rl.storage import Database, live_store\n"
        "db = Database(sys.argv[1])\n"
        "try:\n    live_store.acquire_lease(db, 'race', timeout_s=60); print('won')\n"
        "except live_store.LeaseHeld as e:\n    print('refused', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}  # this checkout
    procs = [subprocess.Popen([sys.executable, "-c", script, db.url], stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(o.split()[0] for o in outs) == ["refused", "refused", "won"], outs
