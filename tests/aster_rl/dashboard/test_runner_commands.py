"""The runner acts on the dashboard's commands once per bar: pause, resume, flatten, stop."""

from __future__ import annotations

import pytest

from aster_rl.live.sources import ReplaySource
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import FixedPolicy, make_db, paper_runner

SESSION = "test-session"


@pytest.fixture(scope="module")
def replay_market():
    return make_market(900, seed=4)


def _run(tmp_path, market, at: dict[int, str], end: int = 800):
    """A paper replay; ``at[k]``: the command written after the k-th stored bar."""
    db = make_db(tmp_path)
    seen = {"n": 0}

    def after_store(t):
        seen["n"] += 1
        if seen["n"] in at:
            live_store.add_command(db, SESSION, at[seen["n"]])

    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, 700, end), db, tmp_path, features="batch",
                          after_store=after_store, session=SESSION)
    return db, runner, runner.run()


def test_pause_stops_new_positions_until_resume(tmp_path, replay_market):
    db, runner, _ = _run(tmp_path, replay_market, {5: "pause", 40: "resume"})
    preds = live_store.predictions(db, session_id=SESSION)
    cmds = {c["command"]: c for c in live_store.commands(db, SESSION)}
    assert cmds["pause"]["status"] == "done" and cmds["resume"]["status"] == "done"
    paused_from, resumed_at = cmds["pause"]["handled_at"], cmds["resume"]["handled_at"]
    assert paused_from and resumed_at
    # the decisions between: no entry at all, every wanted entry refused with the pause's reason
    during = preds.iloc[6:40]
    assert not during["status"].isin(["pending", "open"]).any()
    refused = during[during["status"] == "refused"]
    assert len(refused) > 0 and refused["risk"].str.contains("paused from the dashboard").all()
    assert (refused["side"] == "WAIT").all()
    after = preds.iloc[41:]
    assert after["status"].isin(["pending", "open", "win", "loss", "skipped"]).any()  # trading again
    events = live_store.risk_events(db, SESSION)
    cmd_events = events[events["rule"] == "command"]
    assert list(cmd_events["action"]) == ["paused", "resumed"]
    assert runner.summary.stopped_by == "end"


def test_a_command_reads_as_handled_only_once_its_event_is_stored(tmp_path, replay_market, monkeypatch):
    # the dashboard shows a command's status and the risk events side by side: never "done" without its event
    stored_when_handled = []
    finish = live_store.finish_command

    def checking_finish(db, command_id, status, note, **kw):
        stored_when_handled.append(set(live_store.risk_events(db, SESSION)["action"]))
        return finish(db, command_id, status, note, **kw)

    monkeypatch.setattr(live_store, "finish_command", checking_finish)
    _run(tmp_path, replay_market, {5: "pause", 20: "resume"}, end=740)
    assert len(stored_when_handled) == 2
    assert "paused" in stored_when_handled[0] and "resumed" in stored_when_handled[1]


def test_pause_survives_a_restart(tmp_path, replay_market):
    db, _runner, _ = _run(tmp_path, replay_market, {3: "pause"}, end=720)
    assert live_store.load_state(db, SESSION)["paused"] is True
    again = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 760), db, tmp_path, features="batch", session=SESSION)
    again.start()
    assert again._paused


def test_flatten_closes_the_open_position_through_the_broker(tmp_path, replay_market):
    db = make_db(tmp_path)
    state = {"done": False}
    runner = None

    def after_store(t):
        if not state["done"] and runner is not None and runner.broker.open_positions():
            live_store.add_command(db, SESSION, "flatten")
            state["done"] = True

    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 800), db, tmp_path, features="batch",
                          after_store=after_store, session=SESSION)
    runner.run()
    assert state["done"]
    preds = live_store.predictions(db, session_id=SESSION)
    flattened = preds[preds["exit_reason"] == "command"]
    assert len(flattened) == 1 and flattened["status"].iloc[0] in ("win", "loss")
    cmd = live_store.commands(db, SESSION)[0]
    assert cmd["command"] == "flatten" and cmd["status"] == "done"
    events = live_store.risk_events(db, SESSION)
    assert ((events["rule"] == "command") & (events["action"] == "flattened")).sum() == 1


def test_stop_flattens_and_stops_the_runner(tmp_path, replay_market):
    db, runner, summary = _run(tmp_path, replay_market, {10: "stop"})
    assert summary.stopped_by == "kill" and summary.bars == 11
    assert runner.broker.open_positions() == 0
    cmd = live_store.commands(db, SESSION)[0]
    assert cmd["status"] == "done" and cmd["note"] == "flattened and stopped"
    events = live_store.risk_events(db, SESSION)
    assert "stop requested from the dashboard" in events.iloc[-1]["reason"]
    assert not (tmp_path / "KILL").exists()  # the kill file is not needed (nor left behind)


def test_an_unknown_command_is_refused_and_recorded(tmp_path, replay_market):
    db = make_db(tmp_path)
    with db.session() as s:  # written by something other than add_command, which refuses it
        from aster_rl.storage.models import LiveCommand

        s.add(LiveCommand(session_id=SESSION, command="explode", requested_at=1, status="new"))
    with pytest.raises(ValueError, match="use one of"):
        live_store.add_command(db, SESSION, "explode")
    paper_runner(FixedPolicy(n_lev=4), ReplaySource(replay_market, 700, 710), db, tmp_path, features="batch", session=SESSION).run()
    cmd = live_store.commands(db, SESSION)[0]
    assert cmd["status"] == "refused" and "unknown command" in cmd["note"]


def test_the_state_carries_the_last_decisions_readings_by_tentacle(tmp_path, replay_market):
    db, runner, _ = _run(tmp_path, replay_market, {}, end=720)
    state = live_store.load_state(db, SESSION)
    last = live_store.predictions(db, session_id=SESSION).iloc[-1]
    assert state["readings"] and set(state["readings"]) <= set(runner.features_cfg.tentacles)
    assert last["reasoning"].endswith("; ".join(state["readings"].values()))


def test_the_state_carries_the_runners_out_of_support_count(tmp_path, replay_market):
    import pandas as pd

    from aster_rl.config import FeaturesConfig
    from aster_rl.evaluation.support import ObservationSupport
    from aster_rl.features.pipeline import build_features
    from live_helpers import DecidingPolicy

    feats = build_features(replay_market, FeaturesConfig())
    policy = DecidingPolicy(n_lev=4)
    policy.support = ObservationSupport.fit(feats.matrix[feats.warmup : 700], list(feats.schema.names))  # the bars before the replay
    db = make_db(tmp_path)
    paper_runner(policy, ReplaySource(replay_market, 700, 780), db, tmp_path, features="batch", session=SESSION).run()
    counts = live_store.load_state(db, SESSION)["support"]
    decided = live_store.predictions(db, session_id=SESSION)
    assert counts["bars"] == len(decided) > 0
    opens = pd.to_datetime(decided["ts"] - 300_000, unit="ms", utc=True)  # each decision's bar
    rows = feats.matrix[replay_market.candles.index.get_indexer(opens)]
    expected = int(policy.support.outside(rows).any(axis=-1).sum())
    assert counts["outside_bars"] == expected > 0  # 76 bars after 76 training bars: some lie outside
    assert counts["top_columns"] and all(0 < share <= 1 for share in counts["top_columns"].values())
