"""The orders a market has out: sent and not yet answered, resting, or being cancelled.

The execution side reports each order's life (``OrderUpdate``); until an order is known to be
gone it may still fill, so it counts. That is what the hedger (a hedge in flight is a hedge
done) and the hard position limit (the worst case: the position plus everything that could
still fill on the adding side) need. An order is one side of a quote intent, or one hedge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mmflow.models import (
    TERMINAL_STATUSES,
    CancelAllIntent,
    Fill,
    HedgeIntent,
    Intent,
    OrderUpdate,
    QuoteIntent,
)

_ZERO = Decimal(0)


@dataclass(slots=True)
class TrackedOrder:
    kind: str  # "quote" or "hedge"
    side: str
    remaining: Decimal
    accepted: bool = False
    cancelling: bool = False


class OrderTracker:
    __slots__ = ("orders",)

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str], TrackedOrder] = {}

    def sent(self, intent: Intent) -> None:
        """An intent left: a quote replaces (cancels) the resting quotes, a cancel-all cancels
        them; a hedge IOC is in flight until the venue says how it ended."""
        if isinstance(intent, HedgeIntent):
            self.orders[(intent.intent_id, intent.side)] = TrackedOrder("hedge", intent.side, intent.qty)
            return
        for order in self.orders.values():
            if order.kind == "quote":
                order.cancelling = True
        if isinstance(intent, QuoteIntent):
            if intent.bid_px is not None and intent.bid_qty:
                self.orders[(intent.intent_id, "buy")] = TrackedOrder("quote", "buy", intent.bid_qty)
            if intent.ask_px is not None and intent.ask_qty:
                self.orders[(intent.intent_id, "sell")] = TrackedOrder("quote", "sell", intent.ask_qty)
        else:
            assert isinstance(intent, CancelAllIntent)

    def update(self, update: OrderUpdate) -> None:
        key = (update.intent_id, update.side)
        order = self.orders.get(key)
        if order is None:
            return  # an order of an earlier process, or already ended
        if update.status in TERMINAL_STATUSES:
            del self.orders[key]
            return
        order.accepted = True
        order.remaining = min(order.remaining, update.qty - update.filled_qty)

    def filled(self, fill: Fill) -> None:
        key = (fill.intent_id, fill.side)
        order = self.orders.get(key)
        if order is not None:
            order.remaining -= fill.qty
            if order.remaining <= 0:
                del self.orders[key]

    def outstanding(self) -> tuple[Decimal, Decimal]:
        """(buys, sells) that could still fill: every order not known to be gone."""
        buys = sells = _ZERO
        for order in self.orders.values():
            if order.side == "buy":
                buys += order.remaining
            else:
                sells += order.remaining
        return buys, sells

    def hedging(self) -> Decimal:
        """The signed size of the hedges in flight (a buy is positive)."""
        total = _ZERO
        for order in self.orders.values():
            if order.kind == "hedge":
                total += order.remaining if order.side == "buy" else -order.remaining
        return total

    def open_quotes(self) -> int:
        return sum(1 for o in self.orders.values() if o.kind == "quote")

    def reset(self) -> None:
        self.orders.clear()
