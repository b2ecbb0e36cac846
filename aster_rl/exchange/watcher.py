"""The exchange's websocket side: :class:`CandleWatcher` runs ccxt.pro's ``watch_ohlcv`` in a
background thread with its own event loop: a hint that a new candle has opened (so the
previous one has closed), never a source of stored rows. :func:`make_pro_exchange` builds
the ccxt.pro client it uses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aster_rl.config import DataConfig
from aster_rl.errors import ExchangeError
from aster_rl.exchange.client import point_urls_at

logger = logging.getLogger(__name__)


class WebsocketUnsupported(ExchangeError):
    """The exchange (or this ccxt install) has no websocket candle stream."""


def _point_ws_urls_at(api: Any, base_url: str) -> Any:
    """Like :func:`point_urls_at`, with ``ws://`` / ``wss://`` for an ``http://`` / ``https://`` base."""
    scheme = {"http": "ws", "https": "wss"}.get(urlsplit(base_url).scheme, urlsplit(base_url).scheme)
    pointed = point_urls_at(api, base_url)

    def rescheme(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rescheme(v) for k, v in value.items()}
        if isinstance(value, str) and "://" in value:
            return urlunsplit((scheme, *urlsplit(value)[1:]))
        return value

    return rescheme(pointed)


def make_pro_exchange(data_cfg: DataConfig, *, exchange_id: str | None = None) -> Any:
    """A ccxt.pro (websocket) client for public market streams: no keys, swap markets.

    With ``data_cfg.api_url`` set, the REST and websocket URLs both point at that host.
    Raises :class:`WebsocketUnsupported` when ccxt.pro is missing or has no such exchange.
    Create it inside the event loop that will use it (as :class:`CandleWatcher` does).
    """
    exchange_id = exchange_id or data_cfg.exchange_id
    try:
        import ccxt.pro as ccxtpro
    except ImportError as e:  # pragma: no cover - ccxt ships ccxt.pro since 1.95
        raise WebsocketUnsupported(f"ccxt.pro is not available ({e})") from e
    cls = getattr(ccxtpro, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise WebsocketUnsupported(f"ccxt.pro has no websocket client for {exchange_id!r}")
    exchange = cls({"enableRateLimit": True, "options": {"defaultType": "swap", "builderFee": False}})
    if data_cfg.api_url:
        api = dict(exchange.urls["api"])
        ws = api.pop("ws", None)
        api = point_urls_at(api, data_cfg.api_url)
        if ws is not None:
            api["ws"] = _point_ws_urls_at(ws, data_cfg.api_url)
        exchange.urls["api"] = api
    return exchange


class CandleWatcher:
    """The newest candle open time seen on the exchange's websocket, for one symbol and timeframe.

    ``client_factory()`` returns a ccxt.pro-like client (``async watch_ohlcv(symbol, timeframe)``
    returning ``[[open_ms, o, h, l, c, v], ...]`` and ``async close()``); it is called inside the
    watcher's own event loop, in a background thread. A candle with a newer open time means the
    previous candle has closed (ccxt's unified candles drop Aster's "kline closed" flag, so the
    open time is the signal). The watcher only hints: closed bars are still fetched over REST.

    On any error the client is closed, one warning is logged per outage (callers poll REST
    meanwhile) and the socket is retried after ``retry_s``, doubling up to ``max_retry_s``.
    A client without ``has["watchOHLCV"]`` (or :class:`WebsocketUnsupported` from the factory)
    ends the watcher with one warning: :attr:`unsupported` is then True.
    """

    def __init__(
        self,
        client_factory: Callable[[], Any],
        symbol: str,
        timeframe: str,
        *,
        retry_s: float = 5.0,
        max_retry_s: float = 300.0,
    ) -> None:
        self._factory = client_factory
        self.symbol = symbol
        self.timeframe = timeframe
        self.retry_s = float(retry_s)
        self.max_retry_s = float(max_retry_s)
        self._cond = threading.Condition()
        self._latest_open_ms: int | None = None
        self._live = False
        self._closed = False
        self.unsupported = False
        self.failures = 0
        self.messages = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ------------------------------------------------------------ caller side (any thread)

    def start(self) -> CandleWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"candles-ws {self.symbol} {self.timeframe}", daemon=True)
            self._thread.start()
            self._ready.wait()
        return self

    @property
    def latest_open_ms(self) -> int | None:
        """The newest candle open time (ms) seen on the socket, or None."""
        with self._cond:
            return self._latest_open_ms

    @property
    def live(self) -> bool:
        """True while the socket delivers (since the last successful message, until an error)."""
        with self._cond:
            return self._live

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_for_open(self, open_ms: int, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for a candle opening at or after ``open_ms``.

        Returns early (False) when the socket goes down or the watcher is closed."""
        def ready() -> bool:
            return self._seen_at_least(open_ms) or not self._live or self._closed

        with self._cond:
            self._cond.wait_for(ready, timeout=max(0.0, float(timeout_s)))
            return self._seen_at_least(open_ms)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the socket and join the thread (idempotent)."""
        with self._cond:
            self._closed = True
            self._live = False
            self._cond.notify_all()
        loop, task, thread = self._loop, self._task, self._thread
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has already finished
                pass
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("websocket candles %s %s: watcher thread still running after %.1fs", self.symbol, self.timeframe, timeout_s)

    def __enter__(self) -> CandleWatcher:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ watcher thread

    def _seen_at_least(self, open_ms: int) -> bool:
        return self._latest_open_ms is not None and self._latest_open_ms >= open_ms

    def _set_live(self, live: bool) -> None:
        with self._cond:
            self._live = live and not self._closed
            self._cond.notify_all()

    def _record(self, candles: Any) -> None:
        newest = None
        for c in candles or ():
            try:
                t = int(c[0])
            except (TypeError, ValueError, IndexError):
                continue
            newest = t if newest is None else max(newest, t)
        with self._cond:
            self.messages += 1
            if newest is not None and (self._latest_open_ms is None or newest > self._latest_open_ms):
                self._latest_open_ms = newest
            self._live = not self._closed
            self._cond.notify_all()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._task = loop.create_task(self._watch())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - _watch handles its own errors
            logger.exception("websocket candles %s %s: watcher failed", self.symbol, self.timeframe)
        finally:
            self._ready.set()
            self._set_live(False)
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _watch(self) -> None:
        where = f"websocket candles {self.symbol} {self.timeframe}"
        delay = self.retry_s
        warned = False
        while not self._closed:
            client = None
            try:
                client = self._factory()
                has = getattr(client, "has", None)
                if isinstance(has, dict) and not has.get("watchOHLCV"):
                    raise WebsocketUnsupported(f"{getattr(client, 'id', 'the exchange')} has no watchOHLCV")
                while not self._closed:
                    candles = await client.watch_ohlcv(self.symbol, self.timeframe)
                    self._record(candles)
                    if warned:
                        logger.info("%s: delivering again", where)
                    warned, delay = False, self.retry_s
            except asyncio.CancelledError:
                raise
            except WebsocketUnsupported as e:
                self.unsupported = True
                logger.warning("%s: unavailable (%s); polling REST only", where, e)
                return
            except Exception as e:  # any socket failure: poll REST meanwhile, retry later
                self.failures += 1
                self._set_live(False)
                detail = (str(e).strip() or type(e).__name__)[:300]
                if not warned:
                    logger.warning("%s: %s (%s); polling REST meanwhile, reconnecting in %.1fs with backoff",
                                   where, type(e).__name__, detail, delay)
                    warned = True
                else:
                    logger.debug("%s: reconnect failed (%s); next try in %.1fs", where, detail, delay)
            finally:
                if client is not None:
                    try:
                        await client.close()
                    except Exception as e:  # closing a broken socket may fail too
                        logger.debug("%s: close failed (%s)", where, e)
            if self._closed:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_s)
