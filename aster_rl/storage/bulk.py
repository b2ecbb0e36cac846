"""Fast bulk writes and reads: ``INSERT ... ON CONFLICT DO NOTHING`` through the driver's executemany, and
selects fetched from the driver's cursor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

logger = logging.getLogger(__name__)

CHUNK_ROWS = 50_000


def _insert_ignoring_duplicates(table: Table, dialect: str, key: Sequence[str]):
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key))
    if dialect in ("mysql", "mariadb"):
        return insert(table).prefix_with("IGNORE")
    return None


def bulk_insert_new(
    conn: Connection, table: Table, columns: dict[str, list[Any]], key: Sequence[str]
) -> int:
    """Insert rows given column-wise, skipping rows whose ``key`` exists; return the number inserted."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    if n == 0:
        return 0
    stmt = _insert_ignoring_duplicates(table, conn.dialect.name, key)
    if stmt is None:
        return _insert_row_by_row(conn, table, columns, key)
    compiled = stmt.compile(dialect=conn.dialect, column_keys=names)
    sql = str(compiled)
    if compiled.positional:
        order = [columns[name] for name in compiled.positiontup]
        rows: list[Any] = list(zip(*order))
    else:
        rows = [dict(zip(names, values)) for values in zip(*(columns[name] for name in names))]
    trust_rowcount = bool(getattr(conn.dialect, "supports_sane_multi_rowcount", False))
    before = 0 if trust_rowcount else _count(conn, table)
    inserted = 0
    for start in range(0, n, CHUNK_ROWS):
        result = conn.exec_driver_sql(sql, rows[start : start + CHUNK_ROWS])
        inserted += max(result.rowcount or 0, 0)
    if not trust_rowcount:  # the driver cannot say how many rows executemany wrote: count them
        inserted = _count(conn, table) - before
    return inserted


def fetch_rows(conn: Connection, stmt: Select) -> Sequence[Any]:
    """The rows of a select straight from the driver's cursor: no per-row result processing, for large reads."""
    return conn.execute(stmt).cursor.fetchall()


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _insert_row_by_row(conn: Connection, table: Table, columns: dict[str, list[Any]], key: Sequence[str]) -> int:
    """Portable fallback for other dialects: insert the rows whose key is not stored yet."""
    names = list(columns)
    rows = [dict(zip(names, values)) for values in zip(*(columns[name] for name in names))]
    new = 0
    for row in rows:
        where = [table.c[k] == row[k] for k in key]
        if conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one() == 0:
            conn.execute(insert(table), row)
            new += 1
    return new
