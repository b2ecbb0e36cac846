"""PriceArrays: funding assigned to the bar whose interval holds the settlement; validation."""

import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.indicator_math import wilder_atr
from aster_rl.data.market import MarketBundle
from aster_rl.sim.prices import PriceArrays


def candles(n=30):
    idx = pd.date_range("2025-03-01", periods=n, freq="1h", tz="UTC")
    close = np.linspace(1.0, 1.3, n)
    return pd.DataFrame(
        {"open": close - 0.005, "high": close + 0.01, "low": close - 0.02, "close": close, "volume": 100.0},
        index=idx,
    )


def test_funding_lands_in_the_bar_holding_the_settlement():
    c = candles()
    funding = pd.DataFrame(
        {"funding_rate": [0.0001, -0.0002, 0.0003]},
        index=pd.to_datetime(["2025-03-01 04:00", "2025-03-01 08:00", "2025-03-01 08:30"], utc=True),
    )
    p = PriceArrays.from_market(MarketBundle("ASTER/USDT:USDT", "1h", c, funding=funding))
    expected = np.zeros(len(c))
    expected[4] = 0.0001
    expected[8] = -0.0002 + 0.0003  # 08:00 and 08:30 both settle inside [08:00, 09:00)
    np.testing.assert_allclose(p.funding_rate, expected)
    np.testing.assert_allclose(p.atr, wilder_atr(c["high"].to_numpy(), c["low"].to_numpy(), c["close"].to_numpy()))
    assert p.timestamps[1] - p.timestamps[0] == 3600 * 10**9
    assert len(p) == 30 and len(p.slice(5, 10)) == 5 and p.slice(5, 10).close[0] == c["close"].iloc[5]


def test_missing_funding_is_a_warning_and_zeros():
    with pytest.warns(UserWarning, match="no funding"):
        p = PriceArrays.from_market(MarketBundle("ASTER/USDT:USDT", "1h", candles()))
    assert not p.funding_rate.any()


def test_bad_prices_name_the_row():
    c = candles()
    c.iloc[7, c.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match=r"NaN close.*row 7"):
        PriceArrays.from_market(MarketBundle("X", "1h", c))
    with pytest.raises(DataError, match=r"non-positive.*row 2"):
        PriceArrays.from_arrays([1, 1, -1.0], [1, 1, 1.0], [1, 1, -1.0], [1, 1, 1.0])
    with pytest.raises(DataError, match="length"):
        PriceArrays.from_arrays([1, 1.0], [1, 1.0], [1, 1.0], [1, 1, 1.0])
