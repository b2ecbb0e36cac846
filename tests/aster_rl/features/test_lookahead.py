"""No look-ahead, for every registered tentacle and the whole pipeline.

(1) Truncation: features of ``market.head(n)`` equal the first n rows of the features of
the full market, for random cuts n. (2) Scrambling: replacing every bar after t (and
funding, trades and book events after t's close, and the BTC/ETH bars after t) changes
no feature at or before t.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aster_rl.config import FeaturesConfig
from aster_rl.features.pipeline import _run_tentacles, build_features, resolve_tentacles
from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.data.timeframes import timeframe_to_timedelta
from factories import make_market

CFG = FeaturesConfig(tentacles=tuple(TENTACLES))
SELECTED = resolve_tentacles(CFG)


def with_gap(m: MarketBundle, lo: int, hi: int) -> MarketBundle:
    from dataclasses import replace

    keep = np.r_[0:lo, hi : len(m.candles)]
    return replace(m, candles=m.candles.iloc[keep])


MARKETS = {
    # 5m, starting off the hour, with a 20-bar hole in the candles (events in it belong to no bar)
    "5m": with_gap(make_market(1500, seed=21, start=pd.Timestamp("2025-03-01 00:35", tz="UTC")), 700, 720),
    # 1h bars: several closed daily bars for the multi-timeframe tentacle
    "1h": make_market(1300, seed=22, timeframe="1h"),
    # no optional sources at all
    "bare": make_market(900, seed=23, with_trades=False, with_book=False, with_funding=False, with_macro=False),
}
FULL = {key: _run_tentacles(m, SELECTED) for key, m in MARKETS.items()}


def assert_same(name, got: pd.DataFrame, want: pd.DataFrame, upto: int | None = None):
    assert list(got.columns) == list(want.columns), name
    a = got.to_numpy(dtype=float)[: upto]
    b = want.to_numpy(dtype=float)[: len(a)]
    bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise AssertionError(f"{name}: column {got.columns[c]} differs at row {r}: {a[r, c]!r} vs {b[r, c]!r}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(MARKETS)), frac=st.floats(0.0, 1.0))
def test_truncated_market_gives_the_same_rows_for_every_tentacle(key, frac):
    market = MARKETS[key]
    n = 1 + int(frac * (len(market) - 1))
    frames = _run_tentacles(market.head(n), SELECTED)
    for (name, _, _), got, full in zip(SELECTED, frames, FULL[key]):
        assert len(got) == n
        assert_same(f"{key}/{name} at cut {n}", got, full)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frac=st.floats(0.05, 1.0))
def test_truncated_market_gives_the_same_feature_matrix(frac):
    market = MARKETS["5m"]
    full = build_features(market, CFG)
    n = max(1, int(frac * len(market)))
    part = build_features(market.head(n), CFG)
    assert part.columns == full.columns
    assert part.schema.hash == full.schema.hash
    np.testing.assert_array_equal(part.matrix, full.matrix[:n])


def scramble_after(m: MarketBundle, t: int, seed: int) -> MarketBundle:
    """The same market up to the close of bar t; everything after it from another random market."""
    from dataclasses import replace

    other = make_market(len(m.candles) + 50, seed=seed, timeframe=m.timeframe, start=m.candles.index[0])
    last_open = m.candles.index[t]
    close_t = last_open + timeframe_to_timedelta(m.timeframe)

    def candles(a, b):
        if a is None:
            return None
        later = b.loc[b.index > last_open]
        later = later.loc[later.index.isin(a.index[a.index > last_open])] if len(a.loc[a.index > last_open]) else later.iloc[:0]
        return pd.concat([a.loc[:last_open], later])

    def events(a, b):
        if a is None:
            return None
        return pd.concat([a.loc[a.index < close_t], b.loc[b.index >= close_t]])

    return replace(
        m,
        candles=candles(m.candles, other.candles),
        funding=events(m.funding, other.funding),
        trades=events(m.trades, other.trades),
        book=events(m.book, other.book),
        btc=candles(m.btc, other.btc),
        eth=candles(m.eth, other.eth),
    )


@pytest.mark.parametrize("key", sorted(MARKETS))
@pytest.mark.parametrize("frac", [0.1, 0.5, 0.93])
def test_scrambling_the_future_changes_nothing_up_to_t(key, frac):
    market = MARKETS[key]
    t = int(frac * (len(market) - 1))
    scrambled = scramble_after(market, t, seed=1000 + t)
    assert len(scrambled.candles) == len(market.candles)
    assert not np.allclose(scrambled.candles["close"].to_numpy()[t + 1 :], market.candles["close"].to_numpy()[t + 1 :])
    frames = _run_tentacles(scrambled, SELECTED)
    changed_later = False
    for (name, _, _), got, full in zip(SELECTED, frames, FULL[key]):
        assert_same(f"{key}/{name} scrambled after {t}", got, full, upto=t + 1)
        a, b = got.to_numpy(dtype=float)[t + 1 :], full.to_numpy(dtype=float)[t + 1 :]
        changed_later |= not np.allclose(a, b, equal_nan=True)
    assert changed_later  # the scramble did reach the features after t


def test_scrambling_the_future_leaves_the_built_matrix_unchanged_up_to_t():
    market = MARKETS["1h"]
    t = 1000
    full = build_features(market, CFG)
    scrambled = build_features(scramble_after(market, t, seed=77), CFG)
    np.testing.assert_array_equal(scrambled.matrix[: t + 1], full.matrix[: t + 1])
    assert not np.array_equal(scrambled.matrix[t + 1 :], full.matrix[t + 1 :])
