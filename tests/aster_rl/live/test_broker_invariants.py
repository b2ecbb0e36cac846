"""The real-money invariants of the real broker, each failure found on the live path as its
own regression test: the live runner, the real broker and the REAL ccxt client against the
loopback fake exchange with faults injected."""

from __future__ import annotations

import pytest

from aster_rl.cli import main
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import make_db
from real_harness import Killed, ScriptPolicy, position_amount, real_client, real_runner, resting

ORDER = "/fapi/v3/order"
BUY, SELL = 1, 2
START, END = 300, 330


@pytest.fixture()
def market():
    return make_market(400, seed=5)


@pytest.fixture()
def fake(market):
    with FakeAsterExchange(market, balance_usdt=10_000.0, now=int(market.candles.index[START].value // 1_000_000) - 1) as fx:
        yield fx


def _pred(db, session="real-s"):
    return live_store.predictions(db, session_id=session)


def _entry_pred(db):
    preds = _pred(db)
    return preds[preds["side"] != "WAIT"].iloc[0]


def _assert_closed_at_the_wallets_pnl(db, fake, reason: str) -> None:
    """The entry's prediction resolved with ``reason``, its PnL what the exchange's wallet moved by."""
    entry = _entry_pred(db)
    assert entry["status"] in ("win", "loss") and entry["exit_reason"] == reason
    assert fake.account.wallet_usdt - 10_000.0 == pytest.approx(entry["pnl_usd"], abs=1e-6)


def _stop_covers_position(fake) -> bool:
    stops = resting(fake).get("STOP_MARKET", [])
    return len(stops) == 1 and float(stops[0]["origQty"]) == pytest.approx(abs(position_amount(fake)))


def test_a_rejected_stop_flattens_with_a_risk_event(tmp_path, market, fake):
    """Found: the stop was rejected after the entry filled; the position stayed long with only
    a take-profit, and nothing ever closed it."""
    db = make_db(tmp_path)
    fake.fail_next(1, 400, code=-2021, msg="Order would immediately trigger.", path=ORDER, method="POST", after=1)
    runner = real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 3)
    runner.run()
    assert position_amount(fake) == 0 and not resting(fake)  # flat, nothing left behind
    posts = [r for r in fake.requests_to(ORDER) if r.method == "POST"]
    assert [r.params.get("type") for r in posts] == ["MARKET", "STOP_MARKET", "MARKET"]  # entry, stop (refused), close
    assert posts[1].status == 400 and posts[2].params["reduceOnly"].lower() == "true"
    events = live_store.risk_events(db, "real-s")
    assert ((events["rule"] == "stop") & (events["action"] == "flattened")).sum() == 1
    assert "could not be placed" in events["reason"].iloc[-1]
    entry = _entry_pred(db)
    assert entry["status"] in ("win", "loss") and entry["exit_reason"] == "unprotected"
    # the PnL is the exchange's: the wallet moved by exactly that much
    assert fake.account.wallet_usdt - 10_000.0 == pytest.approx(entry["pnl_usd"], abs=1e-6)


def test_a_stop_lost_behind_503s_is_looked_up_and_placed(tmp_path, market, fake):
    """Found: a 503 past the client's retries on the stop crashed the runner with the position
    unprotected."""
    db = make_db(tmp_path)
    fake.fail_next(4, 503, path=ORDER, method="POST", after=1)  # the stop's 4 tries (1 + 3 retries)
    real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 3).run()
    assert position_amount(fake) > 0 and _stop_covers_position(fake)
    assert len(resting(fake)["TAKE_PROFIT_MARKET"]) == 1
    stop_posts = [r for r in fake.requests_to(ORDER) if r.method == "POST" and r.params.get("type") == "STOP_MARKET"]
    assert [r.status for r in stop_posts] == [503] * 4 + [200]  # looked up (not there), sent again with the same id
    assert len({r.params["newClientOrderId"] for r in stop_posts}) == 1
    assert _entry_pred(db)["status"] == "open"


def test_with_no_stop_and_no_close_possible_the_restart_protects_and_tracks_the_trade(tmp_path, market, fake):
    """Found: the restart sent stop and target but never tracked the trade; its prediction
    stayed pending and the take-profit outlived the position."""
    db = make_db(tmp_path)
    fake.fail_next(10**9, 503, path=ORDER, method="POST", after=1)  # every order after the entry: no reply, for good
    policy = ScriptPolicy({0: (BUY, 2, 0)})
    first = real_runner(tmp_path, fake, db, market, policy, start=START, end=START + 4)
    summary = first.run()  # no stop can be placed and no close confirmed: each bar tries the close again
    assert summary.lost_decisions >= 1 and first.broker.flattening is not None
    assert position_amount(fake) > 0 and not resting(fake)
    events = live_store.risk_events(db, "real-s")
    assert ((events["rule"] == "stop") & (events["action"] == "flattened")).any()
    fake.clear_faults()
    runner = real_runner(tmp_path, fake, db, market, policy, start=START, end=START + 8)
    runner.start()  # the restart reconciles before the first decision
    assert _stop_covers_position(fake) and len(resting(fake)["TAKE_PROFIT_MARKET"]) == 1
    assert runner.broker.flattening is None  # that close never reached the exchange
    entry = _entry_pred(db)
    assert entry["status"] == "open"
    assert runner.broker.trade is not None and runner._position_pred == entry["id"]
    # the target fills: the trade resolves and the stop goes with it
    fake.gap_to(runner.broker.trade["target_price"] * 1.01)
    fake.gap_to(None)
    runner.run(max_bars=1)
    assert position_amount(fake) == 0 and not resting(fake)
    _assert_closed_at_the_wallets_pnl(db, fake, "target")


def test_a_position_nobody_tracks_is_adopted_and_protected(tmp_path, market, fake):
    db = make_db(tmp_path)
    client = real_client(fake)
    client.call("set_leverage", client.exchange.set_leverage, 2, "ASTER/USDT:USDT")
    client.exchange.create_order("ASTER/USDT:USDT", "market", "sell", 500, None, {"clientOrderId": "manual-1"})
    runner = real_runner(tmp_path, fake, db, market, ScriptPolicy(), start=START, end=START + 3)
    runner.start()  # a fresh session reconciles too
    assert position_amount(fake) == -500 and _stop_covers_position(fake)
    stop = resting(fake)["STOP_MARKET"][0]
    assert stop["side"] == "BUY" and float(stop["stopPrice"]) > fake.last_price()
    events = live_store.risk_events(db, "real-s")
    assert (events["action"] == "adopted").sum() == 1


@pytest.mark.parametrize("close_fails_for_good", [False, True])
def test_kill_switch_closes_first_and_records_the_kill(tmp_path, market, fake, close_fails_for_good):
    """Found: flatten cancelled stop and target first; when the close then failed (503 x4)
    the position was open with nothing resting and no kill event was written."""
    db = make_db(tmp_path)
    kill_file = tmp_path / "KILL"

    def before_bar(i, bar):
        if i == START + 2:
            kill_file.write_text("stop")
            fake.fail_next(10**9 if close_fails_for_good else 4, 503, path=ORDER, method="POST")

    runner = real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 6,
                         before_bar=before_bar)
    summary = runner.run()
    events = live_store.risk_events(db, "real-s")
    kill = events[events["rule"] == "kill"]
    assert len(kill) == 1
    if close_fails_for_good:  # it keeps trying; the position keeps its stop meanwhile
        assert summary.stopped_by != "kill" and kill["action"].iloc[0] == "waiting"
        assert "flatten FAILED" in kill["reason"].iloc[0]
        assert position_amount(fake) > 0 and _stop_covers_position(fake)
        assert len(resting(fake)["TAKE_PROFIT_MARKET"]) == 1
        return
    assert summary.stopped_by == "kill"
    assert "flattened and stopped" in kill["reason"].iloc[0]
    assert position_amount(fake) == 0 and not resting(fake)
    reqs = [r for r in fake.requests_to(ORDER) if r.method in ("POST", "DELETE")]
    close_at = max(i for i, r in enumerate(reqs) if r.method == "POST" and r.status == 200)
    cancels = [i for i, r in enumerate(reqs) if r.method == "DELETE"]
    assert cancels and min(cancels) > close_at  # protection cancelled only after the close filled
    assert _entry_pred(db)["exit_reason"] == "kill"


def test_restart_lookup_failing_with_503_never_takes_a_filled_entry_as_unsent(tmp_path, market, fake):
    """Found: after a restart a 503 on the order look-up marked a filled entry abandoned and its
    prediction skipped, leaving the position open and untracked."""
    db = make_db(tmp_path)
    client = real_client(fake)
    client.kill_when = lambda what, when: when == "after" and what.startswith("create_order") and what.endswith("e")
    policy = ScriptPolicy({0: (BUY, 2, 0)})
    with pytest.raises(Killed):  # the entry reached the exchange and filled; the runner died before its reply was stored
        real_runner(tmp_path, fake, db, market, policy, start=START, end=START + 6, client=client).run()
    assert position_amount(fake) > 0 and not resting(fake)
    assert [o["status"] for o in live_store.orders(db, "real-s") if o["kind"] == "entry"] == ["new"]
    fake.fail_next(4, 503, path=ORDER, method="GET")  # the first look-up fails past its retries
    runner = real_runner(tmp_path, fake, db, market, policy, start=START, end=START + 6)
    runner.start()
    entry_row = next(o for o in live_store.orders(db, "real-s") if o["kind"] == "entry")
    assert entry_row["status"] == "filled"
    assert _entry_pred(db)["status"] == "open"
    assert _stop_covers_position(fake) and runner.broker.trade is not None


def test_an_outside_close_cancels_every_protective_order(tmp_path, market, fake):
    """Found: an external close cancelled only the stop; the take-profit kept resting."""
    db = make_db(tmp_path)

    def before_bar(i, bar):
        if i == START + 2:
            fake.account.close_externally()

    real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 4,
                before_bar=before_bar).run()
    assert position_amount(fake) == 0 and not resting(fake)
    _assert_closed_at_the_wallets_pnl(db, fake, "external")


def test_a_partial_fill_is_protected_for_what_filled_and_grows_with_later_fills(tmp_path, market, fake):
    """Found: a half-filled entry got stop and target for the planned quantity."""
    db = make_db(tmp_path)

    def before_bar(i, bar):
        if i == START:
            fake.account.fill_partly_next(0.5)  # the rest fills at the next bar's price

    runner = real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 4,
                         before_bar=before_bar)
    runner.run()
    planned = next(o for o in live_store.orders(db, "real-s") if o["kind"] == "entry")["qty"]
    first, rest = fake.account.fills[0]["qty"], fake.account.fills[1]["qty"]
    assert 0 < first < planned and first + rest == pytest.approx(planned)
    for kind in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
        sent = [o for o in fake.account.orders.values() if o["type"] == kind]
        assert [float(o["origQty"]) for o in sent] == [first, planned]  # for what had filled, then grown
        assert [o["status"] for o in sent] == ["CANCELED", "NEW"]
        reqs = fake.requests_to(ORDER)
        placed_new = next(i for i, r in enumerate(reqs) if r.params.get("newClientOrderId") == sent[1]["clientOrderId"])
        cancelled_old = next(i for i, r in enumerate(reqs) if r.method == "DELETE"
                             and r.params.get("origClientOrderId") == sent[0]["clientOrderId"])
        assert placed_new < cancelled_old  # never a moment without protection
    assert position_amount(fake) == pytest.approx(planned) and _stop_covers_position(fake)
    assert runner.broker.trade["qty"] == pytest.approx(planned)


def test_a_price_gap_through_the_stop_closes_at_the_gap_and_cancels_the_target(tmp_path, market, fake):
    db = make_db(tmp_path)
    gap = []

    def before_bar(i, bar):
        if i == START + 2:
            stop = float(resting(fake)["STOP_MARKET"][0]["stopPrice"])
            gap.append(stop * 0.8)
            fake.gap_to(gap[0])  # trades 20% below the stop: the stop fills there
            fake.gap_to(None)

    real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 4,
                before_bar=before_bar).run()
    assert position_amount(fake) == 0 and not resting(fake)
    preds = _pred(db)
    entry = preds[preds["side"] != "WAIT"].iloc[0]
    assert entry["exit_reason"] == "stop" and entry["status"] == "loss"
    assert entry["exit_price"] == pytest.approx(gap[0])


def test_an_entry_whose_reply_times_out_is_looked_up_not_doubled(tmp_path, market, fake):
    db = make_db(tmp_path)
    client = real_client(fake, timeout_ms=300)
    fake.fail_next(1, 504, path=ORDER, method="POST", processed=True, delay_s=0.6)  # placed, the reply never comes in time
    real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 3, client=client).run()
    entries = [o for o in fake.account.orders.values() if o["type"] == "MARKET" and not o["reduceOnly"]]
    assert len(entries) == 1 and len(fake.account.fills) == 1
    assert _stop_covers_position(fake) and _entry_pred(db)["status"] == "open"


def test_a_restart_cancels_orphan_protective_orders(tmp_path, market, fake):
    db = make_db(tmp_path)
    real_runner(tmp_path, fake, db, market, ScriptPolicy({0: (BUY, 2, 0)}), start=START, end=START + 3).run()
    assert position_amount(fake) > 0
    fake.account.close_externally()  # while no runner is up: stop and target are orphans now
    runner = real_runner(tmp_path, fake, db, market, ScriptPolicy(), start=START, end=START + 6)
    runner.start()
    assert not resting(fake)
    assert _entry_pred(db)["exit_reason"] == "external"


@pytest.mark.parametrize("env", [
    {"ASTER_PRIVATE_KEY": "0x1234"},
    {"ASTER_PRIVATE_KEY": "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
     "ASTER_WALLET_ADDRESS": "0x" + "ab" * 20},
])
def test_a_bad_key_or_a_wallet_of_another_key_is_one_line_before_any_download(env, capsys, monkeypatch):
    """Found: ASTER_WALLET_ADDRESS had no effect and a mismatch went unnoticed; a malformed key
    gave a traceback after the history download."""
    monkeypatch.delenv("ASTER_WALLET_ADDRESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["live", "run", "--run", "x", "--real", "--confirm", "I-UNDERSTAND"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ASTER_" in err and "Traceback" not in err
    assert env["ASTER_PRIVATE_KEY"][2:] not in err
