import numpy as np
import pandas as pd
import pytest
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.indicators import bollinger, candle_patterns
from factories import make_candles, make_market

T = TENTACLES["indicators"]


def bundle_from(o, h, low, c):
    index = pd.date_range("2025-03-01", periods=len(c), freq="5min", tz="UTC")
    candles = pd.DataFrame({"open": o, "high": h, "low": low, "close": c, "volume": 1.0}, index=index)
    return MarketBundle("X", "5m", candles.astype(float))


def wilder_rsi_by_hand(close, n=14):
    """ta's convention written out as a loop: EWM(alpha=1/n, adjust=False) seeded at the first diff (0)."""
    up = dn = 0.0
    out = []
    for i in range(len(close)):
        d = 0.0 if i == 0 else close[i] - close[i - 1]
        up = up + (max(d, 0) - up) / n if i else max(d, 0)
        dn = dn + (max(-d, 0) - dn) / n if i else max(-d, 0)
        out.append(100.0 if dn == 0 else 100 - 100 / (1 + up / dn))
    return np.array(out)


def test_rsi_exact_values():
    close = np.array([10, 11, 10, 12, 11, 13, 12, 14, 13, 15, 14, 16, 15, 17, 16, 18, 17, 19, 18, 20], float)
    df = T.compute(bundle_from(close, close + 0.5, close - 0.5, close))
    rsi = df["indicators_rsi_14"].to_numpy()
    assert (rsi[:13] == 50).all()  # neutral before 14 bars (ta counts the first bar)
    np.testing.assert_allclose(rsi[13:], wilder_rsi_by_hand(close)[13:], rtol=1e-12)
    # a straight rise has no losses: RSI 100
    up = np.arange(1, 40, dtype=float)
    assert T.compute(bundle_from(up, up + 0.5, up - 0.5, up))["indicators_rsi_14"].iloc[-1] == 100


def test_against_ta_on_random_candles():
    c = make_candles(1200, seed=5)
    df = T.compute(MarketBundle("X", "5m", c))
    cl, h, low = (c[k].reset_index(drop=True) for k in ("close", "high", "low"))
    rsi = RSIIndicator(cl, 14).rsi().to_numpy()
    np.testing.assert_allclose(df["indicators_rsi_14"].to_numpy()[14:], rsi[14:], rtol=1e-12)
    ema = EMAIndicator(cl, 50).ema_indicator().to_numpy()
    np.testing.assert_allclose(df["indicators_ema_dist_50"].to_numpy()[60:], (cl / ema - 1).to_numpy()[60:], rtol=1e-9)
    macd = MACD(cl)
    np.testing.assert_allclose(df["indicators_macd_hist"].to_numpy()[40:], (macd.macd_diff() / cl).to_numpy()[40:], rtol=1e-9)
    # ATR is vectorized (aster_rl.indicator_math); ta's loop gives the same
    atr = AverageTrueRange(h, low, cl, 14).average_true_range().to_numpy()
    np.testing.assert_allclose(df["indicators_atr_pct"].to_numpy(), atr / cl.to_numpy(), rtol=1e-9, atol=1e-15)
    # Bollinger is computed here (two-pass std per window); ta's values agree
    bb = BollingerBands(cl, 20, 2)
    np.testing.assert_allclose(df["indicators_bb_pband"].to_numpy()[19:], bb.bollinger_pband().to_numpy()[19:], rtol=1e-7)
    np.testing.assert_allclose(df["indicators_bb_width"].to_numpy()[19:], bb.bollinger_wband().to_numpy()[19:] / 100, rtol=1e-7)
    u, _lo, _m = bollinger(cl.to_numpy(), 20, 2.0)
    np.testing.assert_allclose(u[19:], bb.bollinger_hband().to_numpy()[19:], rtol=1e-10)


def test_candle_patterns_hand_made():
    #            doji     hammer   shooting  bearish  bullish-engulfing
    o = np.array([10.00, 10.00, 10.00, 10.50, 9.80])
    c = np.array([10.01, 10.20, 9.80, 10.00, 10.70])
    h = np.array([10.50, 10.22, 10.90, 10.60, 10.75])
    low = np.array([9.50, 9.40, 9.78, 9.90, 9.75])
    p = candle_patterns(o, h, low, c)
    assert p["doji"].tolist() == [1, 0, 0, 0, 0]
    assert p["hammer"].tolist() == [0, 1, 0, 0, 0]
    assert p["shooting_star"].tolist() == [0, 0, 1, 0, 0]
    assert p["bullish_engulfing"].tolist() == [0, 0, 0, 0, 1]
    assert p["bearish_engulfing"].tolist() == [0, 0, 0, 0, 0]
    # a bullish bar swallowed by a bearish one
    p2 = candle_patterns(np.array([10.0, 10.6]), np.array([10.6, 10.7]), np.array([9.9, 9.7]), np.array([10.5, 9.8]))
    assert p2["bearish_engulfing"].tolist() == [0, 1]
    df = T.compute(bundle_from(o, h, low, c))
    assert df["indicators_lower_wick"].iloc[1] == pytest.approx((10.0 - 9.4) / 0.82)
    assert df["indicators_upper_wick"].iloc[2] == pytest.approx((10.9 - 10.0) / 1.12)
    shares = df[["indicators_upper_wick", "indicators_lower_wick", "indicators_body"]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    assert "bullish engulfing" in T.reading(df.iloc[-1])


def test_flat_bars_are_neutral_and_finite():
    x = np.full(300, 2.0)
    df = T.compute(bundle_from(x, x, x, x))
    assert np.isfinite(df.to_numpy()).all()
    assert (df["indicators_bb_pband"] == 0.5).all()
    assert (df.filter(like="ema_dist") == 0).all().all()


def test_input_unchanged_and_finite():
    m = make_market(700, seed=1)
    before = m.candles.copy()
    df = T.compute(m)
    pd.testing.assert_frame_equal(m.candles, before)
    assert np.isfinite(df.to_numpy()).all()
    assert T.reading(df.iloc[-1]).startswith("Indicators: RSI")


def test_rsi_ema_macd_equal_ta_bit_for_bit():
    from aster_rl.features.tentacles.indicators import ema_distance, macd, rsi

    c = make_candles(900, seed=11)
    cl = c["close"].reset_index(drop=True)
    close = cl.to_numpy()
    ta_rsi = RSIIndicator(cl, 14).rsi().to_numpy()
    np.testing.assert_array_equal(rsi(close, 14), np.where(np.isfinite(ta_rsi), ta_rsi, 50.0))
    for p in (9, 50, 200):
        ema = EMAIndicator(cl, p).ema_indicator().to_numpy()
        expected = np.zeros(len(close))
        ok = np.isfinite(ema)
        expected[ok] = (close[ok] - ema[ok]) / ema[ok]
        np.testing.assert_array_equal(ema_distance(close, p), expected)
    ref = MACD(cl, window_slow=26, window_fast=12, window_sign=9)
    for mine, theirs in zip(macd(close, 12, 26, 9), (ref.macd(), ref.macd_signal(), ref.macd_diff())):
        np.testing.assert_array_equal(mine, theirs.to_numpy())


def test_volatility_ratio_window_divides_the_levels_by_their_trailing_median_causally():
    from aster_rl.features.tentacles import TENTACLES
    from aster_rl.features.tentacles._causal import rolling_median
    from factories import make_market

    t = TENTACLES["indicators"]
    market = make_market(600, seed=3)
    level = t.compute(market)
    ratio = t.compute(market, volatility_ratio_window=50)
    for col in ("indicators_bb_width", "indicators_atr_pct"):
        want = level[col].to_numpy() / rolling_median(level[col].to_numpy(), 50)
        np.testing.assert_allclose(ratio[col].to_numpy()[100:], want[100:], rtol=1e-12)
        assert abs(np.median(ratio[col].to_numpy()[100:]) - 1.0) < 0.2
    others = [c for c in level.columns if c not in ("indicators_bb_width", "indicators_atr_pct")]
    pd.testing.assert_frame_equal(ratio[others], level[others])
    assert t.warmup(t.params({"volatility_ratio_window": 500})) == 500
    for n in (1, 57, 333, 599):
        pd.testing.assert_frame_equal(t.compute(market.head(n), volatility_ratio_window=50), ratio.iloc[:n])
    assert "x its recent median" in t.reading(ratio.iloc[-1])
