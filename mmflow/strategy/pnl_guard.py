"""PnL guard: widen and shrink quotes once FIFO realized PnL is below the trigger.

The analysis saw the guard engage, clear and engage again within seconds; the hysteresis here
(a clear margin above the trigger and a minimum hold time) makes one bad patch one engagement.
"""

from __future__ import annotations

from decimal import Decimal

from mmflow.config import PnlGuardConfig


class PnlGuard:
    __slots__ = ("cfg", "active", "since_us", "engagements", "_hold_us")

    def __init__(self, cfg: PnlGuardConfig) -> None:
        self.cfg = cfg
        self.active = False
        self.since_us = 0
        self.engagements = 0
        self._hold_us = int(cfg.min_hold_s * 1_000_000)

    def update(self, realized: Decimal, now_us: int) -> bool:
        """Re-evaluate at ``now_us``; return whether the guard is active."""
        if not self.cfg.enabled:
            return False
        if not self.active:
            if realized <= self.cfg.trigger_quote:
                self.active = True
                self.since_us = now_us
                self.engagements += 1
        elif (
            realized >= self.cfg.trigger_quote + self.cfg.clear_margin_quote
            and now_us - self.since_us >= self._hold_us
        ):
            self.active = False
        return self.active

    def next_change_us(self) -> int | None:
        """When a clear could next become possible purely through time passing."""
        return self.since_us + self._hold_us if self.active else None
