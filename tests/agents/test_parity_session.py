"""Parity of a live session with the backtester, on a really trained tiny run: a paper replay has no
divergent decision, a tampered prediction row is the first divergence; the runner stores the
decision's per-tentacle effects; the dashboard serves the report at /api/parity, cached per bar."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from agents.parity import session_parity
from aster_rl.cli import main
from tiny_runs import tiny_trained_run
from aster_rl.config import replace
from aster_rl.errors import DataError
from aster_rl.storage import Database, live_store
from aster_rl.storage.models import Prediction

BARS = 60
SESSION = "parity-replay"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A tiny PPO run on a stored synthetic market, and a paper replay of its last bars through the live command."""
    cfg, config_file, run_dir, dataset = tiny_trained_run(tmp_path_factory.mktemp("parity"), "parity", live={
        "max_leverage": 50, "max_notional_usd": 1e12, "daily_loss_limit_fraction": 1.0, "stale_after_bars": 1e9})
    index = dataset.market.candles.index
    start = index[len(index) - BARS - 40]
    code = main(["--config", str(config_file), "live", "run", "--run", str(run_dir), "--replay", "--start", start.isoformat(),
                 "--max-bars", str(BARS), "--session", SESSION])
    assert code == 0
    return cfg, run_dir, Database.from_config(cfg.data)


def test_the_runner_stores_each_tentacles_effect_on_p_side(replayed):
    _cfg, run_dir, db = replayed
    from agents.policy import load_policy

    policy = load_policy(run_dir)
    state = live_store.load_state(db, SESSION)
    effects = state["effects"]
    tentacles = {t for t, idx in policy.tentacle_positions().items() if idx}
    assert set(effects) == tentacles and len(tentacles) > 1
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in effects.values())
    assert any(abs(v) > 1e-6 for v in effects.values()), "a trained policy reads some of its inputs"


def test_a_paper_replay_has_no_divergent_decision(replayed):
    cfg, run_dir, db = replayed
    report = session_parity(cfg, db, SESSION, wait_outside_support=cfg.live.wait_outside_support)
    assert report["run_id"] == run_dir.name and report["same_weights"]
    assert report["bars_compared"] == BARS and report["not_compared"] == 0
    assert report["divergent"] == 0 and report["divergent_share"] == 0.0 and report["first_divergence"] is None
    assert report["divergent_by_guard"] == 0
    drift = report["drift"]
    assert drift["bars"] == BARS and 0 <= drift["outside_share"] <= 1
    assert set(drift["tentacles"]) == set(live_store.load_state(db, SESSION)["effects"])
    assert max(drift["tentacles"].values()) <= drift["outside_share"]


def test_a_tampered_prediction_is_the_first_divergence(replayed):
    cfg, _run_dir, db = replayed
    session = "parity-tampered"
    preds = live_store.predictions(db, session_id=SESSION)
    with db.session() as s:  # a copy of the session's rows, then one decision changed
        rows = [{c.name: getattr(r, c.name) for c in Prediction.__table__.columns if c.name != "id"}
                for r in s.query(Prediction).filter(Prediction.session_id == SESSION)]
        for r in rows:
            r["session_id"] = session
        s.bulk_insert_mappings(Prediction, rows)
        s.commit()
    k = 23
    row = preds.iloc[k]
    other = {"WAIT": "BUY", "BUY": "SELL", "SELL": "WAIT"}[row["side"]]
    with db.session() as s:
        s.execute(update(Prediction).where(Prediction.session_id == session, Prediction.ts == int(row["ts"])).values(side=other))
        s.commit()
    report = session_parity(cfg, db, session, wait_outside_support=cfg.live.wait_outside_support)
    assert report["bars_compared"] == BARS and report["divergent"] == 1
    first = report["first_divergence"]
    assert first["ts"] == int(row["ts"]) and first["live"].startswith(other + " ")
    assert first["backtest"].startswith(row["side"] + " ")
    assert report["divergent_by_guard"] == 0 and first["risk"] is None  # not the guard's doing
    # a later decision the guard refused: counted apart, the first divergence stays the same bar
    later = preds.iloc[k + 5]
    with db.session() as s:
        s.execute(update(Prediction).where(Prediction.session_id == session, Prediction.ts == int(later["ts"]))
                  .values(side={"WAIT": "SELL", "BUY": "WAIT", "SELL": "WAIT"}[later["side"]], risk="max_leverage refused: test"))
        s.commit()
    again = session_parity(cfg, db, session, wait_outside_support=cfg.live.wait_outside_support)
    assert again["divergent"] == 2 and again["divergent_by_guard"] == 1 and again["first_divergence"] == first
    assert pd.Timestamp(first["bar_open"]) == pd.Timestamp(int(row["ts"]) - 300_000, unit="ms", tz="UTC")


def test_a_session_without_its_run_is_one_clear_error(replayed):
    cfg, _run_dir, db = replayed
    elsewhere = replace(cfg, train={"checkpoint_dir": str(cfg.data.data_dir) + "/nowhere"})
    with pytest.raises(DataError, match=r"its run .* is not under"):
        session_parity(elsewhere, db, SESSION)
    with pytest.raises(DataError, match="no stored decisions"):
        session_parity(cfg, db, "no-such-session")


def test_the_dashboard_serves_parity_cached_per_bar(replayed):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aster_rl.dashboard.app import create_app
    from aster_rl.dashboard.queries import DashboardStore, Market

    cfg, _run_dir, db = replayed
    calls = []

    def parity_of(session: str):
        calls.append(session)
        return session_parity(cfg, db, session, wait_outside_support=cfg.live.wait_outside_support)

    reader = Database(db.url, read_only=True)
    store = DashboardStore(reader, Market.of(cfg.data), parity=parity_of)
    client = TestClient(create_app(store, token="t"), base_url="http://127.0.0.1:5001")
    first = client.get("/api/parity", params={"session": SESSION})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["bars_compared"] == BARS and body["divergent"] == 0 and body["first_divergence"] is None
    assert client.get("/api/parity", params={"session": SESSION}).json() == body
    assert calls == [SESSION]  # the same last bar: not replayed again
    missing = client.get("/api/parity", params={"session": "no-such-session"})
    assert missing.status_code == 422 and "no stored decisions" in missing.json()["detail"]
    plain = TestClient(create_app(DashboardStore(reader, Market.of(cfg.data)), token="t"), base_url="http://127.0.0.1:5001")
    assert plain.get("/api/parity").status_code == 404
    snap = client.get("/api/snapshot", params={"session": SESSION}).json()
    effects = [e["effect"] for e in snap["effects"]]
    assert len(effects) > 1 and effects == sorted(effects, key=lambda x: -abs(x))
    assert np.isclose(sum(map(abs, effects)), sum(map(abs, live_store.load_state(db, SESSION)["effects"].values())))
