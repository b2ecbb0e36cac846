"""The signed (account) side of the fake Aster exchange: balance, positions, orders, leverage.

Any signature is accepted. One-way position mode, USDT margin, taker fee 0.035% on every
fill. Market orders fill at the fake's last price; limit, stop-market and
take-profit-market orders rest until :meth:`FakeAccount.on_price` (called by
``FakeAsterExchange.set_now``) crosses them; one whose trigger the price has already
crossed is refused (-2021, "Order would immediately trigger"). A ``newClientOrderId``
that was used before is refused (code -4116), as Aster does, so a retried order never
doubles. Every fill is a user trade (``userTrades``: price, quantity, realized PnL,
commission). Test controls: :meth:`FakeAccount.fill_partly_next` (the next opening market
order fills only partly; the rest fills at the next price) and
:meth:`FakeAccount.close_externally` (someone else closes the position).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

logger = logging.getLogger(__name__)

TAKER_FEE_RATE = 0.00035
MIN_NOTIONAL_USD = 5.0
MAINTENANCE_MARGIN_RATE = 0.01
BRACKETS = (  # notional floor, cap, max leverage, maintenance margin rate, maintenance amount
    (0, 5_000, 50, 0.01, 0),
    (5_000, 25_000, 20, 0.025, 75),
    (25_000, 100_000, 10, 0.05, 700),
    (100_000, 1_000_000, 5, 0.1, 5_700),
)
RESTING_TYPES = ("LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")


class FakeApiError(Exception):
    """An Aster-style error reply: HTTP ``status`` with body ``{"code": code, "msg": msg}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class MarketView(Protocol):
    """What the account reads of the fake's market (:class:`aster_rl.testing.fake_exchange.FakeAsterExchange`)."""

    symbol_id: str
    now_ms: int  # the fake's clock

    def last_price(self, mid: str | None = None) -> float: ...

    def market_ids(self) -> list[str]:
        """The exchange ids of the markets it serves."""
        ...


@dataclass
class Position:
    amount: float = 0.0  # signed base quantity
    entry_price: float = 0.0
    leverage: int = 20
    margin_type: str = "cross"  # "cross" or "isolated"


class FakeAccount:
    """Wallet, positions and orders behind the fake's signed endpoints."""

    def __init__(self, fake: MarketView, balance_usdt: float = 10_000.0) -> None:
        self.fake = fake
        self.wallet_usdt = float(balance_usdt)
        self.positions: dict[str, Position] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self._by_client_id: dict[str, int] = {}
        self._next_id = 1_000_001
        self.fills: list[dict[str, Any]] = []
        self._partly: float | None = None  # fraction the next opening market order fills at once
        self._lock = threading.RLock()

    def fill_partly_next(self, fraction: float) -> None:
        """The next market order that opens or adds fills ``fraction`` of its quantity now;
        the rest stays working (``PARTIALLY_FILLED``) and fills at the next price."""
        with self._lock:
            self._partly = float(fraction)

    def close_externally(self, mid: str | None = None) -> None:
        """Close the whole position at the last price by an order this client did not send
        (a manual close on the exchange's site, an ADL): the runner's orders stay as they are."""
        mid = mid or self.fake.symbol_id
        with self._lock:
            pos = self.position(mid)
            if not pos.amount:
                return
            oid = self._next_id
            self._next_id += 1
            order: dict[str, Any] = {
                "orderId": oid, "symbol": mid, "status": "NEW", "clientOrderId": f"web-{oid}", "price": "0", "avgPrice": "0",
                "origQty": f"{abs(pos.amount):.8g}", "executedQty": "0", "cumQuote": "0", "timeInForce": "GTC", "type": "MARKET",
                "origType": "MARKET", "reduceOnly": True, "closePosition": False, "side": "SELL" if pos.amount > 0 else "BUY",
                "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "time": self.fake.now_ms,
                "updateTime": self.fake.now_ms, "builder": None,
            }
            self._fill(order, self.fake.last_price(mid))
            self.orders[oid] = order
            self._by_client_id[order["clientOrderId"]] = oid

    def routes(self) -> dict[tuple[str, str], Callable[[dict[str, str]], Any]]:
        r = {
            ("GET", "/fapi/v3/balance"): self._balance,
            ("GET", "/fapi/v3/account"): self._account,
            ("GET", "/fapi/v3/positionRisk"): self._position_risk,
            ("GET", "/fapi/v3/leverageBracket"): self._leverage_bracket,
            ("GET", "/fapi/v3/positionSide/dual"): lambda p: {"dualSidePosition": False},
            ("POST", "/fapi/v3/order"): self._new_order,
            ("GET", "/fapi/v3/order"): self._get_order,
            ("DELETE", "/fapi/v3/order"): self._cancel_order,
            ("GET", "/fapi/v3/openOrders"): self._open_orders,
            ("DELETE", "/fapi/v3/allOpenOrders"): self._cancel_all,
            ("GET", "/fapi/v3/userTrades"): self._user_trades,
            ("POST", "/fapi/v3/leverage"): self._set_leverage,
            ("POST", "/fapi/v3/marginType"): self._set_margin_type,
            ("GET", "/fapi/v3/builder"): lambda p: [],
        }
        return {key: self._guarded(fn) for key, fn in r.items()}

    def _guarded(self, fn: Callable[[dict[str, str]], Any]) -> Callable[[dict[str, str]], Any]:
        def call(p: dict[str, str]) -> Any:
            with self._lock:
                return fn(p)

        return call

    # ------------------------------------------------------------ helpers

    def position(self, mid: str) -> Position:
        return self.positions.setdefault(mid, Position())

    def _symbol(self, p: dict[str, str]) -> str:
        mid = p.get("symbol")
        if not mid:
            raise FakeApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if mid not in self.fake.market_ids():
            raise FakeApiError(400, -1121, "Invalid symbol.")
        return mid

    def unrealized_pnl(self, mid: str) -> float:
        pos = self.positions.get(mid)
        if pos is None or pos.amount == 0:
            return 0.0
        return pos.amount * (self.fake.last_price(mid) - pos.entry_price)

    def initial_margin(self) -> float:
        return sum(abs(p.amount) * self.fake.last_price(m) / p.leverage for m, p in self.positions.items() if p.amount)

    def available_usdt(self) -> float:
        upnl = sum(self.unrealized_pnl(m) for m in self.positions)
        return self.wallet_usdt + upnl - self.initial_margin()

    def _liquidation_price(self, pos: Position) -> float:
        if pos.amount == 0:
            return 0.0
        margin_per_unit = pos.entry_price / pos.leverage
        if pos.amount > 0:
            return max(0.0, (pos.entry_price - margin_per_unit) / (1 - MAINTENANCE_MARGIN_RATE))
        return (pos.entry_price + margin_per_unit) / (1 + MAINTENANCE_MARGIN_RATE)

    # ------------------------------------------------------------ account endpoints

    def _balance(self, p: dict[str, str]) -> list[dict[str, Any]]:
        upnl = sum(self.unrealized_pnl(m) for m in self.positions)
        avail = self.available_usdt()
        return [
            {
                "accountAlias": "fake",
                "asset": "USDT",
                "balance": f"{self.wallet_usdt:.8f}",
                "crossWalletBalance": f"{self.wallet_usdt:.8f}",
                "crossUnPnl": f"{upnl:.8f}",
                "availableBalance": f"{avail:.8f}",
                "maxWithdrawAmount": f"{max(avail, 0):.8f}",
                "marginAvailable": True,
                "updateTime": self.fake.now_ms,
            }
        ]

    def _account(self, p: dict[str, str]) -> dict[str, Any]:
        return {
            "totalWalletBalance": f"{self.wallet_usdt:.8f}",
            "availableBalance": f"{self.available_usdt():.8f}",
            "assets": self._balance(p),
            "positions": self._position_risk({}),
        }

    def _position_risk(self, p: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for mid in self.fake.market_ids():
            if p.get("symbol") and p["symbol"] != mid:
                continue
            pos = self.positions.get(mid, Position())
            mark = self.fake.last_price(mid)
            notional = pos.amount * mark
            out.append(
                {
                    "symbol": mid,
                    "positionAmt": f"{pos.amount:.8g}",
                    "entryPrice": f"{pos.entry_price:.8g}",
                    "markPrice": f"{mark:.8g}",
                    "unRealizedProfit": f"{self.unrealized_pnl(mid):.8f}",
                    "liquidationPrice": f"{self._liquidation_price(pos):.8g}",
                    "leverage": str(pos.leverage),
                    "maxNotionalValue": "1000000",
                    "marginType": pos.margin_type,
                    "isolatedMargin": f"{abs(notional) / pos.leverage if pos.margin_type == 'isolated' else 0:.8f}",
                    "isAutoAddMargin": "false",
                    "positionSide": "BOTH",
                    "notional": f"{notional:.8f}",
                    "isolatedWallet": "0",
                    "updateTime": self.fake.now_ms,
                }
            )
        return out

    def _leverage_bracket(self, p: dict[str, str]) -> list[dict[str, Any]]:
        brackets = [
            {"bracket": i + 1, "initialLeverage": lev, "notionalCap": cap, "notionalFloor": floor, "maintMarginRatio": mmr, "cum": cum}
            for i, (floor, cap, lev, mmr, cum) in enumerate(BRACKETS)
        ]
        return [{"symbol": mid, "brackets": brackets} for mid in self.fake.market_ids()]

    def _set_leverage(self, p: dict[str, str]) -> dict[str, Any]:
        mid = self._symbol(p)
        try:
            lev = int(p.get("leverage", ""))
        except ValueError:
            raise FakeApiError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.") from None
        if not 1 <= lev <= BRACKETS[0][2]:
            raise FakeApiError(400, -4028, f"Leverage {lev} is not valid")
        self.position(mid).leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": mid}

    def _set_margin_type(self, p: dict[str, str]) -> dict[str, Any]:
        mid = self._symbol(p)
        wanted = {"ISOLATED": "isolated", "CROSSED": "cross"}.get(p.get("marginType", "").upper())
        if wanted is None:
            raise FakeApiError(400, -1102, "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.")
        pos = self.position(mid)
        if pos.margin_type == wanted:
            raise FakeApiError(400, -4046, "No need to change margin type.")
        if pos.amount:
            raise FakeApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        pos.margin_type = wanted
        return {"code": 200, "msg": "success"}

    # ------------------------------------------------------------ orders

    def _order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        return dict(order)

    def _find(self, p: dict[str, str]) -> dict[str, Any]:
        if p.get("origClientOrderId"):
            oid = self._by_client_id.get(p["origClientOrderId"])
            order = self.orders.get(oid) if oid is not None else None
        elif p.get("orderId"):
            order = self.orders.get(int(p["orderId"])) if p["orderId"].isdigit() else None
        else:
            raise FakeApiError(400, -1102, "Either orderId or origClientOrderId must be sent.")
        if order is None or (p.get("symbol") and order["symbol"] != p["symbol"]):
            raise FakeApiError(400, -2013, "Order does not exist.")
        return order

    def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        mid = self._symbol(p)
        side = p.get("side", "").upper()
        otype = p.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise FakeApiError(400, -1117, "Invalid side.")
        if otype not in ("MARKET", *RESTING_TYPES):
            raise FakeApiError(400, -1116, "Invalid orderType.")
        client_id = p.get("newClientOrderId") or f"fake-{self._next_id}"
        if client_id in self._by_client_id:
            raise FakeApiError(400, -4116, "ClientOrderId is duplicated.")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        close_position = p.get("closePosition", "false").lower() == "true"
        qty = _float(p.get("quantity"), 0.0)
        if not close_position:
            if qty <= 0:
                raise FakeApiError(400, -4003, "Quantity less than or equal to zero.")
            step = 0.01 if mid == "ASTERUSDT" else 0.001
            if abs(qty / step - round(qty / step)) > 1e-6:
                raise FakeApiError(400, -4023, f"Quantity {qty} is not a multiple of the step size {step}.")
        price = _float(p.get("price"), 0.0)
        stop_price = _float(p.get("stopPrice"), 0.0)
        if otype in ("LIMIT", "STOP", "TAKE_PROFIT") and price <= 0:
            raise FakeApiError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if otype in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT") and stop_price <= 0:
            raise FakeApiError(400, -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.")
        last = self.fake.last_price(mid)
        if otype in ("STOP_MARKET", "STOP", "TAKE_PROFIT_MARKET", "TAKE_PROFIT"):
            buy = side == "BUY"
            stop_kind = otype in ("STOP_MARKET", "STOP")
            if (stop_kind and (last >= stop_price if buy else last <= stop_price)) or (
                not stop_kind and (last <= stop_price if buy else last >= stop_price)
            ):
                raise FakeApiError(400, -2021, "Order would immediately trigger.")
        if not (reduce_only or close_position) and qty * (price or last) < MIN_NOTIONAL_USD:
            raise FakeApiError(400, -4164, f"Order's notional must be no smaller than {MIN_NOTIONAL_USD:g} (unless you choose reduce only).")
        oid = self._next_id
        self._next_id += 1
        order = {
            "orderId": oid,
            "symbol": mid,
            "status": "NEW",
            "clientOrderId": client_id,
            "price": f"{price:.8g}",
            "avgPrice": "0",
            "origQty": f"{qty:.8g}",
            "executedQty": "0",
            "cumQuote": "0",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": otype,
            "origType": otype,
            "reduceOnly": reduce_only,
            "closePosition": close_position,
            "side": side,
            "positionSide": "BOTH",
            "stopPrice": f"{stop_price:.8g}",
            "workingType": p.get("workingType", "CONTRACT_PRICE"),
            "time": self.fake.now_ms,
            "updateTime": self.fake.now_ms,
            "builder": p.get("builder"),  # recorded so tests can see ccxt sent no builder fee
        }
        if otype == "MARKET" and self._partly is not None and not (reduce_only or close_position):
            step = 0.01 if mid == "ASTERUSDT" else 0.001
            part = math.floor(qty * self._partly / step + 1e-9) * step
            self._partly = None
            if 0 < part < qty:
                self._fill(order, last, part)
                order["status"] = "PARTIALLY_FILLED"
            else:
                self._fill(order, last)
        elif otype == "MARKET" or (otype == "LIMIT" and ((side == "BUY" and price >= last) or (side == "SELL" and price <= last))):
            self._fill(order, last)
        self.orders[oid] = order
        self._by_client_id[client_id] = oid
        return self._order_view(order)

    def _fill(self, order: dict[str, Any], price: float, qty: float | None = None) -> None:
        """Fill ``qty`` (default: what is left of the order) at ``price``."""
        mid = order["symbol"]
        pos = self.position(mid)
        sign = 1.0 if order["side"] == "BUY" else -1.0
        done = float(order["executedQty"])
        qty = round(float(order["origQty"]) - done, 10) if qty is None else qty
        if order["closePosition"] or order["reduceOnly"]:
            if pos.amount == 0 or math.copysign(1, pos.amount) == sign:
                order["status"] = "EXPIRED" if order["type"] != "MARKET" else "REJECTED"
                return
            qty = abs(pos.amount) if order["closePosition"] else min(qty, abs(pos.amount))
        notional = qty * price
        if not order["reduceOnly"] and not order["closePosition"]:
            opening = qty if pos.amount == 0 or math.copysign(1, pos.amount) == sign else max(0.0, qty - abs(pos.amount))
            if opening * price / pos.leverage > self.available_usdt() + 1e-9:
                raise FakeApiError(400, -2019, "Margin is insufficient.")
        fee = notional * TAKER_FEE_RATE
        self.wallet_usdt -= fee
        new_amount = pos.amount + sign * qty
        realized = 0.0
        if pos.amount == 0 or math.copysign(1, pos.amount) == sign:
            pos.entry_price = (abs(pos.amount) * pos.entry_price + qty * price) / abs(new_amount)
        else:
            closed = min(qty, abs(pos.amount))
            realized = closed * (price - pos.entry_price) * math.copysign(1, pos.amount)
            self.wallet_usdt += realized
            if abs(new_amount) < 1e-12:
                new_amount, pos.entry_price = 0.0, 0.0
            elif math.copysign(1, new_amount) != math.copysign(1, pos.amount):
                pos.entry_price = price  # flipped: the remainder opened at this price
        pos.amount = round(new_amount, 10)
        total = done + qty
        quote = float(order["cumQuote"]) + notional
        order.update(
            status="FILLED", avgPrice=f"{quote / total:.8g}", executedQty=f"{total:.8g}", cumQuote=f"{quote:.8g}",
            updateTime=self.fake.now_ms,
        )
        self.fills.append({
            "id": len(self.fills) + 1, "orderId": order["orderId"], "symbol": mid, "side": order["side"], "qty": qty,
            "price": price, "fee": fee, "realized": realized, "time": self.fake.now_ms,
        })
        logger.debug("fake exchange fill: %s %s %s @ %s", mid, order["side"], qty, price)

    def _user_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        mid = self._symbol(p)
        start = int(p.get("startTime") or 0)
        end = int(p.get("endTime") or 2**62)
        rows = [f for f in self.fills if f["symbol"] == mid and start <= f["time"] <= end]
        rows = rows[: int(p.get("limit") or 500)]
        return [
            {
                # full float precision (repr): the sum of the fills is the wallet to the last bit
                "id": f["id"], "symbol": mid, "orderId": f["orderId"], "side": f["side"], "price": repr(f["price"]),
                "qty": f"{f['qty']:.8g}", "realizedPnl": repr(f["realized"]), "quoteQty": repr(f["qty"] * f["price"]),
                "commission": repr(f["fee"]), "commissionAsset": "USDT", "time": f["time"], "positionSide": "BOTH",
                "buyer": f["side"] == "BUY", "maker": False,
            }
            for f in rows
        ]

    def _get_order(self, p: dict[str, str]) -> dict[str, Any]:
        return self._order_view(self._find(p))

    def _cancel_order(self, p: dict[str, str]) -> dict[str, Any]:
        order = self._find(p)
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise FakeApiError(400, -2011, "Unknown order sent.")
        order.update(status="CANCELED", updateTime=self.fake.now_ms)
        return self._order_view(order)

    def _open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [
            self._order_view(o)
            for o in self.orders.values()
            if o["status"] in ("NEW", "PARTIALLY_FILLED") and (not p.get("symbol") or o["symbol"] == p["symbol"])
        ]

    def _cancel_all(self, p: dict[str, str]) -> dict[str, Any]:
        mid = self._symbol(p)
        for o in self.orders.values():
            if o["status"] == "NEW" and o["symbol"] == mid:
                o.update(status="CANCELED", updateTime=self.fake.now_ms)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def on_price(self, mid: str, price: float) -> None:
        """Fill resting orders of ``mid`` that ``price`` crosses (stops before targets)."""
        with self._lock:
            for o in [o for o in self.orders.values() if o["status"] == "PARTIALLY_FILLED" and o["symbol"] == mid]:
                try:  # the working rest of a partly filled market order
                    self._fill(o, price)
                except FakeApiError:
                    o["status"] = "EXPIRED"
            resting = sorted(
                (o for o in self.orders.values() if o["status"] == "NEW" and o["symbol"] == mid),
                key=lambda o: (o["type"] not in ("STOP_MARKET", "STOP"), o["orderId"]),
            )
            for o in resting:
                if o["status"] != "NEW":
                    continue
                stop = float(o["stopPrice"])
                buy = o["side"] == "BUY"
                if o["type"] in ("STOP_MARKET", "STOP"):
                    hit = price >= stop if buy else price <= stop
                elif o["type"] in ("TAKE_PROFIT_MARKET", "TAKE_PROFIT"):
                    hit = price <= stop if buy else price >= stop
                else:  # LIMIT
                    limit = float(o["price"])
                    hit = price <= limit if buy else price >= limit
                if hit:
                    try:
                        self._fill(o, price)
                    except FakeApiError:
                        o["status"] = "REJECTED"


def _float(value: str | None, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError:
        raise FakeApiError(400, -1100, f"Illegal characters found in a parameter: {value!r}") from None
