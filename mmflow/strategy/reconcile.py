"""Reconciliation: the flow's FIFO inventory against the position the venue says it holds.

The venue's report says how many fills it made; the flow compares positions only when it has
received exactly as many (booked, or refused as impossible), so a fill in flight, or a backlog the
flow reads after a restart (reports and fills come on different topics, in any order), is never
mistaken for a mismatch. A difference above a lot on two such reports at least ``grace`` apart is
real: the books and the venue disagree, and the market must stop until a person looks.
"""

from __future__ import annotations

from decimal import Decimal


class Reconciler:
    __slots__ = ("enabled", "grace_us", "tolerance", "since_us", "venue", "books", "mismatches")

    def __init__(self, enabled: bool, grace_s: float, tolerance: Decimal) -> None:
        self.enabled = enabled
        self.grace_us = int(grace_s * 1_000_000)
        self.tolerance = tolerance
        self.since_us: int | None = None  # when the current mismatch was first seen
        self.venue: Decimal | None = None  # the last position the venue reported
        self.books: Decimal | None = None  # the flow's inventory at that report
        self.mismatches = 0  # mismatches seen (each may clear within the grace)

    @property
    def difference(self) -> Decimal:
        """Venue minus books at the last report (0 before any)."""
        if self.venue is None or self.books is None:
            return Decimal(0)
        return self.venue - self.books

    def report(self, venue: Decimal, venue_fills: int, books: Decimal, received: int, ts_us: int) -> bool:
        """Note a venue report; True when a mismatch has outlived the grace (halt now)."""
        if received != venue_fills:
            return False  # fills in flight one way or the other: nothing to compare yet
        self.venue, self.books = venue, books
        if not self.enabled or abs(venue - books) <= self.tolerance:
            self.since_us = None
            return False
        if self.since_us is None:
            self.since_us = ts_us
            self.mismatches += 1
            return False
        return ts_us - self.since_us >= self.grace_us

    def reset(self) -> None:
        """After an operator's resume: a persisting mismatch must outlive a new grace."""
        self.since_us = None
