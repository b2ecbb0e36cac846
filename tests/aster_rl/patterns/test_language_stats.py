import math

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import PatternsConfig
from aster_rl.errors import DataError
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.library import PatternLibrary
from aster_rl.patterns.stats import PatternStats, Status, compute_stats, status_of, wilson_lower_bound


def planted_like() -> Pattern:
    return Pattern(
        (Condition("orderflow_taker_buy_ratio", ">=", 0.75), Condition("market_volume_ratio", ">=", 3.0)),
        "long",
        "scalp",
    )


def test_name_is_readable_and_canonical():
    p = planted_like()
    assert p.name == "volume ratio ≥ 3× & taker buy ≥ 0.75 → long/scalp"
    q = Pattern(tuple(reversed(p.conditions)), "long", "scalp")
    assert q.name == p.name and q == p
    assert Pattern((Condition("regime_state", "==", 1),), "short", "swing").name == "regime = trending up → short/swing"


def test_round_trip_and_matches():
    p = planted_like()
    assert Pattern.from_dict(p.to_dict()) == p
    frame = pd.DataFrame(
        {
            "market_volume_ratio": [3.0, 5.0, 2.9, np.nan, 4.0],
            "orderflow_taker_buy_ratio": [0.75, 0.9, 0.9, 0.9, 0.74],
        }
    )
    assert p.matches(frame).tolist() == [True, True, False, False, False]
    with pytest.raises(DataError, match="missing"):
        p.matches(frame[["market_volume_ratio"]])


def test_bad_definitions_are_refused():
    with pytest.raises(ValueError, match="op"):
        Condition("x", ">", 1.0)
    with pytest.raises(ValueError, match="repeat"):
        Pattern((Condition("x", ">=", 1.0), Condition("x", "<=", 2.0)), "long", "scalp")
    with pytest.raises(ValueError, match="side"):
        Pattern((Condition("x", ">=", 1.0),), "up", "scalp")


def test_hand_computed_statistics():
    # 3 wins (+2%, +1%, +3%) and 2 losses (-1%, -0.5%)
    r = [0.02, -0.01, 0.01, -0.005, 0.03]
    s = compute_stats(r, regimes=["a", "b", "a", "b", "a"])
    assert (s.trades, s.wins, s.losses) == (5, 3, 2)
    assert s.win_rate == pytest.approx(0.6)
    assert s.profit_factor == pytest.approx(0.06 / 0.015)  # 4.0
    assert s.expectancy == pytest.approx(0.045 / 5)
    assert s.avg_win == pytest.approx(0.02) and s.avg_loss == pytest.approx(0.0075)
    # Wilson 95%: (0.6 + z²/10 - z*sqrt(0.24/5 + z²/100)) / (1 + z²/5), z = 1.959964
    z = 1.959964
    hand = (0.6 + z * z / 10 - z * math.sqrt(0.24 / 5 + z * z / 100)) / (1 + z * z / 5)
    assert s.win_rate_lower_bound == pytest.approx(hand, abs=1e-6)
    assert s.win_rate_lower_bound == pytest.approx(0.2307, abs=1e-4)
    assert s.best_regime == "a"
    # incremental updates equal the batch computation
    inc = PatternStats()
    for x, g in zip(r, ["a", "b", "a", "b", "a"]):
        inc = inc.add(x, regime=g)
    assert inc.summary() == s.summary()
    assert PatternStats.from_dict(s.to_dict()).summary() == s.summary()


def test_wilson_edges():
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(10, 10) < 1.0
    assert wilson_lower_bound(80, 100) < 0.8
    with pytest.raises(ValueError):
        wilson_lower_bound(3, 2)


def test_status_rule_uses_the_lower_bound():
    cfg = PatternsConfig(min_trades=30)
    # 27/30 = 90% raw, but the lower bound is ~74%: active, not promoted
    s = compute_stats([0.01] * 27 + [-0.01] * 3)
    assert s.win_rate == pytest.approx(0.9)
    assert status_of(s, cfg.min_trades, cfg.promote_win_rate, cfg.demote_win_rate) is Status.ACTIVE
    assert status_of(compute_stats([0.01] * 10), 30, 0.8, 0.6) is Status.CANDIDATE
    assert status_of(compute_stats([0.01] * 95 + [-0.01] * 5), 30, 0.8, 0.6) is Status.PROMOTED
    assert status_of(compute_stats([0.01] * 15 + [-0.01] * 15), 30, 0.8, 0.6) is Status.DEMOTED
    # a high win rate with negative expectancy is demoted too
    assert status_of(compute_stats([0.001] * 29 + [-0.1]), 30, 0.8, 0.6) is Status.DEMOTED


def test_updates_from_closed_trades_change_stats_and_status():
    cfg = PatternsConfig(min_trades=30)
    lib = PatternLibrary(cfg)
    p = planted_like()
    e = lib.add(p, compute_stats([0.01] * 27 + [-0.01] * 3))
    assert e.status is Status.ACTIVE
    before = e.stats.summary()
    for _ in range(60):  # a run of winners pushes the lower bound above 80%
        e = lib.record_outcome(p.name, 0.01, regime="trending up")
    assert e.stats.trades == 90 and e.stats.summary() != before
    assert e.status is Status.PROMOTED
    assert "promoted" in [h.event for h in e.history]
    for _ in range(80):  # then losers demote it
        e = lib.record_outcome(p.name, -0.01)
    assert e.status is Status.DEMOTED
    assert [h.event for h in e.history].count("demoted") == 1
    assert lib.usable() == []
    with pytest.raises(DataError, match="no pattern named"):
        lib.record_outcome("nope", 0.01)
