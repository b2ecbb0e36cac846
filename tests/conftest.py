"""Shared fixtures; the plain helpers live in ``tests/factories.py``."""

import pytest

from factories import make_candles, make_market


@pytest.fixture(scope="session")
def candles_factory():
    return make_candles


@pytest.fixture(scope="session")
def market_factory():
    return make_market


@pytest.fixture(scope="session")
def real_data():
    """The shared real-data folder; skipped when absent, except in CI (``CI=true``), where absence fails."""
    from shared_data import require_real_data

    return require_real_data()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on loopback for the session (``tests/postgres.py``); skipped when the
    server binaries or the psycopg driver are absent, except in CI (``CI=true``), where absence fails."""
    import importlib.util
    import os

    from postgres import PostgresCluster, pg_binaries

    missing = [what for what, ok in (("initdb/pg_ctl", pg_binaries() is not None),
                                     ("psycopg", importlib.util.find_spec("psycopg") is not None)) if not ok]
    if missing:
        message = f"PostgreSQL tests need {' and '.join(missing)} (install postgresql and the `tune` extra)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database's URL: a SQLite file, then a database on the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'aster_rl.db').as_posix()}"
        return
    cluster = request.getfixturevalue("postgres")
    url = cluster.new_database()
    yield url
    cluster.drop_database(url)
