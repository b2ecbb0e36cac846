"""The exchange boundary over REST (ccxt); only this room imports ccxt.

:func:`make_exchange` builds a ccxt client (``aster`` by default, any ccxt exchange id
works) and :class:`ExchangeClient` wraps it with the calls the project needs, returning
DataFrames in the conventions of :mod:`aster_rl.data.market` and raising the project's own
errors:

- ``ccxt.NetworkError`` and its family (rate limits, DDoS protection, exchange not
  available, request timeouts) -> :class:`TemporaryExchangeError`, retried with backoff;
- ``ccxt.OrderNotFound`` -> :class:`OrderNotFound` (the exchange never received the order);
- ``ccxt.InsufficientFunds`` / ``ccxt.InvalidOrder`` -> :class:`OrderRejected`;
- any other ccxt error -> :class:`ExchangeError`.

On Aster, ccxt adds a builder fee of its own to every swap order (and approves the
builder on the first private call) unless ``options.builderFee`` is ``False``; the
project always turns it off.

The websocket side (ccxt.pro) is :mod:`aster_rl.exchange.watcher`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import ccxt
import numpy as np
import pandas as pd

from aster_rl.config import DataConfig, Secrets, load_secrets
from aster_rl.errors import ConfigError, ExchangeError, OrderNotFound, OrderRejected, TemporaryExchangeError
from aster_rl.data.market import BOOK_COLUMNS

logger = logging.getLogger(__name__)

T = TypeVar("T")

KLINES_MAX_LIMIT = 1500
FUNDING_MAX_LIMIT = 1000
TRADES_MAX_LIMIT = 1000
TRADE_COLUMNS = ("trade_id", "price", "amount", "side", "notional_usd")
KLINE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume")

_TEMPORARY = (ccxt.NetworkError,)  # RateLimitExceeded, DDoSProtection, ExchangeNotAvailable, RequestTimeout, ...
_REJECTED = (ccxt.InsufficientFunds, ccxt.InvalidOrder)


def point_urls_at(api: Any, base_url: str) -> Any:
    """Replace the scheme and host of every URL in ccxt's ``urls['api']``, keeping the paths."""
    if isinstance(api, dict):
        return {key: point_urls_at(value, base_url) for key, value in api.items()}
    if isinstance(api, str) and "://" in api:
        target = urlsplit(base_url)
        parts = urlsplit(api)
        path = target.path.rstrip("/") + parts.path
        return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment))
    return api


def wallet_address(private_key: str) -> str:
    """The EVM address of ``private_key`` (``0x`` + 64 hex digits): the address ccxt's
    ``aster`` client signs for (its ``user`` and default ``signer``). A malformed key is a
    :class:`ConfigError` naming ASTER_PRIVATE_KEY, without the key."""
    key = private_key.strip()
    body = key[2:] if key.lower().startswith("0x") else key
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ConfigError("ASTER_PRIVATE_KEY is not a wallet private key: expected 0x followed by 64 hex digits")
    try:
        return str(ccxt.Exchange.eth_get_address_from_private_key("0x" + body))
    except Exception:  # e.g. zero or past the curve order
        raise ConfigError("ASTER_PRIVATE_KEY is not a valid secp256k1 private key") from None


def check_trading_keys(secrets: Secrets) -> str:
    """The trading wallet's address, from the key; ASTER_WALLET_ADDRESS, when given, must be it.

    ccxt's ``aster`` client derives the account (``user``) and the signer from the private
    key alone, so a wallet address that differs would silently trade another account than
    the one named: that is an error."""
    if not secrets.has_trading_keys:
        raise ConfigError("ASTER_PRIVATE_KEY is not set in the environment")
    address = wallet_address(secrets.private_key.get_secret_value())  # type: ignore[union-attr]
    given = (secrets.wallet_address or "").strip()
    if given and given.lower() != address.lower():
        raise ConfigError(
            f"ASTER_WALLET_ADDRESS {given} is not the address of ASTER_PRIVATE_KEY ({address}); "
            "set it to that address or leave it unset"
        )
    return address


def make_exchange(
    data_cfg: DataConfig,
    secrets: Secrets | None = None,
    *,
    exchange_id: str | None = None,
    rate_limit_ms: float | None = None,
) -> Any:
    """A ccxt client for ``exchange_id`` (default ``data_cfg.exchange_id``), swap markets.

    ``options.builderFee`` is set to ``False``: otherwise ccxt adds its own builder fee to
    every Aster swap order. Rate limiting stays on; ``rate_limit_ms`` (default
    ``data_cfg.rate_limit_ms``) only changes ccxt's spacing between requests (e.g. 0 against
    the loopback fake exchange).
    Credentials come only from ``secrets`` (:func:`aster_rl.config.load_secrets`) and
    are never logged.
    """
    exchange_id = exchange_id or data_cfg.exchange_id
    cls = getattr(ccxt, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise ExchangeError(f"exchange id {exchange_id!r} is not a ccxt exchange; e.g. 'aster' or 'binanceusdm'")
    params: dict[str, Any] = {
        "enableRateLimit": True,
        "options": {"defaultType": "swap", "builderFee": False},
    }
    if secrets is not None and secrets.has_trading_keys:
        params["walletAddress"] = check_trading_keys(secrets)  # one-line error on a bad key, before any request
        params["privateKey"] = secrets.private_key.get_secret_value()  # type: ignore[union-attr]
    exchange = cls(params)
    exchange.options["builderFee"] = False
    if rate_limit_ms is None:
        rate_limit_ms = data_cfg.rate_limit_ms
    if rate_limit_ms is not None:
        exchange.rateLimit = rate_limit_ms
    if data_cfg.api_url:
        exchange.urls["api"] = point_urls_at(exchange.urls["api"], data_cfg.api_url)
    logger.info(
        "ccxt %s client: defaultType=swap, builderFee=off (ccxt would otherwise add its own builder fee to "
        "every Aster order), rate limit %s ms%s, private keys %s",
        exchange_id,
        exchange.rateLimit,
        f", API at {data_cfg.api_url}" if data_cfg.api_url else "",
        "loaded" if "privateKey" in params else "absent",
    )
    return exchange


def translate_error(e: Exception, what: str) -> ExchangeError:
    """The project's error for a ccxt exception (raise the result ``from e``)."""
    name = type(e).__name__
    detail = str(e).strip() or name
    if len(detail) > 300:
        detail = detail[:300] + "..."
    if isinstance(e, _TEMPORARY):
        return TemporaryExchangeError(f"{what}: temporary exchange failure ({name}): {detail}")
    if isinstance(e, ccxt.OrderNotFound):
        return OrderNotFound(f"{what}: no such order ({name}): {detail}")
    if isinstance(e, _REJECTED):
        return OrderRejected(f"{what}: order rejected ({name}): {detail}")
    return ExchangeError(f"{what}: exchange error ({name}): {detail}")


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on :class:`TemporaryExchangeError` retry up to ``max_retries`` times,
    waiting ``backoff_s * 2**attempt`` between tries. Other errors pass straight through."""
    attempt = 0
    while True:
        try:
            return fn()
        except TemporaryExchangeError as e:
            if attempt >= max_retries:
                logger.warning("%s: giving up after %d retries: %s", what, attempt, e)
                raise
            delay = backoff_s * (2**attempt)
            attempt += 1
            logger.info("%s: %s; retry %d/%d in %.2fs", what, e, attempt, max_retries, delay)
            if delay > 0:
                sleep(delay)


@dataclass(frozen=True)
class BookSnapshot:
    """The book summary columns of :data:`aster_rl.data.market.BOOK_COLUMNS` at one time."""

    time: pd.Timestamp
    values: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.values], index=pd.DatetimeIndex([self.time], name="time"), columns=list(BOOK_COLUMNS))


class ExchangeClient:
    """The project's view of one ccxt exchange: DataFrames out, project errors raised.

    Every call is translated (:func:`translate_error`) and retried on temporary errors
    with exponential backoff (``max_retries``, ``retry_backoff_s``).
    """

    def __init__(
        self,
        exchange: Any,
        *,
        max_retries: int = 5,
        retry_backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange = exchange
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self._sleep = sleep
        self._markets_loaded = False

    @classmethod
    def from_config(
        cls,
        data_cfg: DataConfig,
        *,
        exchange_id: str | None = None,
        with_secrets: bool = False,
        rate_limit_ms: float | None = None,
    ) -> ExchangeClient:
        secrets = load_secrets() if with_secrets else None
        exchange = make_exchange(data_cfg, secrets, exchange_id=exchange_id, rate_limit_ms=rate_limit_ms)
        return cls(exchange, max_retries=data_cfg.max_retries, retry_backoff_s=data_cfg.retry_backoff_s)

    @property
    def id(self) -> str:
        return str(self.exchange.id)

    @property
    def is_aster(self) -> bool:
        return self.id == "aster"

    # ------------------------------------------------------------ plumbing

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one ccxt call with error translation and retries on temporary failures."""

        def once() -> T:
            try:
                return fn(*args, **kwargs)
            except ccxt.BaseError as e:
                raise translate_error(e, f"{self.id} {what}") from e

        return retry(once, what=f"{self.id} {what}", max_retries=self.max_retries, backoff_s=self.retry_backoff_s, sleep=self._sleep)

    def load_markets(self) -> dict[str, Any]:
        markets = self.call("load_markets", self.exchange.load_markets)
        self._markets_loaded = True
        return markets

    def market(self, symbol: str) -> dict[str, Any]:
        if not self._markets_loaded:
            self.load_markets()
        try:
            return self.exchange.market(symbol)
        except ccxt.BaseError as e:
            raise ExchangeError(
                f"{self.id}: unknown symbol {symbol!r}; use a unified ccxt symbol such as 'ASTER/USDT:USDT'"
            ) from e

    def server_time_ms(self) -> int:
        return int(self.call("fetch_time", self.exchange.fetch_time))

    def now(self) -> pd.Timestamp:
        """The exchange's clock when it reports one (``fetchTime``), else this machine's UTC clock.

        Whether a candle has closed is the exchange's call: a local clock running ahead of it
        would take the still-forming candle for a closed one."""
        if self.exchange.has.get("fetchTime"):
            return pd.Timestamp(self.server_time_ms(), unit="ms", tz="UTC")
        return pd.Timestamp.now(tz="UTC")

    # ------------------------------------------------------------ market data

    def fetch_klines(
        self, symbol: str, timeframe: str, since_ms: int | None, limit: int = KLINES_MAX_LIMIT, until_ms: int | None = None
    ) -> pd.DataFrame:
        """Candles opening at or after ``since_ms`` (at most ``limit``, capped at 1500).

        On Aster the raw klines endpoint is used, keeping ``quote_volume``, ``trades`` and
        ``taker_buy_volume``; other exchanges go through unified ``fetch_ohlcv``. The last
        row may be the still-forming candle: callers drop it.
        """
        limit = max(1, min(int(limit), KLINES_MAX_LIMIT))
        market = self.market(symbol)
        if self.is_aster:
            request: dict[str, Any] = {"symbol": market["id"], "interval": timeframe, "limit": limit}
            if since_ms is not None:
                request["startTime"] = int(since_ms)
            if until_ms is not None:
                request["endTime"] = int(until_ms)
            rows = self.call(f"klines {symbol} {timeframe}", self.exchange.fapiPublicGetV3Klines, request)
            return klines_to_frame(rows, f"{self.id} {symbol} {timeframe}")
        params = {"until": int(until_ms)} if until_ms is not None else {}
        rows = self.call(
            f"fetch_ohlcv {symbol} {timeframe}", self.exchange.fetch_ohlcv, symbol, timeframe, since_ms, limit, params
        )
        return ohlcv_to_frame(rows, f"{self.id} {symbol} {timeframe}")

    def fetch_funding_history(
        self, symbol: str, since_ms: int | None, limit: int = FUNDING_MAX_LIMIT, until_ms: int | None = None
    ) -> pd.DataFrame:
        """Funding settlements at or after ``since_ms``: ``funding_rate`` and ``mark_price`` (NaN when absent)."""
        limit = max(1, min(int(limit), FUNDING_MAX_LIMIT))
        self.market(symbol)
        params = {"until": int(until_ms)} if until_ms is not None else {}
        rows = self.call(
            f"fetch_funding_rate_history {symbol}", self.exchange.fetch_funding_rate_history, symbol, since_ms, limit, params
        )
        times, rates, marks = [], [], []
        for row in rows:
            if row.get("timestamp") is None or row.get("fundingRate") is None:
                continue
            info = row.get("info") or {}
            times.append(int(row["timestamp"]))
            rates.append(float(row["fundingRate"]))
            mark = info.get("markPrice") if isinstance(info, dict) else None
            marks.append(float(mark) if mark not in (None, "") else np.nan)
        frame = pd.DataFrame(
            {"funding_rate": rates, "mark_price": marks},
            index=pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="time"),
        )
        return frame[~frame.index.duplicated(keep="last")].sort_index()

    def fetch_recent_trades(self, symbol: str, limit: int = TRADES_MAX_LIMIT, since_ms: int | None = None) -> pd.DataFrame:
        """Recent public trades: ``trade_id price amount side notional_usd`` (``side`` is the taker's)."""
        limit = max(1, min(int(limit), TRADES_MAX_LIMIT))
        self.market(symbol)
        rows = self.call(f"fetch_trades {symbol}", self.exchange.fetch_trades, symbol, since_ms, limit)
        records = []
        for t in rows:
            if t.get("timestamp") is None or t.get("price") is None or t.get("amount") is None:
                continue
            price, amount = float(t["price"]), float(t["amount"])
            cost = t.get("cost")
            records.append(
                (int(t["timestamp"]), str(t.get("id")), price, amount, t.get("side") or "", float(cost) if cost is not None else price * amount)
            )
        frame = pd.DataFrame.from_records(records, columns=["ts_ms", *TRADE_COLUMNS])
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts_ms").astype("int64"), unit="ms", utc=True), name="time")
        return frame.sort_index(kind="stable")

    def fetch_order_book_snapshot(self, symbol: str, depth: int = 100) -> pd.DataFrame:
        """One row of the book summary columns (best prices, resting notional per side, largest order)."""
        self.market(symbol)
        book = self.call(f"fetch_order_book {symbol}", self.exchange.fetch_order_book, symbol, depth)
        bids = np.asarray([lvl[:2] for lvl in book.get("bids") or []], dtype=float).reshape(-1, 2)
        asks = np.asarray([lvl[:2] for lvl in book.get("asks") or []], dtype=float).reshape(-1, 2)
        if not len(bids) or not len(asks):
            raise ExchangeError(f"{self.id} fetch_order_book {symbol}: empty book side (bids={len(bids)}, asks={len(asks)})")
        bid_usd, ask_usd = bids[:, 0] * bids[:, 1], asks[:, 0] * asks[:, 1]
        ts = book.get("timestamp") or self.exchange.milliseconds()
        snapshot = BookSnapshot(
            time=pd.Timestamp(int(ts), unit="ms", tz="UTC"),
            values={
                "best_bid": float(bids[:, 0].max()),
                "best_ask": float(asks[:, 0].min()),
                "bid_depth_usd": float(bid_usd.sum()),
                "ask_depth_usd": float(ask_usd.sum()),
                "largest_bid_usd": float(bid_usd.max()),
                "largest_ask_usd": float(ask_usd.max()),
            },
        )
        return snapshot.to_frame()


# ---------------------------------------------------------------- parsing


def _empty_candles(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}, index=pd.DatetimeIndex([], tz="UTC", name="time"))


def klines_to_frame(rows: list[list[Any]], where: str) -> pd.DataFrame:
    """Binance-style 12-column kline rows -> candles with trade count and taker-buy volume."""
    if not isinstance(rows, list):
        raise ExchangeError(f"{where}: klines reply is a {type(rows).__name__}, expected a list of rows")
    if not rows:
        return _empty_candles(KLINE_COLUMNS)
    try:
        arr = np.array([r[:11] for r in rows], dtype=object)
        open_ms = arr[:, 0].astype("int64")
        values = arr[:, [1, 2, 3, 4, 5, 7, 8, 9]].astype("float64")
    except (ValueError, TypeError, IndexError) as e:
        raise ExchangeError(f"{where}: malformed kline row ({e}); expected 12-column Binance-style rows") from e
    frame = pd.DataFrame(values, columns=list(KLINE_COLUMNS), index=pd.DatetimeIndex(pd.to_datetime(open_ms, unit="ms", utc=True), name="time"))
    return frame[~frame.index.duplicated(keep="last")].sort_index()


def ohlcv_to_frame(rows: list[list[Any]], where: str) -> pd.DataFrame:
    """ccxt unified ``[ts, o, h, l, c, v]`` rows -> candles (no trade count / taker-buy volume)."""
    columns = ("open", "high", "low", "close", "volume")
    if not rows:
        return _empty_candles(columns)
    try:
        arr = np.asarray(rows, dtype="float64")[:, :6]
    except (ValueError, TypeError) as e:
        raise ExchangeError(f"{where}: malformed OHLCV row ({e})") from e
    index = pd.DatetimeIndex(pd.to_datetime(arr[:, 0].astype("int64"), unit="ms", utc=True), name="time")
    frame = pd.DataFrame(arr[:, 1:], columns=list(columns), index=index)
    return frame[~frame.index.duplicated(keep="last")].sort_index()
