"""Real trading on the exchange through :class:`aster_rl.exchange.ExchangeClient` (ccxt).

- Isolated margin is set once (``NoChange`` from the exchange is fine), the leverage
  before every entry.
- An entry is a market order; right after its fill, reduce-only ``STOP_MARKET`` and
  ``TAKE_PROFIT_MARKET`` orders sit on the exchange at the exit profile's ATR distances
  from the fill, so the position is protected even when the runner is down.
- Client order ids are deterministic (session, decision time, kind): a retried request
  (the client retries temporary errors) or a restart re-sends the SAME id, and the
  exchange refuses a second order with it ("ClientOrderId is duplicated"); the broker
  then reads the first order back instead of placing another.
- Every order is written to the database (by the runner) before it is sent, and its
  status, exchange id and fill are written back after the reply.
- An entry that opens no position says why (``BarResult.skip_reason`` / ``skip_detail``):
  below the minimum notional (known before any order: none is placed), rejected by the
  exchange (its message), not filled (an order still resting is cancelled), or stored
  but not sent before a restart while its decision went stale. Its stop and target are
  then never sent.

Funding paid on real positions is not read back from the exchange (it needs the income
history); outcomes report it as 0 and the PnL as price PnL minus taker fees.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import numpy as np

from aster_rl.accounting import BUY, SELL, WAIT
from aster_rl.config import EnvConfig, LiveConfig, Secrets
from aster_rl.errors import ConfigError, ExchangeError, OrderRejected
from aster_rl.exchange import check_trading_keys
from aster_rl.live.bars import LivePrices
from aster_rl.live.brokers import ABANDONED, BELOW_MIN_NOTIONAL, NOT_FILLED, REJECTED, BarResult
from aster_rl.observation import account_state, build_observation

logger = logging.getLogger(__name__)

CONFIRMATION = "I-UNDERSTAND"


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


class RealBroker:
    kind = "real"

    def __init__(self, client: Any, symbol: str, env_cfg: EnvConfig, live_cfg: LiveConfig, prices: LivePrices) -> None:
        self.client = client
        self.symbol = symbol
        self.cfg = env_cfg
        self.live = live_cfg
        self.prices = prices
        self.trade: dict[str, Any] | None = None  # the position this runner opened and tracks
        self.start_equity: float | None = None
        self._equity = float("nan")
        self._pos: dict[str, Any] | None = None
        self._n_positions = 0
        self._db: Any = None

    # ------------------------------------------------------------ exchange reads
    def _ex(self):
        return self.client.exchange

    def prepare(self) -> None:
        self.client.market(self.symbol)
        try:
            self.client.call("set_margin_mode", self._ex().set_margin_mode, "isolated", self.symbol)
        except ExchangeError as e:
            if "NoChange" not in str(e) and "No need to change" not in str(e):
                raise
        self.refresh()
        if self.start_equity is None:
            self.start_equity = self._equity

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
            state = account_state([0], [0], self.cfg.max_leverage, [0], [0], [0], [mark], [0], [self._equity], self.start_equity or self._equity)
        else:
            side = 1.0 if p.get("side") == "long" else -1.0
            lev = float(p.get("leverage") or 1)
            qty = float(p.get("contracts") or 0)
            entry = float(p.get("entryPrice") or mark)
            margin = float(p.get("initialMargin") or qty * entry / lev)
            bars = (self.trade or {}).get("bars", 0)
            state = account_state(
                [side], [lev], self.cfg.max_leverage, [side * qty * (mark - entry)], [margin], [bars], [mark],
                [float(p.get("liquidationPrice") or 0)], [self._equity], self.start_equity or self._equity,
            )
        return build_observation(np.asarray(features_row, dtype=np.float32), state[0])

    # ------------------------------------------------------------ orders
    def _send(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """Place one stored order idempotently; returns the ccxt order (None when rejected)."""
        return self._place(order)[0]

    def _place(self, order: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """Place one stored order idempotently: (the ccxt order, None), or (None, the exchange's
        message) when the exchange rejected it."""
        cid = order["client_order_id"]
        params: dict[str, Any] = {"clientOrderId": cid}
        if order["kind"] in ("stop", "target", "exit", "kill"):
            params["reduceOnly"] = True
        if order["kind"] == "stop":
            params["stopLossPrice"] = order["trigger_price"]
        elif order["kind"] == "target":
            params["takeProfitPrice"] = order["trigger_price"]
        try:
            placed = self.client.call(
                f"create_order {cid}", self._ex().create_order, self.symbol, "market", order["side"], order["qty"], None, params
            )
        except OrderRejected as e:
            logger.warning("order %s rejected: %s", cid, e)
            self._update(cid, status="rejected")
            return None, str(e)
        except ExchangeError as e:
            if "-4116" not in str(e) and "duplicated" not in str(e).lower():
                raise
            logger.info("order %s was already placed (an earlier try reached the exchange); reading it back", cid)
            placed = self.fetch(cid)
        self._record_reply(cid, placed)
        return placed, None

    def fetch(self, cid: str) -> dict[str, Any]:
        return self.client.call(f"fetch_order {cid}", self._ex().fetch_order, None, self.symbol, {"clientOrderId": cid})

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
            from aster_rl.storage import live_store

            live_store.update_order(self._db, cid, **fields)

    def _cancel(self, cid: str | None) -> None:
        if not cid:
            return
        try:
            self.client.call(f"cancel_order {cid}", self._ex().cancel_order, None, self.symbol, {"clientOrderId": cid})
            self._update(cid, status="canceled")
        except ExchangeError as e:  # already filled or gone: read what it is
            logger.info("cancel %s: %s", cid, e)

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
            qty = float(self._pos.get("contracts") or 0)
            exit_side = "sell" if self.position_side > 0 else "buy"
            return [{"ts": ts_ms, "qty": qty, "client_order_id": client_order_id(session_id, ts_ms, "x"), "kind": "exit",
                     "side": exit_side, "trigger_price": None}]
        return []

    def _tick(self, price: float) -> float:
        tick = self.cfg.price_tick
        return round(max(round(price / tick) * tick, tick), 10)

    def submit(self, t: int, side: int, lev_i: int, prof_i: int) -> None:
        return None  # orders go out in execute(), after the runner stored them

    def execute(self, orders: list[dict[str, Any]], db: Any = None) -> BarResult:
        """Send stored orders in order: entry (then its stop and target, re-priced from the fill), or exit."""
        self._db = db
        result = BarResult()
        by_kind = {o["kind"]: o for o in orders}
        if "entry" in by_kind:
            entry = by_kind["entry"]
            lev = int(entry["trigger_price"])
            self.client.call("set_leverage", self._ex().set_leverage, lev, self.symbol)
            planned_price = float(self.prices.close[-1])
            placed, rejection = self._place(entry)
            if placed is None or not placed.get("filled"):
                result.skipped = True
                if placed is None:
                    result.skip_reason, result.skip_detail = REJECTED, f"exchange rejected: {rejection}"
                else:
                    result.skip_reason, result.skip_detail = NOT_FILLED, self._not_filled(entry, placed)
                for kind in ("stop", "target"):  # their entry never opened: they are never sent
                    self._update(by_kind[kind]["client_order_id"], status="abandoned")
                self.refresh()
                return result
            fill = float(placed.get("average") or planned_price)
            sgn = 1.0 if entry["side"] == "buy" else -1.0
            shift = fill - planned_price  # stops and targets keep their ATR distances from the actual fill
            stop, target = by_kind["stop"], by_kind["target"]
            stop = {**stop, "trigger_price": self._tick(stop["trigger_price"] + shift)}
            target = {**target, "trigger_price": self._tick(target["trigger_price"] + shift)}
            self._update(stop["client_order_id"], trigger_price=stop["trigger_price"])
            self._update(target["client_order_id"], trigger_price=target["trigger_price"])
            self._send(stop)
            self._send(target)
            qty = float(placed.get("filled"))
            ts = int(self.prices.timestamps[-1])
            self.trade = {
                "side": sgn, "qty": qty, "entry_price": fill, "entry_time": ts, "leverage": float(lev),
                "stop_id": stop["client_order_id"], "target_id": target["client_order_id"],
                "stop_price": stop["trigger_price"], "target_price": target["trigger_price"],
                "fees": self.cfg.taker_fee_rate * qty * fill, "bars": 0,
            }
            result.opened = {**{k: self.trade[k] for k in ("side", "qty", "entry_price", "stop_price", "target_price", "leverage")}, "time": ts}
        if "exit" in by_kind:
            placed = self._send(by_kind["exit"])
            if placed is not None and self.trade is not None:
                self._cancel(self.trade.get("stop_id"))
                self._cancel(self.trade.get("target_id"))
                result.closed.append(self._closed(float(placed.get("average") or self.prices.close[-1]), "signal"))
        self.refresh()
        return result

    def _not_filled(self, entry: dict[str, Any], placed: dict[str, Any]) -> str:
        """An entry the exchange accepted but did not fill: cancelled if it still rests there
        (it must not open a position later, unseen); the detail for the prediction."""
        if placed.get("status") == "open":
            self._cancel(entry["client_order_id"])
        info = placed.get("info") if isinstance(placed.get("info"), dict) else {}
        status = str(info.get("status") or placed.get("status"))  # the exchange's own word for it
        logger.warning("entry %s not filled (status %s); no position", entry["client_order_id"], status)
        return f"exchange not filled: order status {status}"

    def _closed(self, exit_price: float, reason: str) -> dict[str, Any]:
        tr = self.trade
        self.trade = None
        gross = tr["side"] * tr["qty"] * (exit_price - tr["entry_price"])
        fees = tr["fees"] + self.cfg.taker_fee_rate * tr["qty"] * exit_price
        return {
            "entry_time": tr["entry_time"], "exit_time": int(self.prices.timestamps[-1]),
            "side": "long" if tr["side"] > 0 else "short", "leverage": tr["leverage"], "profile": "",
            "entry_price": tr["entry_price"], "exit_price": exit_price, "qty": tr["qty"], "pnl_usd": gross - fees,
            "fees_usd": fees, "funding_usd": 0.0, "slippage_usd": 0.0, "reason": reason,
        }

    def _check_closed(self) -> list[dict[str, Any]]:
        """The tracked position is gone from the exchange: find out which protective order closed it."""
        if self.trade is None or self._pos is not None:
            return []
        reason, exit_price = "external", float(self.prices.close[-1])
        for kind, key in (("stop", "stop_id"), ("target", "target_id")):
            try:
                o = self.fetch(self.trade[key])
            except ExchangeError:
                continue
            if o.get("status") == "closed" and o.get("filled"):
                reason, exit_price = kind, float(o.get("average") or exit_price)
                self._record_reply(self.trade[key], o)
        other = self.trade["target_id"] if reason == "stop" else self.trade["stop_id"]
        self._cancel(other)
        return [self._closed(exit_price, reason)]

    def on_bar(self, t: int, *, last: bool = False) -> BarResult:
        self.refresh()
        if self.trade is not None:
            self.trade["bars"] = int(self.trade.get("bars", 0)) + 1
        return BarResult(closed=self._check_closed())

    def watch(self, price: float, now_ns: int) -> list[dict[str, Any]]:
        return []  # stops and targets rest on the exchange

    def flatten(self, t: int, reason: str = "kill") -> list[dict[str, Any]]:
        """Cancel this runner's protective orders and close the position with a reduce-only market order."""
        self.refresh()
        closed = self._check_closed()
        if self._pos is None:
            return closed
        if self.trade is not None:
            self._cancel(self.trade.get("stop_id"))
            self._cancel(self.trade.get("target_id"))
        qty = float(self._pos.get("contracts") or 0)
        side = "sell" if self.position_side > 0 else "buy"
        ts_ms = int(self.prices.timestamps[t]) // 1_000_000
        cid = f"{self.trade['stop_id'][:-1]}k" if self.trade else f"arkill{ts_ms // 1000:x}"
        try:
            placed = self.client.call(
                f"create_order {cid}", self._ex().create_order, self.symbol, "market", side, qty, None,
                {"clientOrderId": cid, "reduceOnly": True},
            )
        except ExchangeError as e:
            if "duplicated" not in str(e).lower():
                raise
            placed = self.fetch(cid)
        if self.trade is not None:
            closed.append(self._closed(float(placed.get("average") or self.prices.close[t]), reason))
        self.refresh()
        return closed

    # ------------------------------------------------------------ restart
    def state(self) -> dict[str, Any]:
        return {"trade": self.trade, "start_equity": self.start_equity}

    def restore(self, state: dict[str, Any]) -> None:
        self.trade = state.get("trade")
        self.start_equity = state.get("start_equity")

    def reconcile_orders(self, db: Any, session_id: str, fresh_after_ms: int | None = None) -> BarResult:
        """After a restart: every stored order still marked ``new`` is looked up by its client id;
        one the exchange never saw is sent now if it protects or closes a position, and
        abandoned if it was an entry (that decision is stale). Then the position is checked."""
        from aster_rl.storage import live_store

        self._db = db
        self.client.market(self.symbol)
        self.refresh()
        result = BarResult()
        unsent = live_store.orders(db, session_id, statuses=("new",))
        fresh = [o for o in unsent if fresh_after_ms is not None and o["ts"] >= fresh_after_ms]
        fresh_entries = {o["ts"] for o in fresh if o["kind"] == "entry"}
        for order in unsent:
            cid = order["client_order_id"]
            try:
                found = self.fetch(cid)
            except ExchangeError:
                found = None
            if found is not None:
                self._record_reply(cid, found)
                if order["kind"] == "entry" and not found.get("filled"):  # it reached the exchange but opened nothing
                    result.skipped, result.skip_reason = True, NOT_FILLED
                    result.skip_detail = self._not_filled(order, found)
                    result.skipped_prediction_id = order.get("prediction_id")
                elif order["kind"] == "entry" and found.get("filled") and self.trade is None:
                    fill = float(found.get("average") or 0)
                    sid, tid = cid[:-1] + "s", cid[:-1] + "t"
                    stops = {o["client_order_id"]: o for o in unsent}
                    self.trade = {
                        "side": 1.0 if order["side"] == "buy" else -1.0, "qty": float(found["filled"]), "entry_price": fill,
                        "entry_time": int(self.prices.timestamps[-1]), "leverage": float(order["trigger_price"] or 1),
                        "stop_id": sid, "target_id": tid, "stop_price": (stops.get(sid) or {}).get("trigger_price"),
                        "target_price": (stops.get(tid) or {}).get("trigger_price"),
                        "fees": self.cfg.taker_fee_rate * float(found["filled"]) * fill, "bars": 0,
                    }
                    result.opened = {**{k: self.trade[k] for k in ("side", "qty", "entry_price", "stop_price", "target_price", "leverage")},
                                     "time": self.trade["entry_time"]}
                continue
            if order["ts"] in fresh_entries and self.trade is None and self._pos is None:
                if order["kind"] == "entry":  # the decision is still current: carry it out now, same client ids
                    logger.info("order %s was stored but never sent; the decision is current, sending it now", cid)
                    done = self.execute([o for o in unsent if o["ts"] == order["ts"]], db)
                    result.opened, result.skipped = done.opened, done.skipped
                    result.skip_reason, result.skip_detail = done.skip_reason, done.skip_detail
                    result.skipped_prediction_id = order.get("prediction_id") if done.skipped else None
                continue
            if order["kind"] == "entry":
                logger.warning("order %s was stored but never reached the exchange; the stale entry is abandoned", cid)
                self._update(cid, status="abandoned")
                result.skipped, result.skip_reason = True, ABANDONED
                result.skip_detail = "broker abandoned: the entry was stored but not sent before a restart; the decision was stale"
                result.skipped_prediction_id = order.get("prediction_id")
            elif self._pos is not None:
                logger.info("order %s was stored but never sent; sending it now", cid)
                self._send(order)
            else:
                self._update(cid, status="abandoned")
        self.refresh()
        result.closed.extend(self._check_closed())
        return result
