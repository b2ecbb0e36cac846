"""Every implementation of a declared interface (aster_rl.interfaces) has all its members, with
the contract's parameters: the paper and real brokers, the replay and exchange sources, policies."""

import inspect

import numpy as np
import pandas as pd
import pytest

from aster_rl.config import DataConfig, EnvConfig, LiveConfig
from aster_rl.interfaces import BarSource, Broker, DecidingPolicy, Policy, PolicyDecision, as_action
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import PaperBroker
from aster_rl.live.policy import decide
from aster_rl.live.real_broker import RealBroker
from aster_rl.live.sources import ExchangeSource, ReplaySource
from factories import make_market


def _members(proto: type) -> set[str]:
    own = {n for n in vars(proto) if not n.startswith("_")}
    return own | set(vars(proto).get("__annotations__", {}))


def assert_implements(obj: object, proto: type) -> None:
    missing = [n for n in sorted(_members(proto)) if not hasattr(obj, n)]
    assert not missing, f"{type(obj).__name__} lacks {missing} of {proto.__name__}"
    for name in sorted(_members(proto)):
        spec = vars(proto).get(name)
        impl = inspect.getattr_static(type(obj), name, None)
        if spec is None:  # a declared attribute: set on the class or the instance
            continue
        assert impl is not spec, f"{type(obj).__name__}.{name} is only the protocol's stub"
        if inspect.isfunction(spec):
            assert list(inspect.signature(impl).parameters) == list(inspect.signature(spec).parameters), \
                f"{type(obj).__name__}.{name}{inspect.signature(impl)} differs from {proto.__name__}.{name}{inspect.signature(spec)}"
        elif isinstance(spec, property):
            assert isinstance(impl, property), f"{type(obj).__name__}.{name} is not a property"


@pytest.fixture(scope="module")
def market():
    return make_market(300, seed=1)


def test_the_brokers_implement_broker():
    prices = LivePrices("5m")
    paper = PaperBroker(EnvConfig(), prices)
    real = RealBroker(None, "ASTER/USDT:USDT", EnvConfig(), LiveConfig(), prices)
    for broker in (paper, real):
        assert_implements(broker, Broker)
        assert broker.prices is prices
    assert (paper.kind, paper.reconciles) == ("paper", False) and (real.kind, real.reconciles) == ("real", True)


def test_the_sources_implement_bar_source(market):
    replay = ReplaySource(market, 200, 300)
    live = ExchangeSource(None, None, DataConfig(), clock=lambda: pd.Timestamp("2025-01-01", tz="UTC"))
    for source in (replay, live):
        assert_implements(source, BarSource)
    assert (replay.kind, live.kind) == ("replay", "exchange")


def test_the_paper_broker_lacks_nothing_it_must_do_as_a_no_op(market):
    paper = PaperBroker(EnvConfig(), LivePrices("5m"))
    assert paper.prepare() is None and paper.withdraw() is None
    result = paper.reconcile_orders(None, "s")
    assert result.closed == [] and result.opened is None and not result.skipped


def test_a_plain_function_is_a_policy_and_an_explained_one_is_deciding():
    def plain(obs: np.ndarray) -> np.ndarray:
        return np.array([1, 2, 0])

    class Explained:
        def __call__(self, obs: np.ndarray) -> np.ndarray:
            return np.array([2, 0, 1])

        def decide(self, obs: np.ndarray) -> PolicyDecision:
            probs = (np.array([0.1, 0.2, 0.7]), np.array([0.6, 0.4]), np.array([0.3, 0.7]))
            return PolicyDecision(action=(2, 0, 1), confidence=0.7, value=0.5, probabilities=probs, entropy=1.0)

    obs = np.zeros(8)
    assert isinstance(plain, Policy) and not isinstance(plain, DecidingPolicy)
    assert isinstance(Explained(), DecidingPolicy)
    d = decide(plain, obs)
    assert d == PolicyDecision(action=(1, 2, 0)) and d.leverage_probability is None and d.confidence is None
    e = decide(Explained(), obs)
    assert e.action == (2, 0, 1) and e.confidence == 0.7 and e.leverage_probability == 0.6 and e.profile_probability == 0.7


@pytest.mark.parametrize("raw", [np.array([1, 2]), [1, 2, 3, 4], np.zeros((2, 2))])
def test_an_action_that_is_not_three_ints_is_refused(raw):
    with pytest.raises(ValueError, match="expected 3 ints"):
        as_action(raw)
