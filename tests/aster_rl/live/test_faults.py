"""The runner under faults: a database write lock (8 s, and past a short busy timeout), an
exchange outage (60 s, and long enough for the data to go stale), an exchange error inside a
bar, the kill switch with an entry pending, one runner per session (the lease), and a
restart that reconciles before it decides. The paper runs on the exchange source go through
the REAL ccxt client against the loopback fake exchange, on the fake's clock (no real waits)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from aster_rl.cli import main
from aster_rl.config import DataConfig, EnvConfig, FeaturesConfig, load_config, replace
from aster_rl.errors import TemporaryExchangeError
from aster_rl.exchange.client import ExchangeClient, make_exchange
from aster_rl.testing.fake_exchange import FakeAsterExchange
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import EXPIRED, BarResult, PaperBroker
from aster_rl.live.risk import RiskGuard, kill_file_path
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ExchangeSource, ReplaySource
from aster_rl.storage import Database, live_store
from aster_rl.storage.models import Prediction
from factories import make_market
from live_helpers import FixedPolicy, LockHolder, make_db, paper_runner, permissive_live
import itertools

FEATS = FeaturesConfig(tentacles=("market", "indicators", "orderflow", "regime"))  # fewer tentacles: faster incremental rows
LEDGER = ["ts", "side", "leverage", "profile", "status", "entry_price", "stop_price", "target_price", "pnl_usd",
          "exit_reason", "fees_usd", "funding_usd", "closed_at", "exit_price"]
KLINES = "/fapi/v3/klines"


def ledger(db: Database, session: str = "test-session") -> pd.DataFrame:
    return live_store.predictions(db, session_id=session)[LEDGER]


def assert_short_lines(texts) -> None:
    """Fault messages: one short line each, never an SQL statement or an observation vector."""
    for text in texts:
        assert "\n" not in text and len(text) < 400, text
        assert "INSERT" not in text and "UPDATE" not in text and "[SQL" not in text and "parameters" not in text, text


@pytest.fixture(scope="module")
def replay_market():
    return make_market(900, seed=4)


# ---------------------------------------------------------------- database lock

def test_runner_survives_an_8s_database_lock_without_losing_a_decision(tmp_path, replay_market):
    undisturbed = make_db(tmp_path, "ref.db")
    paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 780), undisturbed, tmp_path, features="batch").run()
    db = make_db(tmp_path)  # the default busy timeout (30 s)
    holders: list[LockHolder] = []

    def after_store(t):  # another process takes the write lock for 8 s (a large `data import`)
        if t == 720 and not holders:
            holders.append(LockHolder(tmp_path / "live.db", 8.0))

    summary = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 780), db, tmp_path, features="batch",
                           after_store=after_store).run()
    holders[0].wait()
    assert summary.stopped_by == "end" and summary.lost_decisions == 0
    assert max(summary.latencies_s) > 6.0  # it did wait on the lock
    pd.testing.assert_frame_equal(ledger(db), ledger(undisturbed))
    assert live_store.risk_events(db, "test-session").empty


def test_a_lock_past_the_busy_timeout_costs_decisions_not_the_runner(tmp_path, replay_market, caplog):
    caplog.set_level(logging.WARNING, logger="aster_rl")
    db = Database(f"sqlite:///{tmp_path / 'live.db'}", busy_timeout_s=0.3)
    db.init_schema()
    holders: list[LockHolder] = []

    def after_store(t):
        if t == 720 and not holders:
            holders.append(LockHolder(tmp_path / "live.db", 2.5))

    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 780), db, tmp_path, features="batch",
                          after_store=after_store)
    summary = runner.run()
    holders[0].wait()
    assert summary.stopped_by == "end"
    assert summary.lost_decisions >= 2 and summary.bars == 80
    preds = live_store.predictions(db, session_id="test-session")
    assert len(preds) == summary.decisions == 79 - summary.lost_decisions and preds["ts"].is_unique  # the last bar only ends it
    events = live_store.risk_events(db, "test-session")
    faults = events[events["rule"] == "fault"]
    assert len(faults) == summary.lost_decisions  # stored once the database answered again
    assert faults["reason"].str.contains("database is locked").all()
    assert_short_lines(list(faults["reason"]) + [r.getMessage() for r in caplog.records])
    # every trade the account closed is stored as its prediction's outcome, lost bars included
    closed = preds[preds["status"].isin(["win", "loss"])]
    assert len(closed) == len(summary.trades)
    assert closed["pnl_usd"].sum() == pytest.approx(sum(t["pnl_usd"] for t in summary.trades), abs=1e-9)
    assert (preds["status"] == "pending").sum() <= 1  # at most the last bar's entry


# ---------------------------------------------------------------- exchange outage

@pytest.fixture(scope="module")
def fake_market():
    return make_market(1_100, seed=9)


def _paper_on_fake(tmp_path, fake, db, live, on_sleep=None, session="outage") -> LiveRunner:
    cfg = DataConfig(api_url=fake.url, rate_limit_ms=0, retry_backoff_s=0, max_retries=3)
    client = ExchangeClient(make_exchange(cfg), max_retries=3, retry_backoff_s=0)

    def sleep(s):  # the fake's clock moves instead of the wall clock
        fake.set_now(fake.now_ms + int(s * 1000))
        if on_sleep is not None:
            on_sleep(fake.now_ms)

    source = ExchangeSource(client, db, cfg, history_bars=700, poll_interval_s=60, clock=fake.now, sleep=sleep,
                            retry_backoff_s=live.retry_backoff_s, max_backoff_s=live.max_backoff_s)
    prices = LivePrices("5m")
    env = EnvConfig()
    return LiveRunner(FixedPolicy(n_lev=4), source, PaperBroker(env, prices), db, env_cfg=env, live_cfg=live,
                      features_cfg=FEATS, session_id=session, mode="paper", prices=prices)


class Outage:
    """The exchange answers 503 to everything while the fake's clock is in ``[start_ms, start_ms + seconds)``."""

    def __init__(self, fake: FakeAsterExchange, start_ms: int | None, seconds: float) -> None:
        self.fake, self.start_ms, self.seconds = fake, start_ms, seconds
        self.on = self.done = False

    def __call__(self, now_ms: int) -> None:
        if self.done or self.start_ms is None or now_ms < self.start_ms:
            return
        if now_ms < self.start_ms + self.seconds * 1000:
            if not self.on:
                self.fake.fail_next(10**9, 503)
                self.on = True
        else:
            self.fake.clear_faults()
            self.on, self.done = False, True


def test_a_failed_poll_is_retried_with_a_doubling_backoff_and_the_runner_called_meanwhile(replay_market):
    now = [pd.Timestamp("2025-01-01", tz="UTC")]

    def sleep(s):
        now[0] += pd.Timedelta(seconds=s)

    source = ExchangeSource(None, None, DataConfig(), poll_interval_s=1.0, clock=lambda: now[0], sleep=sleep,
                            retry_backoff_s=2.0, max_backoff_s=10.0, companions=False)
    source.last_price = lambda: None  # no exchange behind it: the polls are replaced below
    polls: list[pd.Timestamp] = []

    def poll():
        polls.append(now[0])
        if len(polls) <= 5:
            raise TemporaryExchangeError("aster fetch_ohlcv: 503 Service Unavailable (after 3 retries)")
        idx = replay_market.candles.index
        return ReplaySource(replay_market).bars_between(idx[10], idx[11])  # one bar: idx[11]

    source.poll_new_bars = poll
    errors, ticks = [], []
    stream = source.bars(on_tick=lambda price, t: ticks.append(t) or True, on_error=lambda e, n: errors.append(n))
    first = next(stream)
    stream.close()
    assert first.bar.time == replay_market.candles.index[11]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(polls)] == [2, 4, 8, 10, 10]
    assert errors == [1, 2, 3, 4, 5] and source.failed_polls == 5
    assert len(ticks) >= 2 + 4 + 8 + 10 + 10  # the runner was called every poll interval while the source waited


def test_a_60s_exchange_outage_delays_bars_and_the_ledger_is_the_undisturbed_one(tmp_path, fake_market):
    live = permissive_live(tmp_path, stale_after_bars=3)
    start = fake_market.candles.index[900]
    with FakeAsterExchange(fake_market, now=start + pd.Timedelta(seconds=30)) as fake:
        undisturbed = make_db(tmp_path, "ref.db")
        ref = _paper_on_fake(tmp_path, fake, undisturbed, live).run(max_bars=10)
    with FakeAsterExchange(fake_market, now=start + pd.Timedelta(seconds=30)) as fake:
        db = make_db(tmp_path)
        outage = Outage(fake, int(fake_market.candles.index[905].value // 1_000_000) + 25_000, 60)  # from a bar's close + 25 s
        runner = _paper_on_fake(tmp_path, fake, db, live, on_sleep=outage)
        summary = runner.run(max_bars=10)
        failed_klines = [r for r in fake.requests_to(KLINES) if r.status == 503]
    assert outage.done and runner.source.failed_polls >= 4 and failed_klines
    assert summary.lost_decisions == 0 and summary.decisions == ref.decisions == 10
    assert summary.decision_times == ref.decision_times
    pd.testing.assert_frame_equal(ledger(db, "outage"), ledger(undisturbed, "outage"))
    assert summary.final_equity == ref.final_equity
    events = live_store.risk_events(db, "outage")
    assert list(events["rule"]) == ["data"] and "no new bars" in events["reason"].iloc[0]  # the first failure of the stretch
    assert_short_lines(events["reason"])


def test_stale_data_flattens_through_the_broker_and_waits_for_fresh_bars(tmp_path, fake_market):
    live = permissive_live(tmp_path, stale_after_bars=2)
    start = fake_market.candles.index[900]
    seen: list[tuple[pd.Timestamp, pd.Timestamp, bool]] = []  # (bar open, source clock, entry pending) per decision
    with FakeAsterExchange(fake_market, now=start + pd.Timedelta(seconds=30)) as fake:
        db = make_db(tmp_path)
        outage = Outage(fake, None, 20 * 60)
        runner_box: list[LiveRunner] = []

        def on_sleep(now_ms):  # 20 minutes without klines, starting while a position is open
            if outage.start_ms is None and runner_box and runner_box[0].broker.open_positions():
                outage.start_ms = now_ms
            outage(now_ms)

        runner = _paper_on_fake(tmp_path, fake, db, live, on_sleep=on_sleep)
        runner_box.append(runner)
        flattens = []
        real_flatten = runner.broker.flatten

        def flatten(t, reason="kill"):
            flattens.append((reason, runner.source.now()))
            return real_flatten(t, reason)

        runner.broker.flatten = flatten
        runner.after_store = lambda t: seen.append((pd.Timestamp(int(runner.prices.timestamps[t]), tz="UTC"), runner.source.now(),
                                                    runner._pending_pred is not None))
        summary = runner.run(max_bars=24)
    assert outage.done and summary.lost_decisions == 0
    assert flattens and flattens[0][0] == "stale"
    outage_start = pd.Timestamp(outage.start_ms, unit="ms", tz="UTC")
    assert outage_start < flattens[0][1] < outage_start + pd.Timedelta(minutes=20)  # during the outage
    preds = live_store.predictions(db, session_id="outage")
    stale_closed = preds[preds["exit_reason"] == "stale"]
    assert len(stale_closed) == 1 and stale_closed["status"].iloc[0] in ("win", "loss")
    events = live_store.risk_events(db, "outage")
    assert ((events["rule"] == "stale") & (events["action"] == "flattened")).sum() == 1
    limit = pd.Timedelta(minutes=5) * 2
    stale_bars = [(t, now, pending) for t, now, pending in seen if now - (t + pd.Timedelta(minutes=5)) > limit]
    assert stale_bars and not any(pending for _, _, pending in stale_bars)  # no entry while the data is stale
    fresh_after = [s for s in seen if s[0] > stale_bars[-1][0]]
    assert len(fresh_after) >= 5 and any(pending for _, _, pending in fresh_after)  # and trading again on fresh bars


# ---------------------------------------------------------------- exchange error inside a bar

class FlakyPaperBroker(PaperBroker):
    """The broker's exchange fails once, at bar ``fail_at``."""

    def __init__(self, env, prices, fail_at: int) -> None:
        super().__init__(env, prices)
        self.fail_at = fail_at

    def on_bar(self, t, *, last=False):
        if t == self.fail_at:
            self.fail_at = -1
            raise TemporaryExchangeError("aster fetch_positions: 503 Service Unavailable (after 3 retries)")
        return super().on_bar(t, last=last)


def _runner_with(broker_cls, market, db, tmp_path, **kw) -> LiveRunner:
    env = EnvConfig()
    prices = LivePrices("5m", capacity=64)
    broker = broker_cls(env, prices, **kw)
    return LiveRunner(FixedPolicy(n_lev=4), ReplaySource(market, 700, 760), broker, db, env_cfg=env,
                      live_cfg=permissive_live(tmp_path), features_cfg=FeaturesConfig(), session_id="test-session",
                      mode="replay", features="batch", prices=prices)


def test_an_exchange_error_in_a_bar_costs_that_decision_only(tmp_path, replay_market):
    db = make_db(tmp_path)
    summary = _runner_with(FlakyPaperBroker, replay_market, db, tmp_path, fail_at=725).run()
    assert summary.stopped_by == "end" and summary.lost_decisions == 1 and summary.decisions == 58  # 60 bars, the last one ends the replay
    events = live_store.risk_events(db, "test-session")
    assert list(events["rule"]) == ["fault"] and "exchange failure" in events["reason"].iloc[0]
    assert "503 Service Unavailable" in events["reason"].iloc[0]
    preds = live_store.predictions(db, session_id="test-session")
    lost_close_ms = int((replay_market.candles.index[725] + pd.Timedelta(minutes=5)).value // 1_000_000)
    assert lost_close_ms not in set(preds["ts"]) and len(preds) == 58
    # an entry decided the bar before the lost one was never filled: resolved, not left pending
    assert (preds["status"] == "pending").sum() <= 1
    expired = preds[preds["exit_reason"] == EXPIRED]
    assert len(expired) <= 1 and (expired["status"] == "skipped").all()


# ---------------------------------------------------------------- kill switch

def test_kill_resolves_every_pending_entry_with_its_reason(tmp_path, replay_market):
    db = make_db(tmp_path)
    # an entry left pending by an earlier run of the session (it crashed before the entry was resolved)
    with db.session() as s:
        s.add(Prediction(ts=1, run_id="x", model_version="x", schema_hash="", side="BUY", status="pending", session_id="test-session"))
    kill = tmp_path / "KILL"

    def after_store(t):  # the kill arrives while this bar's entry waits for its fill
        if runner._pending_pred is not None and not kill.exists():
            kill.write_text("stop")

    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 890), db, tmp_path, features="batch",
                          after_store=after_store)
    summary = runner.run()
    assert summary.stopped_by == "kill" and runner.broker.open_positions() == 0 and runner.broker.pending is None
    preds = live_store.predictions(db, session_id="test-session")
    assert not (preds["status"] == "pending").any()
    killed = preds[preds["exit_reason"] == "kill"]
    assert len(killed) == 2 and (killed["status"] == "skipped").all()
    assert killed["risk"].str.contains("kill stopped: kill file").all()
    assert killed["risk"].str.contains("the entry was not carried out").all()
    events = live_store.risk_events(db, "test-session")
    assert events.iloc[-1]["rule"] == "kill" and events.iloc[-1]["action"] == "stopped"


def test_kill_file_is_under_the_data_dir_and_live_stop_works_from_any_directory(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"
    cfg = load_config(None, [f"data.data_dir='{data_dir}'"])
    assert kill_file_path(cfg.live, cfg.data.data_dir) == data_dir / "KILL"
    assert kill_file_path(replace(cfg.live, kill_file=Path("x/STOP")), data_dir) == data_dir / "x" / "STOP"
    assert kill_file_path(replace(cfg.live, kill_file=tmp_path / "abs"), data_dir) == tmp_path / "abs"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["--set", f"data.data_dir='{data_dir}'", "live", "stop"]) == 0
    assert (data_dir / "KILL").exists() and not (elsewhere / "data").exists()
    assert str(data_dir / "KILL") in capsys.readouterr().out
    # a runner configured the way `aster-rl live run` does it sees that file, whatever its own directory
    from aster_rl.live.risk import live_settings

    third = tmp_path / "third"
    third.mkdir()
    monkeypatch.chdir(third)
    assert RiskGuard(live_settings(cfg), EnvConfig(), "5m").kill_requested()


# ---------------------------------------------------------------- one runner per session

def test_a_second_runner_on_the_session_refuses_naming_the_holder(tmp_path, replay_market):
    db = make_db(tmp_path)
    first = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch")
    first.start()
    second = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch")
    with pytest.raises(live_store.LeaseHeld) as err:
        second.run()
    message = str(err.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}, lease renewed " in message
    assert "\n" not in message and second.summary.bars == 0
    assert live_store.predictions(db, session_id="test-session").empty
    first.run()
    assert live_store.lease_of(db, "test-session") is None  # released on a clean exit
    other = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch")
    assert other.run().bars == 0  # the session was complete: resumed, nothing left to do, and no refusal


def test_the_lease_is_renewed_each_bar_and_a_crashed_runners_lease_can_be_taken_over(tmp_path, replay_market, database_url):
    db = make_db(tmp_path, url=database_url)
    clock = [1_000.0]

    def wall():
        clock[0] += 1.0
        return clock[0]

    renewals = []
    crashed = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch",
                           wall_clock=wall, after_store=lambda t: renewals.append(live_store.lease_of(db, "test-session")["renewed_at"]))
    crashed.start()
    for sb in list(crashed.source.bars())[:5]:
        crashed.process_bar(sb.bar, sb.last)
    assert len(renewals) == 5 and all(b > a for a, b in itertools.pairwise(renewals))  # renewed in every bar
    # `crashed` stops here without releasing (a killed process); within the timeout nobody may take over
    live = permissive_live(tmp_path)
    soon = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch",
                        wall_clock=lambda: clock[0] + live.lease_timeout_s - 5)
    with pytest.raises(live_store.LeaseHeld, match=r"renewed 1[0-9][0-9] s ago"):
        soon.run()
    later = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch",
                         wall_clock=lambda: clock[0] + live.lease_timeout_s + 5)
    later.start()
    assert live_store.lease_of(db, "test-session")["token"] == later.lease.token
    # the old runner, should it wake up, stores nothing more and stops
    more = list(crashed.source.bars())[5:7]
    with pytest.raises(live_store.LeaseLost, match="taken over"):
        crashed.process_bar(more[0].bar, more[0].last)
    assert later.run().stopped_by == "end"
    assert len(live_store.predictions(db, session_id="test-session")) == 59  # 5 + 54 (the last bar ends it), none twice


def test_two_processes_the_second_refuses_and_a_kill_from_outside_stops_the_first(tmp_path):
    """A runner in another process holds the session; this one is refused with that process's pid; the kill
    file written from here stops it (flattened, lease released)."""
    dbfile = tmp_path / "live.db"
    make_db(tmp_path)
    here = Path(__file__).resolve().parent
    script = f"""
import sys
sys.path[:0] = [{str(here)!r}, {str(here.parents[1])!r}]
from pathlib import Path
from aster_rl.live.sources import ReplaySource
from factories import make_market
from live_helpers import FixedPolicy, paper_runner
from aster_rl.storage import Database
db = Database({f"sqlite:///{dbfile}"!r})
runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(make_market(900, seed=4), 700, 890, pace_s=0.1), db,
                      Path({str(tmp_path)!r}), features="batch")
print(runner.run().stopped_by, flush=True)
"""
    env = {**os.environ, "PYTHONPATH": str(here.parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        db = Database(f"sqlite:///{dbfile}")
        deadline = time.monotonic() + 60
        while live_store.lease_of(db, "test-session") is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
            time.sleep(0.1)
        second = paper_runner(FixedPolicy(n_lev=4), ReplaySource(make_market(900, seed=4), 700, 890), db, tmp_path, features="batch")
        with pytest.raises(live_store.LeaseHeld, match=f"pid {proc.pid} on host {socket.gethostname()}"):
            second.run()
        (tmp_path / "KILL").write_text("stop")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "kill"
    assert live_store.lease_of(db, "test-session") is None
    assert live_store.risk_events(db, "test-session").iloc[-1]["rule"] == "kill"


# ---------------------------------------------------------------- restart: reconcile first

class ReconcilingPaperBroker(PaperBroker):
    """A paper broker with an exchange to reconcile with, failing the first ``failures`` times."""

    reconciles = True

    def __init__(self, env, prices, policy, failures: int) -> None:
        super().__init__(env, prices)
        self.policy, self.failures = policy, failures
        self.calls: list[tuple[bool, int]] = []  # (succeeded, policy calls made before it)

    def reconcile_orders(self, db, session_id, fresh_after_ms=None):
        ok = self.failures == 0
        self.calls.append((ok, self.policy.calls))
        if not ok:
            self.failures -= 1
            raise TemporaryExchangeError("aster fetch_order: 503 Service Unavailable (after 3 retries)")
        return BarResult()


def test_a_restart_reconciles_before_its_first_decision_and_waits_until_that_succeeds(tmp_path, replay_market):
    db = make_db(tmp_path)
    paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch").run(max_bars=20)
    policy = FixedPolicy(n_lev=4)
    env = EnvConfig()
    prices = LivePrices("5m", capacity=64)
    broker = ReconcilingPaperBroker(env, prices, policy, failures=3)
    runner = LiveRunner(policy, ReplaySource(replay_market, 700, 760), broker, db, env_cfg=env, live_cfg=permissive_live(tmp_path),
                        features_cfg=FeaturesConfig(), session_id="test-session", mode="replay", features="batch", prices=prices)
    summary = runner.run()
    assert broker.calls == [(False, 0), (False, 0), (False, 0), (True, 0)]  # at start-up, then before each bar's decision
    assert summary.lost_decisions == 2 and summary.decisions == 39 - 2 and summary.stopped_by == "end"
    events = live_store.risk_events(db, "test-session")
    assert list(events["rule"]) == ["fault", "fault"] and events["reason"].str.contains("not reconciled").all()
    assert len(live_store.predictions(db, session_id="test-session")) == 20 + 37
