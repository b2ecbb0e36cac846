"""Real mode through the REAL ccxt client against the loopback fake Aster exchange: an entry
that does not become a position resolves its prediction with the true reason (below the
minimum notional / rejected by the exchange, with its message / not filled / not sent
before a restart), stored with the bar's state in one transaction, never left pending."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import DataConfig, EnvConfig, FeaturesConfig, Secrets
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import ABANDONED, BELOW_MIN_NOTIONAL, EXPIRED, NOT_FILLED, REJECTED
from aster_rl.live.real_broker import RealBroker
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ExchangeSource
from aster_rl.storage import live_store
from aster_rl.storage.models import Prediction
from factories import make_market
from live_helpers import make_db, permissive_live

TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # throwaway, never funded
SYMBOL = "ASTER/USDT:USDT"
FEATS = FeaturesConfig(tentacles=("market", "indicators", "orderflow", "regime"))
SESSION = "real-entries"


class Crash(Exception):
    pass


class BuyWhenFlat:
    """BUY at 1x with the first profile whenever flat, WAIT while in a position."""

    run_id = "buy-when-flat"
    model_version = "buy-when-flat@1"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.array([0 if obs[-6] != 0 else 1, 0, 0])


@pytest.fixture(scope="module")
def market():
    return make_market(1_000, seed=9)


@pytest.fixture()
def record_calls(monkeypatch):
    """Every record_bar call (its outcomes and the state stored with them)."""
    calls: list[dict] = []
    real = live_store.record_bar

    def spy(db, session_id, **kw):
        calls.append(kw)
        return real(db, session_id, **kw)

    monkeypatch.setattr(live_store, "record_bar", spy)
    return calls


def _runner(tmp_path, fake, db, after_store=None) -> LiveRunner:
    cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)
    client = ExchangeClient(make_exchange(cfg, Secrets(private_key=TEST_KEY)), max_retries=3, retry_backoff_s=0)

    def sleep(s):  # the fake's clock moves instead of the wall clock
        fake.set_now(fake.now_ms + int(s * 1000))

    source = ExchangeSource(client, db, cfg, history_bars=700, poll_interval_s=60.0, clock=fake.now, sleep=sleep)
    prices = LivePrices("5m")
    env = EnvConfig()
    broker = RealBroker(client, SYMBOL, env, permissive_live(tmp_path), prices)
    return LiveRunner(BuyWhenFlat(), source, broker, db, env_cfg=env, live_cfg=permissive_live(tmp_path, stale_after_bars=3),
                      features_cfg=FEATS, session_id=SESSION, mode="real", prices=prices, after_store=after_store)


def _predictions(db) -> pd.DataFrame:
    return live_store.predictions(db, session_id=SESSION)


def _resolved_with_state(calls: list[dict], pred_id: int, reason: str) -> None:
    """The skip was written in a record_bar call whose state no longer has a pending entry."""
    hits = [c for c in calls for o in c.get("outcomes", ()) if o.get("prediction_id") == pred_id and o.get("status") == "skipped"]
    assert len(hits) == 1 and hits[0]["outcomes"][0]["exit_reason"] == reason
    assert hits[0]["state"]["pending_prediction"] is None


def test_entry_below_minimum_notional_is_skipped_with_the_bar(tmp_path, market, record_calls):
    start = market.candles.index[900]
    with FakeAsterExchange(market, now=start + pd.Timedelta(seconds=30), balance_usdt=20.0) as fake:  # 10% x 20 USDT x 1 < 5 USDT
        db = make_db(tmp_path)
        summary = _runner(tmp_path, fake, db).run(max_bars=3)
        assert summary.decisions == 3
        assert not fake.account.orders  # nothing was sent
    preds = _predictions(db)
    assert len(preds) == 3 and (preds["side"] == "BUY").all()
    assert (preds["status"] == "skipped").all() and (preds["exit_reason"] == BELOW_MIN_NOTIONAL).all()
    assert preds["risk"].str.fullmatch(r"broker skipped: notional [12]\.\d\d USD below the minimum 5 USD").all()
    assert not live_store.orders(db, SESSION)
    # resolved in the very transaction that stored the prediction, with the bar's state
    stored = [c for c in record_calls if c.get("prediction") is not None]
    assert len(stored) == 3 and all(c["prediction"]["status"] == "skipped" for c in stored)
    assert all(c["state"]["pending_prediction"] is None for c in stored)
    assert len(record_calls) == 3  # nothing else to write afterwards


def test_entry_rejected_by_the_exchange_keeps_its_message(tmp_path, market, record_calls):
    start = market.candles.index[900]
    with FakeAsterExchange(market, now=start + pd.Timedelta(seconds=30), balance_usdt=10_000.0) as fake:
        db = make_db(tmp_path)
        fake.fail_next(1, 400, code=-2019, msg="Margin is insufficient.", path="/fapi/v3/order")
        summary = _runner(tmp_path, fake, db).run(max_bars=2)
        assert summary.decisions == 2
        assert fake.account.positions["ASTERUSDT"].amount > 0  # the next bar's entry went through
        assert len(fake.account.fills) == 1
    preds = _predictions(db)
    first, second = preds.iloc[0], preds.iloc[1]
    assert first["status"] == "skipped" and first["exit_reason"] == REJECTED
    assert "exchange rejected:" in first["risk"] and "Margin is insufficient." in first["risk"]
    assert "InsufficientFunds" in first["risk"]
    assert second["status"] == "open"
    orders = {(o["ts"], o["kind"]): o["status"] for o in live_store.orders(db, SESSION)}
    ts0 = int(first["ts"])
    assert orders[(ts0, "entry")] == "rejected"
    assert orders[(ts0, "stop")] == orders[(ts0, "target")] == "abandoned"  # never sent
    _resolved_with_state(record_calls, int(first["id"]), REJECTED)


@pytest.mark.parametrize("status", ["EXPIRED", "NEW"])
def test_entry_the_exchange_did_not_fill_is_skipped_and_cancelled(tmp_path, market, record_calls, status):
    start = market.candles.index[900]
    with FakeAsterExchange(market, now=start + pd.Timedelta(seconds=30), balance_usdt=10_000.0) as fake:
        db = make_db(tmp_path)
        account = fake.account
        real_fill = account._fill
        unfilled: list[dict] = []

        def fill_or_not(order, price):  # the first market entry is accepted but not filled
            if not unfilled and order["type"] == "MARKET" and not order["reduceOnly"]:
                order["status"] = status
                unfilled.append(order)
                return
            real_fill(order, price)

        account._fill = fill_or_not
        summary = _runner(tmp_path, fake, db).run(max_bars=2)
        assert summary.decisions == 2
        assert unfilled and unfilled[0]["status"] == ("CANCELED" if status == "NEW" else "EXPIRED")  # nothing left resting
        assert len(account.fills) == 1  # only the next bar's entry
    preds = _predictions(db)
    first = preds.iloc[0]
    assert first["status"] == "skipped" and first["exit_reason"] == NOT_FILLED
    assert f"exchange not filled: order status {status}" in first["risk"]  # the exchange's status as it answered
    assert preds.iloc[1]["status"] == "open"
    _resolved_with_state(record_calls, int(first["id"]), NOT_FILLED)


def test_stale_entry_never_sent_before_a_restart_is_resolved(tmp_path, market):
    start = market.candles.index[900]
    with FakeAsterExchange(market, now=start + pd.Timedelta(seconds=30), balance_usdt=10_000.0) as fake:
        db = make_db(tmp_path)

        def crash(t):
            raise Crash(t)

        with pytest.raises(Crash):
            _runner(tmp_path, fake, db, crash).run(max_bars=5)
        (pending,) = _predictions(db).itertuples()
        assert pending.status == "pending" and not fake.account.orders
        fake.set_now(fake.now_ms + 3 * 300_000)  # back much later: that decision is stale
        runner = _runner(tmp_path, fake, db)
        runner.start()
        assert not fake.account.orders  # abandoned, not sent
    row = _predictions(db).iloc[0]
    assert row["status"] == "skipped" and row["exit_reason"] == ABANDONED
    assert "not sent before a restart" in row["risk"]
    assert live_store.load_state(db, SESSION)["pending_prediction"] is None
    assert {o["status"] for o in live_store.orders(db, SESSION)} == {"abandoned"}


def test_skip_reasons_fit_the_column():
    width = Prediction.__table__.columns["exit_reason"].type.length
    assert all(len(r) <= width for r in (BELOW_MIN_NOTIONAL, REJECTED, NOT_FILLED, ABANDONED, EXPIRED))
