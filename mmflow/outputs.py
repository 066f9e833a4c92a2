"""What the flow produces, one typed list per kind.

A market's step appends to these instead of tagging tuples with a kind string, so every reader
(the metrics, the Parquet writer, the Kafka routes) takes exactly the list it needs and a new
kind is a new field, not a new string to branch on in four places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmflow.markouts import Markout
from mmflow.models import Control, DeadLetter, Fill, Incarnation, Intent, OrderUpdate, Position, Timer
from mmflow.view import MarketView


@dataclass(slots=True, frozen=True)
class Journaled:
    """An input the flow took besides market data (a fill, order update, control or position), a
    process taking the market over (``Incarnation``) or its wall-clock timer firing (``Timer``),
    after its market's ``after_events``-th market event: a replay re-inserts it exactly there
    (the live ordering rule) and makes the same decision on it."""

    event: Fill | OrderUpdate | Control | Position | Incarnation | Timer
    after_events: int


@dataclass(slots=True)
class Outputs:
    intents: list[Intent] = field(default_factory=list)
    #: Fills of the embedded paper venue (on Kafka the venue is its own process).
    fills: list[Fill] = field(default_factory=list)
    #: The embedded paper venue's order updates (each order's life), in its report order.
    orders: list[OrderUpdate] = field(default_factory=list)
    journal: list[Journaled] = field(default_factory=list)
    #: Records refused by a market's state (duplicates, out of order), with their bytes.
    dead: list[DeadLetter] = field(default_factory=list)
    timeline: list[MarketView] = field(default_factory=list)
    #: Mark-outs of every fill booked (mmflow/markouts.py), once resolved or at the end.
    marks: list[Markout] = field(default_factory=list)
    #: One per market at the end of input: the validation metrics and the final state.
    summaries: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Outputs) -> None:
        for name in self.__slots__:
            getattr(self, name).extend(getattr(other, name))
