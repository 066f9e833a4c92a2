"""Quote pricing: from the mid, on the tick grid, never crossing or touching the other side.

Rounding always moves a quote away from the mid (bids down, asks up) so the quoted spread is at
least the spread the rules asked for; the post-only clamp then keeps a bid strictly below the
best ask and an ask strictly above the best bid, so a quote never takes liquidity.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

_BPS = Decimal(10_000)


def bps_factor(bps: float) -> Decimal:
    """1 + bps/10000 as an exact decimal (bps rounded to 1e-6, far below a tick)."""
    return 1 + Decimal(repr(round(bps, 6))) / _BPS


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def round_away(value: Decimal, step: Decimal, up: bool) -> Decimal:
    """Round to the step grid: up (ceiling) for asks, down (floor) for bids."""
    return (value / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * step


def price_quotes(
    mid: Decimal, best_bid: Decimal, best_ask: Decimal, spread_bps: float, tick: Decimal
) -> tuple[Decimal, Decimal, bool]:
    """(bid_px, ask_px, clamped) for a full quoted width of ``spread_bps`` around ``mid``."""
    half = spread_bps / 2.0
    bid = round_away(mid * bps_factor(-half), tick, up=False)
    ask = round_away(mid * bps_factor(half), tick, up=True)
    clamped = False
    if bid >= best_ask:
        bid = best_ask - tick
        clamped = True
    if ask <= best_bid:
        ask = best_bid + tick
        clamped = True
    return bid, ask, clamped


def moved(old: Decimal | None, new: Decimal | None, tolerance: Decimal) -> bool:
    """Whether a price changed by more than ``tolerance`` (a fraction), or appeared/vanished."""
    if old is None or new is None:
        return old is not new
    return abs(new - old) > old * tolerance
