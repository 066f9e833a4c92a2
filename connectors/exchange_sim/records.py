"""The account's records: its orders, their fills and its positions, and how the venue prints a
decimal; shared by the account (orders.py), its events (user_stream.py) and its answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

_ZERO = Decimal(0)
OPEN = ("NEW", "PARTIALLY_FILLED")


def fmt(value: Decimal, spot: bool) -> str:
    """A decimal as the venue prints it: spot with 8 places, USD-M with the places it was given."""
    if spot:
        return f"{value.quantize(Decimal('1e-8')):f}"
    return f"{value:f}"


@dataclass(slots=True)
class TradeInfo:
    """One fill of an order, as the user stream and spot's FULL response print it."""

    trade_id: int
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    realized: Decimal = _ZERO
    time_ms: int = 0  # server time of the fill (userTrades / myTrades ``time``)


@dataclass(slots=True)
class Order:
    symbol: str
    order_id: int
    client_id: str
    side: str  # BUY / SELL
    type: str  # LIMIT / MARKET / LIMIT_MAKER
    tif: str  # GTC / IOC / GTX ("GTC" for spot LIMIT_MAKER and MARKET, as the venue reports)
    price: Decimal
    qty: Decimal
    time_ms: int
    executed: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    status: str = "NEW"
    update_ms: int = 0
    cancel_client_id: str = ""
    trades: list[TradeInfo] = field(default_factory=list)
    #: How often it was modified (USD-M ``PUT order``): each version rests in the paper venue
    #: under its own id, ``<orderId>`` then ``<orderId>m<n>``.
    modifications: int = 0

    @property
    def venue_id(self) -> str:
        return f"{self.order_id}m{self.modifications}" if self.modifications else str(self.order_id)

    def avg_price(self) -> Decimal:
        return (self.cum_quote / self.executed).normalize() if self.executed else _ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(slots=True)
class Position:
    """A one-way USD-M position: signed amount, average entry price."""

    amount: Decimal = _ZERO
    entry: Decimal = _ZERO

    def apply(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Add a fill; the PnL it realizes (the part that closes the position)."""
        amt = self.amount
        new = amt + signed_qty
        if amt == 0 or (amt > 0) == (signed_qty > 0):
            self.entry = (abs(amt) * self.entry + abs(signed_qty) * price) / abs(new)
            self.amount = new
            return _ZERO
        closed = min(abs(signed_qty), abs(amt))
        realized = closed * (price - self.entry) * (1 if amt > 0 else -1)
        if new == 0:
            self.entry = _ZERO
        elif (new > 0) != (amt > 0):
            self.entry = price
        self.amount = new
        return realized
