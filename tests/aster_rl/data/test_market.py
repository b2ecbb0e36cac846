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


# ---------------------------------------------------------------- window: binary search = the masks


def _masked_window(m: MarketBundle, start, end) -> MarketBundle:
    """The window by boolean masks over every row (the rule ``window`` cuts by binary search)."""
    from dataclasses import replace

    lo = start if start is not None else m.candles.index[0]
    hi = end if end is not None else m.candles.index[-1]
    close_time = hi + pd.Timedelta(m.timeframe.replace("m", "min"))

    def events(df):
        return None if df is None else df.loc[(df.index >= lo) & (df.index < close_time)]

    def bars(df):
        return None if df is None else df.loc[(df.index >= lo) & (df.index <= hi)]

    return replace(m, candles=bars(m.candles), funding=events(m.funding), trades=events(m.trades),
                   book=events(m.book), btc=bars(m.btc), eth=bars(m.eth))


def _same(a: MarketBundle, b: MarketBundle) -> None:
    for key in ("candles", "funding", "trades", "book", "btc", "eth"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            pd.testing.assert_frame_equal(x, y, obj=key)


@pytest.fixture(scope="module")
def market():
    from factories import make_market

    m = make_market(600, seed=3)
    # Companions that start earlier and end later than the candles, and a trade exactly on a bar boundary.
    from factories import make_candles

    idx = m.candles.index
    btc = make_candles(700, seed=4, start=idx[0] - 50 * (idx[1] - idx[0]))
    on_boundary = pd.DataFrame({"price": [1.0], "amount": [1.0], "side": ["buy"]}, index=[idx[300]])
    trades = pd.concat([m.trades, on_boundary]).sort_index(kind="stable")
    from dataclasses import replace

    return replace(m, btc=btc, eth=btc, trades=trades)


def _cut_points(m: MarketBundle, rng: np.random.Generator, k: int) -> list:
    idx, step = m.candles.index, m.candles.index[1] - m.candles.index[0]
    points = [None, idx[0], idx[-1], idx[0] - step, idx[-1] + step, idx[-1] + step / 2, m.trades.index[0], m.trades.index[-1]]
    for _ in range(k):
        i = int(rng.integers(0, len(idx)))
        kind = rng.integers(0, 3)
        if kind == 0:
            points.append(idx[i])  # a bar at exactly the cut
        elif kind == 1:
            points.append(idx[i] + pd.Timedelta(seconds=float(rng.uniform(0, step.total_seconds()))))  # between bars
        else:
            points.append(m.trades.index[int(rng.integers(0, len(m.trades)))])  # an event at exactly the cut
    return points


def test_window_equals_the_masked_window_at_random_cuts_and_the_boundaries(market):
    rng = np.random.default_rng(0)
    points = _cut_points(market, rng, 40)
    pairs = [(a, b) for a in points[:8] for b in points[:8]]
    pairs += [(points[int(rng.integers(0, len(points)))], points[int(rng.integers(0, len(points)))]) for _ in range(100)]
    empty = 0
    for start, end in pairs:
        got = market.window(start, end)
        _same(got, _masked_window(market, start, end))
        empty += len(got.candles) == 0
    assert empty > 10  # start after end, or the whole window outside the bars


def test_window_cuts_events_at_the_close_of_the_last_bar(market):
    idx = market.candles.index
    w = market.window(idx[299], idx[299])  # the trade at exactly idx[300] opens the next bar
    assert len(w.candles) == 1 and (w.trades.index < idx[300]).all() and idx[300] not in w.trades.index
    assert idx[300] in market.window(idx[300], idx[300]).trades.index


def test_window_to_the_end_equals_the_tail_of_a_market_known_at_a_close(market):
    """``window(start, None)`` on ``until(t)``: every row from ``start`` on (the stream's recent window)."""
    idx = market.candles.index
    for t, start in [(400, 100), (599, 0), (250, 250), (300, 299)]:
        known = market.until(idx[t])
        w = known.window(idx[start], None)
        for key in ("candles", "funding", "trades", "book", "btc", "eth"):
            df = getattr(known, key)
            pd.testing.assert_frame_equal(getattr(w, key), df.loc[df.index >= idx[start]], obj=key)


def test_window_of_frames_out_of_order_falls_back_to_the_mask(market):
    from dataclasses import replace

    shuffled = replace(market, trades=market.trades.sample(frac=1.0, random_state=1), btc=market.btc.iloc[::-1])
    idx = market.candles.index
    for start, end in [(idx[10], idx[20]), (None, idx[300]), (idx[500], None)]:
        _same(shuffled.window(start, end), _masked_window(shuffled, start, end))


def test_window_of_a_bundle_without_candles_is_empty_not_an_error():
    c = _candles(0)
    m = MarketBundle("X", "5m", c, trades=pd.DataFrame({"price": [1.0]}, index=pd.DatetimeIndex(["2025-01-01"], tz="UTC")))
    w = m.window(None, None)
    assert len(w.candles) == 0 and len(w.trades) == 1
    assert len(m.window(None, pd.Timestamp("2024-12-31", tz="UTC")).trades) == 0
