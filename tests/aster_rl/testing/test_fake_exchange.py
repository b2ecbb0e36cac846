"""The loopback fake Aster exchange, spoken to by the real ccxt client and by plain HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pandas as pd
import pytest

from aster_rl.config import DataConfig
from aster_rl.errors import DataError, ExchangeError, TemporaryExchangeError
from aster_rl.exchange.client import ExchangeClient
from aster_rl.testing.fake_exchange import FakeAsterExchange
from factories import make_candles, make_market

SYMBOL = "ASTER/USDT:USDT"


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        return e.code, json.loads(body) if body[:1] in "[{" else body


@pytest.fixture(scope="module")
def market():
    return make_market(2_000, seed=3)


@pytest.fixture()
def fake(market):
    with FakeAsterExchange(market) as f:
        yield f


@pytest.fixture()
def client(fake):
    return ExchangeClient.from_config(DataConfig(api_url=fake.url, retry_backoff_s=0, max_retries=3), rate_limit_ms=0)


def test_ccxt_loads_markets_from_the_fake(client, fake):
    markets = client.load_markets()
    aster = markets[SYMBOL]
    assert aster["id"] == "ASTERUSDT" and aster["swap"] and aster["linear"]
    assert aster["precision"]["price"] == 0.0001
    assert aster["precision"]["amount"] == 0.01
    assert aster["limits"]["cost"]["min"] == 5
    assert {"BTC/USDT:USDT", "ETH/USDT:USDT"} <= set(markets)
    paths = {r.path for r in fake.requests}
    assert {"/fapi/v3/exchangeInfo", "/api/v3/exchangeInfo"} <= paths


def test_klines_honour_start_end_and_limit(fake, market):
    idx = market.candles.index
    t0 = int(idx[10].value // 1_000_000)
    t1 = int(idx[14].value // 1_000_000)
    status, rows = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=5m&startTime={t0}&endTime={t1}&limit=1500")
    assert status == 200 and [r[0] for r in rows] == [int(t.value // 1_000_000) for t in idx[10:15]]
    assert len(rows[0]) == 12 and rows[0][6] == rows[0][0] + 300_000 - 1
    assert float(rows[0][4]) == pytest.approx(market.candles["close"].iloc[10], rel=1e-7)
    assert rows[0][8] == int(market.candles["trades"].iloc[10])
    status, rows = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=5m&startTime={t0}&limit=7")
    assert len(rows) == 7
    status, body = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=5m&limit=1501")
    assert status == 400 and body["code"] == -1130
    status, rows = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=5m")
    assert len(rows) == 500 and rows[-1][0] == int(idx[-1].value // 1_000_000)  # newest 500 without startTime


def test_klines_stop_at_the_clock_and_include_the_forming_bar(fake, market):
    idx = market.candles.index
    fake.set_now(idx[100] + pd.Timedelta("2min"))  # bar 100 is still forming
    _, rows = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=5m&startTime=0&limit=1500")
    assert rows[-1][0] == int(idx[100].value // 1_000_000) and len(rows) == 101


def test_higher_interval_is_resampled(client, market):
    hourly = client.fetch_klines(SYMBOL, "1h", None, limit=5)
    assert len(hourly) == 5
    first = hourly.index[0]
    block = market.candles.loc[first : first + pd.Timedelta("55min")]
    assert hourly["volume"].iloc[0] == pytest.approx(block["volume"].sum(), rel=1e-6)
    assert hourly["high"].iloc[0] == pytest.approx(block["high"].max(), rel=1e-7)


def test_unknown_symbol_and_interval_are_aster_errors(fake):
    status, body = _get(f"{fake.url}/fapi/v3/klines?symbol=NOPEUSDT&interval=5m")
    assert status == 400 and body["code"] == -1121
    status, body = _get(f"{fake.url}/fapi/v3/klines?symbol=ASTERUSDT&interval=7x")
    assert status == 400 and body["code"] == -1120


def test_tickers_answer_one_symbol_or_all(fake, market):
    for path in ("ticker/price", "ticker/bookTicker", "premiumIndex"):
        status, rows = _get(f"{fake.url}/fapi/v3/{path}")
        assert status == 200 and {r["symbol"] for r in rows} == {"ASTERUSDT", "BTCUSDT", "ETHUSDT"}
        status, row = _get(f"{fake.url}/fapi/v3/{path}?symbol=BTCUSDT")
        assert status == 200 and row["symbol"] == "BTCUSDT"
        status, body = _get(f"{fake.url}/fapi/v3/{path}?symbol=NOPEUSDT")
        assert status == 400 and body["code"] == -1121
    _, row = _get(f"{fake.url}/fapi/v3/ticker/price?symbol=ASTERUSDT")
    assert float(row["price"]) == pytest.approx(market.candles["close"].iloc[-1], rel=1e-7)


def test_funding_trades_and_book_through_ccxt(client, market):
    funding = client.fetch_funding_history(SYMBOL, int(market.candles.index[0].value // 1_000_000), limit=1000)
    expected = market.funding
    assert list(funding.index) == list(expected.index)
    assert funding["funding_rate"].to_numpy() == pytest.approx(expected["funding_rate"].to_numpy(), rel=1e-6, abs=1e-8)

    trades = client.fetch_recent_trades(SYMBOL, limit=200)
    assert len(trades) == 200
    tail = market.trades.iloc[-200:]
    assert (trades["side"].to_numpy() == tail["side"].to_numpy()).all()
    assert trades["notional_usd"].to_numpy() == pytest.approx((tail["price"] * tail["amount"]).to_numpy(), rel=1e-6)
    assert trades["trade_id"].is_unique

    book = client.fetch_order_book_snapshot(SYMBOL, depth=20)
    row = market.book.iloc[-1]
    assert book["best_bid"].iloc[0] == pytest.approx(row["best_bid"], rel=1e-7)
    assert book["best_ask"].iloc[0] == pytest.approx(row["best_ask"], rel=1e-7)
    assert book["largest_bid_usd"].iloc[0] == pytest.approx(row["largest_bid_usd"], rel=1e-5)
    assert book["bid_depth_usd"].iloc[0] == pytest.approx(row["bid_depth_usd"], rel=1e-3)


def test_fetch_trades_since_uses_agg_trades(client, fake, market):
    since = int(market.trades.index[100].value // 1_000_000)
    trades = client.fetch_recent_trades(SYMBOL, limit=50, since_ms=since)
    assert len(trades) == 50 and trades.index[0] >= market.trades.index[100]
    assert fake.requests_to("/fapi/v3/aggTrades")


def test_fail_next_injects_replies_and_the_log_records_them(client, fake):
    client.load_markets()
    fake.fail_next(2, status=503, path="/fapi/v3/klines")
    frame = client.fetch_klines(SYMBOL, "5m", None, limit=3)
    assert len(frame) == 3
    statuses = [r.status for r in fake.requests_to("/fapi/v3/klines")]
    assert statuses == [503, 503, 200]

    fake.fail_next(10, status=429)
    with pytest.raises(TemporaryExchangeError, match="RateLimitExceeded"):
        client.fetch_klines(SYMBOL, "5m", None, limit=3)
    fake.clear_faults()

    fake.fail_next(1, status=400, code=-1121, msg="Invalid symbol.")
    with pytest.raises(ExchangeError, match="Invalid symbol"):
        client.fetch_klines(SYMBOL, "5m", None, limit=3)


def test_server_time_and_plain_frames():
    candles = make_candles(50, seed=1)
    with FakeAsterExchange(candles) as fake:
        client = ExchangeClient.from_config(DataConfig(api_url=fake.url), rate_limit_ms=0)
        assert client.server_time_ms() == int((candles.index[-1] + pd.Timedelta("5min")).value // 1_000_000)
        assert len(client.fetch_klines(SYMBOL, "5m", None)) == 50
        # no book given: a book around the last close is made up
        book = client.fetch_order_book_snapshot(SYMBOL, depth=5)
        assert book["best_bid"].iloc[0] < candles["close"].iloc[-1] < book["best_ask"].iloc[0]


def test_bad_construction_is_a_clear_error():
    with pytest.raises(DataError, match="no candles"):
        FakeAsterExchange()
    with pytest.raises(TypeError, match="MarketBundle or a DataFrame"):
        FakeAsterExchange([1, 2, 3])
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeAsterExchange(make_candles(5)).url


# ---------------------------------------------------------------- signed endpoints

TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # throwaway, never funded


@pytest.fixture()
def private_exchange():
    from aster_rl.config import Secrets
    from aster_rl.exchange.client import make_exchange

    with FakeAsterExchange(make_candles(300, seed=5), balance_usdt=1_000.0) as fake:
        yield fake, make_exchange(DataConfig(api_url=fake.url, rate_limit_ms=0), Secrets(private_key=TEST_KEY))


def test_orders_positions_balance_through_ccxt(private_exchange):
    fake, ex = private_exchange
    assert ex.fetch_balance()["USDT"]["total"] == 1_000.0
    ex.set_margin_mode("isolated", SYMBOL)
    ex.set_leverage(5, SYMBOL)
    order = ex.create_order(SYMBOL, "market", "buy", 100, None, {"clientOrderId": "entry-1"})
    assert order["status"] == "closed" and order["filled"] == 100 and order["clientOrderId"] == "entry-1"
    price = fake.last_price()
    stop = ex.create_order(SYMBOL, "market", "sell", 100, None, {"stopLossPrice": price * 0.95, "reduceOnly": True})
    target = ex.create_order(SYMBOL, "market", "sell", 100, None, {"takeProfitPrice": price * 1.05, "reduceOnly": True})
    assert stop["info"]["type"] == "STOP_MARKET" and target["info"]["type"] == "TAKE_PROFIT_MARKET"
    assert {o["id"] for o in ex.fetch_open_orders(SYMBOL)} == {stop["id"], target["id"]}
    (pos,) = ex.fetch_positions([SYMBOL])
    assert (pos["side"], pos["contracts"], pos["leverage"], pos["marginMode"]) == ("long", 100, 5, "isolated")
    assert pos["entryPrice"] == pytest.approx(price)
    fee = 100 * price * 0.00035
    assert ex.fetch_balance()["USDT"]["total"] == pytest.approx(1_000.0 - fee, abs=1e-6)

    # the price falls through the stop: the position closes, the target stays open until cancelled
    fake.account.on_price("ASTERUSDT", price * 0.94)
    assert ex.fetch_order(stop["id"], SYMBOL)["status"] == "closed"
    assert ex.fetch_positions([SYMBOL]) == []
    assert ex.cancel_order(target["id"], SYMBOL)["status"] == "canceled"
    assert ex.fetch_open_orders(SYMBOL) == []
    # no builder fee was attached to any order
    orders = [r for r in fake.requests if r.method == "POST" and r.path == "/fapi/v3/order"]
    assert len(orders) == 3 and all("builder" not in r.params and "feeRate" not in r.params for r in orders)


def test_client_order_id_is_never_reused_and_rejections_map(private_exchange):
    import ccxt

    fake, ex = private_exchange
    ex.create_order(SYMBOL, "market", "buy", 10, None, {"clientOrderId": "once"})
    with pytest.raises(ccxt.ExchangeError, match="ClientOrderId is duplicated"):
        ex.create_order(SYMBOL, "market", "buy", 10, None, {"clientOrderId": "once"})
    assert len(fake.account.fills) == 1
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "once"})["filled"] == 10
    with pytest.raises(ccxt.InvalidOrder, match="notional must be no smaller than 5"):
        ex.create_order(SYMBOL, "market", "buy", 1, None)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "market", "buy", 1_000_000, None)
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("42", SYMBOL)
    with pytest.raises(ccxt.NoChange):
        ex.set_margin_mode("cross", SYMBOL)


def test_fault_kinds_lost_reply_method_filter_and_timeout(private_exchange):
    import ccxt

    fake, ex = private_exchange
    fake.fail_next(1, 503, path="/fapi/v3/order", method="POST", processed=True)  # placed; its reply is lost
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order(SYMBOL, "market", "buy", 10, None, {"clientOrderId": "lost"})
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "lost"})["filled"] == 10  # GET is not matched by the POST fault
    fake.fail_next(1, 504, path="/fapi/v3/order", method="POST", processed=True, delay_s=0.5)
    ex.timeout = 200
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SYMBOL, "market", "buy", 10, None, {"clientOrderId": "slow"})
    ex.timeout = 10_000
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "slow"})["status"] == "closed"
    assert len(fake.account.fills) == 2


def test_partial_fill_external_close_gap_and_user_trades(private_exchange):
    import ccxt

    fake, ex = private_exchange
    fake.account.fill_partly_next(0.3)
    o = ex.create_order(SYMBOL, "market", "buy", 100, None, {"clientOrderId": "part"})
    assert o["status"] == "open" and o["filled"] == 30 and o["remaining"] == 70
    fake.set_now(fake.now_ms)  # the next price: the rest fills
    assert ex.fetch_order(None, SYMBOL, {"clientOrderId": "part"})["filled"] == 100
    price = fake.last_price()
    with pytest.raises(ccxt.InvalidOrder, match="immediately trigger"):  # a stop the price already crossed
        ex.create_order(SYMBOL, "market", "sell", 100, None, {"stopLossPrice": price * 1.01, "reduceOnly": True})
    stop = ex.create_order(SYMBOL, "market", "sell", 100, None, {"stopLossPrice": price * 0.95, "reduceOnly": True})
    fake.gap_to(price * 0.8)  # trades through the stop: it fills at the gap, not at its trigger
    fake.gap_to(None)
    filled = ex.fetch_order(stop["id"], SYMBOL)
    assert filled["status"] == "closed" and filled["average"] == pytest.approx(price * 0.8)
    ex.create_order(SYMBOL, "market", "buy", 50, None, {"clientOrderId": "again"})
    fake.account.close_externally()
    assert ex.fetch_positions([SYMBOL]) == []
    trades = ex.fetch_my_trades(SYMBOL)
    assert [t["amount"] for t in trades] == [30, 70, 100, 50, 50]
    realized = sum(float(t["info"]["realizedPnl"]) for t in trades)
    fees = sum(t["fee"]["cost"] for t in trades)
    assert fake.account.wallet_usdt == pytest.approx(1_000.0 + realized - fees, abs=1e-9)  # the fills are the ledger


def test_the_kit_exports_its_public_names_and_its_modules_import_one_way():
    import ast
    from pathlib import Path

    import aster_rl.testing as kit
    from aster_rl.testing import FakeExchange, fake_account

    assert FakeExchange is kit.FakeAsterExchange and set(kit.__all__) <= set(dir(kit))
    tree = ast.parse(Path(fake_account.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "aster_rl.testing.fake_exchange" not in imported  # the account knows the market only as a MarketView
