import json

import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.walkforward import summarize_runs, walkforward
from aster_rl.config import replace
from aster_rl.synthetic import synthesize


def test_walkforward_trains_and_tests_each_fold(tmp_path):
    cfg = replace(tiny_config(tmp_path, total_timesteps=128, eval_freq=128), synth={"n_bars": 16 * 288},
                  eval={"walkforward_folds": 2, "walkforward_seeds": 2, "random_seeds": 1, "bootstrap_samples": 30})
    ds = build_dataset(cfg, market=synthesize(cfg.synth))
    result = walkforward(cfg, ds, out_dir=tmp_path / "wf")
    assert len(result.runs) == 4
    assert {(r["fold"], r["seed"]) for r in result.runs} == {(0, 3), (0, 4), (1, 3), (1, 4)}
    # each fold's test period precedes the next fold's
    fold0 = [r for r in result.runs if r["fold"] == 0][0]
    fold1 = [r for r in result.runs if r["fold"] == 1][0]
    assert fold0["test_last_bar"] < fold1["test_first_bar"]
    for r in result.runs:
        splits = json.loads((tmp_path / "wf" / f"fold{r['fold']}__seed{r['seed']}" / "splits.json").read_text())
        assert splits["test"]["first_bar"] == r["test_first_bar"]
        assert r["beats_best_baseline"] == (r["agent_net_return"] > r["best_baseline_net_return"])
    s = result.summary
    assert s["runs"] == 4 and 0.0 <= s["share_beats_best_baseline"] <= 1.0
    ci = s["agent_net_return_ci"]
    assert ci["low"] <= ci["estimate"] <= ci["high"]
    saved = json.loads((tmp_path / "wf" / "walkforward.json").read_text())
    assert saved["summary"]["verdict"] == s["verdict"]
    table = result.table()
    assert "beats the best baseline in" in table and "verdict:" in table


def _run(fold, seed, ret, best=0.0):
    return {"fold": fold, "seed": seed, "agent_net_return": ret, "baselines_net_return": {"flat": 0.0, "buy_and_hold": best},
            "beats_best_baseline": ret > best}


def test_summary_interval_resamples_folds_not_seeds():
    # one fold, many seeds all positive: the seeds share one test period, so there is no interval and no edge
    one_fold = [_run(0, s, 0.05 + 0.001 * s) for s in range(5)]
    s = summarize_runs(one_fold, folds=1, seeds=5, confidence=0.95)
    assert s["agent_fold_mean_net_returns"] == [pytest.approx(0.052)]
    assert "no evidence of an edge" in s["verdict"] and "evidence of an edge" not in s["verdict"].replace("no evidence", "")
    # two folds, one losing: the fold means span 0, whatever the number of seeds
    two = [_run(0, s, 0.05) for s in range(4)] + [_run(1, s, -0.01) for s in range(4)]
    s = summarize_runs(two, folds=2, seeds=4, confidence=0.95)
    ci = s["agent_net_return_ci"]
    assert ci["estimate"] == pytest.approx(0.02) and ci["low"] == pytest.approx(-0.01) and ci["high"] == pytest.approx(0.05)
    assert "includes 0: no evidence of an edge" in s["verdict"]
    # every fold positive: an edge is claimed in plain words
    pos = [_run(k, 0, 0.02 + 0.01 * k) for k in range(4)]
    s = summarize_runs(pos, folds=4, seeds=1, confidence=0.95)
    assert "lies above 0: evidence of an edge" in s["verdict"]
    assert s["baselines_mean_net_return"] == {"flat": 0.0, "buy_and_hold": 0.0}
