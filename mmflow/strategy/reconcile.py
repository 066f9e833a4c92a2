"""Reconciliation: the flow's FIFO inventory against the position the venue says it holds.

A difference is normal for a moment (a fill the venue counted that the flow has not consumed
yet). One above a lot that is still there ``grace`` later is not in flight: the books and the
venue disagree, and the market must stop until a person looks.
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

    def report(self, venue: Decimal, books: Decimal, ts_us: int) -> bool:
        """Note a venue report; True when a mismatch has outlived the grace (halt now)."""
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
