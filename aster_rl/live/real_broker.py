"""Real trading on the exchange through :class:`aster_rl.exchange.client.ExchangeClient` (ccxt).

- Isolated margin is set once (``NoChange`` from the exchange is fine), the leverage
  before every entry.
- An entry is a market order; right after its fill, reduce-only ``STOP_MARKET`` and
  ``TAKE_PROFIT_MARKET`` orders sit on the exchange at the exit profile's ATR distances
  from the fill, so the position is protected even when the runner is down.
- Client order ids are deterministic (session, decision time, kind): a retried request
  (the client retries temporary errors) or a restart re-sends the SAME id, and the
  exchange refuses a second order with it ("ClientOrderId is duplicated"); the broker
  then reads the first order back instead of placing another.
- Every order is written to the database before it is sent (the runner stores the bar's
  orders; the broker stores those it makes up itself: a re-sized stop, a close), and its
  status, exchange id and fill are written back after the reply.
- An entry that opens no position says why (``BarResult.skip_reason`` / ``skip_detail``):
  below the minimum notional (known before any order: none is placed), rejected by the
  exchange (its message), not filled (an order still resting is cancelled), or stored
  but not sent before a restart while its decision went stale. Its stop and target are
  then never sent.

The real-money invariants, enforced against the exchange's own view (position and open
orders) after every entry, on every bar and on every restart (:meth:`RealBroker._protect`):

1. an open position has a resting reduce-only stop of exactly its size (a partial fill
   is protected for what filled, and the protection grows with later fills); a stop that
   cannot be placed means flatten, with a risk event;
2. flatten sends the reduce-only close first and cancels protective orders only once the
   position is flat; a close that does not fill leaves them resting;
3. an order without a reply (timeout, 5xx: "unknown" on Aster) is looked up by its client
   id until the exchange says what it is; never taken as unsent;
4. protective orders die with their position: a stop, target, signal or outside close
   cancels every protective order left; a position nobody tracks is adopted and protected;
5. a restart reconciles first (:meth:`RealBroker.reconcile_orders`): stored orders without
   a known outcome are looked up, pending entries resolved, the position matched.

What a call found before a failure stopped it (a closed trade, a skipped or opened entry)
is delivered with the next call, and kept in the broker's state meanwhile.

A closed trade's PnL and fees are the exchange's own (the account's fills: realized PnL
minus commission, from the entry's first fill until flat), or estimated from prices and
the taker fee when the fills cannot be read. Funding is not read back (it needs the
income history) and is reported as 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from typing import Any

import numpy as np

from aster_rl.sim.accounting import BUY, SELL
from aster_rl.config import EnvConfig, LiveConfig, Secrets
from aster_rl.errors import (
    ConfigError, ExchangeError, FlattenFailed, OrderNotFound, OrderRejected, OrderStateUnknown, TemporaryExchangeError,
)
from aster_rl.exchange.client import check_trading_keys
from aster_rl.interfaces import Broker
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import ABANDONED, BELOW_MIN_NOTIONAL, NOT_FILLED, REJECTED, BarResult
from aster_rl.sim.observation import EquityReference, account_state, build_observation
from aster_rl.storage import live_store

logger = logging.getLogger(__name__)

CONFIRMATION = "I-UNDERSTAND"
RESOLVE_ROUNDS = 3  # send / look-up rounds for an order without a reply (each round: the client's own retries)
STOP_TYPE, TARGET_TYPE = "STOP_MARKET", "TAKE_PROFIT_MARKET"
PROTECTIVE_KINDS = ("stop", "target")
CLOSING_KINDS = ("exit", "close", "kill")


def check_real_trading_allowed(real_flag: bool, confirmation: str | None, secrets: Secrets) -> None:
    """Refuse real trading unless --real, the typed/passed confirmation and keys from the environment are all there."""
    if not real_flag:
        raise ConfigError("real trading needs --real (without it the runner trades on paper)")
    if confirmation != CONFIRMATION:
        raise ConfigError(f"real trading needs the confirmation {CONFIRMATION!r} (type it when asked, or pass --confirm {CONFIRMATION})")
    if not secrets.has_trading_keys:
        raise ConfigError("real trading needs ASTER_PRIVATE_KEY in the environment; none was found")
    check_trading_keys(secrets)  # a malformed key or a wallet address of another key: one line, before any download


def client_order_id(session_id: str, ts_ms: int, kind: str) -> str:
    """Deterministic and short (Aster allows 36 characters): ``ar<session hash><decision time><kind>``."""
    tag = hashlib.sha1(session_id.encode()).hexdigest()[:8]
    return f"ar{tag}{int(ts_ms) // 1000:x}{kind}"


class RealBroker(Broker):
    """Trades on the exchange through the project's client, under the real-money invariants."""

    kind = "real"
    reconciles = True

    def __init__(self, client: Any, symbol: str, env_cfg: EnvConfig, live_cfg: LiveConfig, prices: LivePrices) -> None:
        self.client = client
        self.symbol = symbol
        self.cfg = env_cfg
        self.live = live_cfg
        self.prices = prices
        self.trade: dict[str, Any] | None = None  # the position this runner tracks (opened or adopted)
        self.equity_ref: EquityReference | None = None  # the equity-change observation's reference (the env's rule)
        self.flattening: dict[str, Any] | None = None  # a close in flight whose fill is not confirmed yet
        self.events: list[dict[str, Any]] = []  # risk events this broker raised (also stored when bound)
        self._equity = float("nan")
        self._pos: dict[str, Any] | None = None
        self._n_positions = 0
        self._db: Any = None
        self._session: str | None = None
        self._flat_checked = False  # flat, no trade, and no order of ours rested at the last look
        self._unknown = False  # an order of unknown state is stored: look it up on the next bar
        self._carry = BarResult()  # what a call produced before it failed: delivered with the next one

    def _deliver(self) -> BarResult:
        out, self._carry = self._carry, BarResult()
        return out

    def bind(self, db: Any, session_id: str) -> None:
        """Where the orders this broker makes up itself and its risk events are stored."""
        self._db, self._session = db, session_id

    # ------------------------------------------------------------ exchange reads
    def _ex(self):
        return self.client.exchange

    def prepare(self) -> None:
        self.client.market(self.symbol)
        try:
            self.client.call("set_margin_mode", self._ex().set_margin_mode, "isolated", self.symbol)
        except ExchangeError as e:
            if "-4048" in str(e):  # a position is open (reconciliation adopts it): the mode stays as it is for now
                logger.warning("margin mode not set: %s", e)
            elif "NoChange" not in str(e) and "No need to change" not in str(e):
                raise
        self.refresh()
        if self.equity_ref is None:
            self.equity_ref = EquityReference(self.cfg.episode_length, self._equity)

    def refresh(self) -> None:
        bal = self.client.call("fetch_balance", self._ex().fetch_balance)
        total = float((bal.get("USDT") or {}).get("total") or 0.0)
        positions = self.client.call("fetch_positions", self._ex().fetch_positions)
        open_ = [p for p in positions if float(p.get("contracts") or 0) != 0]
        self._n_positions = len(open_)
        mine = [p for p in open_ if p.get("symbol") == self.symbol]
        self._pos = mine[0] if mine else None
        upnl = sum(float(p.get("unrealizedPnl") or 0.0) for p in open_)
        self._equity = total + upnl

    @property
    def equity(self) -> float:
        return self._equity

    def open_positions(self) -> int:
        return self._n_positions

    @property
    def position_side(self) -> int:
        if self._pos is None:
            return 0
        return 1 if self._pos.get("side") == "long" else -1

    @property
    def position_qty(self) -> float:
        return abs(float(self._pos.get("contracts") or 0)) if self._pos is not None else 0.0

    def intended(self, side_action: int) -> str:
        s = self.position_side
        if s == 0:
            return {BUY: "open_long", SELL: "open_short"}.get(side_action, "none")
        if (s > 0 and side_action == SELL) or (s < 0 and side_action == BUY):
            return "close"
        return "none"

    def observation(self, features_row: np.ndarray, t: int) -> np.ndarray:
        p = self._pos
        mark = float(self.prices.close[t])
        if p is None:
            state = account_state([0], [0], self.cfg.max_leverage, [0], [0], [0], [mark], [0], [self._equity], self._reference())
        else:
            side = 1.0 if p.get("side") == "long" else -1.0
            lev = float(p.get("leverage") or 1)
            qty = float(p.get("contracts") or 0)
            entry = float(p.get("entryPrice") or mark)
            margin = float(p.get("initialMargin") or qty * entry / lev)
            bars = (self.trade or {}).get("bars", 0)
            state = account_state(
                [side], [lev], self.cfg.max_leverage, [side * qty * (mark - entry)], [margin], [bars], [mark],
                [float(p.get("liquidationPrice") or 0)], [self._equity], self._reference(),
            )
        return build_observation(np.asarray(features_row, dtype=np.float32), state[0])

    def _reference(self) -> float:
        return self.equity_ref.value if self.equity_ref is not None else self._equity

    def _open_orders(self) -> list[dict[str, Any]]:
        return self.client.call("fetch_open_orders", self._ex().fetch_open_orders, self.symbol)

    # ------------------------------------------------------------ orders
    def _place(self, order: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Place one stored order: (the ccxt order, None), or (None, the exchange's message)
        when the exchange rejected it.

        A reply that never came (timeout, 5xx past the client's retries) leaves the order's
        state unknown: it is looked up by its client id, and sent again with the SAME id
        only when the exchange says it has no such order (a second order with that id would
        be refused anyway). Still unknown after :data:`RESOLVE_ROUNDS` rounds:
        :class:`OrderStateUnknown`, the order stays ``unknown`` in the database and is looked
        up again later; it is never taken as unsent."""
        cid = order["client_order_id"]
        params: dict[str, Any] = {"clientOrderId": cid}
        if order["kind"] in PROTECTIVE_KINDS or order["kind"] in CLOSING_KINDS:
            params["reduceOnly"] = True
        if order["kind"] == "stop":
            params["stopLossPrice"] = order["trigger_price"]
        elif order["kind"] == "target":
            params["takeProfitPrice"] = order["trigger_price"]
        last: Exception | None = None
        self._flat_checked = False
        for _ in range(RESOLVE_ROUNDS):
            try:
                placed = self.client.call(
                    f"create_order {cid}", self._ex().create_order, self.symbol, "market", order["side"], order["qty"], None, params
                )
            except OrderRejected as e:  # maybe only a retry was: an earlier try without a reply may have placed it
                try:
                    placed = self._lookup(cid)
                except TemporaryExchangeError as e2:
                    last = e2
                    continue
                if placed is None:
                    logger.warning("order %s rejected: %s", cid, e)
                    self._update(cid, status="rejected")
                    return None, str(e)
                logger.warning("order %s: a retry was rejected (%s), but an earlier try had placed it", cid, e)
            except TemporaryExchangeError as e:
                last = e
                logger.warning("order %s: no reply (%s); its state is unknown, looking it up", cid, e)
                self._update(cid, status="unknown")
                try:
                    placed = self._lookup(cid)
                except TemporaryExchangeError as e2:
                    last = e2
                    continue  # still unknown: sending the same id again is safe (a duplicate is refused)
                if placed is None:
                    logger.info("order %s never reached the exchange; sending it again (same id)", cid)
                    continue
            except ExchangeError as e:
                if "-4116" not in str(e) and "duplicated" not in str(e).lower():
                    raise
                logger.info("order %s was already placed (an earlier try reached the exchange); reading it back", cid)
                placed = self._lookup(cid)
                if placed is None:
                    raise
            self._record_reply(cid, placed)
            return placed, None
        self._update(cid, status="unknown")
        self._unknown = True
        raise OrderStateUnknown(f"order {cid}: sent, but its state is still unknown after {RESOLVE_ROUNDS} look-ups ({last})")

    def fetch(self, cid: str) -> dict[str, Any]:
        return self.client.call(f"fetch_order {cid}", self._ex().fetch_order, None, self.symbol, {"clientOrderId": cid})

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        """The exchange's order with this client id, None when it has none; a failed look-up raises."""
        try:
            return self.fetch(cid)
        except OrderNotFound:
            return None

    def _record_reply(self, cid: str, placed: dict[str, Any]) -> None:
        status = {"closed": "filled", "open": "open", "canceled": "canceled", "expired": "canceled", "rejected": "rejected"}.get(
            str(placed.get("status")), str(placed.get("status"))
        )
        self._update(
            cid, status=status, exchange_order_id=str(placed.get("id")),
            fill_price=float(placed["average"]) if placed.get("average") else None,
            filled_qty=float(placed.get("filled") or 0.0),
        )

    def _update(self, cid: str, **fields: Any) -> None:
        if self._db is not None:
            try:
                live_store.update_order(self._db, cid, **fields)
            except KeyError:  # made up by this broker without a database row (no database bound)
                logger.debug("order %s has no stored row", cid)

    def _store(self, order: dict[str, Any]) -> None:
        """An order this broker made up itself: stored before it is sent (its size and
        trigger updated when the row exists)."""
        if self._db is None or self._session is None:
            return
        row = {k: order[k] for k in ("client_order_id", "kind", "side", "qty", "trigger_price", "ts")}
        row["prediction_id"] = (self.trade or {}).get("prediction_id")
        live_store.add_orders(self._db, self._session, [row])
        self._update(order["client_order_id"], qty=float(order["qty"]), trigger_price=order["trigger_price"])

    def _event(self, rule: str, action: str, reason: str) -> None:
        ts = int(self.prices.timestamps[-1]) // 1_000_000 if len(self.prices) else 0
        ev = {"ts": ts, "rule": rule, "action": action, "reason": reason}
        logger.warning("%s %s: %s", rule, action, reason)
        self.events.append(ev)
        if self._db is not None and self._session is not None:
            live_store.add_risk_events(self._db, self._session, [ev])

    def _cancel(self, cid: str | None) -> None:
        if not cid:
            return
        try:
            self.client.call(f"cancel_order {cid}", self._ex().cancel_order, None, self.symbol, {"clientOrderId": cid})
            self._update(cid, status="canceled")
        except OrderNotFound as e:  # already filled or gone (a failed cancel raises: the next check cancels again)
            logger.info("cancel %s: %s", cid, e)

    def _cancel_orders(self, orders: list[dict[str, Any]]) -> None:
        for o in orders:
            self._cancel(o.get("clientOrderId"))

    def _qty(self, equity: float, lev: float, price: float) -> float:
        step = self.cfg.qty_step
        qty = math.floor(self.cfg.margin_fraction * equity * lev / price / step + 1e-9) * step
        return round(qty, 10)

    def entry_skip_reason(self, t: int, side: int, lev_i: int) -> tuple[str, str] | None:
        """Why an entry decided now would place no order (``(reason, detail)``), or None: sized from
        the equity, it is below the exchange's minimum notional."""
        if not self.intended(side).startswith("open"):
            return None
        price = float(self.prices.close[t])
        notional = self._qty(self._equity, float(self.cfg.leverages[lev_i]), price) * price
        if notional < self.cfg.min_notional_usd:
            return BELOW_MIN_NOTIONAL, f"notional {notional:.2f} USD below the minimum {self.cfg.min_notional_usd:g} USD"
        return None

    def planned_orders(self, t: int, side: int, lev_i: int, prof_i: int, ts_ms: int, session_id: str) -> list[dict[str, Any]]:
        self._session = self._session or session_id
        intent = self.intended(side)
        price = float(self.prices.close[t])
        if intent.startswith("open"):
            lev = float(self.cfg.leverages[lev_i])
            qty = self._qty(self._equity, lev, price)
            skip = self.entry_skip_reason(t, side, lev_i)
            if skip is not None:
                logger.warning("entry skipped: %s", skip[1])
                return []
            sgn = 1.0 if intent == "open_long" else -1.0
            profile = list(self.cfg.exit_profiles)[prof_i]
            p = self.cfg.exit_profiles[profile]
            atr = float(self.prices.atr[t])
            entry_side, exit_side = ("buy", "sell") if sgn > 0 else ("sell", "buy")
            common = {"ts": ts_ms, "qty": qty}
            return [
                {**common, "client_order_id": client_order_id(session_id, ts_ms, "e"), "kind": "entry", "side": entry_side,
                 "trigger_price": float(lev)},  # the entry's trigger_price column carries its leverage
                {**common, "client_order_id": client_order_id(session_id, ts_ms, "s"), "kind": "stop", "side": exit_side,
                 "trigger_price": self._tick(price - sgn * p.stop_atr * atr)},
                {**common, "client_order_id": client_order_id(session_id, ts_ms, "t"), "kind": "target", "side": exit_side,
                 "trigger_price": self._tick(price + sgn * p.target_atr * atr)},
            ]
        if intent == "close" and self._pos is not None:
            exit_side = "sell" if self.position_side > 0 else "buy"
            return [{"ts": ts_ms, "qty": self.position_qty, "client_order_id": client_order_id(session_id, ts_ms, "x"), "kind": "exit",
                     "side": exit_side, "trigger_price": None}]
        return []

    def _tick(self, price: float) -> float:
        tick = self.cfg.price_tick
        return round(max(round(price / tick) * tick, tick), 10)

    def submit(self, t: int, side: int, lev_i: int, prof_i: int) -> None:
        return None  # orders go out in execute(), after the runner stored them

    def withdraw(self) -> None:
        return None  # nothing was sent: orders go out only in execute()

    # ------------------------------------------------------------ a bar's orders
    def execute(self, orders: list[dict[str, Any]], db: Any = None) -> BarResult:
        """Send stored orders: an entry (then protection sized to its fill), or an exit."""
        if db is not None:
            self._db = db
        self._execute(orders, self._carry)
        return self._deliver()

    def _execute(self, orders: list[dict[str, Any]], result: BarResult) -> None:
        by_kind = {o["kind"]: o for o in orders}
        if "entry" in by_kind:
            self._enter(by_kind, result)  # ends with the account read again
        if "exit" in by_kind and self._pos is not None:
            try:
                result.closed.extend(self._close(by_kind["exit"], "signal"))
            except FlattenFailed as e:  # the position stays open and protected; the policy decides again next bar
                logger.warning("exit not carried out: %s", e)
                self.refresh()

    def _enter(self, by_kind: dict[str, dict[str, Any]], result: BarResult) -> None:
        entry = by_kind["entry"]
        lev = int(entry["trigger_price"])
        self.client.call("set_leverage", self._ex().set_leverage, lev, self.symbol)
        planned_price = float(self.prices.close[-1])
        try:
            placed, rejection = self._place(entry)
        except OrderStateUnknown as e:  # it may have opened a position: the exchange's position says
            logger.warning("entry %s: %s; the position on the exchange decides", entry["client_order_id"], e)
            self.refresh()
            self._protect(result)
            return
        if placed is None or not placed.get("filled"):
            result.skipped = True
            if placed is None:
                result.skip_reason, result.skip_detail = REJECTED, f"exchange rejected: {rejection}"
            else:
                result.skip_reason, result.skip_detail = NOT_FILLED, self._not_filled(entry, placed)
            for kind in ("stop", "target"):  # their entry never opened: they are never sent
                self._update(by_kind[kind]["client_order_id"], status="abandoned")
            self.refresh()
            return
        fill = float(placed.get("average") or planned_price)
        shift = fill - planned_price  # stops and targets keep their ATR distances from the actual fill
        pid = entry.get("prediction_id")
        if pid is None and self._db is not None and self._session is not None:
            pid = live_store.prediction_id_at(self._db, self._session, int(entry["ts"]))
        self.trade = self._new_trade(
            entry, placed, stop_price=self._tick(by_kind["stop"]["trigger_price"] + shift),
            target_price=self._tick(by_kind["target"]["trigger_price"] + shift), prediction_id=pid,
        )
        result.opened = self._opened()
        self.refresh()
        self._protect(result)  # stop and target sized to what the exchange holds

    def _new_trade(self, entry: dict[str, Any], placed: dict[str, Any] | None, *, stop_price: float, target_price: float,
                   prediction_id: int | None) -> dict[str, Any]:
        cid = entry["client_order_id"]
        qty = float((placed or {}).get("filled") or self.position_qty)
        fill = float((placed or {}).get("average") or (self._pos or {}).get("entryPrice") or self.prices.close[-1])
        return {
            "side": 1.0 if entry["side"] == "buy" else -1.0, "qty": qty, "entry_price": fill,
            "entry_time": int(self.prices.timestamps[-1]), "leverage": float(entry.get("trigger_price") or 1),
            "base": cid[:-1], "entry_id": cid, "entry_oid": str((placed or {}).get("id") or ""),
            "opened_ms": int((placed or {}).get("timestamp") or 0), "ts": int(entry["ts"]),
            "stop_id": cid[:-1] + "s", "target_id": cid[:-1] + "t", "stop_gen": 0, "target_gen": 0,
            "stop_price": stop_price, "target_price": target_price, "target_refused": None,
            "fees": self.cfg.taker_fee_rate * qty * fill, "bars": 0, "prediction_id": prediction_id, "closes": 0,
        }

    def _tracked(self) -> dict[str, Any]:
        """The tracked trade (only called where one is tracked)."""
        if self.trade is None:
            raise RuntimeError("real broker: no tracked trade")
        return self.trade

    def _opened(self) -> dict[str, Any]:
        tr = self._tracked()
        return {**{k: tr[k] for k in ("side", "qty", "entry_price", "stop_price", "target_price", "leverage", "prediction_id")},
                "time": tr["entry_time"]}

    def _not_filled(self, entry: dict[str, Any], placed: dict[str, Any]) -> str:
        """An entry the exchange accepted but did not fill: cancelled if it still rests there
        (it must not open a position later, unseen); the detail for the prediction."""
        if placed.get("status") == "open":
            self._cancel(entry["client_order_id"])
        info = _info(placed)
        status = str(info.get("status") or placed.get("status"))  # the exchange's own word for it
        logger.warning("entry %s not filled (status %s); no position", entry["client_order_id"], status)
        return f"exchange not filled: order status {status}"

    # ------------------------------------------------------------ invariants 1 and 4
    def _protect(self, result: BarResult) -> None:
        """Make the exchange match the invariants, from its own view (position, open orders):

        - no position: a tracked trade has closed (stop, target, or someone else); every
          protective order left and any working entry are cancelled (none outlives its position);
        - a position nobody tracks (an entry whose reply was lost, a restart): it is adopted,
          tracked and protected, and named on the prediction of its entry when one is stored;
        - the position's resting stop (and target) must cover exactly its size: a partial
          fill gets protection for what filled, grown with later fills (the new order first,
          then the old one cancelled);
        - a stop that cannot be placed (rejected, or its state unknown) means flatten, with a
          risk event.
        """
        if self._pos is None and self.trade is None and self._flat_checked:
            return  # flat, and nothing was sent since the last look found no order resting
        opens = self._open_orders()
        self._flat_checked = False
        mine = [o for o in opens if str(o.get("clientOrderId") or "").startswith("ar")]
        protective = [o for o in opens if _protective_type(o)]
        if self._pos is None:  # cancel first: a failure leaves the trade tracked, its close found again next time
            self._cancel_orders(protective + [o for o in mine if not _reduce_only(o)])
            if self.trade is not None:
                result.closed.extend(self._closed_on_exchange())
                self.flattening = None
            self._flat_checked = True
            return
        side = 1.0 if self.position_side > 0 else -1.0
        if self.trade is None or self.trade["side"] != side:
            self._adopt(result)
        tr = self._tracked()
        qty = self.position_qty
        if abs(tr["qty"] - qty) > 1e-9:
            logger.info("position %s -> %s (fills after the entry); protection follows", tr["qty"], qty)
            tr["fees"] += self.cfg.taker_fee_rate * max(qty - tr["qty"], 0.0) * float(self._pos.get("entryPrice") or tr["entry_price"])
            tr["qty"], tr["entry_price"] = qty, float(self._pos.get("entryPrice") or tr["entry_price"])
        exit_side = "sell" if side > 0 else "buy"
        self._cancel_orders([o for o in protective if o.get("side") != exit_side])
        stops = [o for o in protective if _protective_type(o) == STOP_TYPE and o.get("side") == exit_side]
        targets = [o for o in protective if _protective_type(o) == TARGET_TYPE and o.get("side") == exit_side]
        if not _covers(stops, qty):
            try:
                problem = self._resize("stop", stops, qty, exit_side)
            except OrderStateUnknown as e:
                problem = str(e)
            if problem is not None:
                self._event("stop", "flattened", f"the stop for {qty:g} could not be placed ({problem}); flattening")
                result.closed.extend(self._flatten("unprotected"))
                return
        if not _covers(targets, qty) and tr.get("target_refused") != qty:
            try:
                problem = self._resize("target", targets, qty, exit_side)
            except OrderStateUnknown as e:
                problem = str(e)
            if problem is not None:  # the stop protects; the target is tried again when the size changes
                logger.warning("target for %s not placed: %s", qty, problem)
                tr["target_refused"] = qty

    def _resize(self, kind: str, old: list[dict[str, Any]], qty: float, exit_side: str) -> str | None:
        """Place ``kind`` for ``qty`` (a new generation of client id when the current one is
        used up), then cancel ``old``; the exchange's message when it was rejected."""
        tr = self._tracked()
        for _ in range(RESOLVE_ROUNDS):
            cid = tr[f"{kind}_id"]
            order = {"client_order_id": cid, "kind": kind, "side": exit_side, "qty": qty,
                     "trigger_price": tr[f"{kind}_price"], "ts": tr["ts"]}
            self._store(order)
            placed, rejection = self._place(order)
            if placed is None:
                return rejection
            if placed.get("status") == "open" and abs(float(placed.get("amount") or 0) - qty) < 1e-9:
                self._cancel_orders([o for o in old if o.get("clientOrderId") != cid])
                return None
            tr[f"{kind}_gen"] += 1  # that id was an earlier order (filled, cancelled, other size)
            tr[f"{kind}_id"] = f"{tr['base']}{kind[0]}{tr[f'{kind}_gen']}"
        return f"no usable client id for the {kind}"

    def _adopt(self, result: BarResult) -> None:
        """Track and protect a position this runner does not know: its stored entry (the
        newest of this session on that side, looked up on the exchange) names the prediction."""
        pos = self._pos
        if pos is None:
            raise RuntimeError("real broker: no position to adopt")
        side = "buy" if self.position_side > 0 else "sell"
        entry = self._stored_entry(side)
        placed = None
        if entry is not None:
            try:
                placed = self._lookup(entry["client_order_id"])
            except TemporaryExchangeError:
                placed = None
            if placed is not None:
                self._record_reply(entry["client_order_id"], placed)
        entry_px = float(pos.get("entryPrice") or self.prices.close[-1])
        sgn = 1.0 if side == "buy" else -1.0
        if entry is not None:
            stop, target = self._stored_trigger(entry, "s"), self._stored_trigger(entry, "t")
        else:  # not this runner's: protect it at the first exit profile's distances
            ts_ms = int(self.prices.timestamps[-1]) // 1_000_000 if len(self.prices) else 0
            entry = {"client_order_id": client_order_id(self._session or "adopted", ts_ms, "a") + "e", "side": side,
                     "trigger_price": float(pos.get("leverage") or 1), "ts": ts_ms}
            stop = target = None
        if stop is None or target is None:
            p = next(iter(self.cfg.exit_profiles.values()))
            atr = float(self.prices.atr[-1]) if len(self.prices) else 0.0
            stop = self._tick(entry_px - sgn * p.stop_atr * atr)
            target = self._tick(entry_px + sgn * p.target_atr * atr)
        trade = self._new_trade(entry, placed if placed and placed.get("filled") else None, stop_price=stop,
                                target_price=target, prediction_id=entry.get("prediction_id"))
        trade["qty"], trade["entry_price"] = self.position_qty, entry_px
        self.trade = trade
        self._event("reconcile", "adopted", f"untracked {pos.get('side')} position of {self.position_qty:g} at "
                    f"{entry_px:g}: tracked and protected (entry {entry['client_order_id']})")
        result.opened = self._opened()

    def _stored_entry(self, side: str) -> dict[str, Any] | None:
        """The newest stored entry on ``side`` that may have opened a position and whose
        prediction is still pending (one already resolved belongs to a trade that is over)."""
        if self._db is None or self._session is None:
            return None
        preds = live_store.predictions(self._db, session_id=self._session)
        pending = set(preds.loc[preds["status"] == "pending", "id"].astype(int))
        entries = [o for o in live_store.orders(self._db, self._session) if o["kind"] == "entry" and o["side"] == side
                   and o.get("prediction_id") in pending
                   and (o.get("filled_qty") or o["status"] not in ("rejected", "abandoned", "canceled"))]
        return entries[-1] if entries else None

    def _stored_trigger(self, entry: dict[str, Any], kind: str) -> float | None:
        if self._db is None or self._session is None:
            return None
        cid = entry["client_order_id"][:-1] + kind
        rows = [o for o in live_store.orders(self._db, self._session) if o["client_order_id"] == cid]
        return float(rows[0]["trigger_price"]) if rows and rows[0]["trigger_price"] else None

    # ------------------------------------------------------------ closing
    def _closed_on_exchange(self) -> list[dict[str, Any]]:
        """The tracked position is gone: which order closed it (stop, target, a close in flight,
        or someone else)."""
        tr = self._tracked()
        reason = "external"
        if self.flattening is not None:
            reason = self.flattening["reason"]
        elif self._db is not None and self._session is not None and any(
            o["client_order_id"].startswith(tr["base"] + "k") and o["filled_qty"]
            for o in live_store.orders(self._db, self._session, statuses=("filled",))
        ):
            reason = "flatten"  # this runner's own close, its reason lost with the process that sent it
        for kind in ("stop", "target"):
            o = self._lookup(tr[f"{kind}_id"])
            if o is not None and o.get("status") == "closed" and o.get("filled"):
                reason = kind
                self._record_reply(tr[f"{kind}_id"], o)
        return [self._closed(reason)]

    def _close(self, order: dict[str, Any], reason: str) -> list[dict[str, Any]]:
        """Invariant 2: the reduce-only close first; protection is cancelled only once the
        position is flat. A close that does not flatten raises :class:`FlattenFailed` with the
        protection still resting (``flattening`` stays set while the close's state is unknown)."""
        working = [o for o in self._open_orders() if str(o.get("clientOrderId") or "").startswith("ar") and not _reduce_only(o)]
        self._cancel_orders(working)  # a working entry would open the position again behind the close
        self.flattening = {"cid": order["client_order_id"], "reason": reason}
        try:
            placed, rejection = self._place(order)
        except OrderStateUnknown as e:
            raise FlattenFailed(f"close {order['client_order_id']}: {e}; the stop and target stay on the exchange") from e
        self.refresh()
        if self._pos is not None:
            self.flattening = None
            why = f"rejected: {rejection}" if placed is None else f"{self.position_qty:g} still open"
            raise FlattenFailed(f"close {order['client_order_id']} did not flatten ({why}); the stop and target stay on the exchange")
        self._cancel_orders([o for o in self._open_orders() if _protective_type(o)])
        closed: list[dict[str, Any]] = []
        if self.trade is not None and (placed is None or not placed.get("filled")):
            closed = self._closed_on_exchange()  # flat before the close arrived: a stop, a target, someone else
        elif self.trade is not None:
            closed = [self._closed(reason)]
        self.flattening = None
        return closed

    def _flatten(self, reason: str) -> list[dict[str, Any]]:
        tr = self._tracked()
        if self.flattening is not None:  # a close whose state is unknown: the same order again (a duplicate is refused)
            cid = self.flattening["cid"]
        elif tr is not None:
            tr["closes"] = int(tr.get("closes", 0)) + 1
            cid = f"{tr['base']}k{tr['closes']}"
        else:
            ts_ms = int(self.prices.timestamps[-1]) // 1_000_000 if len(self.prices) else 0
            cid = client_order_id(self._session or "flatten", ts_ms, "k")
        order = {"client_order_id": cid, "kind": "close", "side": "sell" if self.position_side > 0 else "buy",
                 "qty": self.position_qty, "trigger_price": None, "ts": (tr or {}).get("ts", 0)}
        self._store(order)
        return self._close(order, reason)

    def _closed(self, reason: str) -> dict[str, Any]:
        """The closed trade's record: PnL and fees from the exchange's own fills when they can
        be read, else from the fill prices and the taker fee."""
        tr = self._tracked()
        realized = self._realized(tr)  # read before the trade is let go: a failed read leaves it tracked
        self.trade = None
        if realized is not None:
            pnl, fees, exit_price = realized
        else:
            exit_price = float(self.prices.close[-1])
            fees = tr["fees"] + self.cfg.taker_fee_rate * tr["qty"] * exit_price
            pnl = tr["side"] * tr["qty"] * (exit_price - tr["entry_price"]) - fees
        return {
            "entry_time": tr["entry_time"], "exit_time": int(self.prices.timestamps[-1]),
            "side": "long" if tr["side"] > 0 else "short", "leverage": tr["leverage"], "profile": "",
            "entry_price": tr["entry_price"], "exit_price": exit_price, "qty": tr["qty"], "pnl_usd": pnl,
            "fees_usd": fees, "funding_usd": 0.0, "slippage_usd": 0.0, "reason": reason, "prediction_id": tr.get("prediction_id"),
        }

    def _realized(self, tr: dict[str, Any]) -> tuple[float, float, float] | None:
        """(PnL after fees, fees, average exit price) from the account's fills, from the entry
        order's first fill until the position is flat again; None when they do not show it
        (a temporary failure to read them raises)."""
        if not tr.get("entry_oid") and tr.get("entry_id"):
            entry = self._lookup(tr["entry_id"])
            if entry is not None and entry.get("filled"):
                tr["entry_oid"], tr["opened_ms"] = str(entry.get("id")), int(entry.get("timestamp") or 0)
        if not tr.get("entry_oid"):
            logger.debug("trade %s: no entry order id", tr.get("entry_id"))
            return None
        try:
            fills = self.client.call("fetch_my_trades", self._ex().fetch_my_trades, self.symbol, max(int(tr["opened_ms"]) - 1, 0))
        except TemporaryExchangeError:
            raise
        except ExchangeError as e:
            logger.warning("fills not readable (%s): PnL estimated from prices", e)
            return None
        fills = sorted(fills, key=lambda f: (int(f.get("timestamp") or 0), int(f["id"]) if str(f.get("id")).isdigit() else 0))
        start = next((i for i, f in enumerate(fills) if str(f.get("order")) == tr["entry_oid"]), None)
        if start is None:
            logger.debug("trade %s: entry %s not among the fills %s", tr["entry_id"], tr["entry_oid"], [f.get("order") for f in fills])
            return None
        pos = pnl = fees = exit_qty = exit_cost = 0.0
        for f in fills[start:]:
            sgn = 1.0 if f.get("side") == "buy" else -1.0
            amount = float(f.get("amount") or 0)
            pos += sgn * amount
            pnl += float((f.get("info") or {}).get("realizedPnl") or 0)
            info = f.get("info") or {}  # the exchange's own figures (ccxt's fee is re-formatted)
            fees += float(info["commission"]) if info.get("commission") is not None else float((f.get("fee") or {}).get("cost") or 0)
            if sgn != tr["side"]:
                exit_qty += amount
                exit_cost += amount * float(f.get("price") or 0)
            if abs(pos) < 1e-9:
                return pnl - fees, fees, exit_cost / exit_qty if exit_qty else float(self.prices.close[-1])
        logger.debug("trade %s: the fills do not end flat", tr["entry_id"])
        return None

    # ------------------------------------------------------------ each bar
    def on_bar(self, t: int, *, last: bool = False) -> BarResult:
        self.refresh()
        if self.equity_ref is not None:
            self.equity_ref.step(self._equity)
        if self.trade is not None:
            self.trade["bars"] = int(self.trade.get("bars", 0)) + 1
        self._resolve_unknown(self._carry)
        self._protect(self._carry)
        return self._deliver()

    def _resolve_unknown(self, result: BarResult) -> None:
        """Orders stored as ``unknown`` (sent, no reply) are looked up until the exchange says;
        an entry it never received resolves its prediction as not sent."""
        if self._db is None or self._session is None or not self._unknown:
            return
        self._unknown = False
        for order in live_store.orders(self._db, self._session, statuses=("unknown",)):
            cid = order["client_order_id"]
            try:
                found = self._lookup(cid)
            except TemporaryExchangeError as e:
                logger.warning("order %s: state still unknown (%s)", cid, e)
                self._unknown = True
                continue
            if found is not None:
                self._record_reply(cid, found)
                if order["kind"] == "entry" and not found.get("filled"):
                    self._skip(result, order, NOT_FILLED, self._not_filled(order, found))
            else:
                self._update(cid, status="abandoned")
                if self.flattening is not None and self.flattening["cid"] == cid:
                    self.flattening = None  # that close never reached the exchange: nothing is in flight
                if order["kind"] == "entry":
                    self._skip(result, order, ABANDONED, "broker abandoned: the exchange never received the entry")

    def _skip(self, result: BarResult, order: dict[str, Any], reason: str, detail: str) -> None:
        if result.skipped:
            return  # one per bar: the next bar resolves the next one
        result.skipped, result.skip_reason, result.skip_detail = True, reason, detail
        result.skipped_prediction_id = order.get("prediction_id")
        for kind in ("s", "t"):
            self._update(order["client_order_id"][:-1] + kind, status="abandoned")

    def watch(self, price: float, now_ns: int) -> list[dict[str, Any]]:
        return []  # stops and targets rest on the exchange

    def flatten(self, t: int, reason: str = "kill") -> list[dict[str, Any]]:
        """Close the position (reduce-only market order, looked up until known), then cancel
        the protective orders; a close that does not fill raises :class:`FlattenFailed` with
        the protection still resting."""
        self.refresh()
        result = self._carry
        if self._pos is None:
            self._protect(result)  # a trade that closed meanwhile; orphans cancelled
        else:
            if self.trade is None:
                self._adopt(result)
            result.closed.extend(self._flatten(reason))
        return self._deliver().closed

    # ------------------------------------------------------------ restart
    def state(self) -> dict[str, Any]:
        ref = None if self.equity_ref is None else [self.equity_ref.steps, self.equity_ref.value]
        return {"trade": self.trade, "equity_ref": ref, "flattening": self.flattening,
                "carry": dataclasses.asdict(self._carry)}

    def restore(self, state: dict[str, Any]) -> None:
        self.trade = state.get("trade")
        if state.get("equity_ref"):
            steps, value = state["equity_ref"]
            self.equity_ref = EquityReference(self.cfg.episode_length, value)
            self.equity_ref.steps = int(steps)
        self.flattening = state.get("flattening")
        self._carry = BarResult(**state["carry"]) if state.get("carry") else BarResult()

    def reconcile_orders(self, db: Any, session_id: str, fresh_after_ms: int | None = None) -> BarResult:
        """Before the first decision (invariant 5): every stored order without a known
        outcome (``new``: stored, maybe sent; ``unknown``: sent, no reply) is looked up by its
        client id until the exchange says. One it never received: an entry is sent now if its
        decision is still current, else abandoned; a stop, target or close is left to the
        check that follows. Then the exchange's position is matched against what is tracked
        (:meth:`_protect`): an untracked position is adopted and protected, a trade that
        closed while the runner was down is reported, orphan protective orders are cancelled."""
        self.bind(db, session_id)
        self.client.market(self.symbol)
        self.refresh()
        result = self._carry
        unsent = live_store.orders(db, session_id, statuses=("new", "unknown"))
        fresh = [o for o in unsent if fresh_after_ms is not None and o["ts"] >= fresh_after_ms]
        fresh_entries = {o["ts"] for o in fresh if o["kind"] == "entry"}
        for order in unsent:
            cid = order["client_order_id"]
            found, known = None, False
            for _ in range(RESOLVE_ROUNDS):
                try:
                    found, known = self._lookup(cid), True
                    break
                except TemporaryExchangeError as e:
                    logger.warning("order %s: look-up failed (%s); trying again", cid, e)
            if not known:
                self._update(cid, status="unknown")  # never assumed unsent: looked up again on the next bars
                self._unknown = True
                continue
            if found is not None:
                self._record_reply(cid, found)
                if order["kind"] == "entry" and not found.get("filled"):  # it reached the exchange but opened nothing
                    self._skip(result, order, NOT_FILLED, self._not_filled(order, found))
                elif order["kind"] == "entry" and self._pos is None and self.trade is None:
                    self._closed_while_down(order, found, result)
                continue
            if order["kind"] == "entry" and order["ts"] in fresh_entries and self.trade is None and self._pos is None:
                logger.info("order %s was stored but never sent; the decision is current, sending it now", cid)
                self._execute([o for o in unsent if o["ts"] == order["ts"]], result)
                if result.skipped and result.skipped_prediction_id is None:
                    result.skipped_prediction_id = order.get("prediction_id")
                continue
            self._update(cid, status="abandoned")
            if self.flattening is not None and self.flattening["cid"] == cid:
                self.flattening = None  # that close never reached the exchange: nothing is in flight
            if order["kind"] == "entry":
                logger.warning("order %s was stored but never reached the exchange; the stale entry is abandoned", cid)
                self._skip(result, order, ABANDONED,
                           "broker abandoned: the entry was stored but not sent before a restart; the decision was stale")
        self._resolve_pending(db, session_id, result)
        self.refresh()
        self._protect(result)
        return self._deliver()

    def _resolve_pending(self, db: Any, session_id: str, result: BarResult) -> None:
        """A prediction still ``pending`` whose entry's fate is known (the runner died before
        it stored it): rejected or never filled -> skipped; filled, and its position already
        gone -> opened and closed."""
        preds = live_store.predictions(db, session_id=session_id)
        pending = set(preds.loc[preds["status"] == "pending", "id"].astype(int))
        for order in live_store.orders(db, session_id):
            if order["kind"] != "entry" or order.get("prediction_id") not in pending:
                continue
            filled = order.get("filled_qty") or order["status"] in ("filled", "open")  # partly filled, rest cancelled: 'canceled'
            if order["status"] in ("rejected", "abandoned", "canceled") and not filled:
                reason = {"rejected": REJECTED, "abandoned": ABANDONED}.get(order["status"], NOT_FILLED)
                self._skip(result, order, reason, f"broker: the entry was {order['status']} before a restart")
            elif filled and self.trade is not None and self.trade.get("entry_id") == order["client_order_id"]:
                self.trade["prediction_id"] = order["prediction_id"]  # tracked, but its opening was never stored
                result.opened = self._opened()
            elif filled and self._pos is None and self.trade is None and result.opened is None:
                found = self._lookup(order["client_order_id"])
                if found is not None and found.get("filled"):
                    self._closed_while_down(order, found, result)

    def _closed_while_down(self, order: dict[str, Any], found: dict[str, Any], result: BarResult) -> None:
        """An entry that filled, and whose position is gone again, while the runner was down."""
        self.trade = self._new_trade(order, found, stop_price=self._stored_trigger(order, "s") or 0.0,
                                     target_price=self._stored_trigger(order, "t") or 0.0, prediction_id=order.get("prediction_id"))
        result.opened = self._opened()
        result.closed.extend(self._closed_on_exchange())


def _info(order: dict[str, Any]) -> dict[str, Any]:
    """The exchange's raw reply inside a ccxt order (empty when there is none)."""
    info = order.get("info")
    return info if isinstance(info, dict) else {}


def _protective_type(order: dict[str, Any]) -> str | None:
    """``STOP_MARKET`` / ``TAKE_PROFIT_MARKET`` for a resting reduce-only protective order, else None."""
    info = _info(order)
    kind = str(info.get("type") or info.get("origType") or "")
    return kind if kind in (STOP_TYPE, TARGET_TYPE) and _reduce_only(order) else None


def _reduce_only(order: dict[str, Any]) -> bool:
    info = _info(order)
    return bool(order.get("reduceOnly")) or str(info.get("reduceOnly")).lower() == "true"


def _covers(orders: list[dict[str, Any]], qty: float) -> bool:
    """One resting order of exactly the position's size."""
    return len(orders) == 1 and abs(float(orders[0].get("amount") or 0) - qty) < 1e-9
