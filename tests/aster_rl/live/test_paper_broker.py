"""The paper broker between bars: a stop hit by a polled price, and the pending decision after it."""

import pandas as pd
import pytest

from aster_rl.accounting import BUY, SELL
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
