"""The pattern-library tentacle (no leakage from the applied range), persistence and the CLI."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import EnvConfig, FeaturesConfig, PatternsConfig, SynthConfig
from aster_rl.features.pipeline import build_features
from aster_rl.data.market import MarketBundle
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.library import PatternLibrary
from aster_rl.patterns.miner import mine
from aster_rl.patterns.stats import Status, compute_stats, wilson_lower_bound
from aster_rl.sim.prices import PriceArrays
from aster_rl.data.synthetic import synthesize
from aster_rl.features.tentacles import TENTACLES

COLUMNS = ("market_volume_ratio", "orderflow_taker_buy_ratio", "indicators_rsi_14", "regime_state")
N_TRAIN = 288 * 40


def learn(market: MarketBundle) -> PatternLibrary:
    """Mine the first N_TRAIN bars only and build the library (usable patterns)."""
    train = market.window(None, market.candles.index[N_TRAIN - 1])
    fs = build_features(train, FeaturesConfig())
    # permissive thresholds so that 40 training days leave the tentacle usable patterns to report
    cfg = PatternsConfig(demote_win_rate=0.3, fdr=0.5)
    result = mine(fs.frame(), PriceArrays.from_market(train), cfg, EnvConfig(), columns=COLUMNS, first_bar=fs.warmup, profiles=("swing",))
    return PatternLibrary.from_mining(result, cfg)


def tentacle_values(market: MarketBundle, library: PatternLibrary) -> pd.DataFrame:
    cfg = FeaturesConfig(tentacles=(*FeaturesConfig().tentacles, "pattern_library"), params={"pattern_library": library.tentacle_params()})
    frame = build_features(market, cfg).frame()
    return frame[[c for c in frame.columns if c.startswith("pattern_library_")]]


def test_no_library_gives_zeros_and_flag():
    market = synthesize(SynthConfig(n_bars=600))
    out = TENTACLES["pattern_library"].compute(market)
    assert (out.to_numpy() == 0).all() and "pattern_library_available" in out.columns
    assert "none loaded" in TENTACLES["pattern_library"].reading(out.iloc[-1])


def test_tentacle_reports_matches_with_the_statistics_of_trades_closed_by_each_bar():
    lib = PatternLibrary(PatternsConfig(min_trades=5, demote_win_rate=0.5))
    p = Pattern((Condition("x", ">=", 1.0),), "short", "scalp")
    market = synthesize(SynthConfig(n_bars=400))
    idx = market.candles.index
    # 40 winning training trades closing in bars 150..189: usable once 5 have closed (bar 154)
    trades = [(str(idx[140 + i]), str(idx[150 + i]), 0.01, "target") for i in range(40)]
    lib.add(p, compute_stats([0.01] * 40), trades=trades)
    ctx = pd.DataFrame({"x": np.r_[np.zeros(100), np.ones(300)]}, index=idx)
    out = TENTACLES["pattern_library"].compute(market, ctx, **lib.tentacle_params())
    assert out["pattern_library_any_match"].tolist() == [0.0] * 154 + [1.0] * 246
    assert (out["pattern_library_best_side"].iloc[154:] == -1).all()
    assert out["pattern_library_best_win_rate"].iloc[154] == pytest.approx(wilson_lower_bound(5, 5))
    assert out["pattern_library_best_win_rate"].iloc[170] == pytest.approx(wilson_lower_bound(21, 21))
    assert out["pattern_library_best_win_rate"].iloc[-1] == pytest.approx(lib.get(p.name).stats.win_rate_lower_bound)
    assert out["pattern_library_best_expectancy_bps"].iloc[-1] == pytest.approx(100.0)


def test_tentacle_values_do_not_change_when_the_test_range_outcomes_change():
    market = synthesize(SynthConfig(n_bars=288 * 60))
    # the same training range, a different future: every test-range bar after the cut moves
    candles = market.candles.copy()
    cut = N_TRAIN + 288 * 5
    scale = np.r_[np.ones(cut), np.linspace(1.0, 1.3, len(candles) - cut)]
    for col in ("open", "high", "low", "close"):
        candles[col] = candles[col] * scale
    other = dataclasses.replace(market, candles=candles)

    lib_a, lib_b = learn(market), learn(other)
    assert len(lib_a) > 0
    assert [e.name for e in lib_a] == [e.name for e in lib_b]  # learned from the training range only
    assert lib_a.tentacle_params() == lib_b.tentacle_params()
    a, b = tentacle_values(market, lib_a), tentacle_values(other, lib_b)
    assert a["pattern_library_any_match"].iloc[N_TRAIN:].sum() > 0
    # test-range values up to the cut do not see the changed outcomes after it
    pd.testing.assert_frame_equal(a.iloc[:cut], b.iloc[:cut])


def test_store_round_trip_and_outcome_updates(tmp_path):
    from aster_rl.storage import Database
    from aster_rl.storage.pattern_store import load_library, pattern_trades, record_outcome, save_library

    db = Database("sqlite://")
    db.init_schema()
    cfg = PatternsConfig(min_trades=30)
    lib = PatternLibrary(cfg)
    p = Pattern((Condition("market_volume_ratio", ">=", 3.0), Condition("orderflow_taker_buy_ratio", ">=", 0.75)), "long", "scalp")
    lib.add(p, compute_stats([0.01] * 27 + [-0.01] * 3, regimes=["trending up"] * 30), {"p_value": 1e-6})
    save_library(db, lib, {p.name: [["2025-03-01", "2025-03-02", 0.01, "target"]]})
    back = load_library(db, cfg)
    e = back.get(p.name)
    assert e.stats.summary() == lib.get(p.name).stats.summary() and e.status is Status.ACTIVE
    assert e.meta["p_value"] == 1e-6 and [h.event for h in e.history] == ["created"]
    for i in range(60):
        e = record_outcome(db, cfg, p.name, 0.01, regime="trending up", ts_ms=10**12 + i)
    stored = load_library(db, cfg).get(p.name)
    assert stored.stats.trades == 90 and stored.status is Status.PROMOTED
    assert "promoted" in [h.event for h in stored.history]
    training, live = pattern_trades(db, p.name)
    assert training == [["2025-03-01", "2025-03-02", 0.01, "target"]] and live == []


def test_cli_mine_and_list(tmp_path, capsys):
    from aster_rl.cli import main

    sets = [
        "--set", f"data.data_dir={tmp_path.as_posix()}",
        "--set", "synth.n_bars=8640",
        "--set", "patterns.max_conditions=1",
    ]
    assert main([*sets, "data", "synth"]) == 0
    assert main([*sets, "patterns", "mine", "--max-candidates", "40"]) == 0
    out = capsys.readouterr().out
    assert "naive (p < 0.05" in out and "corrected (Benjamini-Hochberg" in out
    assert main([*sets, "patterns", "list"]) == 0
    assert main([*sets, "patterns", "show", "no such pattern"]) == 2
    assert "no pattern named" in capsys.readouterr().err
