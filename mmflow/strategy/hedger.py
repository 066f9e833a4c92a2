"""Hedger: take liquidity with an IOC when the position is past the trigger.

It brings |inventory| back to the target (keeping the sign), at most one clip at a time and at
most one order per cooldown, so it cannot machine-gun the book while its last order is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mmflow.config import HedgerConfig, InstrumentSpec
from mmflow.strategy.quoting import bps_factor, floor_to, round_away


@dataclass(slots=True, frozen=True)
class HedgePlan:
    side: str
    qty: Decimal
    limit_px: Decimal


class Hedger:
    __slots__ = ("cfg", "spec", "last_us", "cooldown_us", "_slip_down", "_slip_up")

    def __init__(self, cfg: HedgerConfig, spec: InstrumentSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.last_us: int | None = None
        self.cooldown_us = int(cfg.cooldown_s * 1_000_000)
        self._slip_down = bps_factor(-cfg.max_slippage_bps)
        self._slip_up = bps_factor(cfg.max_slippage_bps)

    def next_ready_us(self) -> int | None:
        """When the cooldown of the last hedge ends (None before the first hedge)."""
        return None if self.last_us is None else self.last_us + self.cooldown_us

    def ready(self, now_us: int) -> bool:
        return self.last_us is None or now_us - self.last_us >= self.cooldown_us

    def plan(self, inventory: Decimal, best_bid: Decimal, best_ask: Decimal, now_us: int) -> HedgePlan | None:
        """The IOC to send now, or None (below trigger, cooling down, or below minimum size)."""
        cfg = self.cfg
        if not cfg.enabled or abs(inventory) <= cfg.trigger_base or not self.ready(now_us):
            return None
        qty = floor_to(min(abs(inventory) - cfg.target_base, cfg.max_clip_base), self.spec.lot_size)
        if qty < self.spec.min_qty:
            return None
        tick = self.spec.tick_size
        if inventory > 0:
            plan = HedgePlan("sell", qty, round_away(best_bid * self._slip_down, tick, up=True))
        else:
            plan = HedgePlan("buy", qty, round_away(best_ask * self._slip_up, tick, up=False))
        self.last_us = now_us
        return plan
