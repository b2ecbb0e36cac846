"""The paper broker between bars: a stop hit by a polled price, and the pending decision after it."""

import numpy as np
import pandas as pd
import pytest

from aster_rl.sim.accounting import BUY, SELL
from aster_rl.config import EnvConfig
from aster_rl.live.bars import Bar, LivePrices
from aster_rl.live.brokers import PaperBroker

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _bar(i: int, price: float) -> Bar:
    return Bar(T0 + pd.Timedelta(minutes=5 * i), price, price * 1.001, price * 0.999, price, 1e6)


@pytest.mark.parametrize("pending_side", [SELL, BUY])  # a close of the long, a hold of the long
def test_a_decision_overtaken_by_a_stop_between_bars_is_dropped(pending_side):
    prices = LivePrices("5m")
    broker = PaperBroker(EnvConfig(), prices)
    for i in range(20):
        prices.append(_bar(i, 1.0))
    t = len(prices) - 1
    broker.submit(t, BUY, 0, 0)
    prices.append(_bar(t + 1, 1.0))
    opened = broker.on_bar(t + 1)
    assert opened.opened is not None and broker.position_side == 1
    stop = broker.position()["stop_price"]

    broker.submit(t + 1, pending_side, 0, 0)  # decided while long: close it / hold it
    closed = broker.watch(stop * 0.99, int((T0 + pd.Timedelta(minutes=5 * (t + 2))).value))
    assert [tr["reason"] for tr in closed] == ["stop"] and broker.position_side == 0

    prices.append(_bar(t + 2, 1.0))
    result = broker.on_bar(t + 2)
    # flat now: the same side would open a new position nobody decided on (nor reviewed)
    assert result.opened is None and result.closed == [] and broker.position_side == 0
    assert int(broker.book.n_trades[0]) == 1


def test_the_price_buffer_is_the_core_price_matrix_and_is_not_copied_per_bar(monkeypatch):
    """The core steps over the buffer's own price matrix (equal to ``price_matrix`` of the same
    bars, through growth): no bar rebuilds a matrix from the whole history."""
    from aster_rl.sim import accounting
    from aster_rl.live.sources import bars_from_market
    from aster_rl.sim.prices import PriceArrays
    from factories import make_market

    market = make_market(300, seed=3)
    bars = bars_from_market(market)
    prices = LivePrices("5m", capacity=16)  # small: the buffer grows several times
    for bar in bars[:40]:
        prices.append(bar)
    broker = PaperBroker(EnvConfig(), prices)
    built = []
    real = accounting.price_matrix
    monkeypatch.setattr(accounting, "price_matrix", lambda p: built.append(len(p)) or real(p))
    for i, bar in enumerate(bars[40:], start=40):
        t = prices.append(bar)
        broker.on_bar(t)
        broker.observation(np.zeros(4, dtype=np.float32), t)
        broker.submit(t, (BUY, SELL, 0)[i % 3], 1, 0)
        assert np.shares_memory(broker.acc._px, prices.matrix) and len(broker.acc._px) == len(prices)
    assert not built  # no matrix built from the history after start-up
    expected = accounting.price_matrix(PriceArrays.from_market(market))
    assert prices.matrix[:, -3].any()  # the book's half-spread came with the bars
    assert np.array_equal(prices.matrix, expected)  # bit for bit, the cost columns included


# ---------------------------------------------------------------- between bars: the core's exit rule

NO_SLIP = EnvConfig(slippage_bps=0.0, impact_coef=0.0, spread_mult=0.0)


def _long(lev_i: int, cfg: EnvConfig = NO_SLIP) -> tuple[PaperBroker, LivePrices, int]:
    """A paper broker holding a long opened at 1.0 (bars of 1.0 +- 0.1%) with leverage ``cfg.leverages[lev_i]``."""
    prices = LivePrices("5m")
    broker = PaperBroker(cfg, prices)
    for i in range(20):
        prices.append(_bar(i, 1.0))
    t = len(prices) - 1
    broker.submit(t, BUY, lev_i, 0)
    prices.append(_bar(t + 1, 1.0))
    assert broker.on_bar(t + 1).opened is not None and broker.position_side == 1
    return broker, prices, t + 1


def _ns(i: int) -> int:
    return int((T0 + pd.Timedelta(minutes=5 * i)).value)


def test_a_liquidation_sized_move_between_bars_liquidates_like_the_core():
    """A price past the liquidation price (and past the stop) liquidates at the bankruptcy
    price, the whole margin lost and no exit fee, as a bar gapping there does."""
    lev_i = NO_SLIP.leverages.index(20)
    broker, _, t = _long(lev_i)
    pos = broker.position()
    assert pos["liquidation_price"] < pos["stop_price"]
    margin = float(broker.book.margin[0])
    price = pos["liquidation_price"] * 0.99
    closed = broker.watch(price, _ns(t + 1))
    assert [tr["reason"] for tr in closed] == ["liquidation"] and broker.position_side == 0
    tr = closed[0]
    qty, entry = pos["qty"], pos["entry_price"]
    assert tr["exit_price"] == pytest.approx(entry - margin / qty, rel=1e-12)  # bankruptcy price
    assert tr["pnl_usd"] == pytest.approx(-margin - NO_SLIP.taker_fee_rate * qty * entry, rel=1e-9)
    assert broker.equity == pytest.approx(NO_SLIP.initial_equity_usd + tr["pnl_usd"], rel=1e-12)

    # the same price as a whole bar (open = high = low = close) through the core's bar step
    ref, ref_prices, _ = _long(lev_i)
    ref_prices.append(Bar(T0 + pd.Timedelta(minutes=5 * (t + 1)), price, price, price, price, 1e6))
    [bar_tr] = ref.on_bar(t + 1).closed
    assert {k: v for k, v in bar_tr.items() if k != "exit_time"} == {k: v for k, v in tr.items() if k != "exit_time"}


def test_a_gap_past_the_target_between_bars_fills_at_the_price_like_the_core():
    """A polled price past the target fills at that price (the better one), as a bar opening past it does."""
    broker, _, t = _long(0)
    pos = broker.position()
    price = pos["target_price"] + 0.01
    closed = broker.watch(price, _ns(t + 1))
    assert [tr["reason"] for tr in closed] == ["target"] and broker.position_side == 0
    tr = closed[0]
    qty, entry, fee = pos["qty"], pos["entry_price"], NO_SLIP.taker_fee_rate
    assert tr["exit_price"] == pytest.approx(price, rel=1e-12)
    assert tr["pnl_usd"] == pytest.approx(qty * (price - entry) - fee * qty * (entry + price), rel=1e-9)


def test_a_price_between_stop_and_target_closes_nothing():
    broker, _, t = _long(0)
    pos = broker.position()
    assert broker.watch((pos["stop_price"] + pos["target_price"]) / 2, _ns(t + 1)) == []
    assert broker.position() == pos
