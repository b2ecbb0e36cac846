import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.strategy import POSITION, SCALP, SWING, leverage_band, reading
from factories import make_candles, make_market

TENTACLE = TENTACLES["strategy"]


def run(rows: list[dict]) -> pd.DataFrame:
    candles = make_candles(len(rows), seed=0)
    context = pd.DataFrame(rows, index=candles.index)
    return TENTACLE.compute(MarketBundle("X", "5m", candles), context)


# (cycle phase, alignment, regime, best pattern win rate or None) -> (profile, low, high)
CASES = [
    ((1, 1.0, 1, 0.85), (POSITION, 25, 40)),  # bull phase 1 + all aligned + strong pattern
    ((2, 1.0, 1, 0.85), (POSITION, 30, 50)),  # parabolic: position at 30-50x
    ((1, 1.0, 1, 0.70), (SWING, 20, 30)),  # pattern not strong enough for position
    ((3, 1.0, 1, 0.85), (SWING, 10, 20)),  # distribution is not a bull cycle
    ((1, 0.6, 1, None), (SWING, 20, 30)),  # trending with good confluence
    ((1, -0.6, 2, None), (SWING, 20, 30)),  # trending down with bearish confluence
    ((4, 0.6, 1, None), (SWING, 10, 15)),  # bear phase caps the swing band
    ((1, 0.6, 0, 0.65), (SWING, 20, 30)),  # ranging but a clear pattern
    ((1, 0.6, 0, None), (SCALP, 20, 20)),  # ranging, no pattern
    ((1, 0.2, 1, None), (SCALP, 20, 20)),  # low confluence
    ((1, 1.0, 3, 0.9), (POSITION, 25, 40)),  # volatile, but bull cycle + all aligned + strong pattern decides
    ((0, 0.0, 3, None), (SCALP, 10, 20)),  # accumulation, volatile
    ((4, 0.0, 0, None), (SCALP, 5, 15)),  # bear, ranging
    ((2, 0.3, 0, None), (SCALP, 20, 20)),  # parabolic cycle band lies above the scalp band: its top edge
]


@pytest.mark.parametrize("inputs, expected", CASES)
def test_profile_and_band(inputs, expected):
    phase, alignment, regime, win_rate = inputs
    row = {"btc_cycle_phase": phase, "multi_timeframe_alignment": alignment, "regime_state": regime, "regime_strength": 0.7}
    if win_rate is not None:
        row["pattern_library_best_win_rate"] = win_rate
    f = run([row]).iloc[0]
    assert (int(f["strategy_profile"]), f["strategy_leverage_low"], f["strategy_leverage_high"]) == expected
    assert f[["strategy_scalp", "strategy_swing", "strategy_position"]].sum() == 1
    assert f["strategy_leverage_high_norm"] == pytest.approx(expected[2] / 50)
    assert f["strategy_pattern_available"] == float(win_rate is not None)


def test_pattern_columns_by_prefix_and_absent_inputs():
    row = {"btc_cycle_phase": 2, "multi_timeframe_alignment": 1.0, "regime_state": 1,
           "pattern_library_support_bounce_win_rate": 0.82, "pattern_library_moon_win_rate": 0.4}
    f = run([row]).iloc[0]
    assert f["strategy_profile"] == POSITION and f["strategy_pattern_win_rate"] == pytest.approx(0.82)
    off = run([{**row, "pattern_library_best_win_rate": 0.9, "pattern_library_available": 0.0}]).iloc[0]
    assert off["strategy_profile"] == SWING and off["strategy_pattern_available"] == 0 and off["strategy_pattern_win_rate"] == 0
    empty = run([{}, {}]).iloc[0]  # nothing before it in the pipeline
    assert empty["strategy_profile"] == SCALP
    assert (empty["strategy_leverage_low"], empty["strategy_leverage_high"]) == (10, 20)  # defensive when the cycle is unknown
    for flag in ("cycle", "multi_timeframe", "regime", "pattern"):
        assert empty[f"strategy_{flag}_available"] == 0
    assert "cycle unknown" in reading(empty) and "no pattern library" in reading(empty)


def test_leverage_band_intersection_rules():
    lo, hi = leverage_band(np.array([SCALP, SWING, POSITION, POSITION]), np.array([2, 1, 4, 0]))
    assert lo.tolist() == [20, 20, 25, 25] and hi.tolist() == [20, 30, 25, 25]


def test_reading_explains():
    row = {"btc_cycle_phase": 1, "multi_timeframe_alignment": 0.67, "regime_state": 1}
    text = reading(run([row]).iloc[0])
    assert text == "SWING at 20-30x: trending market, confluence 0.67, bull cycle (cycle band 20-40x), no pattern library"


def test_on_the_pipeline_context_finite_and_causal():
    market = make_market(1500, seed=3, with_trades=False, with_book=False)
    names = ("btc_cycle", "regime", "multi_timeframe")

    def compute(m):
        ctx = pd.concat([TENTACLES[k].compute(m) for k in names], axis=1)
        return TENTACLE.compute(m, ctx), ctx

    full, ctx = compute(market)
    before = ctx.copy()
    TENTACLE.compute(market, ctx)
    pd.testing.assert_frame_equal(ctx, before)
    assert np.isfinite(full.to_numpy()).all()
    assert full["strategy_leverage_low"].le(full["strategy_leverage_high"]).all()

    @settings(max_examples=10, deadline=None)
    @given(st.integers(min_value=1, max_value=1500))
    def prefix(n):
        pd.testing.assert_frame_equal(compute(market.head(n))[0], full.iloc[:n])

    prefix()
