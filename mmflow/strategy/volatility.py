"""Realized volatility of the mid, in bps of 1-interval log returns.

The mid is sampled on a fixed event-time grid so the estimate does not depend on how often the
exchange sends book updates (Binance sends hundreds a second when busy, a few when quiet).
Floats are fine here: volatility is a statistic, never a price.
"""

from __future__ import annotations

import math
from collections import deque

from mmflow.config import VolatilityConfig


class MidSampler:
    """Turns an irregular stream of mids into at most one sample per interval boundary."""

    __slots__ = ("interval_us", "next_us")

    def __init__(self, interval_s: float) -> None:
        self.interval_us = max(1, int(interval_s * 1_000_000))
        self.next_us: int | None = None

    def due(self, now_us: int) -> bool:
        """True when ``now_us`` crossed a boundary, i.e. the current mid is a new sample."""
        if self.next_us is not None and now_us < self.next_us:
            return False
        self.next_us = (now_us // self.interval_us + 1) * self.interval_us
        return True


class RealizedVolatility:
    """Standard deviation of the last ``window`` log returns between samples, in bps."""

    __slots__ = ("returns", "last", "min_returns", "value_bps")

    def __init__(self, cfg: VolatilityConfig, min_returns: int | None = None) -> None:
        self.returns: deque[float] = deque(maxlen=cfg.window)
        self.last: float | None = None
        self.min_returns = cfg.min_returns if min_returns is None else min_returns
        self.value_bps = 0.0

    @property
    def warm(self) -> bool:
        return len(self.returns) >= self.min_returns

    def add_sample(self, mid: float) -> float:
        if self.last is not None and self.last > 0:
            self.returns.append(math.log(mid / self.last))
            n = len(self.returns)
            if n >= 2:
                mean = sum(self.returns) / n
                var = sum((r - mean) ** 2 for r in self.returns) / (n - 1)
                self.value_bps = math.sqrt(var) * 10_000.0
        self.last = mid
        return self.value_bps
