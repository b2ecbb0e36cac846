"""The declared contracts between the rooms: what a policy, a broker and a bar source are.

- :class:`Policy`: ``policy(obs) -> action`` (side, leverage index, profile index). The
  backtester, the agents' baselines and a trained run (``agents.policy.LoadedPolicy``) all
  are one; :class:`DecidingPolicy` adds ``decide(obs) -> PolicyDecision`` (confidence,
  value, the heads' probabilities), which the live runner logs when a policy offers it.
- :class:`Broker`: what :class:`aster_rl.live.runner.LiveRunner` asks of a broker (paper or
  real); capabilities only one kind of broker has are methods every broker implements,
  as no-ops where they mean nothing.
- :class:`BarSource`: what the runner asks of a source of closed bars (replay or exchange).

Classes that implement a contract subclass it explicitly, so the type checker checks them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from aster_rl.data.market import MarketBundle
    from aster_rl.live.bars import Bar, LivePrices
    from aster_rl.live.brokers import BarResult
    from aster_rl.live.sources import SourceBar

Action = np.ndarray | Sequence[int]  # (side, leverage index, profile index)
TickCallback = Callable[[float | None, pd.Timestamp], bool]
ErrorCallback = Callable[[BaseException, int], None]


@runtime_checkable
class Policy(Protocol):
    """Maps one full observation (features + account state) to an action."""

    def __call__(self, obs: np.ndarray) -> Action: ...


@dataclass(frozen=True)
class PolicyDecision:
    """A policy's decision for one observation, with what it knows about it.

    ``probabilities``: per action head (side, leverage, profile), empty when unknown."""

    action: tuple[int, int, int]  # side (WAIT/BUY/SELL), leverage index, profile index
    confidence: float | None = None  # P(side): the side head's probability of the chosen side
    value: float | None = None  # the critic's estimate (training-reward units)
    probabilities: tuple[np.ndarray, ...] = ()
    entropy: float | None = None  # nats, of the whole action distribution (the sum over the heads)
    reason: str | None = None  # why the policy's own choice was overridden (e.g. WAIT outside the training support)

    @property
    def leverage_probability(self) -> float | None:
        """The leverage head's probability of the chosen rung (None when unknown)."""
        return float(self.probabilities[1][self.action[1]]) if len(self.probabilities) > 1 else None

    @property
    def profile_probability(self) -> float | None:
        """The exit-profile head's probability of the chosen profile (None when unknown)."""
        return float(self.probabilities[2][self.action[2]]) if len(self.probabilities) > 2 else None


@runtime_checkable
class DecidingPolicy(Policy, Protocol):
    """A policy that also explains its decision (a trained run does)."""

    def decide(self, obs: np.ndarray) -> PolicyDecision: ...


def as_action(raw: Action) -> tuple[int, int, int]:
    """A policy's output as (side, leverage index, profile index); ValueError if it is not 3 ints."""
    a = np.asarray(raw).reshape(-1)
    if a.shape[0] != 3:
        raise ValueError(f"policy returned {raw!r}: expected 3 ints (side, leverage index, profile index)")
    return int(a[0]), int(a[1]), int(a[2])


class Broker(Protocol):
    """Where the live runner's decisions become positions (paper or on the exchange).

    Trades are dicts with the accounting core's ``TRADE_KEYS``; ``t`` is a bar's index in
    the runner's price buffer ``prices``."""

    kind: str  # "paper" or "real"
    prices: LivePrices
    # orders leave the process: the broker is reconciled with the exchange (reconcile_orders)
    # at start-up and after a failure while orders were in flight
    reconciles: bool

    @property
    def equity(self) -> float: ...

    def prepare(self) -> None:
        """At a fresh session's start, before anything else."""
        ...

    def reconcile_orders(self, db: Any, session_id: str, fresh_after_ms: int | None = None) -> BarResult:
        """Match the stored orders and the tracked position with the exchange."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart (JSON-able)."""
        ...

    def restore(self, state: dict[str, Any]) -> None: ...

    def observation(self, features_row: np.ndarray, t: int) -> np.ndarray:
        """The env's observation at bar ``t``'s close: the feature row + the account state."""
        ...

    def on_bar(self, t: int, *, last: bool = False) -> BarResult:
        """Run bar ``t`` (just closed)."""
        ...

    def intended(self, side_action: int) -> str:
        """What ``side_action`` would do now: ``none``, ``open_long``, ``open_short`` or ``close``."""
        ...

    def open_positions(self) -> int: ...

    def entry_skip_reason(self, t: int, side: int, lev_i: int) -> tuple[str, str] | None:
        """(reason, detail) when no order can carry this entry out, else None."""
        ...

    def planned_orders(self, t: int, side: int, lev_i: int, prof_i: int, ts_ms: int,
                       session_id: str) -> list[dict[str, Any]]:
        """The orders the decision needs, to be stored before they are sent."""
        ...

    def submit(self, t: int, side: int, lev_i: int, prof_i: int) -> None:
        """Take the decision made at bar ``t``'s close."""
        ...

    def withdraw(self) -> None:
        """Take back the decision submitted at this bar (it could not be stored)."""
        ...

    def execute(self, orders: list[dict[str, Any]], db: Any = None) -> BarResult:
        """Send the stored ``orders``."""
        ...

    def watch(self, price: float, now_ns: int) -> list[dict[str, Any]]:
        """Between bars: the trades a polled ``price`` closed."""
        ...

    def flatten(self, t: int, reason: str = "kill") -> list[dict[str, Any]]:
        """Close any position now; the trades closed."""
        ...


class BarSource(Protocol):
    """Closed bars for the live runner, and the market as known at a bar's close."""

    kind: str  # "replay" or "exchange"
    symbol: str
    timeframe: str

    def history(self) -> list[Bar]:
        """Bars known before the first one streamed (the warm-up), oldest first."""
        ...

    def bars_between(self, after: pd.Timestamp, upto: pd.Timestamp) -> list[Bar]:
        """Known bars with open time in ``(after, upto]``."""
        ...

    def bars(self, on_tick: TickCallback | None = None, on_error: ErrorCallback | None = None) -> Iterator[SourceBar]:
        """New closed bars; between bars (when there is time between them) ``on_tick(price, now)``,
        returning False to end the stream, and ``on_error(error, attempt)`` for a failed poll."""
        ...

    def market_at(self, last_open: pd.Timestamp) -> MarketBundle:
        """The whole market known at the close of the bar opening at ``last_open``."""
        ...

    def recent_market(self, last_open: pd.Timestamp, bars: int, since: pd.Timestamp | None = None) -> MarketBundle:
        """Its last ``bars`` bars (and back to ``since`` when that is earlier)."""
        ...

    def now(self) -> pd.Timestamp: ...

    def last_price(self) -> float | None:
        """The last traded price between bars, None when unknown."""
        ...
