"""A bounded memory of recent ids: how fills, trades and intents are counted exactly once."""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Remembers the last ``capacity`` ids, so a replayed or duplicated fill (or trade) counts once.

    Duplicates come from a resumed source re-reading its last batch, so a bounded window is
    enough and keeps state size flat however long the market runs.
    """

    __slots__ = ("order", "ids")

    def __init__(self, capacity: int = 512) -> None:
        self.order: deque[str] = deque(maxlen=capacity)
        self.ids: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.ids

    def seen(self, key: str) -> bool:
        """Record ``key``; return True when it was already there."""
        if key in self.ids:
            return True
        if len(self.order) == self.order.maxlen:
            self.ids.discard(self.order[0])
        self.order.append(key)
        self.ids.add(key)
        return False
