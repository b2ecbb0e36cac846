"""The ccxt boundary: client construction, error translation, retries, parsing."""

from __future__ import annotations

import logging

import ccxt
import pandas as pd
import pytest

from aster_rl.config import DataConfig, Secrets
from aster_rl.errors import ConfigError, ExchangeError, OrderNotFound, OrderRejected, TemporaryExchangeError
from aster_rl.exchange.client import ExchangeClient, check_trading_keys, klines_to_frame, make_exchange, retry, translate_error, wallet_address

# a throwaway test key (never funded)
PLANTED_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def test_builder_fee_is_off_and_swap_is_default():
    ex = make_exchange(DataConfig())
    assert ex.options["builderFee"] is False
    assert ex.options["defaultType"] == "swap"
    assert ex.enableRateLimit is True
    assert ex.id == "aster"


def test_api_url_points_every_endpoint_at_the_override():
    ex = make_exchange(DataConfig(api_url="http://127.0.0.1:9999"))
    assert ex.urls["api"] == {
        "fapiPublic": "http://127.0.0.1:9999/fapi",
        "fapiPrivate": "http://127.0.0.1:9999/fapi",
        "sapiPublic": "http://127.0.0.1:9999/api",
        "sapiPrivate": "http://127.0.0.1:9999/api",
    }
    other = make_exchange(DataConfig(api_url="http://127.0.0.1:9999"), exchange_id="binanceusdm")
    assert all(v.startswith("http://127.0.0.1:9999/") for v in other.urls["api"].values() if isinstance(v, str))


def test_unknown_exchange_id_is_a_clear_error():
    with pytest.raises(ExchangeError, match="'nosuchex' is not a ccxt exchange"):
        make_exchange(DataConfig(exchange_id="nosuchex"))


def test_secrets_reach_ccxt_but_never_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    secrets = Secrets(private_key=PLANTED_KEY, wallet_address=wallet_address(PLANTED_KEY).upper().replace("0X", "0x"))
    ex = make_exchange(DataConfig(), secrets)
    assert ex.privateKey == PLANTED_KEY
    assert "builderFee=off" in caplog.text and "keys loaded" in caplog.text
    assert PLANTED_KEY not in caplog.text and PLANTED_KEY[2:] not in caplog.text


@pytest.mark.parametrize(
    "error, expected",
    [
        (ccxt.NetworkError("x"), TemporaryExchangeError),
        (ccxt.RateLimitExceeded("x"), TemporaryExchangeError),
        (ccxt.DDoSProtection("x"), TemporaryExchangeError),
        (ccxt.ExchangeNotAvailable("x"), TemporaryExchangeError),
        (ccxt.RequestTimeout("x"), TemporaryExchangeError),
        (ccxt.InsufficientFunds("x"), OrderRejected),
        (ccxt.InvalidOrder("x"), OrderRejected),
        (ccxt.OrderNotFound("x"), OrderNotFound),
        (ccxt.BadSymbol("x"), ExchangeError),
        (ccxt.AuthenticationError("x"), ExchangeError),
        (ccxt.ExchangeError("x"), ExchangeError),
    ],
)
def test_translate_error(error, expected):
    out = translate_error(error, "aster klines")
    assert type(out) is expected
    assert str(out).startswith("aster klines: ") and type(error).__name__ in str(out)


def test_retry_retries_only_temporary_errors_with_exponential_backoff():
    sleeps: list[float] = []
    attempts = {"n": 0}

    def flaky():
        attempts["n"] += 1
        if attempts["n"] <= 3:
            raise TemporaryExchangeError("busy")
        return "ok"

    assert retry(flaky, what="t", max_retries=5, backoff_s=0.5, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0, 2.0]

    sleeps.clear()
    with pytest.raises(TemporaryExchangeError):
        retry(lambda: (_ for _ in ()).throw(TemporaryExchangeError("down")), what="t", max_retries=2, backoff_s=1, sleep=sleeps.append)
    assert sleeps == [1, 2]

    calls = {"n": 0}

    def rejected():
        calls["n"] += 1
        raise OrderRejected("no")

    with pytest.raises(OrderRejected):
        retry(rejected, what="t", max_retries=5, backoff_s=0, sleep=sleeps.append)
    assert calls["n"] == 1


class _StubExchange:
    """A non-Aster ccxt-like exchange: the unified fetch_ohlcv path."""

    id = "binanceusdm"

    def __init__(self, fail_times: int = 0):
        self.fail_times = fail_times
        self.calls: list[tuple] = []

    def load_markets(self):
        return {"BTC/USDT:USDT": {"id": "BTCUSDT"}}

    def market(self, symbol):
        if symbol != "BTC/USDT:USDT":
            raise ccxt.BadSymbol(symbol)
        return {"id": "BTCUSDT"}

    def fetch_ohlcv(self, symbol, timeframe, since, limit, params):
        self.calls.append((symbol, timeframe, since, limit, params))
        if self.fail_times:
            self.fail_times -= 1
            raise ccxt.RequestTimeout("slow")
        return [[since + i * 3_600_000, 1.0, 2.0, 0.5, 1.5, 10.0] for i in range(3)]


def test_other_exchanges_use_unified_fetch_ohlcv_with_retries():
    stub = _StubExchange(fail_times=2)
    client = ExchangeClient(stub, max_retries=3, retry_backoff_s=0)
    since = 1_700_000_000_000
    frame = client.fetch_klines("BTC/USDT:USDT", "1h", since, limit=5000, until_ms=since + 10**9)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp(since, unit="ms", tz="UTC") and len(frame) == 3
    assert len(stub.calls) == 3 and stub.calls[-1][3] == 1500 and stub.calls[-1][4] == {"until": since + 10**9}
    with pytest.raises(ExchangeError, match="unknown symbol 'NOPE'"):
        client.fetch_klines("NOPE", "1h", since)


def test_klines_parsing_keeps_raw_columns_and_rejects_garbage():
    rows = [
        [1_700_000_000_000, "1.0", "1.2", "0.9", "1.1", "100", 1_700_000_299_999, "110", 42, "60", "66", "0"],
        [1_700_000_300_000, "1.1", "1.3", "1.0", "1.2", "50", 1_700_000_599_999, "60", 7, "20", "24", "0"],
    ]
    frame = klines_to_frame(rows, "test")
    assert frame["trades"].tolist() == [42, 7] and frame["taker_buy_volume"].tolist() == [60, 20]
    assert frame["quote_volume"].tolist() == [110, 60]
    assert str(frame.index.tz) == "UTC"
    assert klines_to_frame([], "test").empty
    with pytest.raises(ExchangeError, match="malformed kline row"):
        klines_to_frame([[1, "x"]], "test")
    with pytest.raises(ExchangeError, match="expected a list"):
        klines_to_frame({"code": 1}, "test")


def test_wallet_address_is_the_one_ccxt_signs_for():
    ex = make_exchange(DataConfig(), Secrets(private_key=PLANTED_KEY))
    assert wallet_address(PLANTED_KEY) == ex.eth_get_address_from_private_key(PLANTED_KEY)
    assert wallet_address(PLANTED_KEY).lower() == "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"  # web3.js docs: the example key's account


def test_a_wallet_address_of_another_key_is_one_clear_error():
    other = wallet_address("0x" + "11" * 32)
    with pytest.raises(ConfigError, match=r"ASTER_WALLET_ADDRESS .* is not the address of ASTER_PRIVATE_KEY") as e:
        make_exchange(DataConfig(), Secrets(private_key=PLANTED_KEY, wallet_address=other))
    assert PLANTED_KEY[2:] not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("key", ["0x1234", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "4c08" * 20])
def test_a_malformed_key_is_one_clear_error_without_the_key(key):
    with pytest.raises(ConfigError, match="ASTER_PRIVATE_KEY") as e:
        check_trading_keys(Secrets(private_key=key))
    assert key[2:] not in str(e.value) and "\n" not in str(e.value)
