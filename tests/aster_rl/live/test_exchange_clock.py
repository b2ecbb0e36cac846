"""The exchange source decides which candle has closed by the exchange's clock (a measured
offset from the local clock), not by the local clock: a still-forming candle is never
stored when this machine's clock runs ahead of the exchange's."""

from __future__ import annotations

import pandas as pd
import pytest

from aster_rl.config import DataConfig
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.sources import ExchangeClock, ExchangeSource
from aster_rl.storage import load_market
from factories import make_market
from live_helpers import make_db

TIME_PATH = "/fapi/v3/time"


@pytest.fixture(scope="module")
def market():
    return make_market(1_000, seed=9)


def _cfg(fake) -> DataConfig:
    return DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)


def _client(fake) -> ExchangeClient:
    return ExchangeClient(make_exchange(_cfg(fake)), max_retries=3, retry_backoff_s=0)


def _stored(db, source) -> pd.DatetimeIndex:
    return load_market(db, source._cfg).candles.index


def test_default_clock_is_the_exchange_s_not_the_local_one(tmp_path, market):
    """The fake's clock is far behind this machine's (it sits in the market's past): by the
    local clock every candle has long closed, by the exchange's the last one still forms."""
    idx = market.candles.index
    forming = idx[900]
    with FakeAsterExchange(market, now=forming + pd.Timedelta("2min")) as fake:
        db = make_db(tmp_path)
        source = ExchangeSource(_client(fake), db, _cfg(fake), history_bars=700, companions=False, clock_refresh_s=0)
        assert isinstance(source._clock, ExchangeClock)
        assert abs(source.now() - fake.now()) < pd.Timedelta(seconds=2)
        bars = source.history()
        assert bars[-1].time == idx[899] and _stored(db, source)[-1] == idx[899]  # the forming candle was not stored
        assert source.poll_new_bars() == [] and _stored(db, source)[-1] == idx[899]
        fake.set_now(forming + pd.Timedelta("5min"))  # it closes on the exchange
        (bar,) = source.poll_new_bars()
        assert bar.time == forming
        row = load_market(db, source._cfg).candles.loc[forming]
        cols = ["open", "high", "low", "close", "volume"]
        assert list(row[cols]) == pytest.approx(list(market.candles.loc[forming, cols]), rel=1e-7)  # the fake sends 8 digits


def test_local_clock_seconds_ahead_does_not_store_the_forming_candle(tmp_path, market):
    """10 s before the close on the exchange, 10 s after it on this machine."""
    idx = market.candles.index
    forming = idx[900]
    ahead = pd.Timedelta(seconds=20)
    with FakeAsterExchange(market, now=forming + pd.Timedelta(minutes=4, seconds=50)) as fake:
        db = make_db(tmp_path)
        client = _client(fake)
        clock = ExchangeClock(client, local=lambda: fake.now() + ahead)
        source = ExchangeSource(client, db, _cfg(fake), history_bars=700, companions=False, clock=clock)
        source.history()
        assert clock.offset == -ahead
        assert _stored(db, source)[-1] == idx[899]
        fake.set_now(forming + pd.Timedelta("5min"))
        assert [b.time for b in source.poll_new_bars()] == [forming]


def test_offset_is_measured_now_and_then_not_per_reading(market):
    local = [pd.Timestamp("2030-01-01", tz="UTC")]  # this machine: years ahead of the fake
    mono = [0.0]
    with FakeAsterExchange(market, now=market.candles.index[500]) as fake:
        clock = ExchangeClock(_client(fake), refresh_s=60.0, local=lambda: local[0], monotonic=lambda: mono[0])
        assert clock() == fake.now()
        for _ in range(10):  # readings within the refresh interval: no request
            mono[0] += 5.0
            local[0] += pd.Timedelta(seconds=5)
            fake.set_now(fake.now_ms + 5_000)
            assert clock() == fake.now()
        assert len(fake.requests_to(TIME_PATH)) == 1 and clock.measurements == 1
        mono[0] += 11.0  # past the interval: measured again
        fake.set_now(fake.now_ms + 7_000)  # the exchange's clock drifted 4 s against the local one
        local[0] += pd.Timedelta(seconds=3)
        assert clock() == fake.now()
        assert len(fake.requests_to(TIME_PATH)) == 2 and clock.measurements == 2


def test_a_failed_measurement_keeps_the_last_offset(market):
    local = [pd.Timestamp("2030-01-01", tz="UTC")]
    mono = [0.0]
    with FakeAsterExchange(market, now=market.candles.index[500]) as fake:
        client = ExchangeClient(make_exchange(_cfg(fake)), max_retries=0, retry_backoff_s=0)
        clock = ExchangeClock(client, refresh_s=1.0, local=lambda: local[0], monotonic=lambda: mono[0])
        first = clock()
        offset = clock.offset
        mono[0] += 2.0
        fake.fail_next(10, 503, path=TIME_PATH)
        assert clock() == first and clock.offset == offset  # kept
        fake.clear_faults()
        assert clock() == fake.now() and clock.measurements == 2  # tried again at the next reading
