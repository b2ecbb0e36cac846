import json

import numpy as np
import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.run_dir import WALKFORWARD_FILE, RunDir
from agents.walkforward import summarize_runs, walkforward
from aster_rl.config import replace
from aster_rl.data.synthetic import synthesize


def test_walkforward_trains_and_tests_each_fold(tmp_path):
    cfg = replace(tiny_config(tmp_path, total_timesteps=128, eval_freq=128), synth={"n_bars": 16 * 288},
                  eval={"walkforward_folds": 2, "walkforward_seeds": 2, "random_seeds": 1, "bootstrap_samples": 30})
    ds = build_dataset(cfg, market=synthesize(cfg.synth))
    result = walkforward(cfg, ds, out_dir=tmp_path / "wf")
    assert len(result.runs) == 4
    assert {(r["fold"], r["seed"]) for r in result.runs} == {(0, 3), (0, 4), (1, 3), (1, 4)}
    # each fold's test period precedes the next fold's
    fold0 = next(r for r in result.runs if r["fold"] == 0)
    fold1 = next(r for r in result.runs if r["fold"] == 1)
    assert fold0["test_last_bar"] < fold1["test_first_bar"]
    for r in result.runs:
        splits = json.loads(RunDir(tmp_path / "wf" / f"fold{r['fold']}__seed{r['seed']}").splits.read_text())
        assert splits["test"]["first_bar"] == r["test_first_bar"]
        assert r["beats_best_baseline"] == (r["agent_net_return"] > r["best_baseline_net_return"])
    s = result.summary
    assert s["runs"] == 4 and 0.0 <= s["share_beats_best_baseline"] <= 1.0
    ci = s["agent_net_return_ci"]
    assert ci["low"] <= ci["estimate"] <= ci["high"]
    assert "fewer than 3 folds make no claim" in s["verdict"] and s["edge"] is False
    assert set(s["excess_ci"]) == {"exposure_matched", "flat"}
    for r in result.runs:  # each run counts every fold and seed as a trial for its deflated Sharpe
        metrics = json.loads(RunDir(tmp_path / "wf" / f"fold{r['fold']}__seed{r['seed']}").metrics.read_text())
        assert metrics["trials"] == 4
        assert "agent_excess_exposure_matched" in r and "agent_excess_flat" in r
    saved = json.loads((tmp_path / "wf" / WALKFORWARD_FILE).read_text())
    assert saved["summary"]["verdict"] == s["verdict"]
    table = result.table()
    assert "beats the best baseline in" in table and "verdict:" in table


def _run(fold, seed, ret, excess_em=None, best=0.0):
    return {"fold": fold, "seed": seed, "agent_net_return": ret,
            "agent_excess_exposure_matched": ret if excess_em is None else excess_em, "agent_excess_flat": ret,
            "baselines_net_return": {"flat": 0.0, "buy_and_hold": best}, "beats_best_baseline": ret > best}


def _claims(summary) -> bool:
    return "evidence of an edge" in summary["verdict"].replace("no evidence of an edge", "")


def test_fewer_than_three_folds_make_no_claim():
    # one fold, many seeds all positive: the seeds share one test period
    one_fold = [_run(0, s, 0.05 + 0.001 * s) for s in range(5)]
    s = summarize_runs(one_fold, folds=1, seeds=5, confidence=0.95)
    assert s["agent_fold_mean_net_returns"] == [pytest.approx(0.052)]
    assert "fewer than 3 folds make no claim" in s["verdict"] and not _claims(s) and s["edge"] is False
    # two folds, both clearly positive: still no claim
    two = [_run(k, s, 0.05 + 0.01 * k) for k in range(2) for s in range(4)]
    s = summarize_runs(two, folds=2, seeds=4, confidence=0.95)
    assert "fewer than 3 folds make no claim" in s["verdict"] and not _claims(s)


def test_fold_excess_gets_a_t_interval_on_k_minus_1_df():
    # three folds (seeds averaged first): fold means 0.01, 0.02, 0.03 -> 0.02 +- t(0.975, 2) * 0.01 / sqrt(3)
    runs = [_run(k, s, 0.05, excess_em=0.01 * (k + 1) + (0.002 if s else -0.002)) for k in range(3) for s in range(2)]
    s = summarize_runs(runs, folds=3, seeds=2, confidence=0.95)
    ci = s["excess_ci"]["exposure_matched"]
    half = 4.302653 * 0.01 / 3**0.5
    assert ci["estimate"] == pytest.approx(0.02) and ci["low"] == pytest.approx(0.02 - half, abs=1e-6)
    assert ci["high"] == pytest.approx(0.02 + half, abs=1e-6)
    assert "[-0.48%, +4.48%] includes 0" in s["verdict"] and "no evidence of an edge" in s["verdict"]
    assert not s["edge"] and not _claims(s)
    # every fold clearly above 0 against both benchmarks: an edge, in plain words
    pos = [_run(k, 0, 0.02 + 0.001 * k) for k in range(4)]
    s = summarize_runs(pos, folds=4, seeds=1, confidence=0.95)
    assert "over 4 folds" in s["verdict"] and s["verdict"].count("lies above 0") == 2 and _claims(s) and s["edge"]
    # level without excess (beta on a rising market) is no edge
    beta = [_run(k, 0, 0.10 + 0.01 * k, excess_em=(-1) ** k * 0.01) for k in range(4)]
    s = summarize_runs(beta, folds=4, seeds=1, confidence=0.95)
    assert not _claims(s) and not s["edge"]
    assert s["baselines_mean_net_return"] == {"flat": 0.0, "buy_and_hold": 0.0}


@pytest.mark.parametrize("k", range(3, 9))
def test_false_positive_rate_on_pure_noise_folds_is_nominal(k):
    # an agent riding a rising market (its excess over flat is large) whose excess over its exposure is pure
    # noise: fold-level noise shared by the fold's 2 seeds plus seed noise. The edge claims must be ~2.5%.
    rng = np.random.default_rng(100 + k)
    reps = 3_000
    claims = 0
    for _ in range(reps):
        fold_noise = rng.normal(0.0, 0.02, k)
        runs = [_run(f, s, 0.3, excess_em=fold_noise[f] + rng.normal(0.0, 0.01)) for f in range(k) for s in range(2)]
        claims += summarize_runs(runs, folds=k, seeds=2, confidence=0.95)["edge"]
    rate = claims / reps
    print(f"K={k}: false-positive rate {rate:.3f}")
    assert 0.01 <= rate <= 0.05
