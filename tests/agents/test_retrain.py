"""Continued training: resume from a checkpoint, compare on the newest held-out range, promote only if better."""

from __future__ import annotations

import dataclasses
import json

import pytest

import agents.retrain as R
from agents.gate import read_gate
from agents.run_dir import RunDir, champion_file, retrain_log
from agents.retrain import holdout_spans, resolve_champion, retrain
from agents.train import train
from aster_rl.errors import DataError

from agent_helpers import tiny_config


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("retrain")
    cfg = tiny_config(tmp)
    return cfg, train(cfg, tiny_dataset).run_dir


def test_holdout_is_the_newest_range_after_a_purge_gap():
    train_span, hold = holdout_spans(3_000, warmup=300, episode_length=64, holdout_fraction=0.2)
    assert hold.end == 3_000 and len(hold) == int(2_700 * 0.2)
    assert train_span.start == 300 and hold.start - train_span.end == 300 + 64
    with pytest.raises(DataError, match="training bars"):
        holdout_spans(800, warmup=300, episode_length=64, holdout_fraction=0.5)


def test_retrain_records_the_decision_and_promotes_only_if_better_and_deployable(champion, tiny_dataset, monkeypatch):
    cfg, champ_dir = champion
    d = retrain(cfg, champ_dir, timesteps=64, dataset=tiny_dataset)
    ckpt = cfg.train.checkpoint_dir
    record = json.loads(RunDir(R.Path(d.challenger)).retrain_decision.read_text())
    assert record["champion"] == str(champ_dir) and record["holdout"]["end"] == len(tiny_dataset)
    # the challenger's gate: the judge on the hold-out, both candidates counted, sealed in its manifest
    gate = read_gate(d.challenger)
    assert gate is not None and record["gate"] == gate.to_dict()
    assert gate.source == "retrain" and gate.split["name"] == "holdout" and gate.split["role"] == "selection"
    assert gate.split["end"] == len(tiny_dataset) and gate.candidates == 2 and gate.trials == 2 * (cfg.train.trials + 1)
    better = record["challenger_metrics"]["net_pnl_usd"] > record["champion_metrics"]["net_pnl_usd"]
    assert record["promoted"] == (better and gate.deployable)
    lines = retrain_log(ckpt).read_text().splitlines()
    assert json.loads(lines[-1])["challenger"] == d.challenger
    # the challenger resumed from the champion: its timestep counter continued
    from stable_baselines3 import PPO

    before = PPO.load(RunDir(champ_dir).sb3_model("best")).num_timesteps
    assert PPO.load(RunDir(R.Path(d.challenger)).sb3_model("last")).num_timesteps > before
    # promotion needs both: force the comparison through the scorer and, where said, the gate's verdict
    real_judge = R.judge_span
    for better, forced in ((True, None), (True, True), (False, True)):
        champion_file(ckpt).unlink(missing_ok=True)
        calls = iter([{"net_pnl_usd": 0.0}, {"net_pnl_usd": 1.0 if better else -1.0}])
        monkeypatch.setattr(R, "summarize_backtest", lambda *a, _calls=calls, **k: _fake(_calls))
        judge = real_judge if forced is None else (
            lambda *a, _f=forced, **k: dataclasses.replace(real_judge(*a, **k), deployable=_f))
        monkeypatch.setattr(R, "judge_span", judge)
        d2 = retrain(cfg, champ_dir, timesteps=32, dataset=tiny_dataset)
        deployable = d2.gate["deployable"]
        if forced is None:  # the real judge on a barely trained challenger: a better net PnL is not an edge
            assert not deployable, d2.gate["verdict"]
            assert "no edge found: this run will not trade real money" in d2.reason
        assert d2.promoted is (better and deployable)
        assert champion_file(ckpt).exists() is d2.promoted
        if d2.promoted:
            assert resolve_champion("champion", ckpt).path == R.Path(d2.challenger)


def _fake(calls):
    value = next(calls)["net_pnl_usd"]
    return {k: (value if k == "net_pnl_usd" else 0.0) for k in R.KEYS}
