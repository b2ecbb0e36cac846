"""The accounting core against hand-computed examples (numbers worked out in the comments)."""

import numpy as np
import pytest

import accounting_reference as ref
from aster_rl.sim.accounting import BUY, SELL, WAIT, AccountBook, liquidation_price, validate_env_config
from aster_rl.config import EnvConfig, ExitProfile, MarginBracket, replace
from aster_rl.errors import ConfigError

PROFILES = {
    "scalp": ExitProfile(stop_atr=1.0, target_atr=2.0),
    "wide": ExitProfile(stop_atr=100.0, target_atr=100.0),
}


def make_cfg(**kw):
    base = dict(
        initial_equity_usd=10_000.0,
        margin_fraction=0.1,
        taker_fee_rate=0.0005,
        maker_fee_rate=0.0002,
        slippage_bps=0.0,
        impact_coef=0.0,
        spread_mult=0.0,
        exit_profiles=PROFILES,
    )
    base.update(kw)
    return EnvConfig(**base)


# the compiled core and the numpy oracle must both give the hand-computed numbers
BOOKS = pytest.mark.parametrize("Book", [AccountBook, ref.AccountBook], ids=["kernel", "oracle"])


def bar(book, o, h, l, c, cost=(0.0, 0.0, 0.0), funding=0.0, ts=0):  # noqa: E741
    """One bar; ``cost``: the bar's cost row (half-spread, sigma_daily, volume_daily)."""
    a = lambda x: np.array([x], dtype=np.float64)  # noqa: E731
    book.process_bar(np.array([ts], dtype=np.int64), a(o), a(h), a(l), a(c), np.array([cost], dtype=np.float64), a(funding))


def decide(book, side, lev, atr, profile=0):
    p = list(book.cfg.exit_profiles.values())[profile]
    book.submit(np.array([side]), np.array([float(lev)]), np.array([p.stop_atr * atr]),
                np.array([p.target_atr * atr]), np.array([profile]))


def test_10x_long_hits_target():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 10, atr=0.05)
    # fill at the next open 2.0: budget 0.1*10000 = 1000, notional 10000, qty 5000
    # fee 0.0005*5000*2 = 5, margin 1000, cash 10000-1000-5 = 8995; stop 1.95, target 2.10
    bar(book, 2.0, 2.05, 1.98, 2.04, ts=1)
    assert book.qty[0] == pytest.approx(5000.0)
    assert book.entry[0] == 2.0
    assert book.cash[0] == pytest.approx(8995.0)
    assert book.stop[0] == pytest.approx(1.95) and book.target[0] == pytest.approx(2.10)
    # bracket of notional 10000: mmr 0.025, MA 75 → LP = (1000-10000+75)/(125-5000) = 1.8307692
    assert book.liq[0] == pytest.approx(8925 / 4875)
    assert book.equity[0] == pytest.approx(8995 + 1000 + 5000 * 0.04)  # 10195 marked at 2.04
    decide(book, WAIT, 0, atr=0.05)
    bar(book, 2.04, 2.12, 2.03, 2.11, ts=2)
    # target 2.10: gross 500, exit fee 0.0005*5000*2.1 = 5.25 → cash 8995+1000+500-5.25
    assert book.side[0] == 0
    assert book.cash[0] == pytest.approx(10_489.75)
    (_i, tr), = book.closed
    assert tr["reason"] == "target" and tr["side"] == "long" and tr["exit_price"] == pytest.approx(2.10)
    assert tr["pnl_usd"] == pytest.approx(489.75)
    assert tr["fees_usd"] == pytest.approx(10.25)
    assert (tr["entry_time"], tr["exit_time"]) == (1, 2)


def test_20x_short_stopped_out():
    book = AccountBook(make_cfg(), 1)
    decide(book, SELL, 20, atr=0.08)
    # open 4.0: notional 20000, qty 5000, fee 10, margin 1000, cash 8990, stop 4.08, target 3.84
    # LP short = (1000+20000+75)/(125+5000) = 4.1121951 (beyond the stop)
    bar(book, 4.0, 4.09, 3.98, 4.05)
    assert book.side[0] == 0
    (_i, tr), = book.closed
    # stop 4.08: gross -400, exit fee 0.0005*5000*4.08 = 10.2 → cash 8990+1000-400-10.2 = 9579.8
    assert tr["reason"] == "stop" and tr["side"] == "short" and tr["leverage"] == 20
    assert tr["exit_price"] == pytest.approx(4.08)
    assert book.cash[0] == pytest.approx(9579.8)
    assert tr["pnl_usd"] == pytest.approx(-420.2)
    assert tr["fees_usd"] == pytest.approx(20.2)


@BOOKS
def test_liquidation_at_the_binance_isolated_price_loses_the_whole_margin(Book):
    bracket = (MarginBracket(notional_cap_usd=1e12, max_leverage=50, maintenance_margin_rate=0.005,
                             maintenance_amount_usd=10.0),)
    book = Book(make_cfg(brackets=bracket), 1)
    decide(book, BUY, 50, atr=0.01, profile=1)  # stop far below: the liquidation price is nearer
    # open 1.0: qty 50000, fee 25, margin 1000, cash 8975
    # LP = (WB - Q*EP + MA) / (Q*MMR - Q) = (1000 - 50000 + 10) / (250 - 50000) = 48990/49750
    bar(book, 1.0, 1.001, 0.999, 0.999)
    assert book.liq[0] == pytest.approx(0.984723618090452, rel=1e-12)
    assert liquidation_price(1, 50000, 1.0, 1000, 0.005, 10) == pytest.approx(48990 / 49750)
    decide(book, WAIT, 0, atr=0.01)
    bar(book, 0.999, 1.0, 0.98, 0.99)
    (_i, tr), = book.closed
    assert tr["reason"] == "liquidation"
    # triggered at LP; closed at the bankruptcy price 1 - 1000/50000 = 0.98: the whole margin
    # (1000) is lost and nothing comes back (the maintenance margin left at LP goes to the
    # venue) → cash stays 8975, pnl = -(1000 margin + 25 entry fee) = -1025, no fee at the exit
    assert tr["exit_price"] == pytest.approx(0.98, rel=1e-12)
    assert book.cash[0] == pytest.approx(8975.0, abs=1e-9)
    assert book.equity[0] == pytest.approx(8975.0, abs=1e-9)
    assert tr["pnl_usd"] == pytest.approx(-1025.0, abs=1e-9)
    assert tr["fees_usd"] == pytest.approx(25.0, abs=1e-9)
    gross = 50000 * (tr["exit_price"] - 1.0)
    assert tr["pnl_usd"] == pytest.approx(gross - tr["fees_usd"] - tr["funding_usd"], abs=1e-9)
    assert book.liquidations[0] == 1 and book.liquidated_now[0]


@BOOKS
def test_liquidation_gap_past_the_bankruptcy_price_loses_only_the_margin(Book):
    book = Book(make_cfg(), 1)
    decide(book, BUY, 10, atr=0.05, profile=1)  # stop 5 below: LP 1.8307692 is nearer
    bar(book, 2.0, 2.01, 1.99, 2.0)  # qty 5000, margin 1000, fee 5, cash 8995
    decide(book, WAIT, 0, atr=0.05)
    bar(book, 1.5, 1.6, 1.4, 1.55)  # opens below LP and below the bankruptcy price 1.8
    (_i, tr), = book.closed
    # liquidated at the open 1.5, booked at the bankruptcy price 1.8: the loss stops at the margin, no fee
    assert tr["reason"] == "liquidation" and tr["exit_price"] == pytest.approx(1.8)
    assert book.cash[0] == pytest.approx(8995.0) and tr["pnl_usd"] == pytest.approx(-1005.0)
    assert tr["fees_usd"] == pytest.approx(5.0)


def test_short_liquidation_price_formula():
    # short: LP = (WB + Q*EP + MA) / (Q*MMR + Q); 10x short at 2.0, qty 5000, WB 1000, mmr 0.025, MA 75
    assert liquidation_price(-1, 5000, 2.0, 1000, 0.025, 75) == pytest.approx(11075 / 5125)


def test_funding_paid_and_received_across_two_settlements():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 5, atr=0.01, profile=1)
    bar(book, 2.0, 2.01, 1.99, 2.0)  # qty 2500, margin 1000
    decide(book, WAIT, 0, atr=0.01)
    # settlement 1 at a bar opening at 2.0, rate +0.0001: the long pays 2500*2.0*0.0001 = 0.5
    bar(book, 2.0, 2.02, 1.99, 2.01, funding=0.0001)
    assert book.funding[0] == pytest.approx(0.5)
    for _ in range(3):
        bar(book, 2.05, 2.1, 2.0, 2.05)
    # settlement 2, 4 bars later at open 2.1, rate -0.0002: the long receives 2500*2.1*0.0002 = 1.05
    bar(book, 2.1, 2.12, 2.09, 2.1, funding=-0.0002)
    assert book.funding[0] == pytest.approx(0.5 - 1.05)
    assert book.margin[0] == pytest.approx(1000 - 0.5 + 1.05)
    # the short side of the same settlements: pays when the rate is negative
    short = AccountBook(make_cfg(), 1)
    decide(short, SELL, 5, atr=0.01, profile=1)
    bar(short, 2.0, 2.01, 1.99, 2.0)
    bar(short, 2.0, 2.02, 1.99, 2.01, funding=0.0001)
    assert short.funding[0] == pytest.approx(-0.5)


def test_fees_on_entry_and_exit_by_signal():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 2, atr=0.01, profile=1)
    # open 3.0: budget 1000*2 = 2000 → qty floor(666.67/0.01)*0.01 = 666.66, fee 0.0005*666.66*3 = 0.99999
    bar(book, 3.0, 3.01, 2.99, 3.0)
    assert book.qty[0] == pytest.approx(666.66)
    assert book.fees[0] == pytest.approx(0.99999)
    decide(book, SELL, 0, atr=0.01)  # SELL while long closes it at the next open
    bar(book, 3.3, 3.31, 3.29, 3.3)
    (_i, tr), = book.closed
    # exit fee 0.0005*666.66*3.3 = 1.099989; gross 666.66*0.3 = 199.998
    assert tr["reason"] == "signal"
    assert tr["fees_usd"] == pytest.approx(0.99999 + 1.099989)
    assert tr["pnl_usd"] == pytest.approx(199.998 - 0.99999 - 1.099989)
    assert book.cash[0] == pytest.approx(10_197.898021)


# Gaps: 10x at the open 2.0 (qty 5000, entry fee 5, margin 1000, cash 8995). The long has stop
# 1.95, target 2.10, LP 1.8307692; the short has stop 2.05, target 1.90, LP 11075/5125 = 2.1609756.
# The next bar opens past one exit and then also touches the other: the open decides.
GAP_CASES = {
    # side, (open, high, low, close), reason, exit at the open, cash = 8995 + 1000 + gross - exit fee
    "long_gap_above_target_then_stop": (
        BUY, (2.20, 2.25, 1.90, 2.0), "target", 2.20, 8995 + 1000 + 1000 - 5.5),  # fee .0005*5000*2.2
    "long_gap_below_stop_then_target": (
        BUY, (1.90, 2.15, 1.88, 2.0), "stop", 1.90, 8995 + 1000 - 500 - 4.75),  # fee at 1.9
    "short_gap_below_target_then_stop": (
        SELL, (1.85, 2.06, 1.80, 1.9), "target", 1.85, 8995 + 1000 + 750 - 4.625),  # fee at 1.85
    "short_gap_above_stop_then_target": (
        SELL, (2.10, 2.12, 1.89, 2.0), "stop", 2.10, 8995 + 1000 - 500 - 5.25),  # fee at 2.1
}


@BOOKS
@pytest.mark.parametrize("case", GAP_CASES)
def test_a_gap_fills_the_exit_it_passed_at_the_open(Book, case):
    side, (o, h, l, c), reason, exit_price, cash = GAP_CASES[case]  # noqa: E741
    book = Book(make_cfg(), 1)
    decide(book, side, 10, atr=0.05)
    bar(book, 2.0, 2.01, 1.99, 2.0, ts=1)
    assert (book.stop[0], book.target[0]) == pytest.approx((1.95, 2.10) if side == BUY else (2.05, 1.90))
    decide(book, WAIT, 0, atr=0.05)
    bar(book, o, h, l, c, ts=2)
    (_i, tr), = book.closed
    assert tr["reason"] == reason and tr["exit_price"] == pytest.approx(exit_price)
    assert book.side[0] == 0 and book.cash[0] == pytest.approx(cash)
    assert tr["pnl_usd"] == pytest.approx(cash - 10_000)
    assert tr["fees_usd"] == pytest.approx(5 + 0.0005 * 5000 * exit_price)


def test_gap_through_stop_fills_at_open():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 10, atr=0.05)
    bar(book, 2.0, 2.01, 1.99, 2.0)  # stop 1.95, LP 1.8308
    decide(book, WAIT, 0, atr=0.05)
    bar(book, 1.90, 1.92, 1.88, 1.91)  # opens below the stop
    (_i, tr), = book.closed
    assert tr["reason"] == "stop" and tr["exit_price"] == pytest.approx(1.90)
    # gross -500, fee 0.0005*5000*1.9 = 4.75 → cash 8995 + 1000 - 500 - 4.75
    assert book.cash[0] == pytest.approx(9490.25)


def test_stop_and_target_in_one_bar_the_stop_counts():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 10, atr=0.05)
    bar(book, 2.0, 2.2, 1.9, 2.1)  # opens at 2.0, then both 1.95 and 2.10 are inside the bar
    (_i, tr), = book.closed
    assert tr["reason"] == "stop" and tr["exit_price"] == pytest.approx(1.95)
    assert book.cash[0] == pytest.approx(8995 + 1000 - 250 - 0.0005 * 5000 * 1.95)


@BOOKS
def test_fill_cost_fixed_slippage_half_spread_and_square_root_impact(Book):
    book = Book(make_cfg(slippage_bps=10.0, impact_coef=0.5, spread_mult=1.0, price_tick=0.001), 1)
    decide(book, BUY, 10, atr=0.05)
    # qty 5000 from the open 2.0 (Q = $10,000); cost row: book half-spread 2e-4, σ_daily 0.08, V_daily $16M
    # c = 10bps + max(0.001 / (2·2.0), 2e-4) + 0.5·0.08·√(10000 / 16e6) = 0.001 + 0.00025 + 0.001 = 0.00225
    bar(book, 2.0, 2.01, 1.99, 2.0, cost=(2e-4, 0.08, 16e6))
    assert book.entry[0] == pytest.approx(2.0045)
    assert book.slippage[0] == pytest.approx(5000 * 0.0045)
    assert book.fees[0] == pytest.approx(0.0005 * 5000 * 2.0045)
    # a sell at the next open 2.5 (Q = $12,500), book half-spread 5e-4 above the tick floor 2e-4,
    # no volume: no impact term. c = 0.001 + 0.0005 = 0.0015 → fill 2.5·(1 − 0.0015) = 2.49625
    decide(book, SELL, 10, atr=0.05)
    bar(book, 2.5, 2.51, 2.49, 2.5, cost=(5e-4, 0.08, 0.0))
    (_i, tr), = book.closed
    assert tr["exit_price"] == pytest.approx(2.49625) and tr["reason"] == "signal"
    assert tr["slippage_usd"] == pytest.approx(5000 * (0.0045 + 0.00375))


def test_below_min_notional_is_skipped_and_counted():
    book = AccountBook(make_cfg(min_notional_usd=20_000.0), 1)
    decide(book, BUY, 10, atr=0.05)
    bar(book, 2.0, 2.01, 1.99, 2.0)
    assert book.side[0] == 0 and book.n_skipped[0] == 1 and book.cash[0] == 10_000


def test_leverage_capped_by_brackets():
    book = AccountBook(make_cfg(), 1)
    decide(book, BUY, 50, atr=0.05)
    # margin 1000: 50x would be 50000 notional, whose bracket allows 10x; the largest fitting is 20x
    bar(book, 2.0, 2.01, 1.99, 2.0)
    assert book.lev[0] == 20
    assert book.qty[0] == pytest.approx(10_000)


def test_buy_while_short_closes_and_stays_flat():
    book = AccountBook(make_cfg(), 1)
    decide(book, SELL, 5, atr=0.01, profile=1)
    bar(book, 2.0, 2.01, 1.99, 2.0)
    decide(book, BUY, 5, atr=0.01, profile=1)
    bar(book, 2.0, 2.01, 1.99, 2.0)
    assert book.side[0] == 0 and book.closed[0][1]["reason"] == "signal"


def test_vectorized_accounts_are_independent():
    book = AccountBook(make_cfg(), 3)
    book.submit(np.array([BUY, SELL, WAIT]), np.array([10.0, 20.0, 1.0]), np.full(3, 0.05), np.full(3, 0.1),
                np.zeros(3, dtype=int))
    a = lambda x: np.full(3, x, dtype=np.float64)  # noqa: E731
    book.process_bar(np.zeros(3, dtype=np.int64), a(2.0), a(2.01), a(1.99), a(2.0), np.zeros((3, 3)), a(0.0))
    assert list(book.side) == [1, -1, 0]
    assert book.qty[0] == pytest.approx(5000) and book.qty[1] == pytest.approx(10000)
    assert book.cash[2] == 10_000


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="taker_fee_rate"):
        EnvConfig(taker_fee_rate=-0.001)
    with pytest.raises(ConfigError, match="taker_fee_rate"):
        replace(EnvConfig(), taker_fee_rate=-0.001)
    with pytest.raises(ValueError, match="leverages"):
        EnvConfig(leverages=(1, 100), max_leverage=50)
    # a config built past pydantic (model_copy skips validation) is validated again by the core
    with pytest.raises(ConfigError, match="taker_fee_rate"):
        validate_env_config(EnvConfig().model_copy(update={"taker_fee_rate": -0.001}))
    with pytest.raises(ConfigError, match="leverages"):
        AccountBook(EnvConfig().model_copy(update={"leverages": (1, 100)}), 1)
