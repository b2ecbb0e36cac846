import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from aster_rl.config import FeaturesConfig
from aster_rl.data.market import MarketBundle
from aster_rl.features.pipeline import build_features, resolve_tentacles
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.clock import phase_of_row
from factories import make_market

T = TENTACLES["clock"]


def bundle(n, start="2025-03-03 00:00", timeframe="5m", funding=None):
    index = pd.date_range(start, periods=n, freq=pd.Timedelta(timeframe.replace("m", "min")), tz="UTC")
    c = np.full(n, 1.0)
    candles = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": c}, index=index)
    return MarketBundle("X", timeframe, candles, funding=funding)


def settlements(times):
    idx = pd.DatetimeIndex(times, tz="UTC")
    return pd.DataFrame({"funding_rate": np.full(len(idx), 1e-4)}, index=idx)


def test_hour_and_day_of_week_known_values():
    df = T.compute(bundle(2 * 288))  # Monday 2025-03-03 00:00 .. Tuesday 23:55
    assert df["clock_hour_sin"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert df["clock_hour_cos"].iloc[0] == pytest.approx(1.0)
    six = df.index.get_loc(pd.Timestamp("2025-03-03 06:00", tz="UTC"))
    assert df["clock_hour_sin"].iloc[six] == pytest.approx(1.0)
    assert df["clock_hour_cos"].iloc[six] == pytest.approx(0.0, abs=1e-12)
    # Monday 00:00 is phase 0 of the week; Tuesday 00:00 is 1/7
    assert df["clock_dow_sin"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert df["clock_dow_cos"].iloc[0] == pytest.approx(1.0)
    assert df["clock_dow_sin"].iloc[288] == pytest.approx(np.sin(2 * np.pi / 7))
    assert "Tue 00:00 UTC" in T.reading(df.iloc[288])
    assert "Mon 06:00 UTC" in T.reading(df.iloc[six])
    assert np.isfinite(df.to_numpy()).all() and (df.abs() <= 1).all().all()


def test_funding_phase_without_a_series_uses_the_configured_interval_from_midnight():
    df = T.compute(bundle(300), funding_interval_hours=4.0)
    # bar 00:00 closes at 00:05: 5 minutes into a 4 h interval
    assert phase_of_row(df.iloc[0]) == pytest.approx(5 / 240)
    # bar 03:55 closes at 04:00, a settlement: phase 0
    at = df.index.get_loc(pd.Timestamp("2025-03-03 03:55", tz="UTC"))
    assert phase_of_row(df.iloc[at]) == pytest.approx(0.0, abs=1e-12)
    assert phase_of_row(df.iloc[at - 1]) == pytest.approx(235 / 240)
    assert "next funding in 0.1h (every 4h)" in T.reading(df.iloc[at - 1])
    np.testing.assert_allclose(df["clock_funding_interval_h"], 4 / 24)
    eight = T.compute(bundle(300))
    assert phase_of_row(eight.iloc[at]) == pytest.approx(0.5)  # 04:00 is half of the 8 h default


def test_funding_interval_comes_from_the_series_spacing_known_before_the_close():
    # 8 h settlements at 01:00 / 09:00 / 17:00 (offset from midnight), configured default 4 h
    funding = settlements(["2025-03-02 09:00", "2025-03-02 17:00", "2025-03-03 01:00", "2025-03-03 09:00", "2025-03-03 17:00"])
    df = T.compute(bundle(288, funding=funding), funding_interval_hours=4.0)
    np.testing.assert_allclose(df["clock_funding_interval_h"], 8 / 24)
    # bar 00:50 closes at 00:55: the newest known settlement is 17:00 the day before -> 7h55 of 8 h
    at = df.index.get_loc(pd.Timestamp("2025-03-03 00:50", tz="UTC"))
    assert phase_of_row(df.iloc[at]) == pytest.approx(475 / 480)
    # bar 00:55 closes at 01:00 and holds the 01:00 settlement: phase 0
    assert phase_of_row(df.iloc[at + 1]) == pytest.approx(0.0, abs=1e-12)
    # one settlement known only: its time anchors the phase, the interval is still the configured one
    one = T.compute(bundle(60, funding=settlements(["2025-03-03 01:00"])), funding_interval_hours=4.0)
    np.testing.assert_allclose(one["clock_funding_interval_h"], 4 / 24)


def test_configured_interval_reaches_the_tentacle_through_features_config():
    cfg = FeaturesConfig(tentacles=("market", "clock"), funding_interval_hours=4.0)
    params = {name: p for name, _, p in resolve_tentacles(cfg)}
    assert params["clock"]["funding_interval_hours"] == 4.0
    fs = build_features(bundle(300), cfg)
    assert "clock_funding_sin" in fs.columns
    assert "clock" in FeaturesConfig().tentacles  # in the default observation


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=700))
def test_truncate_and_recompute(n):
    market = make_market(700, seed=5, start=pd.Timestamp("2025-03-01 00:35", tz="UTC"))
    full = T.compute(market)
    part = T.compute(market.head(n))
    pd.testing.assert_frame_equal(part, full.iloc[:n])


def test_latest_row_from_the_live_window_equals_the_batch_row_with_irregular_settlements():
    from dataclasses import replace as dc_replace

    from aster_rl.features.pipeline import latest_features

    market = make_market(3 * 1440, seed=8, timeframe="1m", with_trades=False, with_book=False)
    # gaps 8, 8, 8, 16, 16 h (settlements missing; the median of the last three is 16 h), the last one 16 h
    # before the final bar: a 1,500-bar window (25 h) would hold one settlement only and fall back to 4 h
    times = pd.DatetimeIndex(["2025-03-01 00:00", "2025-03-01 08:00", "2025-03-01 16:00", "2025-03-02 00:00",
                              "2025-03-02 16:00", "2025-03-03 08:00"], tz="UTC")
    market = dc_replace(market, funding=settlements(times))
    cfg = FeaturesConfig(tentacles=("market", "clock"), funding_interval_hours=4.0)
    batch = build_features(market, cfg)
    np.testing.assert_array_equal(latest_features(market, cfg), batch.matrix[-1])
    assert batch.matrix[-1, batch.columns.index("clock_funding_interval_h")] == pytest.approx(16 / 24)
