"""The exchange source's websocket candle hint (ccxt.pro ``watch_ohlcv`` in a background
thread): bar closes noticed sooner, bars still fetched through REST from the loopback fake
Aster exchange, polling as the fallback, and no leaked threads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import ClassVar

import pandas as pd
import pytest

from aster_rl.config import DataConfig
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.exchange.watcher import CandleWatcher, WebsocketUnsupported, make_pro_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.sources import ExchangeSource
from aster_rl.storage import load_market
from factories import make_market
from live_helpers import make_db

TF_MS = 5 * 60 * 1000
SKEW = pd.Timedelta(seconds=20)  # the local clock runs this far behind the exchange's
POLL_S = 30.0  # far longer than any test may take per bar: a wait that long means the hint failed
FALLBACK_WARNING = "polling REST meanwhile"


def _cfg(fake) -> DataConfig:
    return DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)


def _client(fake) -> ExchangeClient:
    return ExchangeClient(make_exchange(_cfg(fake)), max_retries=3, retry_backoff_s=0)


def _ws_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("candles-ws")]


class ScriptedSocket:
    """A ccxt.pro-like async client over the fake exchange's clock.

    Every ``every_s`` it pushes the forming candle (same open time: no bar close). When
    ``advance()`` allows, the exchange's clock first moves to 0.5 s into the next bar, so the
    pushed candle has a newer open time: the previous bar has just closed. After ``fail_after``
    pushes it raises like a dropped connection."""

    has: ClassVar[dict[str, bool]] = {"watchOHLCV": True}

    def __init__(self, fake, advance=lambda: False, *, every_s: float = 0.005, fail_after: int | None = None) -> None:
        self.fake = fake
        self.advance = advance
        self.every_s = every_s
        self.fail_after = fail_after
        self.pushes = 0
        self.closed = False
        self.watched: list[tuple[str, str]] = []

    async def watch_ohlcv(self, symbol, timeframe):
        self.watched.append((symbol, timeframe))
        await asyncio.sleep(self.every_s)
        if self.fail_after is not None and self.pushes >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        if self.advance():
            self.fake.set_now((self.fake.now_ms // TF_MS + 1) * TF_MS + 500)
        self.pushes += 1
        open_ms = self.fake.now_ms // TF_MS * TF_MS
        return [[open_ms - TF_MS, 1.0, 1.0, 1.0, 1.0, 0.0], [open_ms, 1.0, 1.0, 1.0, 1.0, 0.0]]

    async def close(self):
        self.closed = True


class Factory:
    """Hands out the given clients in order (the last one again), counting the calls."""

    def __init__(self, *clients) -> None:
        self.clients = list(clients)
        self.calls = 0

    def __call__(self):
        client = self.clients[min(self.calls, len(self.clients) - 1)]
        self.calls += 1
        if isinstance(client, Exception):
            raise client
        return client


def _caught_up(source: ExchangeSource, fake):
    """The socket may move the exchange to the next bar once every closed bar was handed out and the
    stream has polled REST at least once (else the first close could land before that first poll and
    be fetched by it, a thread race, instead of being noticed by the socket)."""
    polls: list[int] = []
    poll = source.poll_new_bars

    def counted_poll():
        bars = poll()
        polls.append(len(bars))
        return bars

    source.poll_new_bars = counted_poll  # type: ignore[method-assign]

    def advance() -> bool:
        last_closed_open = (fake.now_ms // TF_MS - 1) * TF_MS
        return bool(polls) and source.last_emitted is not None and \
            int(source.last_emitted.value // 1_000_000) >= last_closed_open

    return advance


def _take(source: ExchangeSource, n: int, ticks: list | None = None) -> list[pd.Timestamp]:
    def on_tick(price, now):
        if ticks is not None:
            ticks.append(price)
        return True

    source.history()
    out = []
    stream = source.bars(on_tick=on_tick)
    for sb in stream:
        out.append(sb.bar.time)
        if len(out) == n:
            break
    stream.close()
    return out


@pytest.fixture()
def market():
    return make_market(1_000, seed=9)


def test_websocket_notices_bar_closes_sooner_and_rest_stores_the_same_rows(tmp_path, market):
    start = market.candles.index[900] + pd.Timedelta(seconds=30)
    n = 6
    with FakeAsterExchange(market, now=start) as fake:
        db = make_db(tmp_path, "ws.db")
        sleeps: list[float] = []
        source = ExchangeSource(
            _client(fake), db, _cfg(fake), history_bars=700, poll_interval_s=POLL_S,
            clock=lambda: fake.now() - SKEW,  # behind the exchange: the clock alone would not see the closes yet
            sleep=lambda s: (sleeps.append(s), time.sleep(0.005)), websocket=True,
        )
        socket = ScriptedSocket(fake, _caught_up(source, fake))
        source._ws_client_factory = Factory(socket)
        t0 = time.perf_counter()
        got = _take(source, n)
        took = time.perf_counter() - t0
        ws_db_candles = load_market(db, source._cfg).candles

    assert got == list(market.candles.index[900 : 900 + n])  # every bar once, in order
    assert source.early_polls == n  # each close came from the socket, before the local clock reached it
    assert took < POLL_S  # a single poll-interval wait would have taken longer than the whole run
    assert len(sleeps) <= 3  # only while the socket was connecting
    assert socket.watched[0] == ("ASTER/USDT:USDT", "5m") and socket.closed
    assert source.watcher is None and not _ws_threads()

    # the same bars through the plain polling path: identical stored rows (trade counts and taker-buy volume kept)
    with FakeAsterExchange(market, now=start) as fake:
        db2 = make_db(tmp_path, "poll.db")
        source2 = ExchangeSource(_client(fake), db2, _cfg(fake), history_bars=700, poll_interval_s=POLL_S, clock=fake.now,
                                 sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)))
        assert _take(source2, n) == got and source2.early_polls == 0
        poll_db_candles = load_market(db2, source2._cfg).candles
    assert {"trades", "taker_buy_volume"} <= set(ws_db_candles.columns)
    pd.testing.assert_frame_equal(ws_db_candles, poll_db_candles)
    pd.testing.assert_frame_equal(ws_db_candles.loc[got[0] : got[-1]], market.candles.loc[got[0] : got[-1], ws_db_candles.columns],
                                  check_freq=False)


def test_websocket_error_falls_back_to_polling_with_one_warning_and_every_bar_once(tmp_path, market, caplog):
    caplog.set_level(logging.INFO, logger="aster_rl.exchange.watcher")
    with FakeAsterExchange(market, now=market.candles.index[900] + pd.Timedelta(seconds=30)) as fake:
        db = make_db(tmp_path)
        source = ExchangeSource(
            _client(fake), db, _cfg(fake), history_bars=700, poll_interval_s=60.0, clock=lambda: fake.now() - SKEW,
            sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)), websocket=True, ws_retry_s=0.01, ws_max_retry_s=0.05,
        )
        socket = ScriptedSocket(fake, _caught_up(source, fake), fail_after=40)  # a few bars by socket, then the connection drops
        refused = ConnectionRefusedError("connection refused")
        factory = Factory(socket, refused)
        source._ws_client_factory = factory
        source.history()
        got = []
        stream = source.bars()
        for sb in stream:
            got.append(sb.bar.time)
            if len(got) == 14:
                break
        deadline = time.monotonic() + 5
        while factory.calls < 4 and time.monotonic() < deadline:  # several failed reconnects, with backoff
            time.sleep(0.01)
        watcher = source.watcher
        stream.close()

    assert got == list(market.candles.index[900:914])  # every bar once, in order, across the switch
    assert 0 < source.early_polls < 14  # some bars through the socket, the rest by polling
    assert socket.closed and watcher.failures >= 3 and factory.calls >= 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and FALLBACK_WARNING in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per reconnect attempt
    assert "ConnectionResetError" in warnings[0].getMessage()
    assert not _ws_threads()


def test_socket_back_after_an_outage_is_used_again(tmp_path, market, caplog):
    caplog.set_level(logging.INFO, logger="aster_rl.exchange.watcher")
    with FakeAsterExchange(market, now=market.candles.index[900] + pd.Timedelta(seconds=30)) as fake:
        source = ExchangeSource(
            _client(fake), make_db(tmp_path), _cfg(fake), history_bars=700, poll_interval_s=POLL_S,
            clock=lambda: fake.now() - SKEW, sleep=lambda s: time.sleep(0.005), websocket=True, ws_retry_s=0.01,
        )
        first = ScriptedSocket(fake, _caught_up(source, fake), fail_after=0)  # drops at once
        second = ScriptedSocket(fake, _caught_up(source, fake))
        source._ws_client_factory = Factory(first, ConnectionRefusedError("refused"), second)
        got = _take(source, 4)
    assert got == list(market.candles.index[900:904])
    assert source.early_polls == 4 and first.closed and second.closed
    messages = [r.getMessage() for r in caplog.records]
    assert sum(FALLBACK_WARNING in m for m in messages) == 1 and any("delivering again" in m for m in messages)


@pytest.mark.parametrize("unsupported", ["no-watchOHLCV", "no-ccxt.pro-client"])
def test_without_websocket_candles_the_source_polls(tmp_path, market, caplog, unsupported):
    caplog.set_level(logging.INFO, logger="aster_rl.exchange.watcher")

    class NoCandles(ScriptedSocket):
        has: ClassVar[dict[str, bool]] = {"watchOHLCV": False}

    with FakeAsterExchange(market, now=market.candles.index[900] + pd.Timedelta(seconds=30)) as fake:
        if unsupported == "no-watchOHLCV":
            client = NoCandles(fake)
            factory = Factory(client)
        else:
            client = None
            factory = Factory(WebsocketUnsupported("ccxt.pro has no websocket client for 'x'"))
        source = ExchangeSource(_client(fake), make_db(tmp_path), _cfg(fake), history_bars=700, poll_interval_s=60.0,
                                clock=fake.now, sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)),
                                websocket=True, ws_client_factory=factory, ws_retry_s=0.01)
        got = _take(source, 5)
    assert got == list(market.candles.index[900:905]) and source.early_polls == 0
    assert factory.calls == 1  # unsupported: never retried
    if client is not None:
        assert client.closed and not client.watched
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "aster_rl.exchange.watcher"]
    assert len(messages) == 1 and "polling REST only" in messages[0]
    assert not _ws_threads()


def test_websocket_off_starts_no_thread(tmp_path, market):
    with FakeAsterExchange(market, now=market.candles.index[900] + pd.Timedelta(seconds=30)) as fake:
        source = ExchangeSource(_client(fake), make_db(tmp_path), _cfg(fake), history_bars=700, poll_interval_s=60.0,
                                clock=fake.now, sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)))
        source.history()
        stream = source.bars()
        assert next(stream).bar.time == market.candles.index[900]
        assert source.watcher is None and not _ws_threads()
        stream.close()


def test_real_ccxt_pro_client_against_the_fake_without_a_socket_endpoint_falls_back(tmp_path, market, caplog):
    """The default factory builds ccxt.pro's aster client pointed at the fake; the fake answers
    the websocket upgrade with 404, so the source warns once and polls."""
    caplog.set_level(logging.INFO, logger="aster_rl.exchange.watcher")
    with FakeAsterExchange(market, now=market.candles.index[900] + pd.Timedelta(seconds=30)) as fake:
        ws = make_pro_exchange(_cfg(fake))
        assert ws.has["watchOHLCV"]
        assert ws.urls["api"]["ws"]["public"]["swap"] == fake.url.replace("http://", "ws://") + "/stream"
        assert ws.urls["api"]["fapiPublic"] == fake.url + "/fapi"
        source = ExchangeSource(_client(fake), make_db(tmp_path), _cfg(fake), history_bars=700, poll_interval_s=60.0,
                                clock=fake.now, sleep=lambda s: fake.set_now(fake.now_ms + int(s * 1000)),
                                websocket=True, ws_retry_s=0.05)
        source.history()
        stream = source.bars()
        got = [next(stream).bar.time]
        deadline = time.monotonic() + 10
        while source.watcher.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        got += [next(stream).bar.time for _ in range(3)]
        failures = source.watcher.failures
        stream.close()
        assert any(r.path == "/stream" for r in fake.requests)  # it did try the socket
    assert got == list(market.candles.index[900:904])
    assert failures >= 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "aster_rl.exchange.watcher"]
    assert len(warnings) == 1 and FALLBACK_WARNING in warnings[0] and "NetworkError" in warnings[0]
    assert not _ws_threads()


def test_make_pro_exchange_unknown_id_is_unsupported():
    with pytest.raises(WebsocketUnsupported, match="no websocket client"):
        make_pro_exchange(DataConfig(), exchange_id="no_such_exchange")


def test_watcher_thread_stops_on_close_while_waiting_on_a_silent_socket():
    class Silent:
        closed = False
        waiting = threading.Event()

        async def watch_ohlcv(self, symbol, timeframe):
            self.waiting.set()
            await asyncio.Event().wait()  # never answers

        async def close(self):
            self.closed = True

    client = Silent()
    watcher = CandleWatcher(lambda: client, "ASTER/USDT:USDT", "5m").start()
    assert client.waiting.wait(2) and watcher.running and len(_ws_threads()) == 1
    assert watcher.latest_open_ms is None and not watcher.live
    t0 = time.perf_counter()
    watcher.close()
    assert time.perf_counter() - t0 < 2
    assert not watcher.running and client.closed and not _ws_threads()
    watcher.close()  # idempotent


def test_watcher_wait_returns_on_a_newer_candle_and_when_the_socket_drops():
    gate = threading.Event()

    class Pushes:
        def __init__(self):
            self.n = 0

        async def watch_ohlcv(self, symbol, timeframe):
            while not gate.is_set() and self.n >= 1:
                await asyncio.sleep(0.005)
            self.n += 1
            if self.n == 3:
                raise OSError("socket closed")
            return [[self.n * TF_MS, 1, 1, 1, 1, 0]]

        async def close(self):
            pass

    with CandleWatcher(Pushes, "ASTER/USDT:USDT", "5m", retry_s=30) as watcher:
        deadline = time.monotonic() + 2
        while not watcher.live and time.monotonic() < deadline:
            time.sleep(0.005)
        assert watcher.live and watcher.latest_open_ms == TF_MS
        assert not watcher.wait_for_open(2 * TF_MS, 0.05)  # nothing newer yet: times out
        gate.set()
        t0 = time.perf_counter()
        assert watcher.wait_for_open(2 * TF_MS, 10)
        assert time.perf_counter() - t0 < 2 and watcher.latest_open_ms == 2 * TF_MS
        t0 = time.perf_counter()
        assert not watcher.wait_for_open(3 * TF_MS, 10)  # the drop ends the wait early
        assert time.perf_counter() - t0 < 2 and not watcher.live and watcher.failures == 1
    assert not watcher.running
