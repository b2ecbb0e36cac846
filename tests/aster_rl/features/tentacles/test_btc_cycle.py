import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from aster_rl.data.market import MarketBundle
from aster_rl.features.tentacles import TENTACLES
from aster_rl.features.tentacles.btc_cycle import DAYS_PER_YEAR, PHASES, cycle_phase, reading
from factories import make_candles

TENTACLE = TENTACLES["btc_cycle"]


def days(f: pd.DataFrame) -> pd.Series:
    return f["btc_cycle_years"] * DAYS_PER_YEAR


def daily_market(start: str, n: int, timeframe: str = "1d") -> MarketBundle:
    return MarketBundle("ASTER/USDT:USDT", timeframe, make_candles(n, seed=1, timeframe=timeframe, start=pd.Timestamp(start, tz="UTC")))


def test_halving_boundary_5m_bars():
    market = MarketBundle("X", "5m", make_candles(4, timeframe="5m", start=pd.Timestamp("2024-04-19 23:50", tz="UTC")))
    f = TENTACLE.compute(market)
    # 23:50 closes at 23:55 (old cycle, bear); 23:55 closes exactly at the halving (new cycle, day 0).
    assert f["btc_cycle_phase"].tolist() == [4, 0, 0, 0]
    assert days(f).iloc[0] > 1439
    assert days(f).iloc[1] == 0.0
    assert days(f).iloc[2] == pytest.approx(5 / 1440)
    assert f["btc_cycle_accumulation"].tolist() == [0, 1, 1, 1]
    assert f["btc_cycle_bear"].tolist() == [1, 0, 0, 0]


def test_halving_day_vs_day_before_daily_bars():
    f = TENTACLE.compute(daily_market("2024-04-19", 2))
    # The daily bar of 04-19 closes at the halving instant: first day of the new cycle, day 0.
    # The one of 04-18 is the old cycle's last day.
    f0 = TENTACLE.compute(daily_market("2024-04-18", 3))
    assert f0["btc_cycle_phase"].tolist() == [4, 0, 0]
    assert days(f0).tolist() == [pytest.approx(1439.0), 0.0, pytest.approx(1.0)]
    assert days(f).tolist() == [0.0, pytest.approx(1.0)]
    assert cycle_phase("2024-04-20 00:00").phase == 0
    assert cycle_phase("2024-04-19 23:59:59").phase == 4


@pytest.mark.parametrize(
    "day, phase",
    [(179.99, 0), (180.0, 1), (539.99, 1), (540.0, 2), (729.99, 2), (730.0, 3), (899.99, 3), (900.0, 4), (1400.0, 4)],
)
def test_phase_boundaries(day, phase):
    ts = pd.Timestamp("2024-04-20", tz="UTC") + pd.Timedelta(days=day)
    pos = cycle_phase(ts)
    assert pos.phase == phase
    assert pos.phase_name == PHASES[phase]
    assert pos.days == pytest.approx(day)
    assert pos.progress == pytest.approx(day / 1460)


def test_every_halving_restarts_the_count():
    for h in ("2012-11-28", "2016-07-09", "2020-05-11", "2024-04-20"):
        assert cycle_phase(h).days == 0.0
        assert cycle_phase(pd.Timestamp(h) - pd.Timedelta(days=1)).phase == 4


def test_reading_and_one_hot_columns():
    market = daily_market("2025-09-28", 1)  # closes 2025-09-29 00:00 = day 527
    row = TENTACLE.compute(market).iloc[0]
    assert reading(row).startswith("Day 527 of the cycle: bull market phase 1")
    assert cycle_phase("2025-09-29").reading == "Day 527 of the cycle: bull market phase 1"
    onehot = row[[c for c in row.index if c not in ("btc_cycle_years", "btc_cycle_phase", "btc_cycle_progress", "btc_cycle_phase_progress")]]
    assert onehot.sum() == 1 and row["btc_cycle_bull_phase_1"] == 1


def test_custom_halvings_parameter():
    market = daily_market("2028-05-01", 3)
    default = TENTACLE.compute(market)
    assert (default["btc_cycle_progress"] == 1.0).all()  # past 1460 days with no newer halving listed
    custom = TENTACLE.compute(market, halvings=("2024-04-20", "2028-05-02"))
    assert days(custom).tolist() == [0.0, pytest.approx(1.0), pytest.approx(2.0)]


def test_no_column_grows_with_the_day_count():
    # 2030: six years after the last listed halving. Every column stays of order 1 (no raw day count).
    f = TENTACLE.compute(daily_market("2024-04-18", 2200))
    assert f.abs().to_numpy().max() <= 6.1
    assert days(f).iloc[-1] == pytest.approx(2198.0)


def test_reading_counts_whole_days_from_float32_rows():
    # The feature matrix is float32: a whole day count must not read as the day before.
    f = TENTACLE.compute(daily_market("2024-04-19", 1500))
    for d in (1, 5, 7, 365, 527, 1000, 1460):
        row = f.iloc[d].astype(np.float32).astype(float)
        assert reading(row).startswith(f"Day {d} of the cycle")


def test_the_halving_day_starts_the_accumulation_phase():
    days = ("2024-04-19", "2024-04-20", "2024-04-21")
    assert [cycle_phase(d).phase_name for d in days] == ["BEAR_MARKET", "POST_HALVING_ACCUMULATION", "POST_HALVING_ACCUMULATION"]
    assert [cycle_phase(d).days for d in days[1:]] == [0.0, 1.0]


def test_input_unchanged_and_finite():
    market = daily_market("2024-11-01", 600)
    before = market.candles.copy()
    f = TENTACLE.compute(market)
    pd.testing.assert_frame_equal(market.candles, before)
    assert np.isfinite(f.to_numpy()).all()
    assert f.index.equals(market.candles.index)
    assert set(np.unique(f["btc_cycle_phase"])) == {1, 2, 3}


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_truncate_and_recompute(n):
    market = daily_market("2023-09-01", 300)
    full = TENTACLE.compute(market)
    part = TENTACLE.compute(market.head(n))
    pd.testing.assert_frame_equal(part, full.iloc[:n])
