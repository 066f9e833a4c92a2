"""A read-only snapshot of one market's state: what metrics, the timeline and the summary read.

Readers never reach into the maker's rule objects: the maker answers ``view()`` once and every
consumer takes what it needs from the same frozen record, so a rename inside a rule touches one
method, not every reporter. ``TIMELINE_FIELDS`` is the one definition of the timeline's columns
(the Parquet writer and the report both take their column lists from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(slots=True, frozen=True, kw_only=True)
class MarketView:
    ts: int
    market: str
    mid: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    #: The resting quote (the last quote intent), None where a side is not quoted.
    bid_px: Decimal | None
    ask_px: Decimal | None
    volatility_bps: float
    regime: int
    trend_guard: bool
    pnl_guard: bool
    inventory: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal | None
    spread_bps: float
    stale_guard: bool
    operator_halt: bool
    loss_halt: bool
    position_limit: bool
    #: Halted because the books disagree with the venue's position, and by how much (venue minus
    #: books at its last report).
    reconcile_halt: bool
    position_mismatch: Decimal
    # Counters since the market started.
    pnl_guard_engagements: int
    trend_guard_engagements: int
    regime_switches: int
    stale_guard_engagements: int
    loss_limit_halts: int
    operator_halts: int
    reconcile_halts: int
    open_lots: tuple[tuple[Decimal, Decimal], ...]
    # The orders out, as the execution side reported them (0 without order reports).
    open_orders: int = 0
    hedge_in_flight: Decimal = Decimal(0)
    post_only_rejects: int = 0
    requotes: int = 0

    def guard_engagements(self) -> dict[str, int]:
        """Engagements per guard, named as the metric's ``guard`` label."""
        return {
            "pnl": self.pnl_guard_engagements,
            "trend": self.trend_guard_engagements,
            "stale": self.stale_guard_engagements,
            "loss_limit": self.loss_limit_halts,
            "kill_switch": self.operator_halts,
            "reconcile": self.reconcile_halts,
        }


#: The timeline's columns, in order: one row per market per interval of event time.
TIMELINE_FIELDS: tuple[str, ...] = (
    "ts",
    "market",
    "mid",
    "best_bid",
    "best_ask",
    "bid_px",
    "ask_px",
    "volatility_bps",
    "regime",
    "trend_guard",
    "pnl_guard",
    "inventory",
    "hedge_in_flight",
    "open_orders",
    "realized_pnl",
    "spread_bps",
    "stale_guard",
    "operator_halt",
    "loss_halt",
)


def timeline_row(view: MarketView) -> dict[str, object]:
    """The timeline columns of a view; flags as 0/1, floats rounded so the bytes are stable."""
    row: dict[str, object] = {}
    for name in TIMELINE_FIELDS:
        value = getattr(view, name)
        if type(value) is bool:
            value = int(value)
        elif type(value) is float:
            value = round(value, 9)
        row[name] = value
    return row
