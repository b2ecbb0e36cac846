"""``--timerange`` on train, evaluate, backtest, walkforward and patterns mine, on the tiny synthetic market."""

import itertools
import json

import pandas as pd
import pytest
from agent_helpers import tiny_config

from agents.data import build_dataset
from agents.run_dir import WALKFORWARD_FILE, RunDir
from agents.splits import Splits, check_unseen, last_selection_bar, make_splits, range_splits, walkforward_splits
from aster_rl.cli import main
from aster_rl.config import replace, to_toml
from aster_rl.data.timeframes import parse_timerange
from aster_rl.errors import DataError

TRAIN_RANGE = "20250304-20250312"  # the tiny market runs 2025-03-01 .. 2025-03-12 23:55 (5m bars)
LATER = "20250312-"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def config_args(tmp_path, cfg) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    return ["--config", str(path)]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---------------------------------------------------------------- splits inside a range

def test_range_splits_stay_inside_the_range_and_record_it():
    index = pd.date_range("2025-03-01", periods=12 * 288, freq="5min", tz="UTC")
    r = parse_timerange(TRAIN_RANGE)
    s = range_splits(index, r, warmup=600, episode_length=64, train_fraction=0.6, validation_fraction=0.2)
    assert index[s.train.start] == utc("2025-03-04")  # the warm-up comes from the bars before the range
    assert index[s.test.end - 1] == utc("2025-03-11 23:55")
    s.check()
    assert s.timerange == r
    d = s.to_dict(index)
    assert d["timerange"] == r.to_dict() and Splits.from_dict(d) == s
    # no range: the splits of the whole market, as before
    whole = range_splits(index, None, warmup=600, episode_length=64, train_fraction=0.6, validation_fraction=0.2)
    assert whole == make_splits(len(index), warmup=600, episode_length=64, train_fraction=0.6, validation_fraction=0.2)
    # a range starting inside the warm-up starts after it
    early = range_splits(index, parse_timerange("-20250310"), warmup=600, episode_length=64, train_fraction=0.6,
                         validation_fraction=0.2)
    assert early.train.start == 600 and index[early.test.end - 1] == utc("2025-03-09 23:55")


def test_a_range_too_short_for_the_splits_names_it():
    index = pd.date_range("2025-03-01", periods=12 * 288, freq="5min", tz="UTC")
    with pytest.raises(DataError, match=r"^--timerange 20250305-20250306 \(288 bars from 2025-03-05 00:00\): splits: "):
        range_splits(index, parse_timerange("20250305-20250306"), warmup=600, episode_length=64,
                     train_fraction=0.6, validation_fraction=0.2)


def test_walkforward_folds_are_cut_inside_the_range():
    n, warmup, episode = 40_000, 300, 500
    start, end = 5_000, 30_000
    folds = walkforward_splits(end, 3, warmup=warmup, episode_length=episode, train_fraction=0.6,
                               validation_fraction=0.2, start=start)
    assert folds[0].train.start == start and folds[-1].test.end == end
    for a, b in itertools.pairwise(folds):
        assert b.train.start - a.test.end >= warmup + episode
    assert walkforward_splits(n, 2, warmup=warmup, episode_length=episode, train_fraction=0.6, validation_fraction=0.2,
                              start=0) == walkforward_splits(n, 2, warmup=warmup, episode_length=episode,
                                                             train_fraction=0.6, validation_fraction=0.2)


def test_last_selection_bar_of_a_run_and_of_a_retrained_run(tmp_path):
    index = pd.date_range("2025-03-01", periods=12 * 288, freq="5min", tz="UTC")
    s = make_splits(len(index), warmup=600, episode_length=64, train_fraction=0.6, validation_fraction=0.2)
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.splits.write_text(json.dumps(s.to_dict(index)))
    assert last_selection_bar(rd.path) == index[s.validation.end - 1]
    check_unseen(rd.path, parse_timerange("20250311-"), index[s.validation.end])
    with pytest.raises(DataError, match="is not after the last bar run trained or was selected on"):
        check_unseen(rd.path, parse_timerange("20250311-"), index[s.validation.end - 1])
    retrained = RunDir(tmp_path / "retrained")
    retrained.path.mkdir()
    retrained.splits.write_text(json.dumps({"retrained_from": "x", "holdout_from": "2025-03-10T00:00:00.000000000",
                                            "holdout_to": "2025-03-11T23:55:00.000000000"}))
    assert last_selection_bar(retrained.path) == utc("2025-03-11 23:55")
    (tmp_path / "bare").mkdir()
    RunDir(tmp_path / "bare").splits.write_text("{}")
    with pytest.raises(DataError, match="records no training and validation bar times"):
        last_selection_bar(tmp_path / "bare")


# ---------------------------------------------------------------- train, then evaluate on a later range (CLI)

@pytest.fixture(scope="module")
def ranged_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranged")
    cfg = tiny_config(tmp)
    args = config_args(tmp, cfg)
    assert main([*args, "train", "--timerange", TRAIN_RANGE]) == 0
    (run_dir,) = (tmp / "checkpoints").iterdir()
    return tmp, cfg, args, RunDir(run_dir)


def test_train_uses_only_bars_inside_its_range(ranged_run):
    _, cfg, _, rd = ranged_run
    d = json.loads(rd.splits.read_text())
    assert d["timerange"] == {"text": TRAIN_RANGE, "start": "2025-03-04T00:00:00+00:00", "end": "2025-03-12T00:00:00+00:00"}
    for name in ("train", "validation", "test"):
        assert utc("2025-03-04") <= pd.Timestamp(d[name]["first_bar"]) <= pd.Timestamp(d[name]["last_bar"]) < utc("2025-03-12")
    assert d["train"]["first_bar"] == "2025-03-04T00:00:00+00:00"
    assert d["test"]["last_bar"] == "2025-03-11T23:55:00+00:00"  # the test split at the end of the range
    dataset = build_dataset(cfg)
    assert len(dataset) > d["test"]["end"]  # the stored market goes on past the range; the run did not use it


def test_evaluate_on_a_later_range(ranged_run, capsys):
    _, _, args, rd = ranged_run
    capsys.readouterr()
    assert main([*args, "evaluate", str(rd.path), "--timerange", LATER]) == 0
    out = capsys.readouterr().out
    assert f"timerange {LATER} 2025-03-12T00:00 .. 2025-03-12T23:55 (288 bars)" in out
    results = json.loads(rd.eval_range(LATER).results.read_text())
    assert results["split"]["name"] == "timerange" and results["split"]["timerange"]["text"] == LATER
    assert results["split"]["first_bar"] == "2025-03-12T00:00:00+00:00" and results["split"]["bars"] == 288
    assert not rd.eval.results.exists()  # the test split's report is not overwritten


def test_evaluate_refuses_a_range_the_run_trained_or_was_selected_on(ranged_run, capsys):
    _, _, args, rd = ranged_run
    d = json.loads(rd.splits.read_text())
    last_validation = pd.Timestamp(d["validation"]["last_bar"])
    overlapping = f"{last_validation:%Y%m%d}-"  # starts on the day of the last validation bar
    capsys.readouterr()
    for bad in (overlapping, "-20250306", "20250304-20250305"):  # inside it, ending before it, inside training
        assert main([*args, "evaluate", str(rd.path), "--timerange", bad]) == 2
        line = one_line_error(capsys)
        assert f"--timerange {bad}: its first bar" in line and "a run is judged only on later bars" in line, line
        assert f"({last_validation:%Y-%m-%d %H:%M} UTC)" in line
    assert not rd.eval_range(overlapping).path.exists()
    assert main([*args, "evaluate", str(rd.path), "--timerange", "20250401-"]) == 2
    assert "no stored bar lies in it; the stored market runs 2025-03-01 00:00 .. 2025-03-12 23:55 UTC" in one_line_error(capsys)
    assert main([*args, "evaluate", str(rd.path), "--timerange", "2025-03-12"]) == 2
    assert "--timerange '2025-03-12': expected START-END" in one_line_error(capsys)


def test_backtest_honours_the_range(ranged_run, capsys):
    tmp, _, args, rd = ranged_run
    capsys.readouterr()
    out_dir = tmp / "bt"
    assert main([*args, "backtest", "--policy", "buy_and_hold", "--timerange", "20250305-20250306", "--out", str(out_dir)]) == 0
    assert "over 2025-03-05 00:00:00+00:00 .. 2025-03-05 23:55:00+00:00 (288 bars)" in capsys.readouterr().out
    equity = pd.read_csv(out_dir / "equity.csv", index_col=0, parse_dates=True)
    assert equity.index.min() >= utc("2025-03-05") and equity.index.max() < utc("2025-03-06")
    # the same bars as --start/--end naming the first and the last bar
    assert main([*args, "backtest", "--policy", "buy_and_hold", "--start", "2025-03-05", "--end", "2025-03-05T23:55"]) == 0
    assert "over 2025-03-05 00:00:00+00:00 .. 2025-03-05 23:55:00+00:00 (288 bars)" in capsys.readouterr().out
    assert main([*args, "backtest", "--policy", "agent", "--run", str(rd.path), "--timerange", LATER]) == 0
    assert "agent over 2025-03-12 00:00:00+00:00 .. 2025-03-12 23:55:00+00:00 (288 bars)" in capsys.readouterr().out
    assert main([*args, "backtest", "--timerange", LATER, "--start", "2025-03-05"]) == 2
    assert "give it or --start/--end, not both" in one_line_error(capsys)
    assert main([*args, "backtest", "--timerange", "20250312-20250301"]) == 2
    assert "is not after the start" in one_line_error(capsys)


def test_patterns_mine_refuses_a_range_past_the_training_split(ranged_run, capsys):
    _, _, args, _ = ranged_run
    capsys.readouterr()
    assert main([*args, "patterns", "mine", "--timerange", "20250305-"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("aster-rl patterns: error: --timerange 20250305-: ends past the training split's last bar"), line
    assert main([*args, "patterns", "mine", "--timerange", "20250305-", "--end", "2025-03-06"]) == 2
    assert "give it or --start/--end, not both" in one_line_error(capsys)
    assert main([*args, "patterns", "mine", "--timerange", "20250305"]) == 2
    assert "--timerange '20250305': expected START-END" in one_line_error(capsys)


# ---------------------------------------------------------------- walk-forward

def test_walkforward_cuts_its_folds_inside_the_range(tmp_path, capsys):
    from agents.walkforward import walkforward

    cfg = replace(tiny_config(tmp_path, total_timesteps=128, eval_freq=128), synth={"n_bars": 20 * 288},
                  eval={"walkforward_folds": 2, "walkforward_seeds": 1, "random_seeds": 1, "bootstrap_samples": 30})
    dataset = build_dataset(cfg)
    r = parse_timerange("20250304-20250319")
    result = walkforward(cfg, dataset, out_dir=tmp_path / "wf", timerange=r)
    bars = []
    for run in result.runs:
        d = json.loads(RunDir(tmp_path / "wf" / f"fold{run['fold']}__seed{run['seed']}").splits.read_text())
        bars += [pd.Timestamp(d[name][key]) for name in ("train", "validation", "test") for key in ("first_bar", "last_bar")]
    assert min(bars) == utc("2025-03-04") and max(bars) == utc("2025-03-18 23:55")
    saved = json.loads((tmp_path / "wf" / WALKFORWARD_FILE).read_text())
    assert saved["summary"]["timerange"] == r.to_dict()
    assert "folds cut inside --timerange 20250304-20250319" in result.table()
    assert main(["--set", f"data.data_dir={tmp_path / 'data'}", "walkforward", "--timerange", "20250319-20250304"]) == 2
    assert "--timerange '20250319-20250304': the end" in one_line_error(capsys)
