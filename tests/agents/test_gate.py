"""The deployment gate: the judge's verdict on the validation split, sealed in the run; WAIT outside the support."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from agents.baselines import BUY, SELL, WAIT, leverage_index
from agents.gate import gate_problem, judge_span, read_gate, write_gate
from agents.policy import load_policy
from agents.run_dir import RunDir
from agents.run_files import sha256_of
from agents.splits import Span
from agents.train import train
from aster_rl.config import EnvConfig
from aster_rl.errors import UntrustedRunError
from aster_rl.sim.backtest import backtest

from agent_helpers import tiny_config
from test_judge import Market, config, walk


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    cfg = tiny_config(tmp_path_factory.mktemp("gate"))
    return cfg, train(cfg, tiny_dataset)


def foresight_market(n: int = 4_000) -> Market:
    """Feature 0 is the sign of the next bar's return: a policy that reads it has a real edge."""
    close = walk(n, 0.0, sd=0.006, seed=3)
    nxt = np.sign(np.concatenate((np.log(close[1:] / close[:-1]), [0.0])))
    return Market(close, np.column_stack([nxt, np.zeros(n)]))


def oracle(obs):
    return np.array([BUY if obs[0] > 0 else SELL, leverage_index(EnvConfig(), 1), 2])


def test_train_ends_with_the_gate_on_the_validation_split_sealed_in_the_manifest(trained):
    cfg, result = trained
    rd = RunDir(result.run_dir)
    record = read_gate(rd)
    assert record is not None and result.gate is not None and result.gate.to_dict() == record.to_dict()
    assert record.source == "train" and record.split["name"] == "validation" and record.split["role"] == "selection"
    assert (record.split["start"], record.split["end"]) == (result.splits.validation.start, result.splits.validation.end)
    # every checkpoint validation evaluated (and chose among) is a trial
    assert record.candidates == len(result.metrics["validation_history"]) >= 1
    assert record.trials == cfg.train.trials * record.candidates
    assert record.deployable == (record.edge and record.deflated_sharpe >= cfg.eval.confidence)
    assert record.model == f"{rd.policy_name('best')}@{sha256_of(rd.policy('best'))}"
    assert set(record.excess) == {"exposure_matched", "flat"} and record.wait_outside_support
    assert json.loads(rd.manifest.read_text())["files"][RunDir.GATE] == sha256_of(rd.gate)
    assert result.metrics["gate"]["deployable"] == record.deployable
    # a few hundred PPO steps are no edge, and the line says so
    assert not record.deployable
    assert record.line().startswith("no edge found: this run will not trade real money (validation, selection split")


def test_a_changed_gate_record_fails_the_manifest_check(trained, tmp_path):
    _, result = trained
    copy = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, copy)
    data = json.loads(RunDir(copy).gate.read_text())
    data["deployable"] = True
    RunDir(copy).gate.write_text(json.dumps(data))
    with pytest.raises(UntrustedRunError, match=r"gate\.json was modified"):
        read_gate(copy)
    with pytest.raises(UntrustedRunError, match=r"gate\.json was modified"):
        load_policy(copy)


def test_the_gate_says_deployable_only_for_an_edge():
    n = 4_000
    m, cfg, span = foresight_market(n), config(), Span(100, n)
    kw = {"split_name": "validation", "role": "selection", "source": "train"}
    good = judge_span(oracle, m, cfg, span, candidates=5, **kw)
    assert good.edge and good.deployable and good.trials == 5 * cfg.train.trials, good.verdict
    assert good.line().startswith("edge on validation: deployable (selection split; excess over exposure_matched +")
    flat = judge_span(lambda obs: np.array([WAIT, 0, 0]), m, cfg, span, **kw)
    assert not flat.edge and not flat.deployable
    assert flat.line().startswith("no edge found: this run will not trade real money")


def test_the_gate_binds_the_judged_weights_and_the_support_switch(trained, tmp_path):
    _, result = trained
    copy = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, copy)
    n = 4_000
    record = judge_span(oracle, foresight_market(n), config(), Span(100, n), split_name="validation", role="selection",
                        source="train")
    assert record.deployable
    write_gate(copy, record, RunDir(copy).policy("best"))
    best = load_policy(copy, wait_outside_support=False)
    assert gate_problem(read_gate(copy), best) is None
    assert "not the loaded policy_last.pt" in str(gate_problem(read_gate(copy), load_policy(copy, which="last", wait_outside_support=False)))
    assert "wait_outside_support = false" in str(gate_problem(read_gate(copy), load_policy(copy, wait_outside_support=True)))


def test_outside_the_training_support_the_policy_waits_and_says_why(trained, tiny_dataset):
    _, result = trained
    policy = load_policy(result.run_dir, schema=tiny_dataset.schema)
    assert policy.wait_outside_support and policy.support is not None
    plain = load_policy(result.run_dir, schema=tiny_dataset.schema, wait_outside_support=False)
    inside = tiny_dataset.matrix[result.splits.train.start + 100]
    obs = np.concatenate([inside, np.zeros(6, np.float32)])
    assert not policy.outside_support(obs)
    np.testing.assert_array_equal(policy.predict(obs), plain.predict(obs))
    assert policy.decide(obs).reason is None and policy.decide(obs).confidence is not None
    column = policy.support.kept[0]
    j = list(tiny_dataset.schema.names).index(column)
    stats = next(s for s in policy.support.stats if s.name == column)
    far = obs.copy()
    far[j] = stats.high + 10 * (stats.high - stats.low + 1)
    d = policy.decide(far)
    assert d.action[0] == WAIT and policy.predict(far)[0] == WAIT
    assert d.reason == f"WAIT: outside the training support ({column})" and d.confidence is None
    assert d.action[1:] == plain.decide(far).action[1:] and plain.decide(far).reason is None
    # the backtester sees the same: with the column pushed out on every bar, the policy never trades
    matrix = tiny_dataset.matrix.copy()
    matrix[:, j] = stats.high + 10 * (stats.high - stats.low + 1)
    span = result.splits.validation
    env = policy.config.env
    res = backtest(policy, matrix, tiny_dataset.prices, env, start=span.start, end=span.end)
    assert (res.actions["side"] == WAIT).all() and len(res.trades) == 0
    traded = backtest(plain, tiny_dataset.matrix, tiny_dataset.prices, env, start=span.start, end=span.end)
    assert (traded.actions["side"] != WAIT).any(), "the plain policy should act on these bars for the test to mean something"


def test_the_train_command_ends_with_the_gate_line(tmp_path, capsys):
    from aster_rl.cli import main
    from aster_rl.config import to_toml

    config_file = tmp_path / "config.toml"
    config_file.write_text(to_toml(tiny_config(tmp_path, total_timesteps=128, eval_freq=64)))
    assert main(["--config", str(config_file), "train"]) == 0
    out = capsys.readouterr().out.splitlines()
    (line,) = [x for x in out if x.startswith(("edge on validation: deployable", "no edge found:"))]
    run = next((tmp_path / "checkpoints").iterdir())
    record = read_gate(run)
    assert record is not None and line == record.line()
    assert line.startswith("no edge found: this run will not trade real money")
