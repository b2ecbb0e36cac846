import numpy as np
import pytest

from aster_rl.sim.accounting import REASONS
from aster_rl.config import EnvConfig
from aster_rl.patterns.outcomes import Outcomes, entry_chain, pattern_entries, simulate_entries
from aster_rl.sim.prices import PriceArrays


def flat_prices(n=40, highs=None, lows=None):
    o = np.ones(n)
    h = np.full(n, 1.001)
    lo = np.full(n, 0.999)
    for i, v in (highs or {}).items():
        h[i] = v
    for i, v in (lows or {}).items():
        lo[i] = v
    return PriceArrays.from_arrays(o, h, lo, o.copy(), np.full(n, 1e12), atr=np.full(n, 0.01))


def test_long_target_matches_hand_computation():
    env = EnvConfig()
    prices = flat_prices(highs={8: 1.02})
    out = simulate_entries(prices, np.array([5]), "long", "scalp", env, max_hold=20)
    fill = 1.0 * (1 + 1e-4 / 2 / 1.0)  # next open + half a tick (0.0001); flat prices: sigma_daily 0, no impact
    target = round((fill + 1.5 * 0.01) / 1e-4) * 1e-4
    exit_fill = target * (1 - 1e-4 / 2 / target)
    qty = 1000.0  # 10% of 10,000 USD at 1x, price 1
    pnl = qty * (exit_fill - fill) - 0.00035 * qty * fill - 0.00035 * qty * exit_fill
    assert out.exit_bar[5] == 8
    assert REASONS[out.reason[5]] == "target"
    assert out.net_return[5] == pytest.approx(pnl / (qty * fill), rel=1e-7)
    assert np.isnan(out.net_return[4]) and out.exit_bar[4] == -1


def test_stop_counts_when_both_hit_and_max_hold_exit():
    env = EnvConfig()
    prices = flat_prices(highs={8: 1.02}, lows={8: 0.98})
    out = simulate_entries(prices, np.array([5]), "long", "scalp", env, max_hold=20)
    assert REASONS[out.reason[5]] == "stop" and out.net_return[5] < -0.01
    quiet = simulate_entries(flat_prices(), np.array([5]), "short", "scalp", env, max_hold=10)
    assert REASONS[quiet.reason[5]] == "signal"  # closed at the open after 10 bars
    assert quiet.exit_bar[5] == 5 + 1 + 10
    # costs only: two taker fees and two half-ticks at price 1, about -8 bp
    assert quiet.net_return[5] == pytest.approx(-(2 * 0.00035 + 2 * 0.5e-4), abs=2e-6)


def test_trades_that_do_not_close_inside_the_range_are_dropped():
    env = EnvConfig()
    out = simulate_entries(flat_prices(n=20), np.array([2, 15]), "long", "swing", env, max_hold=10)
    assert out.valid[2] and not out.valid[15]


def test_entry_chain_takes_one_position_at_a_time():
    exit_bar = np.full(30, -1)
    signals = np.array([1, 2, 3, 6, 7, 12])
    exit_bar[signals] = [5, 6, 9, 8, 11, 14]
    taken = signals[entry_chain(signals, exit_bar)]
    # 1 (open 2..5) -> next signal at or after 5 is 6 (exits 8) -> 12
    assert taken.tolist() == [1, 6, 12]


def test_a_trade_still_open_at_the_end_keeps_the_position():
    # flat prices, max_hold 10: entries after bars 9..18 of 20 cannot close inside the range
    out = simulate_entries(flat_prices(n=20), np.arange(20), "long", "swing", EnvConfig(), max_hold=10)
    assert out.pending[9:19].all() and not out.pending[:9].any() and not out.pending[19]
    # a trade still open at the end (signal 4) blocks a later signal whose trade closed (signal 6, exit 8):
    # with more bars, 4's trade might close after 8 and 6 would never be taken
    exit_bar = np.full(12, -1)
    exit_bar[[1, 6]] = [3, 8]
    pending = np.zeros(12, dtype=bool)
    pending[4] = True
    o = Outcomes("long", "swing", np.where(exit_bar >= 0, 0.01, np.nan), exit_bar, np.zeros(12, dtype=np.int8), pending)
    signals = np.zeros(12, dtype=bool)
    signals[[1, 4, 6]] = True
    assert pattern_entries(signals, o).tolist() == [1]
    signals[4] = False
    assert pattern_entries(signals, o).tolist() == [1, 6]


@pytest.mark.parametrize("side,profile", [("long", "scalp"), ("short", "swing")])
def test_outcomes_equal_the_backtester(side, profile):
    from aster_rl.sim.backtest import backtest
    from aster_rl.config import SynthConfig
    from aster_rl.data.synthetic import synthesize

    env = EnvConfig()
    prices = PriceArrays.from_market(synthesize(SynthConfig(n_bars=1500, seed=3)))
    signals = np.array([100, 400, 700, 1000])
    out = simulate_entries(prices, signals, side, profile, env, max_hold=288)
    feats = np.zeros((len(prices), 1), dtype=np.float32)
    action = 1 if side == "long" else 2
    prof = list(env.exit_profiles).index(profile)
    first = int(np.flatnonzero(prices.atr > 0)[0])  # the backtester starts at the first bar with an ATR
    for s in signals:
        calls = iter(range(first, len(prices)))

        def policy(obs, s=s, calls=calls):
            t = next(calls)
            return (action if t == s else 0, 0, prof)

        res = backtest(policy, feats, prices, env, start=0)
        trade = res.trades.iloc[0]
        assert trade["reason"] != "end"
        expected = trade["pnl_usd"] / (trade["qty"] * trade["entry_price"])
        assert out.net_return[s] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert REASONS[out.reason[s]] == trade["reason"]
