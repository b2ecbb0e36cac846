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
