"""A fake Aster futures exchange on loopback, for tests, demos and offline runs.

It speaks the REST endpoints ccxt's ``aster`` client calls, so the *real* ccxt client can
be pointed at it (``DataConfig.api_url = fake.url``)::

    with FakeAsterExchange(bundle) as fake:
        cfg = DataConfig(api_url=fake.url, retry_backoff_s=0)
        client = ExchangeClient.from_config(cfg)

Public: ``/fapi/v3/exchangeInfo`` and ``/api/v3/exchangeInfo`` (``load_markets``),
``/fapi/v3/klines`` (12-column rows; ``startTime``/``endTime``/``limit`` <= 1500; other
intervals are resampled from the served timeframe), ``/fapi/v3/fundingRate``,
``/fapi/v3/fundingInfo``, ``/fapi/v3/depth``, ``/fapi/v3/trades``, ``/fapi/v3/aggTrades``,
``/fapi/v3/time``, ``/fapi/v3/ticker/price``, ``/fapi/v3/ticker/bookTicker``,
``/fapi/v3/premiumIndex``. Signed (any signature accepted; see
:mod:`aster_rl.testing.fake_account`): ``balance``, ``account``, ``positionRisk``,
``leverageBracket``, ``order`` (POST / GET / DELETE, ``newClientOrderId`` never reused),
``openOrders``, ``allOpenOrders``, ``userTrades``, ``leverage``, ``marginType``.

The fake has its own clock (``fake.now_ms``, frozen unless set): nothing after it is
served. Like a real exchange, klines include the still-forming candle (the one whose
open is at or before the clock but whose close is after it). ``fail_next`` injects
error replies (also lost replies and timeouts), ``gap_to`` a price jump, the account's
``fill_partly_next`` / ``close_externally`` a partial fill and a close by someone else;
``requests`` is a log of every request received.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, overload
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from aster_rl.errors import DataError
from aster_rl.testing.fake_account import FakeAccount, FakeApiError, MarketView
from aster_rl.data.market import MarketBundle
from aster_rl.data.timeframes import resample_candles, timeframe_to_ms

logger = logging.getLogger(__name__)

KLINES_MAX_LIMIT = 1500
FUNDING_MAX_LIMIT = 1000
TRADES_MAX_LIMIT = 1000
FUNDING_INTERVAL_HOURS = {"ASTERUSDT": 4, "BTCUSDT": 8, "ETHUSDT": 8}

# per market id: tick size, step size, min notional, price precision, quantity precision
MARKET_SPECS: dict[str, tuple[str, str, str, int, int]] = {
    "ASTERUSDT": ("0.0001", "0.01", "5", 4, 2),
    "BTCUSDT": ("0.1", "0.001", "5", 1, 3),
    "ETHUSDT": ("0.01", "0.001", "5", 2, 3),
}


def market_id(symbol: str) -> str:
    """``'ASTER/USDT:USDT'`` or ``'ASTERUSDT'`` -> ``'ASTERUSDT'``."""
    return symbol.split(":")[0].replace("/", "").upper()


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    status: int = 200


@dataclass
class _Fault:
    remaining: int
    status: int
    code: int | None
    msg: str
    path: str | None
    after: int = 0  # matching requests still answered normally before the fault starts
    method: str | None = None
    processed: bool = False  # the request is carried out, only its reply is the error (a lost reply)
    delay_s: float = 0.0  # the reply waits this long (longer than the client's timeout: a timeout)


class _Series:
    """One symbol's candles in one timeframe, with kline rows pre-encoded as JSON text."""

    def __init__(self, candles: pd.DataFrame, timeframe: str) -> None:
        tf_ms = timeframe_to_ms(timeframe)
        self.open_ms = (candles.index.as_unit("ms").asi8).astype("int64")
        n = len(candles)
        col = lambda name, default: candles[name].to_numpy(float) if name in candles.columns else np.full(n, default)  # noqa: E731
        o, h, low, c, v = (candles[k].to_numpy(float) for k in ("open", "high", "low", "close", "volume"))
        qv = col("quote_volume", np.nan)
        qv = np.where(np.isnan(qv), v * c, qv)
        trades = col("trades", 0.0).astype("int64")
        tbv = col("taker_buy_volume", np.nan)
        tbv = np.where(np.isnan(tbv), v / 2, tbv)
        self.close = c
        self.rows = [
            f'[{t},"{o[i]:.8g}","{h[i]:.8g}","{low[i]:.8g}","{c[i]:.8g}","{v[i]:.8g}",{t + tf_ms - 1},'
            f'"{qv[i]:.8g}",{trades[i]},"{tbv[i]:.8g}","{tbv[i] * c[i]:.8g}","0"]'
            for i, t in enumerate(self.open_ms.tolist())
        ]


class FakeAsterExchange(MarketView):
    """A loopback HTTP server that looks like Aster's futures REST API to ccxt.

    ``market`` is a :class:`MarketBundle` (candles -> its symbol, ``btc`` -> BTCUSDT,
    ``eth`` -> ETHUSDT) or a plain candle DataFrame (served as ``symbol``). More candle
    series can be given in ``candles`` (symbol -> frame); ``funding``, ``trades`` and
    ``book`` override the bundle's.
    """

    def __init__(
        self,
        market: MarketBundle | pd.DataFrame | None = None,
        *,
        symbol: str = "ASTER/USDT:USDT",
        timeframe: str | None = None,
        candles: Mapping[str, pd.DataFrame] | None = None,
        funding: pd.DataFrame | None = None,
        trades: pd.DataFrame | None = None,
        book: pd.DataFrame | None = None,
        now: pd.Timestamp | str | int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        balance_usdt: float = 10_000.0,
    ) -> None:
        frames: dict[str, pd.DataFrame] = {}
        if isinstance(market, MarketBundle):
            symbol = market.symbol
            timeframe = timeframe or market.timeframe
            frames[market_id(symbol)] = market.candles
            if market.btc is not None:
                frames["BTCUSDT"] = market.btc
            if market.eth is not None:
                frames["ETHUSDT"] = market.eth
            funding = market.funding if funding is None else funding
            trades = market.trades if trades is None else trades
            book = market.book if book is None else book
        elif isinstance(market, pd.DataFrame):
            frames[market_id(symbol)] = market
        elif market is not None:
            raise TypeError(f"FakeAsterExchange: market must be a MarketBundle or a DataFrame, not {type(market).__name__}")
        for sym, frame in (candles or {}).items():
            frames[market_id(sym)] = frame
        if not frames:
            raise DataError("FakeAsterExchange: no candles to serve; pass a MarketBundle, a DataFrame or candles={...}")
        self.timeframe = timeframe or "5m"
        self.tf_ms = timeframe_to_ms(self.timeframe)
        self.symbol_id = market_id(symbol)
        self._frames = frames
        self._series: dict[tuple[str, str], _Series] = {}
        for mid, frame in frames.items():
            if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
                raise DataError(f"FakeAsterExchange: candles for {mid} need a tz-aware UTC DatetimeIndex")
            self._series[(mid, self.timeframe)] = _Series(frame, self.timeframe)
        self.funding = funding
        if trades is not None and "trade_id" not in trades.columns:
            trades = trades.assign(trade_id=[str(i + 1) for i in range(len(trades))])
        self.trades = trades
        self.book = book
        last_open = max(int(s.open_ms[-1]) for s in self._series.values() if len(s.open_ms))
        self.now_ms: int = _to_ms(now) if now is not None else last_open + self.tf_ms
        self.host = host
        self._port = port
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._price_override: dict[str, float] = {}
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/fapi/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/fapi/v1/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/exchangeInfo"): lambda p: {"timezone": "UTC", "serverTime": self.now_ms, "symbols": []},
            ("GET", "/fapi/v3/time"): lambda p: {"serverTime": self.now_ms},
            ("GET", "/api/v3/time"): lambda p: {"serverTime": self.now_ms},
            ("GET", "/fapi/v3/ping"): lambda p: {},
            ("GET", "/fapi/v3/klines"): self._klines,
            ("GET", "/fapi/v1/klines"): self._klines,
            ("GET", "/fapi/v3/fundingRate"): self._funding_rate,
            ("GET", "/fapi/v3/fundingInfo"): self._funding_info,
            ("GET", "/fapi/v3/depth"): self._depth,
            ("GET", "/fapi/v3/trades"): self._trades,
            ("GET", "/fapi/v3/aggTrades"): self._agg_trades,
            ("GET", "/fapi/v3/ticker/price"): self._ticker_price,
            ("GET", "/fapi/v3/ticker/bookTicker"): self._book_ticker,
            ("GET", "/fapi/v3/premiumIndex"): self._premium_index,
        }
        self.account = FakeAccount(self, balance_usdt=balance_usdt)
        self._routes.update(self.account.routes())

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAsterExchange is not running; use it as a context manager or call start()")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FakeAsterExchange:
        if self._server is not None:
            return self
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((self.host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-aster", daemon=True)
        self._thread.start()
        logger.info("fake Aster exchange at %s (clock %s)", self.url, self.now())
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeAsterExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ test controls

    def now(self) -> pd.Timestamp:
        """The fake's clock (use it as the download's clock)."""
        return pd.Timestamp(self.now_ms, unit="ms", tz="UTC")

    def set_now(self, when: pd.Timestamp | str | int) -> None:
        """Move the clock; resting orders (stops, targets, limits) crossed by the new last price fill."""
        self.now_ms = _to_ms(when)
        for mid in self._frames:
            self.account.on_price(mid, self.last_price(mid))

    def fail_next(
        self, n: int = 1, status: int = 503, *, code: int | None = None, msg: str = "", path: str | None = None, after: int = 0,
        method: str | None = None, processed: bool = False, delay_s: float = 0.0,
    ) -> None:
        """Answer the next ``n`` requests (to ``path`` and ``method`` only, if given) with ``status``,
        after letting ``after`` of them through (``fail_next(10**9, after=2)``: fail for good after two).

        With ``code`` the body is Aster's JSON error ``{"code": code, "msg": msg}`` (what
        ccxt maps to a specific error); without it the body is plain text, so ccxt maps
        the HTTP status (503 -> ExchangeNotAvailable, 429 -> RateLimitExceeded).
        ``processed=True``: the request is carried out first and only its reply is lost (an
        order placed behind a 503). ``delay_s``: the reply comes that late (a client timeout).
        """
        with self._lock:
            self._faults.append(
                _Fault(n, status, code, msg or f"injected {status}", path, after, method, processed, delay_s)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # ------------------------------------------------------------ dispatch

    def _handle(self, method: str, raw_path: str, body: str) -> tuple[int, str]:
        parts = urlsplit(raw_path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if body:
            params.update(dict(parse_qsl(body, keep_blank_values=True)))
        path = parts.path
        record = RecordedRequest(method, path, params)
        with self._lock:
            self.requests.append(record)
            fault = next(
                (f for f in self._faults
                 if f.remaining > 0 and (f.path is None or f.path == path) and (f.method is None or f.method == method)),
                None,
            )
            if fault is not None and fault.after > 0:
                fault.after -= 1
                fault = None
            elif fault is not None:
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
        if fault is not None and fault.processed:
            self._route(method, path, params, record)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None:
            record.status = fault.status
            if fault.code is not None:
                return fault.status, json.dumps({"code": fault.code, "msg": fault.msg})
            return fault.status, fault.msg
        return self._route(method, path, params, record)

    def _route(self, method: str, path: str, params: dict[str, str], record: RecordedRequest) -> tuple[int, str]:
        route = self._routes.get((method, path))
        if route is None:
            record.status = 404
            return 404, json.dumps({"code": -1000, "msg": f"fake exchange: no route {method} {path}"})
        try:
            result = route(params)
        except FakeApiError as e:
            record.status = e.status
            return e.status, json.dumps({"code": e.code, "msg": e.msg})
        except Exception as e:  # a bug in the fake: answer 500 and log it, never hang the client
            logger.exception("fake exchange: %s %s failed", method, path)
            record.status = 500
            return 500, json.dumps({"code": -1000, "msg": f"fake exchange internal error: {e}"})
        return 200, result if isinstance(result, str) else json.dumps(result)

    # ------------------------------------------------------------ public endpoints

    def _series_for(self, mid: str, interval: str) -> _Series:
        key = (mid, interval)
        with self._lock:
            series = self._series.get(key)
            if series is not None:
                return series
            if (mid, self.timeframe) not in self._series:
                raise FakeApiError(400, -1121, "Invalid symbol.")
            try:
                tf_ms = timeframe_to_ms(interval)
            except DataError:
                raise FakeApiError(400, -1120, f"Invalid interval {interval!r}.") from None
            if tf_ms < self.tf_ms or tf_ms % self.tf_ms:
                raise FakeApiError(400, -1120, f"Interval {interval} cannot be built from {self.timeframe} bars.")
            frame = self._frames[mid]
            # the still-forming higher bucket is rebuilt from the bars served so far on each call: keep it simple
            # and serve only complete higher-timeframe buckets
            series = _Series(resample_candles(frame, self.timeframe, interval), interval)
            self._series[key] = series
            return series

    def _klines(self, p: dict[str, str]) -> str:
        mid = _required(p, "symbol")
        interval = _required(p, "interval")
        series = self._series_for(mid, interval)
        limit = _int(p, "limit", 500)
        if not 1 <= limit <= KLINES_MAX_LIMIT:
            raise FakeApiError(400, -1130, f"limit {limit} outside 1..{KLINES_MAX_LIMIT}")
        opens = series.open_ms
        visible_end = int(np.searchsorted(opens, self.now_ms, side="right"))  # open <= now: includes the forming bar
        end_ms = _int(p, "endTime", None)
        if end_ms is not None:
            visible_end = min(visible_end, int(np.searchsorted(opens, end_ms, side="right")))
        start_ms = _int(p, "startTime", None)
        if start_ms is not None:
            lo = int(np.searchsorted(opens, start_ms, side="left"))
            hi = min(visible_end, lo + limit)
        else:
            hi = visible_end
            lo = max(0, hi - limit)
        return "[" + ",".join(series.rows[lo:hi]) + "]" if hi > lo else "[]"

    def _visible(self, frame: pd.DataFrame | None, start_ms: int | None, end_ms: int | None) -> pd.DataFrame | None:
        if frame is None or not len(frame):
            return None
        ms = frame.index.as_unit("ms").asi8
        mask = ms <= self.now_ms
        if start_ms is not None:
            mask &= ms >= start_ms
        if end_ms is not None:
            mask &= ms <= end_ms
        return frame[mask]

    def _funding_rate(self, p: dict[str, str]) -> list[dict[str, Any]]:
        mid = p.get("symbol", self.symbol_id)
        limit = _int(p, "limit", 100)
        if not 1 <= limit <= FUNDING_MAX_LIMIT:
            raise FakeApiError(400, -1130, f"limit {limit} outside 1..{FUNDING_MAX_LIMIT}")
        if mid != self.symbol_id:
            return []
        frame = self._visible(self.funding, _int(p, "startTime", None), _int(p, "endTime", None))
        if frame is None:
            return []
        frame = frame.iloc[:limit] if "startTime" in p else frame.iloc[-limit:]
        ms = frame.index.as_unit("ms").asi8.tolist()
        rates = frame["funding_rate"].to_numpy(float)
        marks = frame["mark_price"].to_numpy(float) if "mark_price" in frame.columns else np.full(len(frame), np.nan)
        out = []
        for t, r, m in zip(ms, rates, marks):
            row = {"symbol": mid, "fundingTime": t, "fundingRate": f"{r:.8f}"}
            if np.isfinite(m):
                row["markPrice"] = f"{m:.8g}"
            out.append(row)
        return out

    def _funding_info(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "symbol": mid,
                "interestRate": "0.00010000",
                "time": self.now_ms,
                "fundingIntervalHours": FUNDING_INTERVAL_HOURS.get(mid, 8),
                "fundingFeeCap": 0.02,
                "fundingFeeFloor": -0.02,
            }
            for mid in self._frames
        ]

    def gap_to(self, price: float | None, mid: str | None = None) -> None:
        """Trade at ``price`` now (a gap: resting orders it crosses fill at it, not at their
        trigger); None goes back to the candles' price."""
        mid = mid or self.symbol_id
        with self._lock:
            if price is None:
                self._price_override.pop(mid, None)
            else:
                self._price_override[mid] = float(price)
        self.account.on_price(mid, self.last_price(mid))

    def market_ids(self) -> list[str]:
        """The exchange ids of the markets it serves (its own symbol and any companions)."""
        return list(self._frames)

    def last_price(self, mid: str | None = None) -> float:
        """The close of the newest bar visible at the fake's clock (or the price of a gap)."""
        override = self._price_override.get(mid or self.symbol_id)
        if override is not None:
            return override
        series = self._series_for(mid or self.symbol_id, self.timeframe)
        i = max(0, int(np.searchsorted(series.open_ms, self.now_ms, side="right")) - 1)
        return float(series.close[i])

    def _book_levels(self, mid: str, n: int) -> tuple[list[list[str]], list[list[str]]]:
        tick = float(MARKET_SPECS.get(mid, ("0.0001",))[0])
        row = None
        if mid == self.symbol_id:
            visible = self._visible(self.book, None, None)
            if visible is not None and len(visible):
                row = visible.iloc[-1]
        if row is not None:
            bid, ask = float(row["best_bid"]), float(row["best_ask"])
            sides = (
                (bid, -tick, float(row["bid_depth_usd"]), float(row["largest_bid_usd"])),
                (ask, tick, float(row["ask_depth_usd"]), float(row["largest_ask_usd"])),
            )
        else:
            mid_price = self.last_price(mid)
            bid, ask = mid_price - tick / 2, mid_price + tick / 2
            sides = ((bid, -tick, 200_000.0, 20_000.0), (ask, tick, 200_000.0, 20_000.0))
        out = []
        for best, step, depth_usd, largest_usd in sides:
            # level 0 holds the largest order; the rest of the depth is spread evenly over the other levels
            rest = max(depth_usd - largest_usd, 0.0) / max(n - 1, 1)
            levels = []
            for k in range(n):
                price = best + k * step
                notional = largest_usd if k == 0 else min(rest, largest_usd)
                if price <= 0 or notional <= 0:
                    continue
                levels.append([f"{price:.8g}", f"{notional / price:.8g}"])
            out.append(levels)
        return out[0], out[1]

    def _depth(self, p: dict[str, str]) -> dict[str, Any]:
        mid = _required(p, "symbol")
        if mid not in self._frames:
            raise FakeApiError(400, -1121, "Invalid symbol.")
        limit = _int(p, "limit", 20)
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise FakeApiError(400, -4021, f"Invalid depth limit {limit}.")
        bids, asks = self._book_levels(mid, min(limit, 20))
        return {"lastUpdateId": self.now_ms, "E": self.now_ms, "T": self.now_ms, "bids": bids, "asks": asks}

    def _trade_rows(self, p: dict[str, str], max_limit: int) -> pd.DataFrame:
        mid = _required(p, "symbol")
        if mid not in self._frames:
            raise FakeApiError(400, -1121, "Invalid symbol.")
        limit = _int(p, "limit", 500)
        if not 1 <= limit <= max_limit:
            raise FakeApiError(400, -1130, f"limit {limit} outside 1..{max_limit}")
        frame = self._visible(self.trades if mid == self.symbol_id else None, _int(p, "startTime", None), _int(p, "endTime", None))
        if frame is None:
            return pd.DataFrame(columns=["trade_id", "price", "amount", "side"])
        return frame.iloc[:limit] if "startTime" in p else frame.iloc[-limit:]

    def _trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        frame = self._trade_rows(p, TRADES_MAX_LIMIT)
        out = []
        for ts, row in frame.iterrows():
            price, qty = float(row["price"]), float(row["amount"])
            out.append(
                {
                    "id": str(row["trade_id"]),
                    "price": f"{price:.8g}",
                    "qty": f"{qty:.8g}",
                    "quoteQty": f"{price * qty:.8g}",
                    "time": int(ts.value // 1_000_000),
                    "isBuyerMaker": row["side"] == "sell",  # the taker sold into a resting buy
                }
            )
        return out

    def _agg_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        frame = self._trade_rows(p, TRADES_MAX_LIMIT)
        out = []
        for i, (ts, row) in enumerate(frame.iterrows()):
            tid = int(row["trade_id"]) if str(row["trade_id"]).isdigit() else i
            out.append(
                {
                    "a": tid,
                    "p": f"{float(row['price']):.8g}",
                    "q": f"{float(row['amount']):.8g}",
                    "f": tid,
                    "l": tid,
                    "T": int(ts.value // 1_000_000),
                    "m": row["side"] == "sell",
                }
            )
        return out

    def _ticker_price(self, p: dict[str, str]) -> Any:
        rows = [{"symbol": mid, "price": f"{self.last_price(mid):.8g}", "time": self.now_ms} for mid in self._frames]
        return _one_or_all(rows, p)

    def _book_ticker(self, p: dict[str, str]) -> Any:
        rows = []
        for mid in self._frames:
            bids, asks = self._book_levels(mid, 1)
            rows.append(
                {"symbol": mid, "bidPrice": bids[0][0], "bidQty": bids[0][1], "askPrice": asks[0][0], "askQty": asks[0][1], "time": self.now_ms}
            )
        return _one_or_all(rows, p)

    def _premium_index(self, p: dict[str, str]) -> Any:
        rows = []
        for mid in self._frames:
            interval_ms = FUNDING_INTERVAL_HOURS.get(mid, 8) * 3_600_000
            rate = 0.0001
            if mid == self.symbol_id:
                visible = self._visible(self.funding, None, None)
                if visible is not None and len(visible):
                    rate = float(visible["funding_rate"].iloc[-1])
            price = self.last_price(mid)
            rows.append(
                {
                    "symbol": mid,
                    "markPrice": f"{price:.8g}",
                    "indexPrice": f"{price:.8g}",
                    "lastFundingRate": f"{rate:.8f}",
                    "interestRate": "0.00010000",
                    "nextFundingTime": (self.now_ms // interval_ms + 1) * interval_ms,
                    "time": self.now_ms,
                }
            )
        return _one_or_all(rows, p)

    def _exchange_info(self, p: dict[str, str]) -> dict[str, Any]:
        symbols = []
        for mid in self._frames:
            tick, step, min_notional, price_prec, qty_prec = MARKET_SPECS.get(mid, ("0.0001", "0.01", "5", 4, 2))
            base = mid[:-4] if mid.endswith("USDT") else mid
            symbols.append(
                {
                    "symbol": mid,
                    "pair": mid,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1758178800000,
                    "status": "TRADING",
                    "baseAsset": base,
                    "quoteAsset": "USDT",
                    "marginAsset": "USDT",
                    "pricePrecision": price_prec,
                    "quantityPrecision": qty_prec,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                        {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "10000000"},
                        {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": step, "maxQty": "1000000"},
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                        {"filterType": "MIN_NOTIONAL", "notional": min_notional},
                        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.5", "multiplierDown": "0.5", "multiplierDecimal": 4},
                    ],
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
            "assets": [{"asset": "USDT", "marginAvailable": True}],
            "symbols": symbols,
        }


def _to_ms(when: pd.Timestamp | str | int) -> int:
    if isinstance(when, (int, np.integer)):
        return int(when)
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def _one_or_all(rows: list[dict[str, Any]], p: dict[str, str]) -> Any:
    """The row of the requested ``symbol``, or every row when none is asked for."""
    if "symbol" not in p:
        return rows
    match = [r for r in rows if r["symbol"] == p["symbol"]]
    if not match:
        raise FakeApiError(400, -1121, "Invalid symbol.")
    return match[0]


def _required(p: dict[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise FakeApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


@overload
def _int(p: dict[str, str], name: str, default: int) -> int: ...


@overload
def _int(p: dict[str, str], name: str, default: None) -> int | None: ...


def _int(p: dict[str, str], name: str, default: int | None) -> int | None:
    """Parameter ``name`` as an int (``default`` when absent); -1100 when it is not one."""
    value = p.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise FakeApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


def _make_handler(fake: FakeAsterExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, text = fake._handle(method, self.path, body)
            payload = text.encode()
            is_json = text[:1] in "[{" if text else False
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if is_json else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                self.close_connection = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("fake exchange: " + format, *args)

    return Handler
