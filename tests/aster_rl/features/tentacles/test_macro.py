from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.macro import reading
from factories import make_market

TENTACLE = TENTACLES["macro"]
MARKET = make_market(1500, seed=5, with_trades=False, with_book=False)
FULL = TENTACLE.compute(MARKET)


def test_returns_trend_and_correlation_by_hand():
    f = FULL
    btc = MARKET.btc["close"]
    t = 1000
    assert f["macro_btc_return_12"].iloc[t] == pytest.approx(np.log(btc.iloc[t] / btc.iloc[t - 12]))
    assert f["macro_btc_return_288"].iloc[t] == pytest.approx(np.log(btc.iloc[t] / btc.iloc[t - 288]))
    ema = btc.ewm(span=50, adjust=False).mean()
    assert f["macro_btc_ema_distance"].iloc[t] == pytest.approx(btc.iloc[t] / ema.iloc[t] - 1)
    assert f["macro_btc_trend"].iloc[t] == np.sign(f["macro_btc_ema_distance"].iloc[t])
    a = np.log(MARKET.candles["close"]).diff().iloc[t - 287 : t + 1]
    b = np.log(btc).diff().iloc[t - 287 : t + 1]
    assert f["macro_corr_btc"].iloc[t] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
    assert (f[["macro_btc_available", "macro_eth_available", "macro_available"]].iloc[1:] == 1).all().all()


def test_correlation_sees_a_follower():
    btc = MARKET.btc.copy()
    follower = replace(MARKET, btc=MARKET.candles * 50_000)  # BTC moving exactly like ASTER
    f = TENTACLE.compute(follower)
    assert f["macro_corr_btc"].iloc[300:].min() > 0.999
    assert btc.equals(MARKET.btc)


def test_missing_companions_are_neutral_with_flags():
    none = TENTACLE.compute(replace(MARKET, btc=None, eth=None))
    assert list(none.columns) == list(FULL.columns)
    assert (none.to_numpy() == 0).all()
    assert reading(none.iloc[-1]) == "No BTC/ETH data: macro context unavailable"
    only_btc = TENTACLE.compute(replace(MARKET, eth=None))
    assert only_btc["macro_available"].iloc[-1] == 1 and only_btc["macro_eth_available"].iloc[-1] == 0
    assert "ETH n/a" in reading(only_btc.iloc[-1])


def test_stale_companion_becomes_unavailable_and_gaps_are_bridged():
    stale = TENTACLE.compute(replace(MARKET, btc=MARKET.btc.iloc[:1000]))
    assert stale["macro_btc_available"].iloc[1011] == 1 and stale["macro_btc_available"].iloc[1012] == 0
    assert stale["macro_btc_return_12"].iloc[1100] == 0
    gappy = TENTACLE.compute(replace(MARKET, btc=MARKET.btc.drop(MARKET.btc.index[500:505])))
    assert gappy["macro_btc_available"].iloc[500:505].eq(1).all()
    assert np.isfinite(gappy.to_numpy()).all()


def test_finite_input_unchanged_reading():
    before = MARKET.candles.copy(), MARKET.btc.copy()
    f = TENTACLE.compute(MARKET)
    pd.testing.assert_frame_equal(MARKET.candles, before[0])
    pd.testing.assert_frame_equal(MARKET.btc, before[1])
    assert np.isfinite(f.to_numpy()).all()
    text = reading(f.iloc[-1])
    assert text.startswith("BTC trend ") and "over 288 bars" in text and "ETH trend " in text


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=1500))
def test_truncate_and_recompute(n):
    part = TENTACLE.compute(MARKET.head(n))
    pd.testing.assert_frame_equal(part, FULL.iloc[:n], rtol=1e-9, atol=1e-12)
