"""aster_rl.evaluation.reporting: saved results, action mixes, features and the prediction log as tables."""

import json

import numpy as np
import pandas as pd
import pytest

from aster_rl.evaluation import reporting as R
from aster_rl.errors import DataError

IDX = pd.date_range("2025-03-01", periods=6, freq="5min", tz="UTC")


def write_eval(tmp_path):
    results = {
        "agent": {"metrics": {"net_return": 0.1, "sharpe": 1.5, "profit_factor": "inf"},
                  "ci_net_return": {"estimate": 0.1, "low": -0.05, "high": 0.2, "confidence": 0.9},
                  "ci_sharpe": {"estimate": 1.5, "low": -1.0, "high": 3.0, "confidence": 0.9}},
        "baselines": {"flat": {"metrics": {"net_return": 0.0, "sharpe": 0.0, "profit_factor": 0.0}}},
        "cost_sweep": {"x2": {"agent": {"net_return": -0.1}}, "x0": {"agent": {"net_return": 0.3}},
                       "x1": {"agent": {"net_return": 0.1}}},
        "breakdown": {"regime": {"ranging": {"trades": 2, "win_rate": 0.5, "pnl_usd": 3.0, "expectancy_usd": 1.5}}},
    }
    d = tmp_path / "eval"
    d.mkdir()
    (d / "results.json").write_text(json.dumps(results))
    pd.Series([100.0, 110, 99, 120, 120, 90], index=IDX, name="equity_usd").to_csv(d / "equity_agent.csv", header=True)
    pd.Series(100.0, index=IDX, name="equity_usd").to_csv(d / "equity_flat.csv", header=True)
    pd.DataFrame({"entry_time": [IDX[1]], "exit_time": [IDX[3]], "side": ["long"], "entry_price": [1.0],
                  "exit_price": [1.1], "reason": ["target"], "pnl_usd": [10.0]}).to_csv(d / "trades_agent.csv", index=False)
    pd.DataFrame(columns=["entry_time"]).to_csv(d / "trades_flat.csv", index=False)
    return d


def test_load_evaluation_and_tables(tmp_path):
    ev = R.load_evaluation(write_eval(tmp_path))
    assert ev.strategies == ["agent", "flat"]
    assert isinstance(ev.equity.index, pd.DatetimeIndex) and str(ev.equity.index.tz) == "UTC"
    assert ev.trades["agent"]["entry_time"].iloc[0] == IDX[1]
    assert ev.trades["flat"].empty
    assert R.metrics_frame(ev.results).loc["agent", "profit_factor"] == np.inf
    iv = R.interval_frame(ev.results)
    assert list(iv["strategy"]) == ["agent", "agent"] and iv["low"].iloc[0] == -0.05
    sweep = R.cost_sweep_frame(ev.results)
    assert list(sweep.index) == [0.0, 1.0, 2.0] and sweep.loc[2.0, "agent"] == -0.1
    assert R.breakdown_frame(ev.results, "regime").loc["ranging", "pnl_usd"] == 3.0
    assert R.breakdown_frame(ev.results, "cycle_phase").empty
    dd = R.drawdown_frame(ev.equity)
    assert dd["agent"].max() == pytest.approx(0.25)  # 120 -> 90
    assert dd["agent"].iloc[2] == pytest.approx(0.1)  # 110 -> 99
    assert (dd["flat"] == 0).all()
    m = R.trade_markers(ev.trades["agent"])
    assert m["exits"]["reason"].tolist() == ["target"] and m["entries"]["price"].tolist() == [1.0]


def test_load_evaluation_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no results\.json"):
        R.load_evaluation(tmp_path)


def test_action_mix_over_time_shares():
    actions = pd.DataFrame({"side": [0, 1, 2, 1], "leverage": [0, 0, 1, 1], "profile": [0, 2, 2, 0]}, index=IDX[:4])
    mix = R.action_mix_over_time(actions, (1, 5), ("scalp", "swing", "position"), window=2)
    assert mix["side"].iloc[0].tolist() == [1.0, 0.0, 0.0]
    assert mix["side"].iloc[3].tolist() == [0.0, 0.5, 0.5]
    assert np.allclose(mix["side"].sum(axis=1), 1.0)
    assert np.isnan(mix["leverage"].iloc[0]).all()  # no BUY/SELL yet
    assert mix["leverage"].iloc[2].tolist() == [0.5, 0.5]  # bars 1 (1x) and 2 (5x)
    assert list(mix["leverage"].columns) == ["1x", "5x"]
    assert mix["profile"].iloc[3].tolist() == [0.5, 0.0, 0.5]
    with pytest.raises(DataError, match="side, leverage, profile"):
        R.action_mix_over_time(actions.drop(columns="profile"), (1,), ("scalp",))


def test_calibration_table_by_hand():
    conf = [0.1, 0.15, 0.55, 0.6, 0.65, 0.95]
    won = [0, 0, 1, 0, 1, 1]
    t = R.calibration_table(conf, won, bins=2)
    assert t["decisions"].tolist() == [2, 4]
    assert t["win_rate"].tolist() == [0.0, 0.75]
    assert t["mean_confidence"].iloc[1] == pytest.approx((0.55 + 0.6 + 0.65 + 0.95) / 4)
    assert (t["win_rate_low"] <= t["win_rate"]).all() and (t["win_rate"] <= t["win_rate_high"]).all()
    ece = (2 * 0.125 + 4 * abs(0.6875 - 0.75)) / 6
    assert t.attrs["expected_calibration_error"] == pytest.approx(ece)
    brier = (0.1**2 + 0.15**2 + 0.45**2 + 0.6**2 + 0.35**2 + 0.05**2) / 6
    assert t.attrs["brier_score"] == pytest.approx(brier)
    with pytest.raises(ValueError, match="differ in length"):
        R.calibration_table([0.1], [1, 0])


def test_prediction_frame_and_outcomes_over_time():
    ms = lambda t: int(t.value // 1_000_000)  # noqa: E731
    rows = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "ts": [ms(IDX[0]), ms(IDX[1]), ms(IDX[2]), ms(IDX[3])],
        "side": ["BUY", "SELL", "WAIT", "BUY"],
        "status": ["win", "closed", "open", "open"],
        "pnl_usd": [5.0, -2.0, None, None],
        "closed_at": [ms(IDX[1]), ms(IDX[2]), None, None],
    })
    p = R.prediction_frame(rows)
    assert p["outcome"].tolist() == ["win", "loss", "none", "open"]
    per = R.outcomes_over_time(p, "1D")
    assert per["closed"].iloc[0] == 2 and per["win_rate"].iloc[0] == 0.5
    assert per["cum_pnl_usd"].iloc[-1] == pytest.approx(3.0)
    assert per[["buy", "sell", "wait"]].iloc[0].tolist() == [2, 1, 1]


def test_pattern_history_frame_spreads_snapshot():
    rows = pd.DataFrame({"id": [2, 1], "pattern_name": ["p", "p"], "ts": [2000, 1000], "event": ["promoted", "created"],
                         "snapshot": [json.dumps({"status": "promoted", "trades": 40, "win_rate": 0.85}),
                                      {"status": "candidate", "trades": 0, "win_rate": 0.0}]})
    h = R.pattern_history_frame(rows)
    assert h["event"].tolist() == ["created", "promoted"]
    assert h["trades"].tolist() == [0, 40] and h["status"].iloc[1] == "promoted"


def test_features_shaping():
    f = pd.DataFrame({
        "a_x": np.arange(6.0), "a_y": 2 * np.arange(6.0), "b_z": [1.0, -1, 1, -1, 1, -1], "b_const": 1.0,
        "price_history_support_dist_96": 0.1, "price_history_resistance_dist_96": 0.2,
    }, index=IDX)
    corr = R.tentacle_correlation(f, {"a": ["a_x", "a_y"], "b": ["b_z", "b_const"]})
    assert corr.loc["a", "a"] == pytest.approx(1.0)
    assert np.isnan(corr.loc["b", "b"])  # one varying column: no pair inside
    assert "b_const" not in R.informative_columns(f)
    pairs = R.top_correlated_pairs(f[["a_x", "a_y", "b_z"]], 1)
    assert set(pairs.loc[0, ["a", "b"]]) == {"a_x", "a_y"} and pairs.loc[0, "correlation"] == pytest.approx(1.0)
    candles = pd.DataFrame({"close": 10.0}, index=IDX)
    lv = R.support_resistance_levels(candles, f)
    assert lv["support"].iloc[0] == pytest.approx(9.0) and lv["resistance"].iloc[0] == pytest.approx(12.0)
    with pytest.raises(DataError, match="support_dist"):
        R.support_resistance_levels(candles, f[["a_x"]])
    spans = R.state_spans(pd.Series([0, 0, 1, 1, 1, 3.0], index=IDX), {0: "ranging", 1: "up"})
    assert spans["label"].tolist() == ["ranging", "up", "3"]
    assert spans["start"].tolist() == [IDX[0], IDX[2], IDX[5]]
    assert spans["end"].iloc[-1] == IDX[5] + pd.Timedelta("5min")


def test_walkforward_frame():
    wf = {"runs": [{"fold": 0, "seed": 1, "agent_net_return": 0.1, "best_baseline": "flat",
                    "best_baseline_net_return": 0.0, "beats_best_baseline": True}]}
    t = R.walkforward_frame(wf)
    assert t.loc[0, "agent_net_return"] == 0.1 and t.loc[0, "beats_best_baseline"]
    assert R.walkforward_frame({}).empty
