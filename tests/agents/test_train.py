import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from agents.callbacks import event_scalar_tags
from agents.evaluate import evaluate_run, jsonable
from agents.policy import load_policy
from agents.run_dir import RunDir
from agents.train import train
from aster_rl.errors import DataError, SchemaMismatchError
from aster_rl.interfaces import DecidingPolicy

from agent_helpers import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tmp)
    return cfg, train(cfg, tiny_dataset)


def test_run_directory_layout(trained):
    cfg, result = trained
    d = result.run_dir
    rd = RunDir(d)
    assert d.parent == cfg.train.checkpoint_dir
    name, seed, stamp = d.name.split("__")
    assert name == "ppo" and seed == "3" and stamp.isdigit()
    models = [f(w) for f in (rd.policy, rd.normalizer, rd.sb3_model) for w in ("best", "last")]
    for f in (*models, rd.manifest, rd.config, rd.schema, rd.splits, rd.support, rd.metrics):
        assert f.exists(), f
    assert abs(rd.created_at() - int(stamp)) < 60  # the manifest's creation time, from the first save
    splits = json.loads(rd.splits.read_text())
    assert splits["train"]["end"] + splits["purge_bars"] <= splits["validation"]["start"]
    assert splits["validation"]["end"] + splits["purge_bars"] <= splits["test"]["start"]
    assert splits["train"]["first_bar"] < splits["validation"]["first_bar"] < splits["test"]["first_bar"]
    metrics = json.loads(rd.metrics.read_text())
    assert metrics["timesteps"] >= 256
    assert [h["timesteps"] for h in metrics["validation_history"]] == [128.0, 256.0]
    assert "net_pnl_usd" in metrics["best_validation"]
    # 12 days inside one BTC-cycle phase: the phase columns are constant over training and left
    # out by name, with the time-index columns; the model sees only the kept columns
    support = json.loads(rd.support.read_text())
    dropped = [c["name"] for c in support["columns"] if not c["kept"]]
    for name in ("btc_cycle_years", "btc_cycle_progress", "btc_cycle_phase", "btc_cycle_bull_phase_1"):
        assert name in dropped and name in metrics["support_notice"], name
    kept = [c for c in support["columns"] if c["kept"]]
    assert all(c["min"] < c["max"] and c["var"] > 0 for c in kept)
    assert metrics["observation_columns"] == len(kept)
    pol = load_policy(d)
    assert pol.model.observation_space.shape == (len(kept) + 6,)


def test_tensorboard_has_trading_scalars(trained):
    _, result = trained
    tags = event_scalar_tags(RunDir(result.run_dir).tensorboard)
    for tag in ("trade/win_rate", "trade/profit_factor", "trade/expectancy", "trade/avg_pnl", "trade/trades_per_day",
                "trade/avg_leverage", "trade/liquidations", "env/equity", "env/drawdown", "env/time_in_market",
                "actions/side_wait", "actions/side_buy", "actions/side_sell", "actions/entropy",
                "eval/net_pnl_usd", "eval/net_return", "eval/sharpe", "eval/best_net_pnl_usd", "train/entropy_loss"):
        assert tag in tags, tag
    assert any(t.startswith("actions/leverage_") for t in tags)
    assert any(t.startswith("actions/profile_") for t in tags)


def test_hyperparameters_logged_as_text(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, result = trained
    events = next(RunDir(result.run_dir).tensorboard.rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0})
    acc.Reload()
    assert any("hyperparameters" in t for t in acc.Tags()["tensors"])


def test_same_seed_same_metrics(trained, tmp_path, tiny_dataset):
    _cfg, first = trained
    again = train(tiny_config(tmp_path), tiny_dataset)
    a, b = first.metrics, again.metrics
    assert a["validation_history"] == b["validation_history"]
    assert a["last_rollout"] == b["last_rollout"]


def test_reloaded_run_evaluates_to_the_same_numbers(trained, tiny_dataset):
    cfg, result = trained
    first = evaluate_run(result.run_dir, cfg, dataset=tiny_dataset)
    second = evaluate_run(result.run_dir, cfg, dataset=tiny_dataset)
    assert first.to_dict() == second.to_dict()
    ev = RunDir(result.run_dir).eval
    saved = json.loads(ev.results.read_text())
    assert saved["agent"]["metrics"]["net_return"] == pytest.approx(first.agent.metrics["net_return"])
    for name in ("agent", "flat", "buy_and_hold", "random", "rule_brain"):
        assert ev.equity(name).exists()
        assert ev.trades(name).exists()
    assert set(saved["cost_sweep"]) == {"x0", "x1", "x2"}
    assert saved["support"]["bars"] == first.split["bars"] and 0 <= saved["support"]["share"] <= 1
    assert "out of training support:" in first.table()
    assert saved["verdict"]
    # the best model's policy, loaded fresh, acts the same on the same observation
    pol = load_policy(result.run_dir, schema=tiny_dataset.schema)
    assert isinstance(pol, DecidingPolicy)
    inside = result.splits.train.start + len(result.splits.train) // 2  # a training bar: inside the support
    obs = np.concatenate([tiny_dataset.matrix[inside], np.zeros(6, np.float32)])
    np.testing.assert_array_equal(pol.predict(obs), load_policy(result.run_dir).predict(obs))
    d = pol.decide(obs)
    np.testing.assert_array_equal(d.action, pol.predict(obs))
    assert 0 < d.confidence <= 1
    assert d.confidence == pytest.approx(d.probabilities[0][d.action[0]])  # P(side)
    assert d.leverage_probability == pytest.approx(d.probabilities[1][d.action[1]])
    assert np.isfinite(d.value) and d.entropy > 0
    # the live runner names and ages the model by the weights it loaded
    from aster_rl.live.policy import model_trained_at, model_version

    weights = RunDir(result.run_dir).policy("best")
    assert model_version(pol).startswith(f"{Path(result.run_dir).name}/{weights.name}@")
    assert model_trained_at(pol) == pytest.approx(weights.stat().st_mtime)


def test_schema_mismatch_is_a_clear_error(trained, tiny_dataset):
    _, result = trained
    schema = tiny_dataset.schema
    other = dataclasses.replace(schema, names=(*tuple(schema.names[:-1]), "orderflow_not_a_feature"))
    with pytest.raises(SchemaMismatchError, match="orderflow_not_a_feature"):
        load_policy(result.run_dir, schema=other)


def test_latest_and_missing_runs(trained, tmp_path):
    cfg, result = trained
    assert RunDir.resolve("latest", cfg.train.checkpoint_dir).path == result.run_dir
    with pytest.raises(DataError, match="no trained run"):
        RunDir.resolve("latest", tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        RunDir.resolve(tmp_path / "nope")


def test_jsonable_writes_strict_json():
    import math

    out = jsonable({"pf": math.inf, "loss": np.float64(-math.inf), "x": np.float32(0.5), "n": np.int64(3),
                    "ok": np.bool_(True), "nan": float("nan"), "rows": ({1: 2.0},)})
    assert out == {"pf": "inf", "loss": "-inf", "x": 0.5, "n": 3, "ok": True, "nan": "nan", "rows": [{"1": 2.0}]}
    json.dumps(out, allow_nan=False)


def test_confidence_is_the_side_heads_probability():
    from agents.policy import action_confidence

    probs = (np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.5]), np.array([0.2, 0.8]))
    assert action_confidence(probs, np.array([0, 1, 0])) == pytest.approx(0.6)
    assert action_confidence(probs, np.array([1, 1, 1])) == pytest.approx(0.3)


def test_a_run_without_observation_normalization_saves_loads_and_continues(tmp_path):
    """train.normalize_observations = false: SB3 keeps no observation statistics; the run still
    saves, its policy sees the raw observation, and a run can start from it."""
    import numpy as np

    from agents.data import build_dataset
    from agents.policy import load_policy
    from agents.run_files import read_norm_arrays, vec_normalize_from
    from agents.run_dir import RunDir
    from agent_helpers import tiny_config
    from envs import BatchedPerpEnv

    cfg = tiny_config(tmp_path, normalize_observations=False)
    ds = build_dataset(cfg)
    result = train(cfg, ds)
    arrays = read_norm_arrays(RunDir(result.run_dir).normalizer("best"))
    assert not bool(arrays["norm_obs"]) and float(arrays["obs_count"]) == 0.0
    policy = load_policy(result.run_dir, schema=ds.schema)
    obs = np.full(arrays["obs_mean"].shape, 123.0, dtype=np.float32)
    assert (policy.obs_normalizer.normalize_obs(obs) == 123.0).all()  # not scaled, not clipped at 10
    venv = BatchedPerpEnv(policy.support.select_features(ds.matrix), ds.prices, cfg.env, 2)
    assert vec_normalize_from(arrays, venv).norm_obs is False
