"""The real broker through the REAL ccxt client against the loopback fake Aster exchange."""

from __future__ import annotations

import pytest

from aster_rl.config import DataConfig, EnvConfig, Secrets
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.real_broker import RealBroker, client_order_id
from aster_rl.live.sources import bars_from_market
from factories import make_market
from live_helpers import permissive_live

TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # throwaway, never funded
SYMBOL = "ASTER/USDT:USDT"


@pytest.fixture()
def setup(tmp_path):
    market = make_market(400, seed=5)
    with FakeAsterExchange(market, balance_usdt=10_000.0) as fake:
        cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)
        client = ExchangeClient(make_exchange(cfg, Secrets(private_key=TEST_KEY)), max_retries=3, retry_backoff_s=0)
        prices = LivePrices("5m")
        for bar in bars_from_market(market):
            prices.append(bar)
        broker = RealBroker(client, SYMBOL, EnvConfig(), permissive_live(tmp_path), prices)
        broker.prepare()
        yield fake, broker, prices


def _entry(broker, prices, side=1, lev_i=2, prof_i=0, session="s1"):
    t = len(prices) - 1
    ts = int(prices.timestamps[t]) // 1_000_000 + 300_000
    orders = broker.planned_orders(t, side, lev_i, prof_i, ts, session)
    return ts, orders


def test_entry_places_market_order_then_exchange_side_stop_and_target(setup):
    fake, broker, prices = setup
    acct = fake.account
    assert acct.positions["ASTERUSDT"].margin_type == "isolated"
    equity0 = broker.equity
    assert equity0 == pytest.approx(10_000.0)
    _ts, orders = _entry(broker, prices)
    assert [o["kind"] for o in orders] == ["entry", "stop", "target"]
    assert len({o["client_order_id"] for o in orders}) == 3 and all(len(o["client_order_id"]) <= 36 for o in orders)
    result = broker.execute(orders)
    assert result.opened is not None
    pos = acct.positions["ASTERUSDT"]
    assert pos.amount == pytest.approx(orders[0]["qty"]) and pos.leverage == 3  # ladder (1, 2, 3, ...)[2]
    resting = {o["type"]: o for o in acct.orders.values() if o["status"] == "NEW"}
    assert set(resting) == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    assert all(o["reduceOnly"] and o["side"] == "SELL" for o in resting.values())
    fill = result.opened["entry_price"]
    assert float(resting["STOP_MARKET"]["stopPrice"]) < fill < float(resting["TAKE_PROFIT_MARKET"]["stopPrice"])
    # sizing: margin_fraction x equity x leverage
    assert orders[0]["qty"] * fill == pytest.approx(0.1 * equity0 * 3, rel=0.01)
    # balance paid the taker fee on the entry
    assert broker.equity == pytest.approx(equity0 - 0.00035 * pos.amount * fill + broker._pos["unrealizedPnl"], abs=1e-3)
    assert broker.open_positions() == 1 and broker.position_side == 1


@pytest.mark.parametrize("where,reason", [(0.5, "stop"), (2.0, "target")])
def test_stop_or_target_fill_closes_the_trade_and_cancels_the_other(setup, where, reason):
    fake, broker, prices = setup
    _, orders = _entry(broker, prices)
    opened = broker.execute(orders).opened
    fake.account.on_price("ASTERUSDT", opened["entry_price"] * where)
    res = broker.on_bar(len(prices) - 1)
    (trade,) = res.closed
    assert trade["reason"] == reason
    assert (trade["pnl_usd"] < 0) == (reason == "stop")
    assert broker.open_positions() == 0 and fake.account.positions["ASTERUSDT"].amount == 0
    assert not [o for o in fake.account.orders.values() if o["status"] == "NEW"]  # the other one was cancelled


def test_signal_exit_is_reduce_only_and_cancels_protection(setup):
    fake, broker, prices = setup
    _, orders = _entry(broker, prices)
    broker.execute(orders)
    t = len(prices) - 1
    exit_orders = broker.planned_orders(t, 2, 0, 0, int(prices.timestamps[t]) // 1_000_000 + 600_000, "s1")
    assert [o["kind"] for o in exit_orders] == ["exit"]
    res = broker.execute(exit_orders)
    assert res.closed[0]["reason"] == "signal"
    assert fake.account.positions["ASTERUSDT"].amount == 0
    assert not [o for o in fake.account.orders.values() if o["status"] == "NEW"]


def test_exchange_error_mid_order_is_retried_without_a_duplicate(setup):
    fake, broker, prices = setup
    _, orders = _entry(broker, prices)
    fake.fail_next(1, 503, path="/fapi/v3/order")  # the entry's first try fails (ExchangeNotAvailable)
    broker.execute(orders)
    posts = [r for r in fake.requests_to("/fapi/v3/order") if r.method == "POST"]
    entry_posts = [r for r in posts if r.params.get("newClientOrderId") == orders[0]["client_order_id"]]
    assert [r.status for r in entry_posts] == [503, 200]  # retried with the same client order id
    assert len(fake.account.fills) == 1
    assert sum(o["clientOrderId"] == orders[0]["client_order_id"] for o in fake.account.orders.values()) == 1


def test_an_order_that_reached_the_exchange_is_read_back_not_doubled(setup):
    """The first try was placed but its reply was lost: the retry meets 'ClientOrderId is duplicated'."""
    fake, broker, prices = setup
    _, orders = _entry(broker, prices)
    entry = orders[0]
    broker.client.call("set_leverage", broker.client.exchange.set_leverage, 3, SYMBOL)
    broker.client.exchange.create_order(SYMBOL, "market", "buy", entry["qty"], None, {"clientOrderId": entry["client_order_id"]})
    res = broker.execute(orders)
    assert res.opened is not None
    assert len(fake.account.fills) == 1
    assert fake.account.positions["ASTERUSDT"].amount == pytest.approx(entry["qty"])


def test_client_order_ids_are_deterministic_and_distinct():
    a = client_order_id("sess", 1_700_000_000_000, "e")
    assert a == client_order_id("sess", 1_700_000_000_000, "e")
    assert a != client_order_id("sess", 1_700_000_300_000, "e") != client_order_id("other", 1_700_000_000_000, "e")
    assert len(a) <= 36
