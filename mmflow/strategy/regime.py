"""Volatility regime: 1 = aggressive (calm market), 0 = defensive (above the threshold)."""

from __future__ import annotations

from mmflow.config import RegimeConfig

AGGRESSIVE = 1
DEFENSIVE = 0


class RegimeSwitch:
    __slots__ = ("cfg", "state", "switches")

    def __init__(self, cfg: RegimeConfig) -> None:
        self.cfg = cfg
        self.state = AGGRESSIVE
        self.switches = 0

    def update(self, vol_bps: float) -> int:
        new = DEFENSIVE if self.cfg.enabled and vol_bps > self.cfg.threshold_bps else AGGRESSIVE
        if new != self.state:
            self.switches += 1
            self.state = new
        return self.state

    def widen_bps(self) -> float:
        return self.cfg.defensive_widen_bps if self.state == DEFENSIVE else 0.0
