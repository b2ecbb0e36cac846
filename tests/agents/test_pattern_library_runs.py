"""A run whose observation includes the pattern library learns it from its training bars only.

- ``patterns mine`` mines the training split a ``train`` run with the same config uses, and
  the library records that range and the bar its outcomes stop;
- training and loading a run refuse a library mined past the run's training split;
- walk-forward mines one library per fold, on that fold's training bars.
"""

import json

import pandas as pd
import pytest
from agent_helpers import tiny_config

from agents.run_dir import RunDir
from agents.data import build_dataset, mine_library
from agents.train import default_splits, train
from aster_rl.config import replace, to_toml
from aster_rl.errors import DataError
from aster_rl.features.pipeline import FeatureSchema
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.library import MinedRange, PatternLibrary
from aster_rl.patterns.stats import compute_stats
from aster_rl.storage import Database
from aster_rl.storage.pattern_store import load_library, save_library

WITH_LIBRARY = ("market", "indicators", "orderflow", "whales", "price_history", "btc_cycle", "regime",
                "multi_timeframe", "strategy", "macro", "pattern_library")


def library_config(tmp_path, **train_changes):
    cfg = tiny_config(tmp_path, **train_changes)
    return replace(cfg, synth={"n_bars": 16 * 288}, features={"tentacles": list(WITH_LIBRARY)},
                   patterns={"max_conditions": 1, "min_trades": 10, "fdr": 0.5, "demote_win_rate": 0.3})


def config_file(tmp_path, cfg) -> str:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    return str(path)


def hand_library(cfg, index, last: int) -> PatternLibrary:
    """One pattern whose 40 winning trades close up to bar ``last``; mined up to that bar."""
    mined = MinedRange(index[200], index[last], index[last])
    lib = PatternLibrary(cfg.patterns, mined=mined)
    trades = [(str(index[last - 60 - i]), str(index[last - i]), 0.01, "target") for i in range(40)]
    lib.add(Pattern((Condition("market_volume_ratio", ">=", 1.0),), "long", "swing"), compute_stats([0.01] * 40),
            {**mined.to_meta()}, trades=trades)
    return lib


def store(cfg, lib: PatternLibrary) -> None:
    db = Database.from_config(cfg.data)
    db.init_schema()
    save_library(db, lib)


def test_mine_patterns_mines_the_training_split_and_records_the_range(tmp_path, capsys):
    from aster_rl.cli import main

    cfg = library_config(tmp_path)
    conf = ["--config", config_file(tmp_path, cfg)]
    assert main([*conf, "patterns", "mine", "--max-candidates", "60"]) == 0
    out = capsys.readouterr().out
    dataset = build_dataset(replace(cfg, features={"tentacles": list(WITH_LIBRARY[:-1])}))
    splits = default_splits(cfg, dataset)
    first, last = dataset.index[splits.train.start], dataset.index[splits.train.end - 1]
    old_last = dataset.index[int(len(dataset) * cfg.train.train_fraction) - 1]  # where mining used to stop
    print(f"\ntraining split {first} .. {last}; mining used to run to {old_last}")
    assert old_last > last
    assert f"training range {first} .. {last}" in out and f"the training split ends {last}" in out
    library = load_library(Database.from_config(cfg.data), cfg.patterns)
    snapshot = library.tentacle_params()
    assert snapshot["mined_from"] == str(first) and snapshot["mined_until"] == str(last)
    assert first < pd.Timestamp(snapshot["outcomes_until"]) <= last
    for entry in library:  # every training trade closed inside the range
        assert all(first <= pd.Timestamp(t[0]) < pd.Timestamp(t[1]) <= last for t in entry.trades)
    # an explicit range may not pass the training split
    too_late = str(dataset.index[splits.train.end + 10])
    assert main([*conf, "patterns", "mine", "--end", too_late]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "past the training split's last bar" in err[0]
    assert main([*conf, "patterns", "mine", "--end", str(dataset.index[splits.train.end - 300]), "--max-candidates", "20"]) == 0
    assert load_library(Database.from_config(cfg.data), cfg.patterns).tentacle_params()["mined_until"] == str(
        dataset.index[splits.train.end - 300])


def test_training_refuses_a_library_mined_past_the_training_split(tmp_path, capsys):
    from aster_rl.cli import main

    cfg = library_config(tmp_path)
    dataset = build_dataset(cfg)
    splits = default_splits(cfg, dataset)
    store(cfg, hand_library(cfg, dataset.index, splits.train.end + 5))
    with pytest.raises(DataError, match="past the training split's last bar"):
        train(cfg, build_dataset(cfg), splits=splits)
    assert main(["--config", config_file(tmp_path, cfg), "train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mined up to" in err[0] and str(dataset.index[splits.train.end - 1]) in err[0]
    assert not list((tmp_path / "checkpoints").glob("*/model_last.zip"))
    # outcomes that close after the training split are refused too, even when the mined bars end before it
    lib = hand_library(cfg, dataset.index, splits.train.end + 5)
    lib.mined = MinedRange(dataset.index[200], dataset.index[splits.train.end - 1], dataset.index[splits.train.end + 5])
    store(cfg, lib)
    with pytest.raises(DataError, match=r"outcomes up to"):
        train(cfg, build_dataset(cfg), splits=splits)


def test_a_run_keeps_its_library_and_loading_refuses_one_mined_past_its_split(tmp_path, capsys):
    from agents.evaluate import evaluate_run
    from agents.policy import load_policy
    from agents.run_files import write_manifest
    from aster_rl.cli import main

    cfg = library_config(tmp_path)
    dataset = build_dataset(cfg)
    splits = default_splits(cfg, dataset)
    store(cfg, hand_library(cfg, dataset.index, splits.train.end - 1))
    dataset = build_dataset(cfg)
    assert dataset.column("pattern_library_any_match").sum() > 0
    run_dir = train(cfg, dataset).run_dir
    # the run's config holds the snapshot, so evaluation rebuilds the same features whatever the database holds
    store(cfg, hand_library(cfg, dataset.index, len(dataset) - 1))
    report = evaluate_run(run_dir, cfg, save=False)
    assert report.agent.metrics["trades"] >= 0
    # a run whose library was mined past its split (as an older run could be) is refused at load time
    schema = json.loads(RunDir(run_dir).schema.read_text())
    late = str(dataset.index[splits.train.end + 50])
    schema["params"]["pattern_library"]["mined_until"] = late
    schema.pop("hash")
    RunDir(run_dir).schema.write_text(json.dumps(FeatureSchema.from_dict(schema).to_dict()))
    write_manifest(run_dir)  # saved that way, not tampered with afterwards
    with pytest.raises(DataError, match="past the training split's last bar"):
        load_policy(run_dir)
    for command in (["evaluate", str(run_dir)], ["backtest", "--policy", "agent", "--run", str(run_dir)]):
        assert main(["--config", config_file(tmp_path, cfg), *command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"mined up to {late}" in err[0], command


def test_walkforward_mines_one_library_per_fold_on_its_training_bars(tmp_path):
    from agents.walkforward import walkforward

    cfg = replace(library_config(tmp_path, total_timesteps=128, eval_freq=128), synth={"n_bars": 40 * 288},
                  eval={"walkforward_folds": 2, "walkforward_seeds": 1, "random_seeds": 1, "bootstrap_samples": 30})
    dataset = build_dataset(cfg)
    result = walkforward(cfg, dataset, out_dir=tmp_path / "wf")
    snapshots = []
    for r in result.runs:
        run_dir = tmp_path / "wf" / f"fold{r['fold']}__seed{r['seed']}"
        split = json.loads(RunDir(run_dir).splits.read_text())["train"]
        saved = json.loads(RunDir(run_dir).schema.read_text())["params"]["pattern_library"]
        print(f"\nfold {r['fold']}: train {split['first_bar']} .. {split['last_bar']}; library mined "
              f"{saved['mined_from']} .. {saved['mined_until']} (outcomes by {saved['outcomes_until']}), "
              f"{len(saved['patterns'])} patterns")
        assert pd.Timestamp(saved["mined_from"]) == pd.Timestamp(split["first_bar"])
        assert pd.Timestamp(saved["mined_until"]) == pd.Timestamp(split["last_bar"])
        assert pd.Timestamp(saved["outcomes_until"]) <= pd.Timestamp(split["last_bar"])
        assert r["patterns_mined_until"] == saved["mined_until"]
        snapshots.append(saved)
    assert snapshots[0]["mined_until"] < snapshots[1]["mined_from"]  # fold 1 mined its own, later bars
    assert any(len(s["patterns"]) > 0 for s in snapshots)
    # the same as mining the fold's training bars directly
    from agents.splits import walkforward_splits

    folds = walkforward_splits(len(dataset), 2, warmup=dataset.warmup, episode_length=cfg.env.episode_length,
                               train_fraction=cfg.train.train_fraction, validation_fraction=cfg.train.validation_fraction)
    for fold, saved in zip(folds, snapshots):
        lib, _ = mine_library(cfg, dataset, fold.train.start, fold.train.end)
        assert json.loads(json.dumps(lib.tentacle_params())) == saved
