"""The incremental (live) feature path of the runner: one FeatureStream per runner, started
from the whole history and then fed only the last ``min_bars`` bars, giving the batch rows;
after a restart it is started again from the stored history and gives the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import FeaturesConfig
from aster_rl.features.stream import FeatureStream
from aster_rl.features.pipeline import build_features
from aster_rl.live.sources import ReplaySource
from aster_rl.storage import live_store
from factories import make_market
from live_helpers import FixedPolicy, make_db, paper_runner

START, BARS = 2_300, 30


@pytest.fixture(scope="module")
def market():
    return make_market(2_400, seed=13)


@pytest.fixture()
def updates(monkeypatch):
    """Every FeatureStream.update: (stream id, newest bar, bars given, row)."""
    seen: list[tuple[int, pd.Timestamp, int, np.ndarray]] = []
    original = FeatureStream.update

    def spy(self, market):
        row = original(self, market)
        seen.append((id(self), market.candles.index[-1], len(market.candles), row.copy()))
        return row

    monkeypatch.setattr(FeatureStream, "update", spy)
    return seen


def _frames_equal(a, b) -> None:
    for key in ("candles", "funding", "trades", "book", "btc", "eth"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            pd.testing.assert_frame_equal(x, y, obj=key)


def test_recent_market_is_the_tail_of_the_market_known_at_the_close(market):
    source = ReplaySource(market, START, START + BARS)
    index = market.candles.index
    last = index[START + 3]
    known = source.market_at(last)
    recent = source.recent_market(last, 500)
    assert len(recent) == 500 and recent.candles.index[0] == index[START + 3 - 499]
    _frames_equal(recent, known.window(index[START + 3 - 499], None))
    # reaching back to an earlier bar when asked
    assert source.recent_market(last, 10, since=index[START - 20]).candles.index[0] == index[START - 20]


def test_one_stream_fed_short_windows_gives_the_batch_rows(market, updates, tmp_path):
    cfg = FeaturesConfig()
    runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, START, START + BARS), make_db(tmp_path), tmp_path,
                          features="incremental", feats=cfg)
    summary = runner.run()
    assert summary.stopped_by == "end" and summary.decisions == BARS - 1
    assert len({sid for sid, *_ in updates}) == 1  # one stream for the whole session
    first, rest = updates[0], updates[1:]
    assert first[1] == market.candles.index[START - 1] and first[2] == START  # started from the whole history
    assert len(rest) == BARS - 1
    need = runner._stream.min_bars
    assert START > need
    assert all(n == need for _, _, n, _ in rest)  # after that only the bars it needs: the cost does not grow
    batch = build_features(market.window(None, market.candles.index[START + BARS - 1]), cfg)
    pos = {t: i for i, t in enumerate(market.candles.index)}
    for _, t, _, row in updates:
        expected = batch.matrix[pos[t]].astype(float)
        assert np.allclose(row, expected, rtol=1e-6, atol=1e-6), t
    assert runner.schema.hash == batch.schema.hash


class Crash(Exception):
    pass


def test_restart_with_incremental_features_gives_the_same_rows_and_decisions(market, updates, tmp_path):
    cfg = FeaturesConfig(tentacles=("market", "indicators", "orderflow", "multi_timeframe", "strategy"))
    whole = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, START, START + BARS), make_db(tmp_path, "a.db"), tmp_path,
                         features="incremental", feats=cfg).run()
    rows_whole = {t: row for _, t, _, row in updates[1:]}
    updates.clear()
    db = make_db(tmp_path, "b.db")
    crashes = iter([START + 5, START + 17])
    at = [next(crashes)]

    def after_store(t):  # dies after the bar was stored
        if t == at[0]:
            at[0] = next(crashes, -1)
            raise Crash(t)

    restarts = 0
    while True:
        runner = paper_runner(FixedPolicy(n_lev=4), ReplaySource(market, START, START + BARS), db, tmp_path,
                              features="incremental", feats=cfg, after_store=after_store)
        try:
            summary = runner.run()
            break
        except Crash:
            restarts += 1
    assert restarts == 2
    streams = list(dict.fromkeys(sid for sid, *_ in updates))
    assert len(streams) == 3  # one per start
    # each restarted stream starts from the stored history up to the last processed bar
    starts = [(t, n) for sid, t, n, _ in updates if sid in streams[1:]][:1]
    assert starts[0][0] == market.candles.index[START + 5] and starts[0][1] == START + 6
    rows_resumed: dict[pd.Timestamp, np.ndarray] = {}
    for _, t, _, row in updates:
        if t >= market.candles.index[START]:
            rows_resumed.setdefault(t, row)
    assert set(rows_resumed) == set(rows_whole)
    for t, row in rows_whole.items():
        assert np.allclose(rows_resumed[t], row, rtol=1e-6, atol=1e-7), t
    preds = live_store.predictions(db, session_id="test-session")
    assert len(preds) == len(whole.actions) and preds["ts"].is_unique
    assert summary.final_equity == whole.final_equity
