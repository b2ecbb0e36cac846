"""Restart safety, the paper runner on the exchange source and the real runner, all through the
REAL ccxt client against the loopback fake Aster exchange. The restart tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import DataConfig, EnvConfig, FeaturesConfig, Secrets
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import PaperBroker
from aster_rl.live.real_broker import RealBroker
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ExchangeSource, ReplaySource
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import DecidingPolicy, FixedPolicy, make_db, paper_runner, permissive_live

TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # throwaway, never funded
FEATS = FeaturesConfig(tentacles=("market", "indicators", "orderflow", "regime"))  # fewer tentacles: faster incremental rows


class Crash(Exception):
    pass


def test_paper_replay_killed_mid_run_resumes_without_loss_or_duplicates(tmp_path, database_url):
    market = make_market(1_000, seed=8)
    whole = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, 700, 900), make_db(tmp_path, "a.db"), tmp_path, features="batch").run()
    db = make_db(tmp_path, url=database_url)
    crashes = iter([720, 760, 800])
    at = [next(crashes)]

    def after_store(t):  # dies after the bar was stored, before anything else
        if t == at[0]:
            at[0] = next(crashes, -1)
            raise Crash(t)

    restarts = 0
    while True:
        runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, 700, 900), db, tmp_path, features="batch", after_store=after_store)
        try:
            summary = runner.run()
            break
        except Crash:
            restarts += 1
    assert restarts == 3
    preds = live_store.predictions(db, session_id="test-session")
    assert len(preds) == len(whole.actions) and preds["ts"].is_unique
    assert summary.final_equity == whole.final_equity
    closed = preds[preds["status"].isin(["win", "loss"])]
    assert len(closed) == len(whole.trades)
    assert np.allclose(np.sort(closed["pnl_usd"]), np.sort([t["pnl_usd"] for t in whole.trades]))


def test_policy_failure_before_the_store_reprocesses_that_bar_once(tmp_path, database_url):
    market = make_market(900, seed=8)
    db = make_db(tmp_path, url=database_url)

    class Flaky(FixedPolicy):
        def predict(self, obs):
            if self.calls == 30 and not getattr(self, "failed", False):
                self.failed = True
                raise Crash("policy")
            return super().predict(obs)

    pol = Flaky(n_lev=4)
    with pytest.raises(Crash):
        paper_runner(pol, ReplaySource(market, 700, 800), db, tmp_path, features="batch").run()
    paper_runner(pol, ReplaySource(market, 700, 800), db, tmp_path, features="batch").run()
    ref = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, 700, 800), make_db(tmp_path, "r.db"), tmp_path, features="batch").run()
    preds = live_store.predictions(db, session_id="test-session")
    assert len(preds) == len(ref.actions) and preds["ts"].is_unique


@pytest.fixture()
def fake_market():
    return make_market(1_100, seed=9)


def _source(fake, db, client, poll_s=60.0):
    cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)

    def sleep(s):  # the fake's clock moves instead of the wall clock
        fake.set_now(fake.now_ms + int(s * 1000))

    return ExchangeSource(client, db, cfg, history_bars=700, poll_interval_s=poll_s, clock=fake.now, sleep=sleep)


def _client(fake, key=None):
    cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)
    return ExchangeClient(make_exchange(cfg, Secrets(private_key=key) if key else None), max_retries=3, retry_backoff_s=0)


def test_paper_runner_on_the_exchange_source(tmp_path, fake_market):
    start = fake_market.candles.index[900]
    with FakeAsterExchange(fake_market, now=start + pd.Timedelta(seconds=30)) as fake:
        db = make_db(tmp_path)
        source = _source(fake, db, _client(fake))
        prices = LivePrices("5m")
        env = EnvConfig()
        runner = LiveRunner(DecidingPolicy(n_lev=4), source, PaperBroker(env, prices), db, env_cfg=env,
                            live_cfg=permissive_live(tmp_path, stale_after_bars=3), features_cfg=FEATS, session_id="paper-x",
                            mode="paper", prices=prices)
        summary = runner.run(max_bars=12)
        assert summary.bars == 12 and summary.decisions == 12
        # the bars came from the exchange, were stored first, and are the fake's closed bars in order
        stored = fake_market.candles.index[900 - 0 : 912]
        assert summary.decision_times == list(stored)
        ticker_calls = [r for r in fake.requests if r.path == "/fapi/v3/ticker/price"]
        assert len(ticker_calls) >= 12 * 3  # polled between bars
        preds = live_store.predictions(db, session_id="paper-x")
        assert len(preds) == 12 and (preds["confidence"] == 0.5).all() and (preds["value_estimate"] == 1.25).all()
        assert preds["reasoning"].str.len().min() > 20
        assert not fake.account.fills  # paper: no order reached the exchange


def _real_runner(tmp_path, fake, db, after_store=None):
    client = _client(fake, TEST_KEY)
    source = _source(fake, db, client)
    prices = LivePrices("5m")
    env = EnvConfig()
    broker = RealBroker(client, "ASTER/USDT:USDT", env, permissive_live(tmp_path), prices)
    return LiveRunner(FixedPolicy(n_lev=3), source, broker, db, env_cfg=env, live_cfg=permissive_live(tmp_path, stale_after_bars=3),
                      features_cfg=FEATS, session_id="real-x", mode="real", prices=prices, after_store=after_store)


def test_real_runner_end_to_end_and_restart_without_duplicate_orders(tmp_path, fake_market, database_url):
    start = fake_market.candles.index[900]
    with FakeAsterExchange(fake_market, now=start + pd.Timedelta(seconds=30), balance_usdt=10_000.0) as fake:
        db = make_db(tmp_path, url=database_url)
        crashed = []

        def after_store(t):  # die once right after an entry was stored and before it was sent
            new = live_store.orders(db, "real-x", statuses=("new",))
            if not crashed and new:
                crashed.append(new[0]["ts"])
                raise Crash(t)

        with pytest.raises(Crash):
            _real_runner(tmp_path, fake, db, after_store).run(max_bars=40)
        assert crashed and not fake.account.fills  # stored, not sent
        summary = _real_runner(tmp_path, fake, db, after_store).run(max_bars=30)
        assert summary.bars == 30
        orders = live_store.orders(db, "real-x")
        sent = [o for o in fake.account.orders.values()]
        ids = [o["clientOrderId"] for o in sent]
        assert len(ids) == len(set(ids))  # the exchange never saw a client order id twice
        assert {o["client_order_id"] for o in orders if o["status"] != "abandoned"} == set(ids)
        entries = [o for o in orders if o["kind"] == "entry" and o["status"] == "filled"]
        assert entries and entries[0]["ts"] == crashed[0]  # the stored, unsent entry was carried out once after the restart
        kinds = {o["type"] for o in sent}
        assert {"MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"} <= kinds
        preds = live_store.predictions(db, session_id="real-x")
        assert preds["ts"].is_unique
        traded = preds[preds["status"].isin(["open", "win", "loss"])]
        assert len(traded) == len(entries)
