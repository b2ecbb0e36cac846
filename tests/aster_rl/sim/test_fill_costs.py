"""Fill costs against hand-computed numbers: the cost rows of the price arrays (sigma_daily,
volume_daily, the book's half-spread) and the fills they give, and their causality."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import EnvConfig, replace
from aster_rl.data.market import MarketBundle
from aster_rl.sim.accounting import BUY, SELL, SingleAccount, price_matrix
from aster_rl.sim.backtest import COST_FIELDS, scale_costs
from aster_rl.sim.prices import PriceArrays
from factories import make_market

# 8h bars: a one-day window is 3 bars and a day has 3 bars, so with a full window
# sigma_daily = √(r²+r²+r²) and volume_daily = Σ volume·close of the 3 bars before the fill's bar
START = pd.Timestamp("2025-10-01", tz="UTC")
CLOSE = [1.00, 1.02, 0.99, 1.01, 1.05, 1.04, 1.00, 1.03]
OPEN = [1.00, 1.00, 1.02, 0.99, 1.01, 1.06, 1.03, 1.00]
VOLUME = [1e6, 2e6, 3e6, 1e6, 4e6, 2e6, 5e6, 1e6]
TICK = 0.0001
CFG = EnvConfig(
    initial_equity_usd=10_000.0, margin_fraction=0.5, leverages=(1, 4), taker_fee_rate=0.0, maker_fee_rate=0.0,
    slippage_bps=0.0, impact_coef=0.8, spread_mult=1.0, price_tick=TICK,
)


def candles() -> pd.DataFrame:
    high = [max(o, c) * 1.01 for o, c in zip(OPEN, CLOSE)]
    low = [min(o, c) * 0.99 for o, c in zip(OPEN, CLOSE)]
    index = pd.date_range(START, periods=len(CLOSE), freq="8h", tz="UTC")
    return pd.DataFrame({"open": OPEN, "high": high, "low": low, "close": CLOSE, "volume": VOLUME}, index=index)


def bundle(book: pd.DataFrame | None = None) -> MarketBundle:
    funding = pd.DataFrame({"funding_rate": [0.0]}, index=[START])
    return MarketBundle("ASTER/USDT:USDT", "8h", candles(), funding, book=book)


def prices_of(market: MarketBundle) -> PriceArrays:
    """The price arrays with a wide ATR: stops and targets far away, only the signals trade."""
    return dataclasses.replace(PriceArrays.from_market(market), atr=np.full(len(CLOSE), 1.0))


def r(k: int) -> float:
    return math.log(CLOSE[k] / CLOSE[k - 1])


def test_sigma_and_volume_daily_by_hand():
    p = PriceArrays.from_market(bundle())
    # bar 0: nothing known before it; bar 1: no return yet, one bar of volume (scaled to a day of 3 bars)
    assert p.sigma_daily[0] == 0 and p.volume_daily[0] == 0
    assert p.sigma_daily[1] == 0 and p.volume_daily[1] == pytest.approx(1e6 * 1.00 * 3)
    # bar 2: one return (bar 1's), two bars of volume
    assert p.sigma_daily[2] == pytest.approx(math.sqrt(r(1) ** 2 * 3))
    assert p.volume_daily[2] == pytest.approx((1e6 * 1.00 + 2e6 * 1.02) / 2 * 3)
    # bar 5: the full window, bars 2, 3, 4
    assert p.sigma_daily[5] == pytest.approx(math.sqrt(r(2) ** 2 + r(3) ** 2 + r(4) ** 2))
    assert p.volume_daily[5] == pytest.approx(3e6 * 0.99 + 1e6 * 1.01 + 4e6 * 1.05)
    assert p.sigma_daily[6] == pytest.approx(math.sqrt(r(3) ** 2 + r(4) ** 2 + r(5) ** 2))
    assert p.volume_daily[6] == pytest.approx(1e6 * 1.01 + 4e6 * 1.05 + 2e6 * 1.04)
    assert not p.half_spread.any()  # no book
    np.testing.assert_array_equal(price_matrix(p)[:, -3:], p.costs)


def buy_then_sell(prices: PriceArrays) -> tuple[float, float, float]:
    """Buy at bar 4's close (fills at bar 5's open, 4x of half the equity), sell at bar 5's close
    (fills at bar 6's open); returns (qty, entry, exit)."""
    acc = SingleAccount(CFG, prices)
    acc.advance(4, BUY, 1, 0, last=False)
    qty, entry = float(acc.book.qty[0]), float(acc.book.entry[0])
    acc.advance(5, SELL, 1, 0, last=False)
    (_i, tr), = acc.book.closed
    assert tr["reason"] == "signal" and tr["qty"] == qty
    return qty, entry, tr["exit_price"]


def test_buy_and_sell_fills_without_a_book():
    qty, entry, exit_ = buy_then_sell(prices_of(bundle()))
    # qty = ⌊0.5·10000·4 / 1.06 / 0.01⌋·0.01 = 18867.92
    assert qty == pytest.approx(18867.92)
    sigma5 = math.sqrt(r(2) ** 2 + r(3) ** 2 + r(4) ** 2)
    v5 = 3e6 * 0.99 + 1e6 * 1.01 + 4e6 * 1.05
    c_buy = TICK / 2 / 1.06 + 0.8 * sigma5 * math.sqrt(18867.92 * 1.06 / v5)
    assert entry == pytest.approx(1.06 * (1 + c_buy), rel=1e-12)
    sigma6 = math.sqrt(r(3) ** 2 + r(4) ** 2 + r(5) ** 2)
    v6 = 1e6 * 1.01 + 4e6 * 1.05 + 2e6 * 1.04
    c_sell = TICK / 2 / 1.03 + 0.8 * sigma6 * math.sqrt(18867.92 * 1.03 / v6)
    assert exit_ == pytest.approx(1.03 * (1 - c_sell), rel=1e-12)
    assert 5e-4 < c_buy < 5e-3 and 5e-4 < c_sell < 5e-3  # the numbers are about what they should be


def test_buy_and_sell_fills_with_a_book():
    t4, t5 = START + pd.Timedelta("8h") * 4, START + pd.Timedelta("8h") * 5
    book = pd.DataFrame(
        {"best_bid": [1.0400, 1.0490, 1.0399], "best_ask": [1.0600, 1.0510, 1.0400]},
        index=pd.DatetimeIndex([t4 + pd.Timedelta("1h"), t4 + pd.Timedelta("7h"), t5 + pd.Timedelta("3h")]),
    )
    p = prices_of(bundle(book))
    hs5 = (1.0510 - 1.0490) / (1.0510 + 1.0490)  # the last snapshot inside bar 4 prices fills in bar 5
    hs6 = (1.0400 - 1.0399) / (1.0400 + 1.0399)  # under the tick floor at bar 6's open
    assert p.half_spread[5] == pytest.approx(hs5) and p.half_spread[6] == pytest.approx(hs6)
    assert np.count_nonzero(p.half_spread) == 2
    qty, entry, exit_ = buy_then_sell(p)
    sigma5 = math.sqrt(r(2) ** 2 + r(3) ** 2 + r(4) ** 2)
    v5 = 3e6 * 0.99 + 1e6 * 1.01 + 4e6 * 1.05
    assert hs5 > TICK / 2 / 1.06
    assert entry == pytest.approx(1.06 * (1 + hs5 + 0.8 * sigma5 * math.sqrt(qty * 1.06 / v5)), rel=1e-12)
    sigma6 = math.sqrt(r(3) ** 2 + r(4) ** 2 + r(5) ** 2)
    v6 = 1e6 * 1.01 + 4e6 * 1.05 + 2e6 * 1.04
    assert hs6 < TICK / 2 / 1.03
    assert exit_ == pytest.approx(1.03 * (1 - TICK / 2 / 1.03 - 0.8 * sigma6 * math.sqrt(qty * 1.03 / v6)), rel=1e-12)


def test_cost_rows_at_bar_t_do_not_change_when_later_bars_are_removed():
    market = make_market(700, seed=5)  # 5m bars with a book: a one-day window of 288 bars
    full = PriceArrays.from_market(market)
    assert full.half_spread.any() and full.sigma_daily[300] > 0 and full.volume_daily[300] > 0
    for m in (1, 2, 150, 289, 290, 500, 699):
        cut = PriceArrays.from_market(market.head(m))
        np.testing.assert_array_equal(cut.costs, full.costs[:m], err_msg=f"first {m} bars")
    np.testing.assert_array_equal(full.slice(100, 400).costs, full.costs[100:400])


def test_cost_row_t_ignores_bar_t_itself():
    """Bar t's row prices a fill inside bar t: bar t's own close, volume and book may not move it."""
    market = make_market(400, seed=6)
    base = PriceArrays.from_market(market)
    assert market.book is not None
    t = int(np.searchsorted(market.candles.index, market.book.index[700], side="right")) - 1  # a bar with a snapshot
    assert 300 < t < 399
    c = market.candles.copy()
    c.iloc[t, c.columns.get_loc("close")] *= 1.05
    c.iloc[t, c.columns.get_loc("high")] *= 1.05
    c.iloc[t, c.columns.get_loc("volume")] *= 10
    book = market.book.copy()
    inside = (book.index >= c.index[t]) & (book.index < c.index[t] + pd.Timedelta("5min"))
    assert inside.any()
    book.loc[inside, "best_ask"] *= 1.01
    moved = PriceArrays.from_market(dataclasses.replace(market, candles=c, book=book))
    np.testing.assert_array_equal(moved.costs[: t + 1], base.costs[: t + 1])
    assert (moved.costs[t + 1] != base.costs[t + 1]).all()  # and bar t + 1's row does see it


def test_cost_sweep_scales_spread_impact_and_fees():
    assert {"taker_fee_rate", "maker_fee_rate", "slippage_bps", "impact_coef", "spread_mult"} <= set(COST_FIELDS)
    cfg = replace(CFG, slippage_bps=1.0)
    prices = prices_of(bundle())
    fills = {}
    for mult in (0.0, 1.0, 2.0):
        acc = SingleAccount(scale_costs(cfg, mult), prices)
        acc.advance(4, BUY, 1, 0, last=False)
        fills[mult] = float(acc.book.entry[0]) / 1.06 - 1
    assert fills[0.0] == 0.0 and fills[1.0] > 1e-4
    # every term of the cost scales: the quantity is sized from the open, so twice the costs is twice the fill cost
    assert fills[2.0] == pytest.approx(2 * fills[1.0], rel=1e-9)
