"""Test kit: a fake Aster exchange on loopback for your own tests of brokers and runners.

``from aster_rl.testing import FakeExchange``, then ``with FakeExchange(bundle) as fake:``
and ``DataConfig(api_url=fake.url)`` points the real ccxt client at it; ``fake.set_now``
drives its clock (see :mod:`aster_rl.testing.fake_exchange`).
"""

from aster_rl.testing.fake_account import FakeAccount, FakeApiError, Position
from aster_rl.testing.fake_exchange import FakeAsterExchange, RecordedRequest, market_id

FakeExchange = FakeAsterExchange  # the kit's short name

__all__ = ["FakeAccount", "FakeApiError", "FakeAsterExchange", "FakeExchange", "Position", "RecordedRequest", "market_id"]
