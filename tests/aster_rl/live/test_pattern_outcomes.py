"""Live / paper trades that matched a library pattern update its statistics and status, once."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from aster_rl.config import EnvConfig, FeaturesConfig, PatternsConfig
from aster_rl.features.pipeline import build_features
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import PaperBroker
from aster_rl.live.pattern_outcomes import PatternMatcher, net_return
from aster_rl.live.runner import LiveRunner
from aster_rl.live.sources import ReplaySource
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.library import PatternLibrary
from aster_rl.patterns.stats import Status, compute_stats
from aster_rl.storage import live_store
from aster_rl.storage.models import Pattern as PatternRow
from aster_rl.storage.models import PatternHistory, Prediction
from aster_rl.storage.pattern_store import load_library, pattern_trades, save_library
from aster_rl.features.tentacles.btc_cycle import PHASES
from aster_rl.features.tentacles.regime import STATE_NAMES
from factories import make_market
from live_helpers import FixedPolicy, make_db, permissive_live

FEATS = FeaturesConfig(tentacles=("market", "indicators", "orderflow", "regime", "btc_cycle"))
CFG = PatternsConfig(min_trades=10, promote_win_rate=0.9, demote_win_rate=0.55)
START, END = 700, 900
SESSION = "pattern-session"

RSI = "indicators_rsi_14"
LONG_WIDE = Pattern((Condition(RSI, "<=", 51.0),), "long", "scalp")
LONG_NARROW = Pattern((Condition(RSI, "<=", 45.0),), "long", "swing")  # higher bound: best where both match
SHORT = Pattern((Condition(RSI, ">=", 50.0),), "short", "scalp")
NO_COLUMN = Pattern((Condition("whales_skew_sum_12", ">=", -1e9),), "long", "scalp")  # whales not in FEATS
DEMOTED = Pattern((Condition(RSI, ">=", 0.0),), "short", "swing")
INITIAL = {
    LONG_WIDE.name: [0.01] * 16 + [-0.01] * 4,
    LONG_NARROW.name: [0.01] * 18 + [-0.01] * 2,
    SHORT.name: [0.01] * 16 + [-0.01] * 4,
    NO_COLUMN.name: [0.01] * 19 + [-0.01],
    DEMOTED.name: [0.01] * 5 + [-0.01] * 15,
}
PATTERNS = {p.name: p for p in (LONG_WIDE, LONG_NARROW, SHORT, NO_COLUMN, DEMOTED)}


@pytest.fixture(scope="module")
def market():
    return make_market(1_000, seed=8)


@pytest.fixture(scope="module")
def frame(market):
    """The features of the replayed range, as the runner's batch mode builds them."""
    return build_features(market.window(None, market.candles.index[END - 1]), FEATS).frame()


def hand_made_library() -> PatternLibrary:
    lib = PatternLibrary(CFG)
    for name, returns in INITIAL.items():
        lib.add(PATTERNS[name], compute_stats(returns), ts_ms=0)
    return lib


def store_library(db) -> PatternLibrary:
    lib = hand_made_library()
    assert [str(e.status) for e in lib] == ["active", "active", "active", "active", "demoted"]
    save_library(db, lib)
    return lib


class CrashingBroker(PaperBroker):
    """Dies at chosen bars after the broker ran the bar and before anything was stored."""

    def __init__(self, env: EnvConfig, prices: LivePrices) -> None:
        super().__init__(env, prices)
        self.crash_at: set[int] = set()  # emptied as the crashes happen

    def observation(self, row, t):
        if t in self.crash_at:
            self.crash_at.discard(t)
            raise Crash(f"before the store at {t}")
        return super().observation(row, t)


class Crash(Exception):
    pass


def runner(market, db, tmp_path, *, crash_before: set[int] | None = None, after_store=None, use_patterns=True) -> LiveRunner:
    env = EnvConfig()
    prices = LivePrices("5m", capacity=64)
    broker = CrashingBroker(env, prices)
    broker.crash_at = crash_before if crash_before is not None else set()
    return LiveRunner(
        FixedPolicy(n_lev=4), ReplaySource(market, START, END), broker, db, env_cfg=env, live_cfg=permissive_live(tmp_path),
        features_cfg=FEATS, session_id=SESSION, mode="replay", features="batch", prices=prices, after_store=after_store,
        patterns_cfg=CFG, use_patterns=use_patterns,
    )


def expected_match(frame: pd.DataFrame, decision_ts_ms: int, side: str) -> str | None:
    """The best usable pattern of that side matching the decision bar (bounds as stored at start)."""
    t = pd.Timestamp(decision_ts_ms, unit="ms", tz="UTC") - pd.Timedelta("5min")
    row = frame.loc[[t]]
    best, best_bound = None, -1.0
    for e in hand_made_library().usable():
        if e.pattern.side != side or any(c not in frame.columns for c in e.pattern.columns):
            continue
        if e.pattern.matches(row)[0] and e.stats.win_rate_lower_bound > best_bound:
            best, best_bound = e.name, e.stats.win_rate_lower_bound
    return best


def live_trades(db, summary, frame) -> dict[str, list[tuple[int, float, str | None, str | None]]]:
    """Per pattern: its closed live trades (close time, net return, regime, phase) in close order."""
    preds = live_store.predictions(db, session_id=SESSION)
    with db.session() as s:
        names = dict(s.execute(select(Prediction.id, Prediction.pattern).where(Prediction.session_id == SESSION)).all())
    by_exit = {int(tr["exit_time"]) // 1_000_000: tr for tr in summary.trades}
    out: dict[str, list] = {}
    for _, p in preds.sort_values("closed_at").iterrows():
        name = names[int(p["id"])]
        if name is None or p["status"] not in ("win", "loss"):
            continue
        tr = by_exit[int(p["closed_at"])]
        assert tr["pnl_usd"] == pytest.approx(p["pnl_usd"])
        row = frame.loc[pd.Timestamp(int(p["ts"]), unit="ms", tz="UTC") - pd.Timedelta("5min")]
        regime = STATE_NAMES[int(row["regime_state"])]
        phase = PHASES[int(row["btc_cycle_phase"])]
        out.setdefault(name, []).append((int(p["closed_at"]), tr["pnl_usd"] / (tr["qty"] * tr["entry_price"]), regime, phase))
    return out


def stored(db):
    lib = load_library(db, CFG)
    return {e.name: e for e in lib}


def test_replay_names_patterns_and_updates_their_statistics(market, frame, tmp_path, caplog, capsys):
    db = make_db(tmp_path)
    store_library(db)
    with caplog.at_level(logging.WARNING, logger="aster_rl.live.pattern_outcomes"):
        r = runner(market, db, tmp_path)
        summary = r.run()
    assert any("whales_skew_sum_12" in m and "not matched live" in m for m in caplog.messages)
    assert len(r.patterns) == 3  # the demoted one is not usable, the one on a missing column is skipped

    # every entry names the best matching usable pattern of its side; nothing else names one
    preds = live_store.predictions(db, session_id=SESSION)
    with db.session() as s:
        names = dict(s.execute(select(Prediction.id, Prediction.pattern).where(Prediction.session_id == SESSION)).all())
    entries = preds["status"].isin(["pending", "open", "win", "loss", "skipped"])
    assert entries.sum() > 20
    for _, p in preds.iterrows():
        if entries[_]:
            side = "long" if p["side"] == "BUY" else "short"
            assert names[int(p["id"])] == expected_match(frame, int(p["ts"]), side)
        else:
            assert names[int(p["id"])] is None
    named = {n for n in names.values() if n}
    assert named == {LONG_WIDE.name, LONG_NARROW.name, SHORT.name}

    # statistics: the initial ones plus exactly the closed live trades, as compute_stats sees them
    trades = live_trades(db, summary, frame)
    after = stored(db)
    assert sum(len(v) for v in trades.values()) >= 10
    for name, initial in INITIAL.items():
        live = trades.get(name, [])
        e = after[name]
        before = compute_stats(initial)
        assert e.stats.trades - before.trades == len(live)
        assert e.stats.wins - before.wins == sum(1 for t in live if t[1] > 0)
        assert e.stats.losses - before.losses == sum(1 for t in live if t[1] <= 0)
        want = compute_stats(
            initial + [t[1] for t in live], [None] * len(initial) + [t[2] for t in live], [None] * len(initial) + [t[3] for t in live]
        )
        got, exp = e.stats.to_dict(), want.to_dict()
        assert got["trades"] == exp["trades"] and got["wins"] == exp["wins"]
        assert got["gross_win"] == pytest.approx(exp["gross_win"]) and got["gross_loss"] == pytest.approx(exp["gross_loss"])
        assert got["by_regime"].keys() == exp["by_regime"].keys() and got["by_phase"].keys() == exp["by_phase"].keys()
        for k in exp["by_regime"]:
            assert got["by_regime"][k] == pytest.approx(exp["by_regime"][k])
        for k in exp["by_phase"]:
            assert got["by_phase"][k] == pytest.approx(exp["by_phase"][k])
        assert e.status == hand_made_library().status_for(want)

        # history: created, then one event per closed trade at its close time, status changes named
        replay = hand_made_library()
        for ts, r_, regime, phase in live:
            replay.record_outcome(name, r_, regime, phase, ts)
        assert [(h.ts_ms, h.event) for h in e.history] == [(h.ts_ms, h.event) for h in replay.get(name).history]
        assert [h.snapshot.get("net_return") for h in e.history[1:]] == pytest.approx([t[1] for t in live])

    changes = [h.event for e in after.values() for h in e.history if h.event in ("demoted", "promoted", "activated")]
    assert "demoted" in changes  # the live losses demoted a pattern, and the history says so
    assert after[DEMOTED.name].stats == compute_stats(INITIAL[DEMOTED.name])
    assert after[NO_COLUMN.name].stats == compute_stats(INITIAL[NO_COLUMN.name])

    # `patterns show` reads the live trades with the net return the library counted
    _, live = pattern_trades(db, LONG_WIDE.name)
    closed = [t for t in live if t["status"] in ("win", "loss")]
    assert [t["net_return"] for t in closed] == pytest.approx([t[1] for t in trades[LONG_WIDE.name]])
    from aster_rl.cli import main

    assert main(["--set", f"data.database_url=sqlite:///{tmp_path / 'live.db'}", "patterns", "show", LONG_WIDE.name]) == 0
    out = capsys.readouterr().out
    assert f"live/paper trades ({len(live)})" in out and f"net {trades[LONG_WIDE.name][0][1]:+.3%}" in out
    # and shows the status changes of a pattern the live losses demoted
    demoted_live = next(e.name for e in after.values() if any(h.event == "demoted" for h in e.history))
    assert main(["--set", f"data.database_url=sqlite:///{tmp_path / 'live.db'}", "patterns", "show", demoted_live]) == 0
    assert "demoted" in capsys.readouterr().out

    # running the finished session again changes nothing
    runner(market, db, tmp_path).run()
    again = stored(db)
    assert {n: (e.stats, len(e.history)) for n, e in again.items()} == {n: (e.stats, len(e.history)) for n, e in after.items()}


def test_restart_mid_run_does_not_double_count(market, frame, tmp_path):
    ref_db = make_db(tmp_path, "ref.db")
    store_library(ref_db)
    ref = runner(market, ref_db, tmp_path).run()
    ref_lib = stored(ref_db)
    closes = sorted(ts for v in live_trades(ref_db, ref, frame).values() for ts, *_ in v)
    assert len(closes) >= 6
    bar_of = {int(ts.value // 1_000_000): i for i, ts in enumerate(market.candles.index)}
    bars = [bar_of[ts] for ts in closes]
    after_targets = set(bars[0::2])  # crash right after the bar that closed the trade was stored
    before_targets = set(bars[1::2])  # crash after the broker closed it, before anything was stored

    db = make_db(tmp_path, "crash.db")
    store_library(db)
    crashed_after: set[int] = set()

    def after_store(t):
        if t in after_targets and t not in crashed_after:
            crashed_after.add(t)
            raise Crash(f"after the store at {t}")

    before = set(before_targets)
    restarts = 0
    while True:
        try:
            summary = runner(market, db, tmp_path, crash_before=before, after_store=after_store).run()
            break
        except Crash:
            restarts += 1
    assert crashed_after and not before  # both kinds of crash happened
    assert restarts >= len(crashed_after) + len(before_targets) - 1
    assert summary.final_equity == ref.final_equity
    got = stored(db)
    for name, e in ref_lib.items():
        g = got[name]
        assert (g.stats.trades, g.stats.wins) == (e.stats.trades, e.stats.wins)
        assert g.stats.gross_win == pytest.approx(e.stats.gross_win) and g.stats.gross_loss == pytest.approx(e.stats.gross_loss)
        assert g.status == e.status
        assert [(h.ts_ms, h.event) for h in g.history] == [(h.ts_ms, h.event) for h in e.history]


def test_an_outcome_written_twice_counts_once(tmp_path):
    db = make_db(tmp_path)
    store_library(db)
    pred = {"ts": 1_000, "symbol": "X", "run_id": "r", "model_version": "m", "schema_hash": "h", "side": "BUY",
            "status": "pending", "pattern": LONG_WIDE.name}
    pid = live_store.record_bar(db, SESSION, state={}, prediction=pred)
    trade = {"qty": 2.0, "entry_price": 50.0, "pnl_usd": -1.5}
    update = {"net_return": net_return(trade), "regime": "ranging", "phase": None, "cfg": CFG}
    close = {"prediction_id": pid, "status": "loss", "pnl_usd": -1.5, "closed_at": 2_000, "pattern_update": update}
    live_store.record_bar(db, SESSION, state={}, outcomes=[{"prediction_id": pid, "status": "open", "pattern_update": update}])
    assert stored(db)[LONG_WIDE.name].stats.trades == 20  # not closed yet: nothing counted
    live_store.record_bar(db, SESSION, state={}, outcomes=[close])
    live_store.record_bar(db, SESSION, state={}, outcomes=[close])  # e.g. reconciliation after a restart
    e = stored(db)[LONG_WIDE.name]
    assert e.stats.trades == 21 and e.stats.losses == 5
    assert e.stats.by_regime["ranging"].trades == 1
    assert e.history[-1].snapshot["net_return"] == pytest.approx(-0.015) and e.history[-1].ts_ms == 2_000
    assert e.history[-1].event == "demoted" and e.status == Status.DEMOTED
    assert len(e.history) == 2


def test_no_library_changes_nothing(market, tmp_path):
    db = make_db(tmp_path)
    r = runner(market, db, tmp_path)
    summary = r.run()
    assert r.patterns is None and summary.trades
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.pattern.is_not(None))) == 0
        assert s.scalar(select(func.count()).select_from(PatternRow)) == 0
        assert s.scalar(select(func.count()).select_from(PatternHistory)) == 0


def test_only_unusable_patterns_or_switched_off_is_no_library(market, tmp_path):
    db = make_db(tmp_path)
    lib = PatternLibrary(CFG)
    lib.add(DEMOTED, compute_stats(INITIAL[DEMOTED.name]), ts_ms=0)
    save_library(db, lib)
    assert PatternMatcher.load(db, CFG, ["indicators_rsi_14"]) is None
    db2 = make_db(tmp_path, "off.db")
    store_library(db2)
    r = runner(market, db2, tmp_path, use_patterns=False)
    r.run()
    assert r.patterns is None
    assert all(len(e.history) == 1 for e in stored(db2).values())


def test_matcher_picks_the_highest_bound_of_the_side():
    cols = [RSI, "regime_state", "btc_cycle_phase"]
    m = PatternMatcher([(LONG_WIDE.name, LONG_WIDE, 0.58), (LONG_NARROW.name, LONG_NARROW, 0.70), (SHORT.name, SHORT, 0.9)], cols, CFG)
    row = np.array([40.0, 1.0, 2.0])
    assert m.match(row, "open_long") == {"pattern": LONG_NARROW.name, "regime": "trending up", "phase": "BULL_MARKET_PARABOLIC"}
    assert m.match(np.array([48.0, 0.0, np.nan]), "open_long") == {"pattern": LONG_WIDE.name, "regime": "ranging", "phase": None}
    assert m.match(row, "open_short") is None
    assert m.match(np.array([55.0, 3.0, 0.0]), "open_short")["pattern"] == SHORT.name
    assert m.match(row, "close") is None
    assert net_return({"qty": 0.0, "entry_price": 1.0, "pnl_usd": 1.0}) is None
