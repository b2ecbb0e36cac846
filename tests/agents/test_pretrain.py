"""Pooled pretraining and fine-tuning from a run (``train.init_from``), on small synthetic markets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import replace
from aster_rl.errors import DataError

from agents.data import build_dataset, pool_datasets, scale_dependent
from agents.evaluate import evaluate_run
from agents.pretrain import fine_tune_config, initial_state, market_names, pretrain_splits
from agents.run_dir import RunDir
from agents.run_files import read_norm_arrays, read_policy_payload
from agents.train import default_splits, make_model, train

from agent_helpers import tiny_config

DAYS = 12


def _market(cfg, start: str, seed: int):
    from aster_rl.data.synthetic import synthesize

    c = replace(cfg, synth={"n_bars": DAYS * 288, "seed": seed, "start": start})
    return build_dataset(c, market=synthesize(c.synth))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two markets in January pooled and pretrained on, and a February target fine-tuned from that run."""
    tmp = tmp_path_factory.mktemp("pretrain")
    cfg = tiny_config(tmp)
    pooled = pool_datasets([("A", _market(cfg, "2025-01-01", 1)), ("B", _market(cfg, "2025-01-03", 2))])
    pre = train(replace(cfg, train={"name": "pre"}), pooled, splits=pretrain_splits(cfg, pooled))
    target = _market(cfg, "2025-02-01", 3)
    tuned_cfg = fine_tune_config(replace(cfg, train={"name": "tuned"}), pre.run_dir)
    tuned = train(tuned_cfg, target, splits=default_splits(tuned_cfg, target))
    return cfg, pooled, pre, target, tuned_cfg, tuned


def test_pooled_markets_keep_their_own_bars(runs):
    cfg, pooled, *_ = runs
    a, b = _market(cfg, "2025-01-01", 1), _market(cfg, "2025-01-03", 2)
    assert pooled.markets == ("A", "B") and pooled.segments == ((0, len(a)), (len(a), len(a) + len(b)))
    assert (np.diff(pooled.prices.timestamps) > 0).all()
    assert pooled.index[-1] == b.index[-1]  # the market ending last keeps its dates; the other moves back
    assert pooled.index[len(a) - 1] < b.index[0] and (pooled.index[0] - a.index[0]) % pd.Timedelta(days=7) == pd.Timedelta(0)
    for (lo, hi), d in zip(pooled.segments, (a, b)):
        np.testing.assert_array_equal(pooled.matrix[lo:hi], d.matrix)
        for f in ("close", "funding_rate", "atr", "sigma_daily", "volume_daily"):
            np.testing.assert_array_equal(getattr(pooled.prices, f)[lo:hi], getattr(d.prices, f), err_msg=f)
    assert pooled.prices.sigma_daily[len(a)] == 0.0  # no cost window reaches back across the seam
    assert scale_dependent(pooled, pretrain_splits(cfg, pooled).train) == []


def test_scale_dependent_columns_are_named(runs):
    cfg, pooled, *_ = runs
    matrix = pooled.matrix.copy()
    j = pooled.columns.index("market_return_1")
    lo, hi = pooled.segments[1]
    matrix[:, j] = pooled.prices.close
    matrix[lo:hi, j] *= 1000.0  # a price level: the second market trades 1,000 times higher
    bad = replace_matrix(pooled, matrix)
    assert scale_dependent(bad, pretrain_splits(cfg, pooled).train) == ["market_return_1"]


def replace_matrix(dataset, matrix):
    import dataclasses

    return dataclasses.replace(dataset, features=dataclasses.replace(dataset.features, matrix=matrix))


def test_pooling_refuses_different_schemas(runs, tmp_path):
    cfg, *_ = runs
    other = replace(cfg, features={"tentacles": ["market", "indicators"]})
    with pytest.raises(DataError, match="pooled markets A and B: different feature schemas"):
        pool_datasets([("A", _market(cfg, "2025-01-01", 1)), ("B", _market(other, "2025-01-03", 2))])


def test_pretraining_validates_on_the_last_market(runs):
    _, pooled, pre, *_ = runs
    lo, hi = pooled.segments[-1]
    assert pre.splits.train.start == pooled.warmup and lo < pre.splits.validation.start < pre.splits.test.end == hi
    assert json.loads(RunDir(pre.run_dir).metrics.read_text())["validation_history"]


def test_init_from_loads_weights_statistics_and_columns(runs):
    cfg, _, pre, target, tuned_cfg, tuned = runs
    pre_rd, rd = RunDir(pre.run_dir), RunDir(tuned.run_dir)
    which = "best" if pre_rd.policy("best").exists() else "last"
    splits = default_splits(tuned_cfg, target)
    init = initial_state(tuned_cfg, target, splits)
    assert init is not None
    # before learning: the model holds the pretrained weights exactly
    from envs import BatchedPerpEnv

    venv = BatchedPerpEnv(init.support.select_features(target.matrix), target.prices, cfg.env, 2,
                          start=splits.train.start, end=splits.train.end)
    model = make_model(tuned_cfg, init.normalizer(venv), None)
    init.load_into(model)
    saved = read_policy_payload(pre_rd.policy(which))["policy"]
    for k, v in model.policy.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k].numpy(), err_msg=k)
    # the fine-tuned run observes the pretrained columns (not its own selection), and its statistics continued
    pre_support, support = (json.loads(r.support.read_text()) for r in (pre_rd, rd))
    kept = [c["name"] for c in pre_support["columns"] if c["kept"]]
    assert [c["name"] for c in support["columns"] if c["kept"]] == kept
    norm_pre, norm = read_norm_arrays(pre_rd.normalizer(which)), read_norm_arrays(rd.normalizer("last"))
    assert norm["obs_mean"].shape == norm_pre["obs_mean"].shape and float(norm["obs_count"]) > float(norm_pre["obs_count"])
    assert str(pre.run_dir) in rd.config.read_text()


def test_fine_tuned_run_evaluates(runs):
    *_, target, tuned_cfg, tuned = runs
    report = evaluate_run(tuned.run_dir, tuned_cfg, dataset=target)
    assert np.isfinite(report.agent.metrics["net_return"]) and report.split["first_bar"]


def test_pretraining_data_overlapping_training_refused(runs):
    cfg, _, pre, *_ = runs
    early = _market(cfg, "2025-01-02", 4)  # trains on January bars, which the pretraining data also hold
    c = fine_tune_config(replace(cfg, train={"name": "early"}), pre.run_dir)
    before = set(cfg.train.checkpoint_dir.iterdir())
    with pytest.raises(DataError, match="not before the first training bar"):
        train(c, early, splits=default_splits(c, early))
    assert set(cfg.train.checkpoint_dir.iterdir()) == before  # nothing written


def test_market_names():
    assert market_names("btc, ETH") == ("BTC", "ETH")
    for bad in ("BTC", "BTC,DOGE", "BTC,BTC"):
        with pytest.raises(DataError, match="pretraining markets"):
            market_names(bad)
