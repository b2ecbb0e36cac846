import json

from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.walkforward import walkforward
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
