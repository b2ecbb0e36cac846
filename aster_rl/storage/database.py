"""The database handle: one SQLAlchemy engine, schema creation/checks, transactions.

SQLite files run in WAL mode (readers never wait for a writer) with a busy timeout: a
writer waits up to ``busy_timeout_s`` for another process's write transaction (a large
``data import``, a second runner) instead of failing at once with "database is locked".
Errors name the database and the driver's own message, never the SQL statement or its
parameters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from aster_rl.config import DataConfig
from aster_rl.errors import StorageError
from aster_rl.storage.models import SCHEMA_VERSION, Base, SchemaVersion

logger = logging.getLogger(__name__)

FIX_HINT = "run `aster-rl db init` (or point data.database_url at the right database)"
BUSY_TIMEOUT_S = 30.0  # how long a SQLite write waits for another connection's write transaction
MESSAGE_CHARS = 200


def short_error(e: BaseException) -> str:
    """The driver's message of a database error, one line: never the statement or its parameters."""
    orig = getattr(e, "orig", None)
    text = str(orig) if orig is not None else (str(e).splitlines() or [type(e).__name__])[0]
    text = text.split("\n")[0].split("[SQL:")[0].strip() or type(e).__name__
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _sqlite_pragmas(busy_timeout_s: float, read_only: bool = False):
    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")  # first: switching to WAL may wait too
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if read_only:  # every write on this connection fails ("attempt to write a readonly database")
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return on_connect


def _read_only_session(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()


def checked_url(url: str) -> URL:
    """``url`` parsed, or StorageError naming it: a database URL is ``dialect[+driver]://...``."""
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"database URL {url!r} is not a valid SQLAlchemy URL: expected dialect[+driver]://..., "
            "e.g. sqlite:///data/aster_rl.db or postgresql://user@host/db (data.database_url)"
        )
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as e:
        raise StorageError(f"database URL {url!r} is not a valid SQLAlchemy URL ({e}) (data.database_url)") from None


def display_url(url: str) -> str:
    """``url`` with any password hidden, for messages and logs (a placeholder when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<a database URL that does not parse>"


def prepare_sqlite_dir(url: URL) -> None:
    """Create the directory of a SQLite file URL; StorageError naming it when that is impossible."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    directory = Path(url.database).parent
    if directory.exists() and not directory.is_dir():
        raise StorageError(f"the data directory {directory} is a file, not a directory; set data.data_dir to a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the data directory {directory} for {url.database} ({e.strerror or e}); "
            "set data.data_dir (or data.database_url) to a writable place"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StorageError(f"the data directory {directory} is not writable; set data.data_dir to a writable place")


class Database:
    """A database reached by one SQLAlchemy URL (SQLite by default, PostgreSQL by URL).

    ``read_only``: every connection refuses writes (SQLite ``query_only``; elsewhere a
    read-only session), and a SQLite file that does not exist is an error, not created."""

    def __init__(self, url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S, read_only: bool = False) -> None:
        parsed = checked_url(url)
        self.url = url
        self.busy_timeout_s = float(busy_timeout_s)
        self.read_only = bool(read_only)
        kwargs: dict = {}
        is_sqlite = parsed.get_backend_name() == "sqlite"
        in_memory = is_sqlite and parsed.database in (None, "", ":memory:")
        if read_only and is_sqlite and not in_memory and not Path(str(parsed.database)).is_file():
            raise StorageError(f"database {parsed.database} does not exist; {FIX_HINT}")
        if in_memory:  # one shared connection, or every session would see a fresh empty database
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError, SQLAlchemyError) as e:
            raise StorageError(f"cannot open database {self.display_url}: {e}") from None
        if is_sqlite and (not in_memory or read_only):
            event.listen(self.engine, "connect", _sqlite_pragmas(self.busy_timeout_s, self.read_only))
        elif read_only:
            event.listen(self.engine, "connect", _read_only_session)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._schema_checked = False

    @classmethod
    def from_config(cls, data_cfg: DataConfig) -> Database:
        """The database ``data_cfg`` names; creates the data directory for a SQLite file."""
        url = data_cfg.resolved_database_url()
        prepare_sqlite_dir(checked_url(url))
        return cls(url)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return display_url(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    # ------------------------------------------------------------ schema

    def init_schema(self) -> None:
        """Create every table and record the schema version (idempotent)."""
        try:
            with self.session() as session:
                Base.metadata.create_all(session.connection())
                versions = session.scalars(select(SchemaVersion.version)).all()
                if versions:
                    self._check_versions(versions)
                else:
                    session.add(SchemaVersion(version=SCHEMA_VERSION))
        except SQLAlchemyError as e:
            raise StorageError(f"cannot create the schema in {self.display_url}: {short_error(e)}") from None
        self._schema_checked = True
        logger.info("schema version %d ready in %s", SCHEMA_VERSION, self.display_url)

    def check_schema(self) -> None:
        """Raise StorageError unless the database has this program's schema version."""
        try:
            tables = set(inspect(self.engine).get_table_names())
            if SchemaVersion.__tablename__ not in tables:
                raise StorageError(f"database {self.display_url} has no aster_rl schema; {FIX_HINT}")
            with self.engine.connect() as conn:
                versions = conn.execute(select(SchemaVersion.version)).scalars().all()
        except SQLAlchemyError as e:
            raise StorageError(f"cannot read database {self.display_url}: {short_error(e)}") from None
        if not versions:
            raise StorageError(f"database {self.display_url} records no schema version; {FIX_HINT}")
        self._check_versions(versions)
        missing = set(Base.metadata.tables) - tables
        if missing:
            raise StorageError(f"database {self.display_url} lacks tables {sorted(missing)}; {FIX_HINT}")
        self._schema_checked = True

    def ensure_checked(self) -> None:
        """Check the schema once per handle (called by every repository function)."""
        if not self._schema_checked:
            self.check_schema()

    def _check_versions(self, versions: Sequence[int]) -> None:
        if list(versions) != [SCHEMA_VERSION]:
            raise StorageError(
                f"database {self.display_url} has schema version {sorted(versions)}, this program uses "
                f"version {SCHEMA_VERSION}; use a database made by this version (a new data.database_url "
                f"or data.data_dir, then `aster-rl db init`)"
            )

    # ------------------------------------------------------------ transactions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block succeeds, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as e:
            session.rollback()
            raise StorageError(f"database {self.display_url}: transaction failed and was rolled back ({short_error(e)})") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
