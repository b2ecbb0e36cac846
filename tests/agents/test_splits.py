import json

import pandas as pd
import pytest

from agents.run_dir import RunDir
from agents.splits import Splits, Span, load_run_splits, make_splits, purge_bars, walkforward_splits
from aster_rl.errors import DataError
import itertools


def _bars(s: Splits) -> list[set[int]]:
    return [set(range(sp.start, sp.end)) for sp in (s.train, s.validation, s.test)]


@pytest.mark.parametrize("n,warmup,episode", [(10_000, 300, 512), (5_000, 0, 100), (20_000, 1_000, 2_048)])
def test_splits_are_ordered_disjoint_and_purged(n, warmup, episode):
    s = make_splits(n, warmup=warmup, episode_length=episode, train_fraction=0.6, validation_fraction=0.2)
    a, b, c = _bars(s)
    assert not (a & b) and not (b & c) and not (a & c)
    assert s.train.start == warmup
    assert s.test.end == n
    assert s.validation.start - s.train.end >= warmup + episode
    assert s.test.start - s.validation.end >= warmup + episode
    assert s.purge == purge_bars(warmup, episode)
    # roughly the asked proportions of the usable bars
    usable = len(s.train) + len(s.validation) + len(s.test)
    assert abs(len(s.train) / usable - 0.6) < 0.01


def test_too_little_data_is_a_clear_error():
    with pytest.raises(DataError, match=r"shorter env\.episode_length"):
        make_splits(3_000, warmup=300, episode_length=2_048, train_fraction=0.6, validation_fraction=0.2)
    with pytest.raises(DataError, match="leave room for a test split"):
        make_splits(30_000, warmup=0, episode_length=10, train_fraction=0.8, validation_fraction=0.2)


def test_check_catches_a_short_gap():
    bad = Splits(Span(10, 100), Span(105, 200), Span(300, 400), purge=50, warmup=10)
    with pytest.raises(DataError, match="only 5 bars between train and validation"):
        bad.check()


def test_to_dict_round_trip_with_timestamps():
    n = 6_000
    ts = pd.date_range("2025-01-01", periods=n, freq="5min", tz="UTC")
    s = make_splits(n, warmup=100, episode_length=200, train_fraction=0.5, validation_fraction=0.25)
    d = s.to_dict(ts.as_unit("ns").asi8)
    assert s.to_dict(ts) == d
    assert d["train"]["first_bar"] == ts[100].isoformat()
    assert d["test"]["last_bar"] == ts[-1].isoformat()
    assert Splits.from_dict(d) == s


@pytest.mark.parametrize("folds", [2, 3, 4])
def test_walkforward_folds_are_chronological_and_purged(folds):
    n, warmup, episode = 40_000, 300, 500
    ws = walkforward_splits(n, folds, warmup=warmup, episode_length=episode, train_fraction=0.6, validation_fraction=0.2)
    assert len(ws) == folds
    seen: set[int] = set()
    prev_end = 0
    for s in ws:
        for bars in _bars(s):
            assert not (bars & seen)
            seen |= bars
        assert s.train.start - prev_end >= (warmup + episode if prev_end else warmup)
        prev_end = s.test.end
        assert s.validation.start - s.train.end >= warmup + episode
        assert s.test.start - s.validation.end >= warmup + episode
    assert ws[-1].test.end == n
    assert all(a.test.end <= b.train.start for a, b in itertools.pairwise(ws))


def test_load_run_splits_checks_the_recorded_bar_times(tmp_path):
    ts = pd.date_range("2025-01-01", periods=3_000, freq="5min", tz="UTC").asi8
    s = make_splits(len(ts), warmup=100, episode_length=50, train_fraction=0.6, validation_fraction=0.2)
    RunDir(tmp_path).splits.write_text(json.dumps(s.to_dict(ts)))
    assert load_run_splits(tmp_path) == s
    assert load_run_splits(tmp_path, ts) == s
    # the same data with bars appended after it keeps every position
    longer = pd.date_range("2025-01-01", periods=3_500, freq="5min", tz="UTC").asi8
    assert load_run_splits(tmp_path, longer) == s
    # bars added in front shift every position: the "test" bars would be other bars
    earlier = pd.date_range("2024-12-31", periods=3_288, freq="5min", tz="UTC").asi8
    with pytest.raises(DataError, match="train split's first bar"):
        load_run_splits(tmp_path, earlier)
    with pytest.raises(DataError, match="test split ends at bar"):
        load_run_splits(tmp_path, ts[:2_000])


def test_load_run_splits_refuses_a_retrained_run_and_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"no splits\.json"):
        load_run_splits(tmp_path)
    RunDir(tmp_path).splits.write_text(json.dumps({"retrained_from": "ck/champ", "train": [100, 900], "holdout": [1000, 1200]}))
    with pytest.raises(DataError, match="no untouched test split"):
        load_run_splits(tmp_path)
