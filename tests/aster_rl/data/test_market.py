import numpy as np
import pandas as pd
import pytest

from aster_rl.errors import DataError
from aster_rl.data.market import MarketBundle, find_gaps, validate_candles


def _candles(n=10):
    idx = pd.date_range("2025-01-01", periods=n, freq="5min", tz="UTC")
    close = np.linspace(1.0, 1.1, n)
    return pd.DataFrame({"open": close, "high": close + 0.01, "low": close - 0.01, "close": close, "volume": 1.0}, index=idx)


def test_valid_candles_pass_unchanged():
    c = _candles()
    assert validate_candles(c, "x") is c


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda c: c.iloc[[0, 2, 1, 3]], r"row 2 .* earlier than the row before"),
        (lambda c: pd.concat([c.iloc[:3], c.iloc[2:4]]), r"row 3 repeats the timestamp"),
        (lambda c: c.assign(close=c["close"].where(c.index != c.index[4], np.nan)), r"1 rows with NaN/inf OHLCV, first at row 4"),
        (lambda c: c.assign(high=c["high"].where(c.index != c.index[6], 0.5)), r"row 6 .* not OHLC-consistent"),
        (lambda c: c.drop(columns="volume"), r"missing columns \['volume'\]"),
        (lambda c: c.tz_convert(None), "tz-aware UTC"),
    ],
)
def test_invalid_candles_name_the_row_and_problem(corrupt, message):
    with pytest.raises(DataError, match=message):
        validate_candles(corrupt(_candles()), "ASTERUSDT_5m.csv")


def test_gaps_are_reported_not_filled():
    c = _candles(10).drop(index=_candles(10).index[[3, 4, 7]])
    gaps = find_gaps(c, "5m")
    assert list(gaps["missing_bars"]) == [2, 1]
    assert gaps["first_missing"].iloc[0] == pd.Timestamp("2025-01-01 00:15", tz="UTC")


def test_head_keeps_only_what_was_known_at_the_close():
    c = _candles(10)
    funding = pd.DataFrame({"funding_rate": [0.1, 0.2]}, index=[c.index[2], c.index[5] + pd.Timedelta(minutes=4)])
    trades = pd.DataFrame({"price": [1.0, 1.0], "amount": [1.0, 1.0], "side": ["buy", "sell"]},
                          index=[c.index[5] + pd.Timedelta(minutes=4, seconds=59), c.index[6]])
    m = MarketBundle("ASTER/USDT:USDT", "5m", c, funding=funding, trades=trades, btc=c, eth=c)
    h = m.head(6)  # bars 0..5, known at 00:30
    assert len(h.candles) == 6 and len(h.btc) == 6
    assert len(h.funding) == 2  # the second settles at 00:29, inside bar 5
    assert list(h.trades["side"]) == ["buy"]  # 00:29:59 is inside bar 5, 00:30 is not
    w = m.window(c.index[6], c.index[8])
    assert len(w.candles) == 3 and list(w.trades["side"]) == ["sell"] and len(w.funding) == 0
