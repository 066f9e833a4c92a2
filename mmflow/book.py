"""Placeholder L2 book (replaced by the depth work's OrderBook)."""

from __future__ import annotations

from decimal import Decimal

from mmflow.models import Depth


class OrderBook:
    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, depth: Depth) -> None:
        if depth.snapshot:
            self.bids.clear()
            self.asks.clear()
        for levels, book in ((depth.bids, self.bids), (depth.asks, self.asks)):
            for px, qty in levels:
                if qty:
                    book[px] = qty
                else:
                    book.pop(px, None)

    def size(self, side: str, px: Decimal) -> Decimal:
        return (self.bids if side == "buy" else self.asks).get(px, Decimal(0))

    def to_state(self) -> dict[str, list[list[str]]]:
        return {
            "bids": [[str(p), str(q)] for p, q in self.bids.items()],
            "asks": [[str(p), str(q)] for p, q in self.asks.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, list[list[str]]]) -> OrderBook:
        book = cls()
        book.bids = {Decimal(p): Decimal(q) for p, q in state["bids"]}
        book.asks = {Decimal(p): Decimal(q) for p, q in state["asks"]}
        return book
