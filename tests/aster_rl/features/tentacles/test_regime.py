import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from ta.trend import ADXIndicator

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.regime import RANGING, TRENDING_DOWN, TRENDING_UP, VOLATILE, reading, wilder_adx
from factories import make_candles, make_market

TENTACLE = TENTACLES["regime"]


def market_from_close(close: np.ndarray, wick: np.ndarray | float = 0.001) -> MarketBundle:
    index = pd.date_range("2025-03-01", periods=len(close), freq="5min", tz="UTC")
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    candles = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)
    return MarketBundle("X", "5m", candles)


def rng_noise(n, scale, seed=0):
    return np.random.default_rng(seed).normal(0, scale, n)


def test_vectorized_adx_matches_ta_after_seeding_decays():
    c = make_candles(600, seed=3)
    h, low, cl = (c[k].reset_index(drop=True) for k in ("high", "low", "close"))  # ta on a RangeIndex
    ind = ADXIndicator(h, low, cl, window=14)
    adx, pdi, mdi = wilder_adx(h.to_numpy(), low.to_numpy(), cl.to_numpy(), 14)
    np.testing.assert_allclose(adx[250:], ind.adx().to_numpy()[250:], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(pdi[250:], ind.adx_pos().to_numpy()[250:], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(mdi[250:], ind.adx_neg().to_numpy()[250:], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("cut", [100, 333, 599])
def test_ta_adx_is_causal_and_so_is_ours(cut):
    c = make_candles(600, seed=4).reset_index(drop=True)
    full = ADXIndicator(c["high"], c["low"], c["close"], 14).adx().to_numpy()
    part = ADXIndicator(c["high"][:cut], c["low"][:cut], c["close"][:cut], 14).adx().to_numpy()
    np.testing.assert_allclose(part, full[:cut], rtol=1e-12, atol=1e-12)
    ours_full = wilder_adx(c["high"].to_numpy(), c["low"].to_numpy(), c["close"].to_numpy())[0]
    ours_part = wilder_adx(c["high"].to_numpy()[:cut], c["low"].to_numpy()[:cut], c["close"].to_numpy()[:cut])[0]
    np.testing.assert_array_equal(ours_part, ours_full[:cut])


def test_steady_uptrend_is_trending_up_and_downtrend_down():
    t = np.arange(900)
    up = TENTACLE.compute(market_from_close(np.exp(0.002 * t + rng_noise(900, 0.0005))))
    down = TENTACLE.compute(market_from_close(np.exp(-0.002 * t + rng_noise(900, 0.0005))))
    tail_up, tail_down = up.iloc[-200:], down.iloc[-200:]
    assert (tail_up["regime_state"] == TRENDING_UP).mean() > 0.8
    assert (tail_up["regime_state"] == TRENDING_DOWN).sum() == 0
    assert (tail_down["regime_state"] == TRENDING_DOWN).mean() > 0.8
    assert (tail_down["regime_state"] == TRENDING_UP).sum() == 0
    trending = tail_up[tail_up["regime_state"] == TRENDING_UP]
    assert (trending["regime_strength"] > 0.5).all() and (trending["regime_trend_score"] > 0).all()


def test_mean_reverting_noise_is_mostly_ranging():
    x = np.zeros(900)
    e = rng_noise(900, 0.002, seed=5)
    for i in range(1, 900):
        x[i] = 0.8 * x[i - 1] + e[i]
    f = TENTACLE.compute(market_from_close(np.exp(x)))
    assert (f["regime_state"].iloc[-300:] == RANGING).mean() > 0.6


def test_volatility_burst_is_volatile_and_percentile_is_rolling():
    calm = rng_noise(900, 0.001, seed=6)
    wild = rng_noise(60, 0.02, seed=7)
    wild -= wild.mean()  # a burst, not a trend
    close = np.exp(np.cumsum(np.concatenate((calm, wild))))
    f = TENTACLE.compute(market_from_close(close, wick=0.0005))
    assert f["regime_vol_percentile"].iloc[-1] > 0.99
    assert f["regime_state"].iloc[-1] == VOLATILE
    assert f["regime_volatile"].iloc[-1] == 1.0 and f["regime_strength"].iloc[-1] > 0.9
    # Before the burst, the percentile only compares with the past, not with the burst to come.
    assert f["regime_vol_percentile"].iloc[850:899].mean() > 0.2


def test_columns_one_hot_finite_and_input_unchanged():
    market = make_market(1500, seed=2, with_trades=False, with_book=False)
    before = market.candles.copy()
    f = TENTACLE.compute(market)
    pd.testing.assert_frame_equal(market.candles, before)
    assert f.index.equals(market.candles.index)
    assert np.isfinite(f.to_numpy()).all()
    onehot = f[["regime_ranging", "regime_trending_up", "regime_trending_down", "regime_volatile"]]
    assert (onehot.sum(axis=1) == 1).all()
    assert ((f["regime_strength"] >= 0) & (f["regime_strength"] <= 1)).all()
    assert set(np.unique(f["regime_state"])) <= {0, 1, 2, 3}
    assert TENTACLE.warmup(TENTACLE.params()) >= 576


def test_reading():
    row = pd.Series({"regime_state": 1.0, "regime_strength": 0.62, "regime_adx": 0.31, "regime_trend_score": 1.8, "regime_vol_percentile": 0.55})
    assert reading(row) == "Trending up (strength 0.62): ADX 31, trend score +1.8 ATR, volatility percentile 55"


MARKET = make_market(1200, seed=9, with_trades=False, with_book=False)
FULL = TENTACLE.compute(MARKET)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=1200))
def test_truncate_and_recompute(n):
    part = TENTACLE.compute(MARKET.head(n))
    pd.testing.assert_frame_equal(part, FULL.iloc[:n], rtol=1e-9, atol=1e-12)
