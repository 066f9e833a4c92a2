"""The simulated account: Binance orders mapped one by one onto a paper venue per symbol.

A Binance account holds independent orders, each placed and cancelled on its own, so every order
goes to its symbol's ``PaperVenue`` by itself (``place``/``cancel`` for a resting LIMIT GTX / GTC /
LIMIT_MAKER order, a ``HedgeIntent`` for an IOC or MARKET one) under its ``orderId``; the venue's
reports (accepted, rejected post-only, fills, cancelled, expired) become the order's status and the
user-stream events. The venue runs with zero latency here: the network between the client and
the simulator is real (add more with the ``delay_ms`` fault), and an order is carried out at the
market time the replay has reached, so its response is known at once as on the exchange.

Left out, on purpose: a GTC order that would cross is refused (the paper venue only takes liquidity
by IOC), FOK, stop and algo orders, hedge-mode positions, margin checks on USD-M.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from mmflow.config import InstrumentSpec, VenueConfig
from mmflow.connectors.exchange_sim import errors
from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.exchange_info import SymbolRules
from mmflow.connectors.exchange_sim.records import Order, Position, TradeInfo, fmt
from mmflow.connectors.exchange_sim.user_stream import execution_report, order_trade_update
from mmflow.connectors.paper_venue import PaperVenue, Report
from mmflow.models import (
    POST_ONLY_REJECT,
    BookTick,
    Depth,
    Fill,
    HedgeIntent,
    MarketEvent,
    OrderUpdate,
    Trade,
)

CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_ZERO = Decimal(0)
_FAR = Decimal(10) ** 8  # a MARKET order's limit: as far as any price goes


def _decimal(params: dict[str, str], name: str) -> Decimal:
    raw = params.get(name)
    if not raw:
        raise errors.missing(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise errors.bad_param(name) from None
    if not value.is_finite() or value <= 0:
        raise errors.bad_param(name)
    return value


class Account:
    """One account's orders, balances and positions on one venue (USD-M or spot)."""

    def __init__(
        self,
        spot: bool,
        venue: str,
        symbols: dict[str, SymbolRules],
        specs: dict[str, InstrumentSpec],
        cfg: VenueConfig,
        balances: dict[str, Decimal],
        clock_ms: Callable[[], int],
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self.spot, self.venue_name, self.symbols = spot, venue, symbols
        self.venues = {s: PaperVenue(f"{venue}:{s}", specs[s], cfg, incarnation="sim") for s in symbols}
        self.balances = dict(balances)
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, Decimal] = {}
        self.orders: dict[int, Order] = {}
        self.clock_ms, self.publish = clock_ms, publish
        self.next_order_id = 1
        self.next_trade_id = 1

    # -- market data ---------------------------------------------------------------------------
    def on_market(self, event: MarketEvent) -> None:
        symbol = event.market.partition(":")[2]
        venue = self.venues.get(symbol)
        if venue is None:
            return
        if isinstance(event, BookTick):
            self.marks[symbol] = (event.bid_px + event.ask_px) / 2
            self._handle(venue.on_book(event))
        elif isinstance(event, Trade):
            self._handle(venue.on_trade(event))
        elif isinstance(event, Depth):
            self._handle(venue.on_depth(event))

    # -- orders --------------------------------------------------------------------------------
    def rules(self, symbol: str | None) -> SymbolRules:
        if not symbol:
            raise errors.missing("symbol")
        r = self.symbols.get(symbol)
        if r is None:
            raise errors.unknown_symbol()
        return r

    def new_order(self, p: dict[str, str]) -> Order:
        """Place an order as POST .../order does; ApiError for what the venue refuses."""
        order = self._validated(p)
        venue = self.venues[order.symbol]
        self.orders[order.order_id] = order
        oid = str(order.order_id)
        if order.type == "MARKET" or order.tif == "IOC":
            self._event(order, "NEW", None)
            limit = order.price if order.type != "MARKET" else (_FAR if order.side == "BUY" else _ZERO)
            venue.submit(self._ioc(venue, order, limit))
        else:
            venue.place(oid, order.side.lower(), order.price, order.qty, venue.clock)
        self._handle(venue.advance(venue.clock))
        if order.status == "REJECTED":
            del self.orders[order.order_id]
            raise errors.maker_reject() if self.spot else errors.gtx_reject()
        return order

    def _ioc(self, venue: PaperVenue, order: Order, limit: Decimal) -> HedgeIntent:
        return HedgeIntent(
            market=venue.market,
            ts=venue.clock,
            intent_id=str(order.order_id),
            side=order.side.lower(),  # type: ignore[arg-type]
            qty=order.qty,
            limit_px=limit,
            best_bid=venue.best_bid or _ZERO,
            best_ask=venue.best_ask or _ZERO,
            inventory=venue.position,
        )

    def _validated(self, p: dict[str, str]) -> Order:
        r = self.rules(p.get("symbol"))
        side, kind = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise errors.missing("side") if not side else errors.bad_param("side")
        kinds = ("LIMIT", "MARKET", "LIMIT_MAKER") if self.spot else ("LIMIT", "MARKET")
        if kind not in kinds:
            raise ApiError(-1116, "Invalid orderType.")
        qty = _decimal(p, "quantity")
        self._check_qty(r, qty)
        price = _decimal(p, "price") if kind != "MARKET" else _ZERO
        if kind != "MARKET":
            self._check_price(r, price, qty)
        tif = self._tif(p, kind)
        if tif == "GTC" and kind == "LIMIT" and self._crosses(r.symbol, side, price):
            raise ApiError(-1013, "A GTC order that would cross is not simulated; send it IOC or post-only.")
        client_id = self._client_id(r.symbol, p.get("newClientOrderId"))
        if self.spot:
            self._check_funds(r, side, price, qty)
        order_id, self.next_order_id = self.next_order_id, self.next_order_id + 1
        now = self.clock_ms()
        return Order(
            r.symbol,
            order_id,
            client_id or f"sim-{order_id}",
            side,
            kind,
            tif,
            price,
            qty,
            now,
            update_ms=now,
        )

    def _tif(self, p: dict[str, str], kind: str) -> str:
        if kind != "LIMIT":
            return "GTC"
        tif = p.get("timeInForce")
        if not tif:
            raise errors.missing("timeInForce")
        allowed = ("GTC", "IOC") if self.spot else ("GTC", "IOC", "GTX")
        if tif not in allowed:
            raise ApiError(-1115, "Invalid timeInForce.")
        return tif

    def _check_qty(self, r: SymbolRules, qty: Decimal) -> None:
        if qty < r.min_qty:
            raise (
                ApiError(-1013, "Filter failure: LOT_SIZE")
                if self.spot
                else ApiError(-4003, "Quantity less than or equal to zero.")
            )
        if r.step and qty % r.step:
            raise (
                ApiError(-1013, "Filter failure: LOT_SIZE")
                if self.spot
                else ApiError(-1111, "Precision is over the maximum defined for this asset.")
            )

    def _check_price(self, r: SymbolRules, price: Decimal, qty: Decimal) -> None:
        if r.tick and price % r.tick:
            raise (
                ApiError(-1013, "Filter failure: PRICE_FILTER")
                if self.spot
                else ApiError(-4014, "Price not increased by tick size.")
            )
        if price * qty < r.min_notional:
            raise (
                ApiError(-1013, "Filter failure: NOTIONAL")
                if self.spot
                else ApiError(
                    -4164,
                    f"Order's notional must be no smaller than {r.min_notional} (unless you choose reduce only).",
                )
            )

    def _crosses(self, symbol: str, side: str, price: Decimal) -> bool:
        venue = self.venues[symbol]
        if side == "BUY":
            return venue.best_ask is not None and price >= venue.best_ask
        return venue.best_bid is not None and price <= venue.best_bid

    def _client_id(self, symbol: str, wanted: str | None) -> str | None:
        if wanted is None:
            return None
        if not CLIENT_ID.match(wanted):
            raise errors.bad_param("newClientOrderId")
        if any(o.is_open and o.symbol == symbol and o.client_id == wanted for o in self.orders.values()):
            raise (
                ApiError(-2010, "Duplicate order sent.")
                if self.spot
                else ApiError(-4116, "ClientOrderId is duplicated.")
            )
        return wanted

    def find(self, p: dict[str, str], *, cancel: bool = False) -> Order:
        """The order ``orderId`` or ``origClientOrderId`` names (-2011 to cancel, -2013 to query)."""
        symbol = self.rules(p.get("symbol")).symbol
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if not oid and not cid:
            raise errors.missing("orderId")
        found = [
            o
            for o in self.orders.values()
            if o.symbol == symbol and (str(o.order_id) == oid if oid else o.client_id == cid)
        ]
        if not found:
            raise errors.unknown_order_cancel() if cancel else errors.no_such_order()
        return max(found, key=lambda o: (o.is_open, o.order_id))

    def cancel(self, p: dict[str, str]) -> Order:
        order = self.find(p, cancel=True)
        if not order.is_open:
            raise errors.unknown_order_cancel()
        order.cancel_client_id = p.get("newClientOrderId") or f"sim-cancel-{order.order_id}"
        venue = self.venues[order.symbol]
        venue.cancel(order.venue_id, venue.clock)
        self._handle(venue.advance(venue.clock))
        return order

    def modify(self, p: dict[str, str]) -> Order:
        """USD-M ``PUT /fapi/v1/order``: a resting LIMIT order's price and quantity changed in
        place (same ids; it goes to the back of its new level, as on the exchange)."""
        order = self.find(p)
        if not order.is_open or order.type != "LIMIT" or order.tif == "IOC":
            raise errors.no_such_order()
        if p.get("side") != order.side:
            raise errors.bad_param("side")
        r = self.rules(order.symbol)
        qty, price = _decimal(p, "quantity"), _decimal(p, "price")
        self._check_qty(r, qty)
        self._check_price(r, price, qty)
        if qty == order.qty and price == order.price:
            raise ApiError(-5027, "No need to modify the order.")
        if qty <= order.executed:
            raise ApiError(-4029, "Quantity must be greater than the executed quantity.")
        if order.tif == "GTX" and self._crosses(order.symbol, order.side, price):
            raise errors.gtx_reject()
        venue = self.venues[order.symbol]
        venue.cancel(order.venue_id, venue.clock)
        order.modifications += 1
        order.price, order.qty, order.update_ms = price, qty, self.clock_ms()
        venue.place(order.venue_id, order.side.lower(), price, qty - order.executed, venue.clock)
        self._handle(venue.advance(venue.clock))
        self._event(order, "AMENDMENT", None)
        return order

    def open_orders(self, symbol: str | None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def trades(self, p: dict[str, str]) -> list[tuple[Order, TradeInfo]]:
        """The account's fills on a symbol as USD-M ``userTrades`` / spot ``myTrades`` select
        them: ``fromId`` (ids from it on) or ``startTime``/``endTime`` (not both: -1128; a span
        over 7 days, spot 24 h: -1127), else the most recent; ``orderId`` narrows to one order;
        at most ``limit`` (default 500, max 1000), oldest first."""
        symbol = self.rules(p.get("symbol")).symbol
        raw = {k: p.get(k, "") for k in ("orderId", "fromId", "startTime", "endTime", "limit")}
        for name, value in raw.items():
            if value and not value.isdigit():
                raise errors.bad_param(name)
        limit = int(raw["limit"] or 500)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Invalid data sent for a parameter.")
        if raw["fromId"] and (raw["startTime"] or raw["endTime"]):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        span = (24 if self.spot else 7 * 24) * 3_600_000
        now = self.clock_ms()
        end = int(raw["endTime"]) if raw["endTime"] else None
        start = int(raw["startTime"]) if raw["startTime"] else None
        if start is not None and end is not None and end - start > span:
            raise ApiError(-1127, "Lookup interval is too big.")
        if start is None and end is None and not raw["fromId"]:
            start = now - span
        lo = start if start is not None else (end - span if end is not None else 0)
        hi = end if end is not None else (start + span if start is not None else now)
        rows = [
            (o, t)
            for o in self.orders.values()
            if o.symbol == symbol and (not raw["orderId"] or str(o.order_id) == raw["orderId"])
            for t in o.trades
            if lo <= t.time_ms <= hi and (not raw["fromId"] or t.trade_id >= int(raw["fromId"]))
        ]
        rows.sort(key=lambda row: row[1].trade_id)
        recent = not raw["fromId"] and not raw["startTime"]
        return rows[-limit:] if recent else rows[:limit]

    def cancel_all(self, symbol: str) -> list[Order]:
        """Cancel every open order of ``symbol`` (allOpenOrders, countdownCancelAll)."""
        done = []
        for order in self.open_orders(symbol):
            done.append(self.cancel({"symbol": symbol, "orderId": str(order.order_id)}))
        return done

    # -- the venue's reports -------------------------------------------------------------------
    def _handle(self, reports: list[Report]) -> None:
        for report in reports:
            oid = report.intent_id
            base = oid.partition("m")[0]
            order = self.orders.get(int(base)) if base.isdigit() else None
            if order is None or (isinstance(report, OrderUpdate) and oid != order.venue_id):
                continue  # not ours, or a version a modification replaced
            if isinstance(report, Fill):
                self._fill(order, report)
            else:
                self._update(order, report)

    def _update(self, order: Order, u: OrderUpdate) -> None:
        order.update_ms = self.clock_ms()
        if u.status == "accepted":
            self._event(order, "NEW", None)
        elif u.status == "rejected":
            order.status = "REJECTED" if u.reason == POST_ONLY_REJECT else "EXPIRED"
        elif u.status in ("cancelled", "expired") and order.is_open:
            order.status = "CANCELED" if u.status == "cancelled" else "EXPIRED"
            self._event(order, order.status, None)

    def _fill(self, order: Order, f: Fill) -> None:
        trade = TradeInfo(
            self.next_trade_id,
            f.px,
            f.qty,
            f.fee,
            self.symbols[order.symbol].quote,
            f.liquidity == "maker",
            time_ms=self.clock_ms(),
        )
        self.next_trade_id += 1
        order.executed += f.qty
        order.cum_quote += f.px * f.qty
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.update_ms = self.clock_ms()
        order.trades.append(trade)
        sign = 1 if order.side == "BUY" else -1
        quote = trade.fee_asset
        if self.spot:
            base = self.symbols[order.symbol].base
            self.balances[base] = self.balances.get(base, _ZERO) + sign * f.qty
            self.balances[quote] = self.balances.get(quote, _ZERO) - sign * f.px * f.qty - f.fee
        else:
            trade.realized = self.positions.setdefault(order.symbol, Position()).apply(sign * f.qty, f.px)
            self.balances[quote] = self.balances.get(quote, _ZERO) + trade.realized - f.fee
        self._event(order, "TRADE", trade)

    def _event(self, order: Order, exec_type: str, trade: TradeInfo | None) -> None:
        now = self.clock_ms()
        if self.spot:
            self.publish(execution_report(order, exec_type, now, trade))
            self.publish(self.account_position(now))
        else:
            self.publish(order_trade_update(order, exec_type, now, trade))
            if trade is not None:
                self.publish(self.account_update(order.symbol, now))

    # -- balances ------------------------------------------------------------------------------
    def locked(self, asset: str) -> Decimal:
        """Spot: what open orders hold of ``asset``."""
        total = _ZERO
        for o in self.open_orders(None):
            r = self.symbols[o.symbol]
            left = o.qty - o.executed
            if o.side == "BUY" and r.quote == asset:
                total += left * o.price
            elif o.side == "SELL" and r.base == asset:
                total += left
        return total

    def _check_funds(self, r: SymbolRules, side: str, price: Decimal, qty: Decimal) -> None:
        asset, need = (
            (r.quote, qty * (price or self.marks.get(r.symbol, _ZERO))) if side == "BUY" else (r.base, qty)
        )
        if self.balances.get(asset, _ZERO) - self.locked(asset) < need:
            raise ApiError(-2010, "Account has insufficient balance for requested action.")

    def spot_balances(self) -> list[dict[str, str]]:
        return [
            {"asset": a, "free": fmt(v - self.locked(a), True), "locked": fmt(self.locked(a), True)}
            for a, v in sorted(self.balances.items())
        ]

    def account_position(self, now: int) -> dict[str, Any]:
        balances = [{"a": b["asset"], "f": b["free"], "l": b["locked"]} for b in self.spot_balances()]
        return {"e": "outboundAccountPosition", "E": now, "u": now, "B": balances}

    def unrealized(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol, Position())
        mark = self.marks.get(symbol)
        return (mark - pos.entry) * pos.amount if mark is not None and pos.amount else _ZERO

    def account_update(self, symbol: str, now: int) -> dict[str, Any]:
        pos = self.positions.get(symbol, Position())
        f = lambda d: fmt(d, False)  # noqa: E731
        balances = [{"a": a, "wb": f(v), "cw": f(v), "bc": "0"} for a, v in sorted(self.balances.items())]
        p = {"s": symbol, "pa": f(pos.amount), "ep": f(pos.entry), "bep": f(pos.entry), "cr": "0"}
        p |= {"up": f(self.unrealized(symbol)), "mt": "cross", "iw": "0", "ps": "BOTH"}
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": "ORDER", "B": balances, "P": [p]}}
