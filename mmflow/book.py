"""One market's L2 order book, built from ``Depth`` events, for the paper venue's queue model.

The queue model asks two things per event: the size resting at our own price level, and how much
sits at prices a taker reaches first. A depth diff touches about a hundred levels of a book of
a thousand, so the book is two plain dicts (price -> size) with the best price of each side
cached: a diff costs one dict write per level, the best price is recomputed only when the best
level itself is removed, and the rare questions that need order (the state, depth at or better)
scan the dict. No dependency beyond the standard library: the core stays pure.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from mmflow.models import Depth, Level

BookSide = Literal["buy", "sell"]
#: The JSON-able state: price and size as exact decimal text, bids best first, asks best first.
BookState = dict[str, list[list[str]]]


class OrderBook:
    """Bid and ask levels as exact Decimals; ``buy`` is the bid side, ``sell`` the ask side."""

    __slots__ = ("_bids", "_asks", "_best_bid", "_best_ask")

    def __init__(self) -> None:
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        # The cached best price of each side; None means "unknown, recompute" (or empty side).
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None

    def __len__(self) -> int:
        """The number of price levels on both sides."""
        return len(self._bids) + len(self._asks)

    # -- updates --------------------------------------------------------------------------------
    def apply(self, depth: Depth) -> None:
        """Apply one change: a snapshot replaces the whole book, a diff sets each level's
        absolute size and size 0 removes the level (removing an absent level is normal)."""
        if depth.snapshot:
            self._bids.clear()
            self._asks.clear()
            self._best_bid = self._best_ask = None
        self._apply_bids(depth.bids)
        self._apply_asks(depth.asks)

    def _apply_bids(self, levels: tuple[Level, ...]) -> None:
        book, best = self._bids, self._best_bid
        for px, size in levels:
            if size:
                book[px] = size
                if best is not None and px > best:
                    best = px
            elif book.pop(px, None) is not None and px == best:
                best = None
        self._best_bid = best if book else None

    def _apply_asks(self, levels: tuple[Level, ...]) -> None:
        book, best = self._asks, self._best_ask
        for px, size in levels:
            if size:
                book[px] = size
                if best is not None and px < best:
                    best = px
            elif book.pop(px, None) is not None and px == best:
                best = None
        self._best_ask = best if book else None

    # -- questions ------------------------------------------------------------------------------
    def best_bid(self) -> Decimal | None:
        """The highest bid price, or None for an empty bid side."""
        if self._best_bid is None and self._bids:
            self._best_bid = max(self._bids)
        return self._best_bid

    def best_ask(self) -> Decimal | None:
        """The lowest ask price, or None for an empty ask side."""
        if self._best_ask is None and self._asks:
            self._best_ask = min(self._asks)
        return self._best_ask

    def size(self, side: BookSide, px: Decimal) -> Decimal:
        """The size resting at ``px`` on ``side`` (``buy`` = bids), 0 if there is no level."""
        return (self._bids if side == "buy" else self._asks).get(px, Decimal(0))

    def depth_at_or_better(self, side: BookSide, px: Decimal) -> Decimal:
        """The size a taker reaches before going past ``px``: bids priced >= px (``buy``), or
        asks priced <= px (``sell``)."""
        if side == "buy":
            return sum((s for p, s in self._bids.items() if p >= px), Decimal(0))
        return sum((s for p, s in self._asks.items() if p <= px), Decimal(0))

    # -- state ----------------------------------------------------------------------------------
    def to_state(self) -> BookState:
        """The book as JSON-able lists of [price, size] text, best level first on each side."""
        bids = sorted(self._bids.items(), reverse=True)
        asks = sorted(self._asks.items())
        return {
            "bids": [[str(p), str(s)] for p, s in bids],
            "asks": [[str(p), str(s)] for p, s in asks],
        }

    @classmethod
    def from_state(cls, state: BookState) -> OrderBook:
        """The book ``to_state`` described (decimals from their text, never a float)."""
        book = cls()
        book._bids = {Decimal(p): Decimal(s) for p, s in state["bids"]}
        book._asks = {Decimal(p): Decimal(s) for p, s in state["asks"]}
        return book

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderBook) and self._bids == other._bids and self._asks == other._asks

    __hash__ = None  # type: ignore[assignment]  # mutable
