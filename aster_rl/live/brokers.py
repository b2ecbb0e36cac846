"""Brokers: where the live runner's decisions become positions.

- :class:`PaperBroker` steps the accounting core's single-account stepper
  (:class:`aster_rl.sim.accounting.SingleAccount`, the loop the env and the backtester use)
  over the runner's growing price buffer, reading the buffer's own price matrix (views,
  no copy of the history per bar): a decision at bar *t*'s close fills at bar
  *t + 1*'s open with the same fees, slippage, funding, stops, targets and liquidation.
  Between bars, :meth:`PaperBroker.watch` applies the core's exit rule (liquidation, target,
  stop; same fills and costs) to a polled price, at once.
- :class:`RealBroker` (in :mod:`aster_rl.live.real_broker`) trades on the exchange.

Every broker reports closed trades as dicts with the accounting core's ``TRADE_KEYS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aster_rl.sim.accounting import BUY, CLOSE, OPEN_LONG, OPEN_SHORT, R_END, SELL, WAIT, SingleAccount
from aster_rl.sim.kernels import N_COST, PX_HALF_SPREAD
from aster_rl.config import EnvConfig
from aster_rl.interfaces import Broker
from aster_rl.live.bars import LivePrices

logger = logging.getLogger(__name__)

SIDE_NAMES = {WAIT: "WAIT", BUY: "BUY", SELL: "SELL"}
# why an entry did not result in a position (a prediction's ``exit_reason``: at most 32 characters)
BELOW_MIN_NOTIONAL = "below minimum notional"
REJECTED = "rejected by the exchange"
NOT_FILLED = "not filled"
ABANDONED = "not sent before a restart"
EXPIRED = "expired: not filled at next bar"  # paper: a bar between the decision and its fill was lost
INTENTS = {0: "none", OPEN_LONG: "open_long", OPEN_SHORT: "open_short", CLOSE: "close"}


@dataclass
class BarResult:
    """What a broker saw in one bar."""

    closed: list[dict[str, Any]] = field(default_factory=list)  # trades closed (TRADE_KEYS + slippage_usd)
    opened: dict[str, Any] | None = None  # the position opened in this bar: entry, stop, target, qty, time
    bankrupt: bool = False
    skipped: bool = False  # an entry did not result in a position
    skip_reason: str = BELOW_MIN_NOTIONAL  # why: one of the reasons above
    skip_detail: str | None = None  # more of it, e.g. the exchange's message (added to the prediction's risk note)
    skipped_prediction_id: int | None = None  # the prediction of that entry, when the broker knows it


class _BufferAccount(SingleAccount):
    """``SingleAccount`` over a :class:`LivePrices` buffer: the core reads views of the buffer's
    timestamps and price matrix, taken again (O(1)) by :meth:`bind` when bars arrived, instead
    of a price matrix built from the whole history."""

    def __init__(self, cfg: EnvConfig, prices: LivePrices, book=None) -> None:
        super().__init__(cfg, prices.snapshot(), book=book)
        self.live_prices = prices
        self.bind()

    def bind(self) -> None:
        p = self.live_prices
        self.prices = p.snapshot()
        self._ts = p.timestamps
        self._px = p.matrix


class PaperBroker(Broker):
    """Paper trading on the accounting core, bar by bar (see the module docstring)."""

    kind = "paper"
    reconciles = False  # nothing leaves the process

    def __init__(self, env_cfg: EnvConfig, prices: LivePrices) -> None:
        self.cfg = env_cfg
        self.prices = prices
        self.acc = _BufferAccount(env_cfg, prices)
        self._bound = len(prices)
        # {"ts", "side", "lev_i", "prof_i", "intent"} decided at bar t's close
        self.pending: dict[str, Any] | None = None

    # ------------------------------------------------------------ state
    @property
    def book(self):
        return self.acc.book

    def _sync(self) -> None:
        """Step over the bars known now: the stepper's views of the price buffer taken again (no copy)."""
        n = len(self.prices)
        if n == self._bound:
            return
        self.acc.bind()
        self._bound = n

    @property
    def equity(self) -> float:
        return float(self.book.equity[0])

    @property
    def position_side(self) -> int:
        return int(np.sign(self.book.side[0]))

    def open_positions(self) -> int:
        return int(self.book.side[0] != 0)

    def position(self) -> dict[str, float] | None:
        b = self.book
        if b.side[0] == 0:
            return None
        return {
            "side": float(b.side[0]), "qty": float(b.qty[0]), "entry_price": float(b.entry[0]), "stop_price": float(b.stop[0]),
            "target_price": float(b.target[0]), "leverage": float(b.lev[0]), "liquidation_price": float(b.liq[0]),
        }

    def intended(self, side_action: int) -> str:
        return INTENTS[int(self.book.intended_orders(np.array([side_action]))[0])]

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart (JSON-able): the account's two state
        matrices (every field and counter is a row of them) and the pending order."""
        return {"book": {"F": self.book.F.tolist(), "I": self.book.I.tolist()}, "pending": self.pending}

    def prepare(self) -> None:
        return None  # no exchange to prepare

    def reconcile_orders(self, db: Any, session_id: str, fresh_after_ms: int | None = None) -> BarResult:
        return BarResult()  # no exchange to reconcile with

    def restore(self, state: dict[str, Any]) -> None:
        self._sync()
        book = self.book
        book.F[...] = np.asarray(state["book"]["F"], dtype=book.F.dtype)
        book.I[...] = np.asarray(state["book"]["I"], dtype=book.I.dtype)
        book.begin_bar()
        self.pending = state.get("pending")

    # ------------------------------------------------------------ bars
    def observation(self, features_row: np.ndarray, t: int) -> np.ndarray:
        """The env's observation at bar ``t``'s close (same code: ``SingleAccount.observation``)."""
        self._sync()
        row = np.asarray(features_row, dtype=np.float32)
        return self.acc.observation(np.broadcast_to(row, (t + 1, row.shape[0])), t)  # row t is ``row`` (a view, no copy)

    def on_bar(self, t: int, *, last: bool = False) -> BarResult:
        """Run bar ``t`` (just closed): fill the order decided at ``t - 1``, funding, exits, mark."""
        self._sync()
        book = self.book
        p = self.pending
        self.pending = None
        hold: dict[str, Any] = {"ts": None, "side": WAIT, "lev_i": 0, "prof_i": 0}
        dropped_entry = None
        if p is None:
            if book.side[0] == 0:
                return BarResult()
            p = hold
        elif t == 0 or int(p["ts"]) != int(self.prices.timestamps[t - 1]):
            logger.warning("paper broker: the pending order was decided at %s, not at the previous bar; it is dropped", p["ts"])
            if str(p.get("intent") or "").startswith("open"):
                dropped_entry = p
            p = hold
        elif p.get("intent") is not None and self.intended(int(p["side"])) != p["intent"]:
            # the position changed since the decision (a stop or target hit between bars): a SELL
            # meant to close the long would open a short that neither the policy nor the risk guard saw
            logger.warning("paper broker: the pending %s no longer applies (the position changed since); it is dropped",
                           p["intent"])
            p = hold
        skipped_before = int(book.n_skipped[0])
        bankrupt = self.acc.advance(t - 1, int(p["side"]), int(p["lev_i"]), int(p["prof_i"]), last)
        result = BarResult(closed=[tr for _, tr in book.closed], bankrupt=bool(bankrupt))
        result.skipped = int(book.n_skipped[0]) > skipped_before
        if dropped_entry is not None:
            result.skipped, result.skip_reason = True, EXPIRED
            result.skip_detail = "paper broker: the entry was not filled at the bar after its decision (that bar was not run)"
        ts = int(self.prices.timestamps[t])
        position = self.position()
        if position is not None and int(book.entry_time[0]) == ts:
            result.opened = {**position, "time": ts}
        else:
            opened_and_closed = [tr for tr in result.closed if tr["entry_time"] == ts]
            if opened_and_closed:
                tr = opened_and_closed[0]
                result.opened = {"side": 1.0 if tr["side"] == "long" else -1.0, "qty": tr["qty"], "entry_price": tr["entry_price"],
                                 "stop_price": None, "target_price": None, "leverage": tr["leverage"], "time": ts}
        return result

    def submit(self, t: int, side: int, lev_i: int, prof_i: int) -> None:
        """Decide at bar ``t``'s close; the order fills at the next bar's open, if what it would
        do then (open / close) is still what it meant at the decision."""
        self.pending = {"ts": int(self.prices.timestamps[t]), "side": int(side), "lev_i": int(lev_i), "prof_i": int(prof_i),
                        "intent": self.intended(side)}

    def withdraw(self) -> None:
        """Take back the order submitted at this bar (its decision could not be stored)."""
        self.pending = None

    def entry_skip_reason(self, t: int, side: int, lev_i: int) -> tuple[str, str] | None:
        return None  # the core sizes an entry at its fill (the next bar's open) and reports a skip then

    def planned_orders(self, t: int, side: int, lev_i: int, prof_i: int, ts_ms: int,
                       session_id: str) -> list[dict[str, Any]]:
        return []  # nothing leaves the process: the pending order is part of the stored state

    def execute(self, orders: list[dict[str, Any]], db: Any = None) -> BarResult:
        return BarResult()

    def watch(self, price: float, now_ns: int) -> list[dict[str, Any]]:
        """Between bars: the core's exit rule (:meth:`AccountBook.exits_at`) at ``price``, as if it
        were a bar's open, high and low: liquidation at or past the liquidation price, else the
        target at ``price`` at or past it, else the stop at ``price`` at or past it."""
        book = self.book
        if book.side[0] == 0 or price is None or not np.isfinite(price):
            return []
        n = len(self.prices)
        cost = self.prices.matrix[n - 1, PX_HALF_SPREAD : PX_HALF_SPREAD + N_COST] if n else np.zeros(N_COST)
        book.begin_bar()
        book.exits_at(np.array([0]), price, cost, now_ns)
        closed = [tr for _, tr in book.closed]
        book.closed = []
        for tr in closed:
            logger.info("paper broker: %s between bars at %.6g", tr["reason"], price)
        return closed

    def flatten(self, t: int, reason: str = "kill") -> list[dict[str, Any]]:
        """Close any position at bar ``t``'s close (kill switch / shutdown) and drop the pending order."""
        self._sync()
        self.pending = None
        book = self.book
        if book.side[0] == 0:
            return []
        book.begin_bar()
        cost = self.prices.matrix[t, PX_HALF_SPREAD : PX_HALF_SPREAD + N_COST]
        book.close_positions(np.array([0]), float(self.prices.close[t]), cost, int(self.prices.timestamps[t]), R_END)
        closed = [{**tr, "reason": reason} for _, tr in book.closed]
        book.closed = []
        return closed
