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
    assert np.array_equal(prices.matrix, expected)  # bit for bit, spare column included
