"""The execution side as the strategy's runtime sees it: a venue that takes intents and, as
market time passes, reports fills and each order's life.

The paper venue (connectors/paper_venue.py) implements it for replays; on Kafka the venue is a
process of its own and its reports arrive as input events (fills and order updates), so the
flow runs without one. An exchange connector reports in exactly the same terms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mmflow.models import BookTick, Depth, Fill, Intent, OrderUpdate, Trade

Report = Fill | OrderUpdate


class ExecutionVenue(Protocol):
    #: The incarnation its fill ids carry; a restart of the flow sets a new one.
    incarnation: str

    def submit(self, intent: Intent) -> bool:
        """Take an intent (False: a duplicate id, ignored)."""
        ...

    def on_book(self, tick: BookTick) -> list[Report]:
        """Market time moved to ``tick``: what the venue did until then and with it."""
        ...

    def on_trade(self, trade: Trade) -> list[Report]: ...

    def on_depth(self, depth: Depth) -> list[Report]: ...


#: Builds a market's venue: ``(market) -> venue``.
VenueFactory = Callable[[str], ExecutionVenue]
