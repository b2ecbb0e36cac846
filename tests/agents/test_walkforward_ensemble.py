"""Walk-forward with each fold's seeds judged as one ensemble: its rows, its gate record, its own verdict."""

import json
import math

import pandas as pd
import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset, fold_dataset
from agents.ensemble import load_ensemble
from agents.evaluate import run_backtest
from agents.gate import read_gate
from agents.research import walkforward_table
from agents.run_dir import WALKFORWARD_FILE, RunDir
from agents.walkforward import ENSEMBLE_SEED, ensemble_dir, fold_splits, walkforward
from aster_rl.config import replace
from aster_rl.data.synthetic import synthesize
from aster_rl.errors import ConfigError


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf_ens")
    cfg = replace(tiny_config(tmp, total_timesteps=128, eval_freq=128), synth={"n_bars": 16 * 288},
                  eval={"walkforward_folds": 2, "walkforward_seeds": 2, "random_seeds": 1, "bootstrap_samples": 30})
    ds = build_dataset(cfg, market=synthesize(cfg.synth))
    return cfg, ds, walkforward(cfg, ds, out_dir=tmp / "wf", ensemble=True)


def test_one_ensemble_row_per_fold_with_its_gate_and_verdict(wf):
    _, _, result = wf
    assert len(result.runs) == 4 and all(r["seed"] != ENSEMBLE_SEED for r in result.runs)
    assert [(r["fold"], r["seed"]) for r in result.ensembles] == [(0, ENSEMBLE_SEED), (1, ENSEMBLE_SEED)]
    for e in result.ensembles:
        seeds = [r for r in result.runs if r["fold"] == e["fold"]]
        assert sorted(e["members"]) == sorted(r["run_dir"] for r in seeds)
        assert e["test_first_bar"] == seeds[0]["test_first_bar"] and e["test_last_bar"] == seeds[0]["test_last_bar"]
        assert math.isfinite(e["agent_excess_exposure_matched"]) and math.isfinite(e["agent_excess_flat"])
        rd = RunDir(e["run_dir"])
        assert rd.path == ensemble_dir(result.out_dir, e["fold"]).path and rd.eval.results.is_file()
        gate = read_gate(rd)  # sealed by the folder's manifest
        assert gate is not None and gate.split["name"] == "validation" and gate.source == "walkforward ensemble"
        # every checkpoint the members evaluated on validation, and the ensemble: the walk-forward's trials x those
        checkpoints = sum(read_gate(m).candidates for m in e["members"])
        assert checkpoints >= 2 and gate.candidates == checkpoints + 1 and gate.trials == 4 * (checkpoints + 1)
        assert gate.split["last_bar"] < e["test_first_bar"]  # judged before the test, never on it
        assert e["gate"]["line"] == gate.line() and "+" in gate.model
        assert json.loads(rd.members.read_text())["members"] == e["members"]
    s = result.ensemble_summary
    assert s["runs"] == 2 and s["folds_evaluated"] == 2 and s["members"] == 2
    assert "fewer than 3 folds make no claim" in s["verdict"] and "of 2 fold ensembles" in s["verdict"]
    assert s["excess_ci"]["exposure_matched"]["estimate"] == pytest.approx(
        sum(e["agent_excess_exposure_matched"] for e in result.ensembles) / 2)
    saved = json.loads((result.out_dir / WALKFORWARD_FILE).read_text())
    assert len(saved["ensembles"]) == 2 and saved["ensemble_summary"]["verdict"] == s["verdict"]
    assert saved["summary"]["runs"] == 4  # the seeds' aggregate holds the seed runs only
    table = result.table()
    assert [line.split()[:2] for line in table.splitlines()[1:7]] == [
        ["0", "3"], ["0", "4"], ["0", "ens"], ["1", "3"], ["1", "4"], ["1", "ens"]]
    assert "ensemble verdict:" in table and "fold 1 ensemble gate:" in table


def test_the_ensemble_row_trades_as_the_loaded_ensemble_on_the_test_split(wf):
    cfg, ds, result = wf
    for e in result.ensembles:
        splits = fold_splits(cfg, ds)[e["fold"]]
        _, fold_data, _ = fold_dataset(cfg, ds, splits)
        policy = load_ensemble(e["members"], schema=fold_data.schema)
        direct = run_backtest(policy, fold_data, policy.config.env, splits.test)
        assert e["agent_trades"] == len(direct.trades)
        saved = pd.read_csv(RunDir(e["run_dir"]).eval.trades("agent"))
        assert len(saved) == len(direct.trades)
        if len(saved):
            assert saved["entry_time"].tolist() == direct.trades["entry_time"].tolist()
        assert e["agent_net_return"] == pytest.approx(float(direct.equity.iloc[-1] / direct.equity.iloc[0] - 1))


def test_ensemble_rows_in_the_research_table(wf):
    from agents.research import run_row

    _, _, result = wf
    rows, ens = [run_row(r) for r in result.runs], [run_row(r) for r in result.ensembles]
    text = walkforward_table("SYN", rows, result.summary, ens, result.ensemble_summary)
    body = text.splitlines()[1:7]
    assert [line.split()[:2] for line in body] == [["0", "3"], ["0", "4"], ["0", "ens"], ["1", "3"], ["1", "4"], ["1", "ens"]]
    assert "SYN ensemble walk-forward verdict: " + result.ensemble_summary["verdict"] in text
    assert "SYN ensemble gate: deploys" in text and "of 2 fold ensembles" in text
    assert f"SYN fold 0 ensemble gate: {read_gate(result.ensembles[0]['run_dir']).line()}" in text


def test_an_ensemble_needs_two_seeds(tmp_path):
    cfg = replace(tiny_config(tmp_path), eval={"walkforward_seeds": 1})
    with pytest.raises(ConfigError, match="at least two seeds"):
        walkforward(cfg, None, out_dir=tmp_path / "wf", ensemble=True)


def test_fanned_out_walkforward_gives_the_same_fold_ensembles(wf):
    pytest.importorskip("optuna")
    from agents.walkforward import FanoutSpec, walkforward_fanout

    cfg, ds, seq = wf
    spec = FanoutSpec(config=cfg, storage=f"sqlite:///{seq.out_dir.parent / 'jobs.db'}")
    fanned = walkforward_fanout(spec, ds, ensemble=True)
    keys = ("fold", "seed", "agent_net_return", "agent_trades", "agent_excess_exposure_matched", "agent_excess_flat")
    assert [{k: e[k] for k in keys} for e in fanned.ensembles] == [{k: e[k] for k in keys} for e in seq.ensembles]
    assert [e["gate"]["line"] for e in fanned.ensembles] == [e["gate"]["line"] for e in seq.ensembles]
    assert fanned.ensemble_summary["verdict"] == seq.ensemble_summary["verdict"]
    assert all(RunDir(e["run_dir"]).path.parent == spec.out_dir() for e in fanned.ensembles)


def test_walkforward_command_refuses_an_ensemble_of_one_seed(tmp_path, capsys):
    from aster_rl.cli import main

    assert main(["--set", f"data.data_dir={tmp_path}", "walkforward", "--seeds", "1", "--ensemble"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least two seeds per fold" in err
