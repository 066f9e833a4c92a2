"""After a user-data stream gap (``mmflow execute``): what the stream missed, read back by REST.

While the stream is down (a dropped connection, an exchange restart) the exchange goes on: a
resting quote fills, a hedge's IOC executes, another client or the countdown cancels an order.
Its events are not sent again on the new connection, so once it is up, for each symbol:

1. the open orders (``openOrders``) and, for every order this process believed open that is not
   among them, its own status (``GET order`` by client id): how each one stands now;
2. the account's trades since the last message the stream delivered (less a margin; USD-M
   ``userTrades``, spot ``myTrades``, paged by ``fromId``): each trade of one of this bot's
   orders is a fill, published unless it already was (the exchange trade id is the fill id, so
   a fill the stream did deliver is not published twice);
3. then the orders' new states as order updates (fills first, as the stream orders them), and
   the positions.

Events that arrive on the new connection during this overlap it harmlessly: a fill id or an
order status already published is not published again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from mmflow.connectors.binance_rest import ApiError, Rest
from mmflow.connectors.metrics import ExecMetrics
from mmflow.exchange_orders import is_ours, order_status
from mmflow.models import TERMINAL_STATUSES

log = logging.getLogger("mmflow.execute")

#: Trades looked up from this long before the stream's last message: what may have been in
#: flight, and a clock that jumped since the offset was measured. The overlap costs nothing but
#: a longer list (fills already published are not published again).
GAP_MARGIN_MS = 30_000
_PAGE = 1000
#: Trades of orders this process does not know are looked up by order id, at most this many a gap.
_MAX_LOOKUPS = 50


class Order(Protocol):
    """What recovery reads and sets of an order (``binance_exec.Order``)."""

    market: str
    symbol: str
    client_id: str
    order_id: int
    status: str
    filled: Decimal
    post_only: bool
    open: bool


class Executor(Protocol):
    """What recovery needs of the executor (``binance_exec.Executor``; a protocol, so this module
    does not import that one, which imports it)."""

    markets: dict[str, str]
    api: str
    spot: bool
    prefix: str
    rest: Rest
    metrics: ExecMetrics

    @property
    def orders(self) -> Mapping[str, Order]: ...

    def publish_fill(
        self,
        order: Any,
        *,
        trade_id: int,
        ts_ms: int,
        px: Decimal,
        qty: Decimal,
        fee: Decimal,
        fee_asset: str | None,
        maker: bool,
    ) -> bool: ...

    def _update(self, order: Any, exchange_status: str, filled: Decimal) -> None: ...

    async def publish_positions(self) -> None: ...


async def recover(ex: Executor, since_ms: int) -> None:
    """Publish what the stream missed since ``since_ms`` (exchange time), then the positions."""
    for market, symbol in ex.markets.items():
        states = await _order_states(ex, market, symbol)
        fills = await _missed_fills(ex, symbol, since_ms)
        updates = sum(_apply_state(ex, order, body) for order, body in states)
        if fills:
            ex.metrics.child("exec_recovered", market, "fill").inc(fills)
        if updates:
            ex.metrics.child("exec_recovered", market, "order_update").inc(updates)
        log.info(
            "execute: %s after the user-stream gap: %d missed fill(s), %d missed order update(s)",
            market,
            fills,
            updates,
        )
    await ex.publish_positions()


async def _order_states(ex: Executor, market: str, symbol: str) -> list[tuple[Order, dict[str, Any]]]:
    """(order, the exchange's record of it) for each order of ``market`` believed open."""
    listed = await ex.rest.call("GET", f"{ex.api}/openOrders", {"symbol": symbol}, signed=True)
    by_cid = {o.get("clientOrderId"): o for o in listed}
    believed = [
        o
        for o in ex.orders.values()
        if o.market == market and o.order_id and o.status not in TERMINAL_STATUSES
    ]
    out = []
    for order in believed:
        body = by_cid.get(order.client_id)
        if body is None:  # no longer open: how did it end?
            body = await _query(ex, symbol, {"origClientOrderId": order.client_id})
        if body is None:
            order.open = False  # the exchange keeps no record of it
        else:
            out.append((order, body))
    return out


async def _query(ex: Executor, symbol: str, by: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return await ex.rest.call("GET", f"{ex.api}/order", {"symbol": symbol, **by}, signed=True)
    except ApiError as err:
        if err.code == -2013:
            return None
        raise


async def _missed_fills(ex: Executor, symbol: str, since_ms: int) -> int:
    """Publish the trades of this bot's orders since ``since_ms`` not yet published; how many."""
    path = f"{ex.api}/myTrades" if ex.spot else "/fapi/v1/userTrades"
    by_id = {o.order_id: o for o in ex.orders.values() if o.symbol == symbol and o.order_id}
    foreign: set[int] = set()
    params: dict[str, Any] = {"symbol": symbol, "startTime": since_ms, "limit": _PAGE}
    published = 0
    while True:
        rows = await ex.rest.call("GET", path, params, signed=True)
        for t in rows:
            order = await _order_of(ex, symbol, int(t["orderId"]), by_id, foreign)
            if order is not None and _trade_fill(ex, order, t):
                published += 1
        if len(rows) < _PAGE:
            return published
        params = {"symbol": symbol, "fromId": int(rows[-1]["id"]) + 1, "limit": _PAGE}


async def _order_of(
    ex: Executor, symbol: str, order_id: int, by_id: dict[int, Order], foreign: set[int]
) -> Order | None:
    """This bot's order with exchange id ``order_id``: known, or (an order whose placement went
    unanswered) looked up by id and matched by client id; None for another client's."""
    order = by_id.get(order_id)
    if order is not None or order_id in foreign or len(foreign) >= _MAX_LOOKUPS:
        return order
    body = await _query(ex, symbol, {"orderId": order_id})
    cid = str((body or {}).get("clientOrderId", ""))
    order = ex.orders.get(cid) if is_ours(ex.prefix, cid) else None
    if order is None:
        foreign.add(order_id)
        return None
    order.order_id = order.order_id or order_id
    by_id[order_id] = order
    return order


def _trade_fill(ex: Executor, order: Order, t: dict[str, Any]) -> bool:
    return ex.publish_fill(
        order,
        trade_id=int(t["id"]),
        ts_ms=int(t["time"]),
        px=Decimal(str(t["price"])),
        qty=Decimal(str(t["qty"])),
        fee=Decimal(str(t.get("commission") or "0")),
        fee_asset=t.get("commissionAsset"),
        maker=bool(t.get("isMaker", t.get("maker", False))),
    )


def _apply_state(ex: Executor, order: Order, body: dict[str, Any]) -> bool:
    """The exchange's record of ``order`` as an order update, if it says something new."""
    status, filled = str(body.get("status", "")), Decimal(str(body.get("executedQty", "0")))
    mapped = order_status(status, order.post_only, filled)
    if mapped is None or (mapped[0] == order.status and filled <= order.filled):
        return False
    before = (order.status, order.filled)
    ex._update(order, status, filled)
    return (order.status, order.filled) != before
