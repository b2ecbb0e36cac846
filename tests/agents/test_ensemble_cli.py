"""``evaluate --ensemble`` and ``backtest --ensemble``: seed runs judged and backtested as one policy."""

import re

import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.ensemble import load_ensemble
from agents.evaluate import run_backtest
from agents.splits import load_run_splits
from agents.train import train
from aster_rl.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ens_cli")
    out = []
    for seed in (3, 4):
        cfg = tiny_config(tmp, seed=seed, name=f"seed{seed}")
        out.append(str(train(cfg, build_dataset(cfg)).run_dir))  # the market stored first, as the CLI rebuilds it
    other = tiny_config(tmp, seed=5, name="other", learning_rate=1e-3)
    return tmp, out, str(train(other, build_dataset(other)).run_dir)


def _args(tmp):
    return ["--set", f"train.checkpoint_dir={tmp / 'checkpoints'}", "--set", "eval.random_seeds=1",
            "--set", "eval.bootstrap_samples=30"]


def test_evaluate_an_ensemble_prints_the_report_of_one_run(runs, capsys):
    tmp, members, _ = runs
    assert main([*_args(tmp), "evaluate", "--ensemble", *members]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ensemble of 2 runs: ")
    for text in ("test split", "exposure_matched", "excess over exposure_matched (paired block bootstrap)", "verdict:"):
        assert text in out, text
    assert main([*_args(tmp), "evaluate", "--ensemble", *members, "--agreement", "2"]) == 0
    assert "ensemble of 2 runs" in capsys.readouterr().out


def test_backtest_an_ensemble_trades_as_the_loaded_ensemble(runs, capsys):
    tmp, members, _ = runs
    assert main([*_args(tmp), "backtest", "--ensemble", *members, "--agreement", "1"]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 runs over" in out
    trades = int(float(re.search(r"^\s+trades\s+([\d,.]+)$", out, re.M).group(1).replace(",", "")))
    cfg = tiny_config(tmp, seed=3, name="seed3")
    ds = build_dataset(cfg)
    policy = load_ensemble(members, schema=ds.schema, agreement=1)
    direct = run_backtest(policy, ds, policy.config.env, load_run_splits(members[0], ds.prices.timestamps).test)
    assert trades == len(direct.trades)


def test_a_single_run_or_mismatched_members_are_refused_in_one_line(runs, capsys):
    tmp, members, other = runs
    for command in (["evaluate", "--ensemble", members[0]], ["backtest", "--ensemble", members[0]]):
        assert main([*_args(tmp), *command]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "at least two" in err, err
    for command in ("evaluate", "backtest"):
        assert main([*_args(tmp), command, "--ensemble", members[0], other]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "configured unlike" in err and "train.learning_rate" in err, err
    assert main([*_args(tmp), "evaluate", members[0], "--ensemble", *members]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*_args(tmp), "evaluate", members[0], "--agreement", "2"]) == 2
    assert "only with --ensemble" in capsys.readouterr().err
    assert main([*_args(tmp), "backtest", "--run", members[0], "--ensemble", *members]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main([*_args(tmp), "evaluate", "--ensemble", *members, "--agreement", "3"]) == 2
    assert "must be in 1..2" in capsys.readouterr().err


def test_brain_with_an_ensemble_decides_as_the_loaded_ensemble(runs, capsys):
    tmp, members, other = runs
    brain = [*_args(tmp), "--set", f"data.data_dir={tmp / 'data'}", "brain"]
    assert main([*brain, "--ensemble", *members]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 (" in out, out
    assert sum(line.startswith("gate: ") for line in out.splitlines()) == 2, out  # each member's own gate
    cfg = tiny_config(tmp, seed=3, name="seed3")
    ds = build_dataset(cfg)
    from agents.decision import brain_decision

    d = brain_decision(members, ds.market, ds.features)
    assert d["reasoning"].startswith("policy ensemble of 2 (")
    assert d["reasoning"] in out, out  # the report says why, members' disagreement included
    assert main([*brain, "--run", members[0], "--ensemble", *members]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*brain, "--ensemble", members[0], other]) == 2
    assert "configured unlike" in capsys.readouterr().err
