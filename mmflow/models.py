"""Events in and intents out: the typed vocabulary shared by every part of mmflow.

Each type is a plain slotted dataclass so the hot path can build one for the cost of a tuple
(input events are not ``frozen``: a frozen dataclass costs three times as much to build, which
at 100k events a second is a tenth of the budget; nothing mutates them after decoding);
the same class doubles as the wire schema through pydantic's ``TypeAdapter``, so a record from
Kafka is validated by exactly the definition the strategy consumes. Money is ``Decimal``;
timestamps are integer microseconds since the Unix epoch (the Tardis convention).

The wire form is JSON, one object per message, with ``"v"`` (schema version) and ``"type"``
(the discriminator) and every decimal written as a string so no binary float ever touches a
price. See ``docs/wire-format.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from mmflow.dead_reasons import DeadReason, reason_of

SCHEMA_VERSION = 1

Side = Literal["buy", "sell"]

# -- input bounds: the one set for files, Kafka and outputs -----------------------------------------
#: Prices, sizes and fees below 1e9: far outside any real market, and small enough that every
#: value derived from them (a notional below 1e18, a fee, a PnL) fits a Decimal(38, 18) output
#: column, so a value that passes validation can always be written. Absurd values are dead letters.
VALUE_DIGITS = 9
VALUE_LIMIT = Decimal(10) ** VALUE_DIGITS
#: At most 18 decimal places: exactly what the Decimal(38, 18) output columns hold.
DECIMAL_PLACES = 18
#: Timestamps are microseconds below 1e17 (year 5138).
TS_DIGITS = 17
TS_LIMIT = 10**TS_DIGITS
NAME_MAX = 64
ID_MAX = 128

PositiveDecimal = Annotated[
    Decimal,
    Field(gt=0, lt=VALUE_LIMIT, allow_inf_nan=False, max_digits=38, decimal_places=DECIMAL_PLACES),
]
FiniteDecimal = Annotated[
    Decimal,
    Field(gt=-VALUE_LIMIT, lt=VALUE_LIMIT, allow_inf_nan=False, max_digits=38, decimal_places=DECIMAL_PLACES),
]
NonNegativeDecimal = Annotated[
    Decimal,
    Field(ge=0, lt=VALUE_LIMIT, allow_inf_nan=False, max_digits=38, decimal_places=DECIMAL_PLACES),
]
Micros = Annotated[int, Field(ge=0, lt=TS_LIMIT)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX)]
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX)]
OptionalId = Annotated[str, Field(max_length=ID_MAX)]


@dataclass(slots=True, kw_only=True)
class BookTick:
    """Top of book: the best bid and ask with their sizes."""

    market: Name
    ts_exchange: Micros
    ts_recv: Micros
    bid_px: PositiveDecimal
    bid_qty: PositiveDecimal
    ask_px: PositiveDecimal
    ask_qty: PositiveDecimal
    type: Literal["book"] = "book"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Trade:
    """A public trade; ``side`` is the taker's side (``sell`` hit the bids)."""

    market: Name
    ts_exchange: Micros
    ts_recv: Micros
    trade_id: OptionalId
    side: Side
    px: PositiveDecimal
    qty: PositiveDecimal
    type: Literal["trade"] = "trade"
    v: Literal[1] = 1


Level = tuple[PositiveDecimal, NonNegativeDecimal]


@dataclass(slots=True, kw_only=True)
class Depth:
    """A change of the order book beyond the touch: levels as (price, size); size 0 removes the
    level. ``snapshot`` replaces the whole book. Only the paper venue's queue model reads it;
    the strategy quotes off ``BookTick``."""

    market: Name
    ts_exchange: Micros
    ts_recv: Micros
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    snapshot: bool = False
    type: Literal["depth"] = "depth"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Fill:
    """One of our own executions. ``fee`` is in quote currency; negative is a rebate."""

    market: Name
    ts: Micros
    fill_id: Id
    intent_id: OptionalId
    side: Side
    px: PositiveDecimal
    qty: PositiveDecimal
    fee: FiniteDecimal
    liquidity: Literal["maker", "taker"]
    source: Literal["maker", "hedge"]
    #: What filled it, when the venue knows (the paper venue does; an exchange does not say):
    #: ``trade_through`` (a print beyond our price), ``trade_at_price`` (a print at it), ``touch``
    #: (the opposite best price crossed us), ``ioc`` (a hedge taking the touch), or "".
    cause: Literal["", "trade_through", "trade_at_price", "touch", "ioc"] = ""
    type: Literal["fill"] = "fill"
    v: Literal[1] = 1


@dataclass(slots=True, frozen=True, kw_only=True)
class QuoteIntent:
    """The complete set of resting quotes wanted for a market; it replaces the previous one.

    A side that is ``None`` is to be cancelled. ``reasons`` names every rule that shaped it, so a
    person reading the intent log can tell why a bid is missing or a spread is wide.
    """

    market: str
    ts: int
    intent_id: str
    bid_px: Decimal | None
    bid_qty: Decimal | None
    ask_px: Decimal | None
    ask_qty: Decimal | None
    best_bid: Decimal
    best_ask: Decimal
    inventory: Decimal
    reasons: tuple[str, ...] = ()
    type: Literal["quote"] = "quote"
    v: Literal[1] = 1


@dataclass(slots=True, frozen=True, kw_only=True)
class HedgeIntent:
    """An immediate-or-cancel order that takes liquidity to bring inventory back to target."""

    market: str
    ts: int
    intent_id: str
    side: Side
    qty: Decimal
    limit_px: Decimal
    best_bid: Decimal
    best_ask: Decimal
    inventory: Decimal
    tif: Literal["IOC"] = "IOC"
    reasons: tuple[str, ...] = ()
    type: Literal["hedge"] = "hedge"
    v: Literal[1] = 1


@dataclass(slots=True, frozen=True, kw_only=True)
class CancelAllIntent:
    """Pull every resting order of a market (stale data, a halt, the kill switch)."""

    market: str
    ts: int
    intent_id: str
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    inventory: Decimal = Decimal(0)
    reasons: tuple[str, ...] = ()
    type: Literal["cancel_all"] = "cancel_all"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Control:
    """An operator command: ``halt`` (the kill switch) or ``resume``, for one market or ``*``.

    A halt cancels everything and stops quoting and hedging; only an explicit resume lifts it.
    A resume lifts a loss-limit halt only with ``clear_loss_limit``: a loss limit is the one halt
    a person must mean to lift.
    """

    market: Name
    ts: Micros
    command_id: Id
    action: Literal["halt", "resume"]
    reason: Annotated[str, Field(max_length=256)] = ""
    clear_loss_limit: bool = False
    type: Literal["control"] = "control"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Position:
    """The position the execution side holds in a market, by its own count of its fills.

    Published after every fill and every few seconds; the flow reconciles its FIFO inventory
    against it.
    """

    market: Name
    ts: Micros
    position: FiniteDecimal
    fills: Annotated[int, Field(ge=0)]
    source: Annotated[str, Field(max_length=ID_MAX)] = ""
    type: Literal["position"] = "position"
    v: Literal[1] = 1


OrderStatus = Literal["accepted", "rejected", "cancelled", "expired", "partially_filled", "filled"]
#: Why a post-only order was rejected: it would have crossed the book (Binance -5022).
POST_ONLY_REJECT = "post_only_would_cross"
#: Statuses after which an order is gone: nothing more can fill it.
TERMINAL_STATUSES = frozenset({"rejected", "cancelled", "expired", "filled"})


@dataclass(slots=True, kw_only=True)
class OrderUpdate:
    """One step of an order's life, as the execution side reports it (the paper venue, and an
    exchange connector in the same terms). An order is one side of a quote intent or one hedge:
    it is named by its intent id and side. ``filled_qty`` is cumulative; ``reason`` says why an
    order was rejected or expired (``post_only_would_cross`` is Binance's -5022)."""

    market: Name
    ts: Micros
    intent_id: Id
    side: Side
    kind: Literal["quote", "hedge"]
    status: OrderStatus
    px: PositiveDecimal
    qty: PositiveDecimal
    filled_qty: NonNegativeDecimal = Decimal(0)
    reason: Annotated[str, Field(max_length=256)] = ""
    source: Annotated[str, Field(max_length=ID_MAX)] = ""
    type: Literal["order"] = "order"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Incarnation:
    """A process took a market over: the flow's journal marks where, so a replay of the session
    numbers its intents (and cancels at the restart) exactly as the live flow did. Never read
    from an input topic: only the flow writes it, to its journal."""

    market: Name
    ts: Micros
    incarnation: Id
    type: Literal["incarnation"] = "incarnation"
    v: Literal[1] = 1


@dataclass(slots=True, kw_only=True)
class Timer:
    """A live flow's wall-clock timer fired for a market at its market time ``ts`` (the stale-data
    guard of a silent market). Journalled, so a replay makes the same timer-driven decision at the
    same place; never read from an input topic."""

    market: Name
    ts: Micros
    type: Literal["timer"] = "timer"
    v: Literal[1] = 1


MarketEvent = BookTick | Trade | Depth
InputEvent = BookTick | Trade | Depth | Fill | OrderUpdate | Control | Position | Incarnation | Timer


def arrival_time(event: InputEvent) -> int:
    """When an event reached the flow, its clock: receive time for market data, the record's own
    time otherwise. The ordering rule of replays and the future-stamp check both use it."""
    cls = type(event)
    return event.ts_recv if cls is BookTick or cls is Trade or cls is Depth else event.ts  # type: ignore[union-attr]


def _decimal_fields(*classes: type) -> frozenset[str]:
    return frozenset(f.name for cls in classes for f in fields(cls) if "Decimal" in str(f.type))


#: Every money or size field of the flat input records: what a table stores as exact text.
DECIMAL_FIELDS = _decimal_fields(BookTick, Trade, Fill, OrderUpdate, Control, Position)

#: Records only the flow writes (to its journal): refused when they arrive on an input topic.
INTERNAL_TYPES = frozenset({"incarnation", "timer"})
Intent = QuoteIntent | HedgeIntent | CancelAllIntent


@dataclass(slots=True, kw_only=True)
class DeadLetter:
    """A record the flow refused, kept whole with why so nothing is lost: ``reason`` is one of a
    fixed set of codes (what metrics count by), ``detail`` the text that says what this record
    got wrong (a trade id, a field, a row)."""

    source: str
    reason: DeadReason
    detail: str
    raw: bytes
    market: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, source: str, detail: str, raw: bytes, market: str | None = None, **extra: str) -> DeadLetter:
        """A dead letter whose code is the one its ``detail`` names (``reason_of``)."""
        return cls(
            source=source, reason=reason_of(detail), detail=detail, raw=raw, market=market, extra=extra
        )
