"""Every risk-guard rule, alone, and the refusals stored by the runner with their reasons."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from aster_rl.sim.accounting import BUY, SELL, WAIT
from aster_rl.config import EnvConfig, FeaturesConfig
from aster_rl.errors import RiskRefusal
from aster_rl.features.pipeline import build_features
from aster_rl.live.risk import AccountView, RiskGuard
from aster_rl.live.sources import ReplaySource
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import FixedPolicy, make_db, paper_runner, permissive_live

T = pd.Timestamp("2025-03-05 10:00", tz="UTC")
NOW = T + pd.Timedelta(minutes=5)
ENV = EnvConfig()  # ladder 1, 2, 3, 5, 10, 20, 30, 50; margin 10% of equity


def view(equity=10_000.0, start=10_000.0, open_positions=0, opening=True):
    return AccountView(equity=equity, day_start_equity=start, open_positions=open_positions, opening=opening)


def guard(tmp_path, problem=None, **live):
    return RiskGuard(permissive_live(tmp_path, **live), ENV, "5m", model_problem=problem)


def test_a_plain_decision_passes(tmp_path):
    v = guard(tmp_path).review(BUY, 3, 1, view(), last_bar_open=T, now=NOW)
    assert (v.side, v.lev_i, v.prof_i, v.events) == (BUY, 3, 1, ())


@pytest.mark.parametrize(
    "live,acct,now,problem,rule,match",
    [
        ({}, view(), NOW, "the model is 40.0 days old", "model", "40.0 days"),
        ({"stale_after_bars": 3}, view(), T + pd.Timedelta(minutes=25), None, "stale", "stale data"),
        ({"daily_loss_limit_fraction": 0.05}, view(equity=9_400.0), NOW, None, "daily_loss", "down 6.00% today"),
        ({"max_open_positions": 1}, view(open_positions=1), NOW, None, "open_positions", "1 position"),
        ({"max_open_positions": 0}, view(), NOW, None, "open_positions", "max_open_positions = 0"),
        ({"max_notional_usd": 50.0}, view(), NOW, None, "notional", "lowest leverage 1x"),
    ],
)
def test_each_refusal(tmp_path, live, acct, now, problem, rule, match):
    v = guard(tmp_path, problem, **live).review(SELL, 2, 0, acct, last_bar_open=T, now=now)
    assert v.side == WAIT and v.refused
    (e,) = v.events
    assert (e.rule, e.action) == (rule, "refused") and match in e.reason


def test_leverage_is_capped_down_the_ladder_and_refused_when_nothing_fits(tmp_path):
    v = guard(tmp_path, max_leverage=7).review(BUY, 7, 0, view(), last_bar_open=T, now=NOW)  # 50x asked
    assert v.side == BUY and ENV.leverages[v.lev_i] == 5 and v.events[0].action == "capped"
    env = EnvConfig(leverages=(10, 20))
    g = RiskGuard(permissive_live(tmp_path, max_leverage=5), env, "5m")
    v = g.review(BUY, 0, 0, view(), last_bar_open=T, now=NOW)
    assert v.side == WAIT and v.events[0].rule == "leverage" and v.events[0].action == "refused"


def test_notional_cap_lowers_the_leverage(tmp_path):
    v = guard(tmp_path, max_notional_usd=3_500).review(BUY, 5, 0, view(), last_bar_open=T, now=NOW)  # 1,000 margin x 20
    assert v.side == BUY and ENV.leverages[v.lev_i] == 3
    assert v.events[0].rule == "notional" and v.events[0].action == "capped"


def test_kill_file_refuses_and_closing_is_never_refused(tmp_path):
    g = guard(tmp_path, max_open_positions=0, daily_loss_limit_fraction=0.01)
    (tmp_path / "KILL").write_text("stop")
    v = g.review(BUY, 0, 0, view(), last_bar_open=T, now=NOW)
    assert v.side == WAIT and v.events[0].rule == "kill"
    closing = g.review(SELL, 0, 0, view(equity=1.0, open_positions=1, opening=False), last_bar_open=T, now=NOW + pd.Timedelta(days=9))
    assert closing.side == SELL and not closing.events


def test_model_check_age_and_schema(tmp_path):
    live = permissive_live(tmp_path, max_model_age_days=30)
    assert RiskGuard.check_model(live, time.time() - 86_400, None, None) is None
    assert "days old" in RiskGuard.check_model(live, time.time() - 31 * 86_400, None, None)
    m = make_market(400, seed=1)
    a = build_features(m, FeaturesConfig()).schema
    b = build_features(m, FeaturesConfig(tentacles=("market", "indicators"))).schema
    assert RiskGuard.check_model(live, None, a, a) is None
    assert "feature schema differs" in RiskGuard.check_model(live, None, a, b)


def test_runner_stores_every_refusal_with_its_reason(tmp_path):
    market = make_market(800, seed=4)
    db = make_db(tmp_path)
    live = permissive_live(tmp_path, max_open_positions=0)
    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, 700, 760), db, tmp_path, features="batch", live=live)
    summary = runner.run()
    events = live_store.risk_events(db, "test-session")
    preds = live_store.predictions(db, session_id="test-session")
    refused = preds[preds["status"] == "refused"]
    assert len(refused) > 5 and len(events) == len(refused)
    assert set(events["rule"]) == {"open_positions"} and all("max_open_positions = 0" in r for r in events["reason"])
    assert refused["risk"].str.contains("open_positions refused").all()
    assert not summary.trades  # nothing was opened


def test_runner_refuses_to_start_while_the_kill_file_exists(tmp_path):
    (tmp_path / "KILL").write_text("stop")
    runner = paper_runner(FixedPolicy(), ReplaySource(make_market(800, seed=4), 700, 760), make_db(tmp_path), tmp_path)
    with pytest.raises(RiskRefusal, match="remove the file"):
        runner.run()


def test_kill_file_mid_run_flattens_and_stops(tmp_path):
    db = make_db(tmp_path)
    hits = []

    def after_store(t):
        hits.append(t)
        if runner.broker.open_positions() == 0 and runner.broker.pending and runner.broker.pending["side"] != WAIT:
            return
        if runner.broker.open_positions() and not (tmp_path / "KILL").exists():
            (tmp_path / "KILL").write_text("stop")

    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(make_market(900, seed=4), 700, 890), db, tmp_path,
                          features="batch", after_store=after_store)
    summary = runner.run()
    assert summary.stopped_by == "kill" and summary.bars < 190
    assert runner.broker.open_positions() == 0
    assert summary.trades[-1]["reason"] == "kill"
    events = live_store.risk_events(db, "test-session")
    assert events.iloc[-1]["rule"] == "kill" and events.iloc[-1]["action"] == "stopped"
    preds = live_store.predictions(db, session_id="test-session")
    assert (preds["exit_reason"] == "kill").sum() == 1
