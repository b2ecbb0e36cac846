"""No look-ahead in the pattern-library features inside the mined range.

The library's patterns are fixed; their training trades are backtested on the range
(:func:`aster_rl.patterns.miner.replay`, as the miner does) and the tentacle turns them
into features. Truncating the market after bar t, or replacing every bar after t, must
change no feature at or before t: a bar only sees the outcomes of trades that closed by
then. The same check fails for statistics frozen over the whole range and applied to
every bar (the behaviour the tentacle had before).
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import EnvConfig, FeaturesConfig, PatternsConfig, SynthConfig
from aster_rl.features.pipeline import build_features
from aster_rl.data.market import MarketBundle
from aster_rl.patterns.language import Condition, Pattern
from aster_rl.patterns.library import MinedRange, PatternLibrary
from aster_rl.patterns.miner import replay
from aster_rl.patterns.stats import compute_stats
from aster_rl.sim.prices import PriceArrays
from aster_rl.features.tentacles import TENTACLES
from aster_rl.data.synthetic import synthesize

PCFG = PatternsConfig(min_trades=5, demote_win_rate=0.0, max_hold_bars=48)
ENV = EnvConfig()
PATTERNS = [
    Pattern((Condition("orderflow_taker_buy_ratio", op, level), *volume), side, "swing")
    for buy in (0.55, 0.6, 0.65)
    for op, level, side in ((">=", buy, "long"), ("<=", round(1 - buy, 2), "short"))
    for volume in ((), (Condition("market_volume_ratio", ">=", 1.5),))
]
MARKET = synthesize(SynthConfig(n_bars=5000, seed=5))
CUTS = (1500, 2800, 4000)


def library_columns(market: MarketBundle, frozen: bool = False) -> pd.DataFrame:
    """Mine-range = from the warm-up to the market's last bar; the library's features on the market."""
    fs = build_features(market, FeaturesConfig())
    frame, idx, lo = fs.frame(), fs.index, fs.warmup
    trades = replay(PATTERNS, frame.iloc[lo:], PriceArrays.from_market(market).slice(lo, len(idx)), PCFG, ENV)
    lib = PatternLibrary(PCFG, mined=MinedRange(idx[lo], idx[-1], idx[-1]))
    for p in PATTERNS:
        signal, exit_bar, net = trades[p.name]
        # frozen: every outcome stamped at the first bar, i.e. the whole range's statistics at every bar
        exits = [idx[0]] * len(exit_bar) if frozen else [idx[lo + e] for e in exit_bar]
        lib.add(p, compute_stats(net), trades=[(str(idx[lo + s]), str(e), float(r), "") for s, e, r in zip(signal, exits, net)])
    return TENTACLES["pattern_library"].compute(market, frame, **lib.tentacle_params())


def scramble_after(market: MarketBundle, t: int, seed: int) -> MarketBundle:
    """The same bars up to t; after it, another random path continuing from bar t's close."""
    c = market.candles.copy()
    rng = np.random.default_rng(seed)
    k = len(c) - t - 1
    close = c["close"].iloc[t] * np.exp(np.cumsum(rng.normal(0, 0.004, k)))
    opens = np.r_[c["close"].iloc[t], close[:-1]]
    wick = np.abs(rng.normal(0, 0.002, (2, k)))
    c.iloc[t + 1 :, c.columns.get_loc("open")] = opens
    c.iloc[t + 1 :, c.columns.get_loc("close")] = close
    c.iloc[t + 1 :, c.columns.get_loc("high")] = np.maximum(opens, close) * (1 + wick[0])
    c.iloc[t + 1 :, c.columns.get_loc("low")] = np.minimum(opens, close) * (1 - wick[1])
    c.iloc[t + 1 :, c.columns.get_loc("volume")] = c["volume"].iloc[t + 1 :].to_numpy()[::-1]
    return dataclasses.replace(market, candles=c)


FULL = library_columns(MARKET)
FROZEN = library_columns(MARKET, frozen=True)


def test_the_check_has_something_to_see():
    lo = build_features(MARKET, FeaturesConfig()).warmup
    rate = FULL["pattern_library_best_win_rate"].to_numpy()
    # patterns become usable inside the range and their statistics move as trades close
    assert FULL["pattern_library_any_match"].iloc[lo : CUTS[0]].sum() > 20
    assert len(np.unique(rate[lo : CUTS[0]])) > 5


@pytest.mark.parametrize("t", CUTS)
def test_truncating_after_t_changes_no_pattern_feature_up_to_t(t):
    part = library_columns(MARKET.head(t + 1))
    pd.testing.assert_frame_equal(part, FULL.iloc[: t + 1])
    # frozen statistics (the whole range's trades at every bar) do change: the test can fail
    frozen = library_columns(MARKET.head(t + 1), frozen=True)
    assert not np.allclose(frozen.to_numpy(), FROZEN.iloc[: t + 1].to_numpy())


@pytest.mark.parametrize("t", CUTS)
def test_scrambling_after_t_changes_no_pattern_feature_up_to_t(t):
    other = scramble_after(MARKET, t, seed=t)
    got = library_columns(other)
    pd.testing.assert_frame_equal(got.iloc[: t + 1], FULL.iloc[: t + 1])
    assert not got.iloc[t + 1 :].equals(FULL.iloc[t + 1 :])  # the new future did reach the features after t
    frozen = library_columns(other, frozen=True)
    assert not np.allclose(frozen.iloc[: t + 1].to_numpy(), FROZEN.iloc[: t + 1].to_numpy())
