"""The support check: columns left out of the observation, and bars outside the training ranges."""

import json

import numpy as np
import pytest

from aster_rl.errors import SchemaMismatchError
from aster_rl.sim.observation import N_ACCOUNT
from aster_rl.evaluation.support import (
    NEAR_CONSTANT_SHARE,
    TIME_INDEX_COLUMNS,
    ObservationSupport,
    SupportTally,
    policy_support_report,
)

COLUMNS = ["a_moving", "b_constant", "c_rare_flag", "btc_cycle_years", "d_moving"]


def _train_matrix(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((n, len(COLUMNS)), dtype=np.float32)
    m[:, 0] = rng.normal(size=n)
    m[:, 1] = 3.0  # one phase all over the training split
    m[0, 2] = 1.0  # 1 bar in 2,000 differs: near-constant
    m[:, 3] = np.linspace(1.0, 1.5, n)  # grows with time
    m[:, 4] = rng.uniform(-1, 1, size=n)
    return m


def test_constant_near_constant_and_time_index_columns_are_left_out_by_name():
    s = ObservationSupport.fit(_train_matrix(), COLUMNS)
    assert s.kept == ["a_moving", "d_moving"]
    assert list(s.dropped) == ["b_constant", "c_rare_flag", "btc_cycle_years"]
    assert s.dropped["b_constant"].startswith("constant (3)")
    assert "near-constant" in s.dropped["c_rare_flag"] and 1999 / 2000 >= NEAR_CONSTANT_SHARE
    assert "time index" in s.dropped["btc_cycle_years"]
    notice = s.notice()
    assert "\n" not in notice
    for name in ("b_constant", "c_rare_flag", "btc_cycle_years"):
        assert name in notice
    assert "a_moving" not in notice and "3 of 5 feature columns" in notice
    assert set(TIME_INDEX_COLUMNS) == {"btc_cycle_years", "btc_cycle_progress", "btc_cycle_phase_progress",
                                       "multi_timeframe_bullish_count", "multi_timeframe_bearish_count",
                                       "multi_timeframe_considered"}


def test_a_flag_seen_often_enough_is_kept():
    m = _train_matrix()
    m[:10, 2] = 1.0  # 10 bars in 2,000 (0.5%)
    assert "c_rare_flag" in ObservationSupport.fit(m, COLUMNS).kept


def test_out_of_support_share_by_hand():
    train = np.array([[0.0, 5.0], [1.0, 5.5], [2.0, 6.0]], dtype=np.float32)
    s = ObservationSupport.fit(train, ["x", "y"], exclude=())
    rows = np.array([
        [0.0, 5.0],   # on the bounds: inside
        [2.5, 5.5],   # x above its max
        [1.0, 4.0],   # y below its min
        [-1.0, 7.0],  # both
        [1.5, 5.9],   # inside
    ])
    flags = s.outside(rows)
    np.testing.assert_array_equal(flags, [[0, 0], [1, 0], [0, 1], [1, 1], [0, 0]])
    rep = s.report(rows)
    assert (rep.bars, rep.outside_bars) == (5, 3)
    assert rep.share == pytest.approx(0.6)
    assert rep.top == (("x", 0.4), ("y", 0.4))
    assert rep.line() == "out of training support: 60.0% of 5 bars (x 40.0%, y 40.0%)"
    # full observations (with the account state) give the same answer
    obs = np.concatenate([rows, np.full((5, N_ACCOUNT), 99.0)], axis=1)
    assert s.report(obs) == rep
    # the running tally of the live runner agrees bar by bar
    tally = SupportTally(s)
    outside = [tally.update(r) for r in rows]
    assert outside == [[], ["x"], ["y"], ["x", "y"], []]
    assert tally.report() == rep


def test_the_tally_warns_when_the_bar_leaves_or_reenters_the_support(caplog):
    s = ObservationSupport.fit(np.array([[0.0], [1.0]]), ["x"], exclude=())
    tally = SupportTally(s)
    with caplog.at_level("WARNING", logger="aster_rl.evaluation.support"):
        for i, x in enumerate([0.5, 2.0, 3.0, 0.5, 0.2]):
            tally.check(np.array([x]), i)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "bar 1: outside the training support: x; out of training support: 50.0% of 2 bars (x 50.0%)",
        "bar 3: back inside the training support; out of training support: 50.0% of 4 bars (x 50.0%)",
    ]


def test_select_drops_the_left_out_columns_and_keeps_the_account_state():
    s = ObservationSupport.fit(_train_matrix(), COLUMNS)
    obs = np.arange(len(COLUMNS) + N_ACCOUNT, dtype=np.float32)
    out = s.select(obs)
    np.testing.assert_array_equal(out, [0, 4, *list(range(len(COLUMNS), len(COLUMNS) + N_ACCOUNT))])
    np.testing.assert_array_equal(s.select(out), out)  # already the policy's width
    batch = np.stack([obs, obs + 1])
    assert s.select(batch).shape == (2, 2 + N_ACCOUNT)
    np.testing.assert_array_equal(s.select_features(_train_matrix()[:3]), _train_matrix()[:3][:, [0, 4]])
    with pytest.raises(SchemaMismatchError, match="width 4"):
        s.select(np.zeros(4))


def test_json_round_trip_without_pickle(tmp_path):
    s = ObservationSupport.fit(_train_matrix(), COLUMNS)
    path = s.save(tmp_path)
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["columns"]] == COLUMNS
    assert data["columns"][0]["min"] < data["columns"][0]["max"] and data["columns"][0]["var"] > 0
    back = ObservationSupport.load(tmp_path)
    assert back == s and back.kept == s.kept
    rows = _train_matrix(50, seed=1) * 3
    assert back.report(rows) == s.report(rows)
    assert ObservationSupport.load(tmp_path / "none") is None


def test_policy_without_support_reports_nothing():
    class Plain:
        def predict(self, obs):
            return np.zeros(3, dtype=int)

    assert policy_support_report(Plain(), np.zeros((3, 2))) is None
