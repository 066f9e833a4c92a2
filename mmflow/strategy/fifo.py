"""FIFO realized PnL: the accounting the PnL guard and the analysis' metric are built on.

Lots are closed oldest first; a fill larger than the open position closes it and opens the rest
on the other side (a flip through zero). Fees are charged on every fill, so ``realized`` is what
the account really made, rebates included.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from mmflow.money import add, product

ZERO = Decimal(0)


class FifoBook:
    """Open lots as ``[signed_qty, px]`` pairs, all on one side of zero."""

    __slots__ = ("lots", "position", "gross_realized", "fees")

    def __init__(self) -> None:
        self.lots: deque[list[Decimal]] = deque()
        self.position: Decimal = ZERO
        self.gross_realized: Decimal = ZERO
        self.fees: Decimal = ZERO

    @property
    def realized(self) -> Decimal:
        """Realized PnL net of fees, in quote currency."""
        return self.gross_realized - self.fees

    def apply(self, side: str, px: Decimal, qty: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Book a fill; return the realized PnL it produced (net of its fee)."""
        signed = qty if side == "buy" else -qty
        self.fees = add(self.fees, fee)
        gained = ZERO
        lots = self.lots
        while signed and lots and (lots[0][0] > 0) != (signed > 0):
            lot = lots[0]
            lot_qty, lot_px = lot
            close = min(abs(lot_qty), abs(signed))
            # A long lot closed by a sell gains (px - lot_px); a short lot the opposite.
            gained = add(gained, product(close, px - lot_px if lot_qty > 0 else lot_px - px))
            if close == abs(lot_qty):
                lots.popleft()
            else:
                lot[0] = lot_qty - close if lot_qty > 0 else lot_qty + close
            signed = signed + close if signed < 0 else signed - close
        if signed:
            lots.append([signed, px])
        self.position += qty if side == "buy" else -qty
        self.gross_realized = add(self.gross_realized, gained)
        return gained - fee

    def unrealized(self, mark: Decimal) -> Decimal:
        """Mark-to-market PnL of the open lots at ``mark``."""
        return sum((q * (mark - p) for q, p in self.lots), ZERO)

    def avg_entry(self) -> Decimal | None:
        if not self.position:
            return None
        return sum((q * p for q, p in self.lots), ZERO) / self.position
