"""``aster-rl live run --run RUN --replay`` end to end on a REALLY trained PPO checkpoint: the
command stores its decisions (with confidence and reasoning), ``aster-rl predictions``
lists them, and they are the run's deterministic policy through the backtester on the
same bars, with the batch features (the replay default) and with the live feature path."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from aster_rl.sim.backtest import backtest
from aster_rl.cli import main
from tiny_runs import tiny_trained_run
from aster_rl.config import AppConfig
from aster_rl.live.brokers import SIDE_NAMES
from aster_rl.storage import Database, live_store

BARS = 120  # decisions checked through the command with the batch features
INCREMENTAL_BARS = 30  # and with the incremental (live) features


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PPO run on a stored synthetic market, its config file and the market."""
    # limits that never bind, so the executed decisions are the policy's own (the guard has its own tests)
    return tiny_trained_run(tmp_path_factory.mktemp("trained"), "live_e2e", live={
        "max_leverage": 50, "max_notional_usd": 1e12, "daily_loss_limit_fraction": 1.0, "stale_after_bars": 1e9})


def _stored_actions(frame: pd.DataFrame, cfg: AppConfig) -> list[tuple[int, int, int]]:
    side_of = {name: i for i, name in SIDE_NAMES.items()}
    lev_of = {lev: i for i, lev in enumerate(cfg.env.leverages)}
    prof_of = {name: i for i, name in enumerate(cfg.env.exit_profiles)}
    return [(side_of[s], lev_of[int(lev)], prof_of[p]) for s, lev, p in zip(frame["side"], frame["leverage"], frame["profile"])]


def _reference(run_dir, dataset, cfg, start: int, bars: int):
    """The run's deterministic policy through the backtester: decisions on bars start .. start + bars - 1."""
    from agents.data import fill_warmup
    from agents.policy import load_policy
    from aster_rl.features.pipeline import build_features

    policy = load_policy(run_dir)
    features = fill_warmup(build_features(dataset.market, policy.config.features))
    assert np.allclose(features.matrix[features.warmup :], dataset.features.matrix[features.warmup :], rtol=0, atol=0)
    return backtest(policy.predict, features.matrix, dataset.prices, policy.config.env, start=start, end=start + bars + 1)


def _forced_waits(db: Database, preds: pd.DataFrame, run_dir) -> np.ndarray:
    """The decisions forced to WAIT outside the training support: exactly the stored observations outside it,
    each WAIT, without the policy's confidence, naming columns that are outside."""
    from sqlalchemy import select

    from aster_rl.evaluation.support import ObservationSupport
    from aster_rl.storage.models import Prediction

    support = ObservationSupport.load(run_dir)
    assert support is not None
    with db.session() as s:
        stored = dict(s.execute(select(Prediction.id, Prediction.observation).where(Prediction.id.in_(list(preds["id"])))).all())
    obs = [np.asarray(stored[i], dtype=float) for i in preds["id"]]
    outside = np.array([bool(support.outside(o)[0].any()) for o in obs])
    forced = preds["reasoning"].str.startswith("WAIT: outside the training support (").to_numpy()
    np.testing.assert_array_equal(forced, outside)
    for o, text, side, conf in zip(obs, preds["reasoning"], preds["side"], preds["confidence"]):
        if text.startswith("WAIT: outside"):
            named = text.split("(", 1)[1].split(")", 1)[0].split(" and ")[0].split(", ")
            assert side == "WAIT" and pd.isna(conf) and set(named) <= set(support.outside_columns(o)), text
    return forced


def _live(config_file, run_dir, session: str, start: pd.Timestamp, bars: int, *extra: str) -> int:
    return main(["--config", str(config_file), "live", "run", "--run", str(run_dir), "--replay", "--start", start.isoformat(),
                 "--max-bars", str(bars), "--session", session, *extra])


def test_live_command_on_a_trained_run_matches_the_backtest(trained, capsys):
    cfg, config_file, run_dir, dataset = trained
    index = dataset.market.candles.index
    start = len(index) - BARS - 40  # inside the held-out end of the market
    assert start > dataset.features.warmup
    code = _live(config_file, run_dir, "e2e-batch", index[start], BARS)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{BARS} bars, {BARS} decisions" in out and "decision latency" in out

    db = Database.from_config(cfg.data)
    preds = live_store.predictions(db, session_id="e2e-batch")
    assert len(preds) == BARS and preds["ts"].is_unique
    assert (preds["run_id"] == run_dir.name).all()
    forced = _forced_waits(db, preds, run_dir)
    assert preds["confidence"][~forced].between(0, 1, inclusive="right").all()
    assert preds["value_estimate"].notna().all()
    assert preds["reasoning"].str.len().min() > 20

    ref = _reference(run_dir, dataset, cfg, start, BARS)
    assert len(ref.actions) == BARS
    assert len(set(map(tuple, ref.actions.to_numpy()))) > 1, "the trained policy should not be constant on these bars"
    # decision times: each prediction is stamped with its bar's close
    close_ms = [int((t + pd.Timedelta(cfg.data.timeframe)).value // 1_000_000) for t in ref.actions.index]
    assert list(preds["ts"].astype("int64")) == close_ms
    assert _stored_actions(preds, cfg) == [tuple(int(x) for x in a) for a in ref.actions.to_numpy()]
    # trades closed during the replayed bars are the backtester's (its range has one bar more: the last
    # decision's bar, where it may also close a trade, by stop, target or at the end)
    closed = preds[preds["status"].isin(["win", "loss"])].sort_values("closed_at")
    ref_closed = ref.trades[pd.to_datetime(ref.trades["exit_time"], utc=True) < index[start + BARS]]
    assert len(ref_closed) >= 5, "the trained policy must trade for the comparison to mean something"
    assert len(closed) == len(ref_closed)
    assert np.array_equal(closed["pnl_usd"].to_numpy(float), ref_closed["pnl_usd"].to_numpy(float))
    assert list(closed["exit_reason"]) == list(ref_closed["reason"])

    # `aster-rl predictions` lists them, with the running win rate and PnL
    code = main(["--config", str(config_file), "predictions", "--session", "e2e-batch", "--all", "--limit", "5"])
    listing = capsys.readouterr().out
    assert code == 0
    assert f"{BARS} decisions" in listing
    assert len([line for line in listing.splitlines() if line.startswith(str(index[0].year))]) == 5


def test_live_command_with_incremental_features_on_a_trained_run(trained, capsys):
    cfg, config_file, run_dir, dataset = trained
    index = dataset.market.candles.index
    start = len(index) - INCREMENTAL_BARS - 10
    code = _live(config_file, run_dir, "e2e-incremental", index[start], INCREMENTAL_BARS, "--features", "incremental")
    out = capsys.readouterr().out
    assert code == 0, out
    db = Database.from_config(cfg.data)
    preds = live_store.predictions(db, session_id="e2e-incremental")
    assert len(preds) == INCREMENTAL_BARS
    forced = _forced_waits(db, preds, run_dir)
    assert forced.any() and not forced.all(), "these bars should be partly outside the tiny run's training support"
    assert preds["confidence"][~forced].notna().all() and preds["reasoning"].str.len().min() > 20
    ref = _reference(run_dir, dataset, cfg, start, INCREMENTAL_BARS)
    assert _stored_actions(preds, cfg) == [tuple(int(x) for x in a) for a in ref.actions.to_numpy()]


def test_a_second_runner_on_a_held_session_refuses_naming_the_holder(trained, capsys):
    cfg, config_file, run_dir, dataset = trained
    index = dataset.market.candles.index
    db = Database.from_config(cfg.data)
    live_store.acquire_lease(db, "held", timeout_s=cfg.live.lease_timeout_s, pid=4242, host="other-host")  # a runner elsewhere
    code = _live(config_file, run_dir, "held", index[len(index) - 20], 5)
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert line.startswith("aster-rl live: error: session 'held' is run by another runner: pid 4242 on host other-host")
    assert re.search(r"lease renewed \d+ s ago \(it expires 120 s after its last renewal\)", line)
    assert live_store.predictions(db, session_id="held").empty and live_store.lease_of(db, "held")["pid"] == 4242
