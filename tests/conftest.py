"""Shared fixtures; the plain helpers live in ``tests/factories.py``."""

import pytest

from factories import make_candles, make_market


@pytest.fixture(scope="session")
def candles_factory():
    return make_candles


@pytest.fixture(scope="session")
def market_factory():
    return make_market
