"""Trend filter: a fast drop of the mid starts a cooldown that widens spreads and pauses bids.

Buying into a falling market is how a maker accumulates a losing long; the analysis pauses bids
for 60 s after a downtrend is seen. A new drop during the cooldown extends it.
"""

from __future__ import annotations

from collections import deque

from mmflow.config import TrendConfig


class TrendFilter:
    __slots__ = ("cfg", "samples", "until_us", "engagements", "_lookback_us", "_cooldown_us", "_was_active")

    def __init__(self, cfg: TrendConfig) -> None:
        self.cfg = cfg
        self.samples: deque[tuple[int, float]] = deque()
        self.until_us = 0
        self.engagements = 0
        self._lookback_us = int(cfg.lookback_s * 1_000_000)
        self._cooldown_us = int(cfg.cooldown_s * 1_000_000)
        self._was_active = False

    def add_sample(self, now_us: int, mid: float) -> None:
        if not self.cfg.enabled:
            return
        samples = self.samples
        samples.append((now_us, mid))
        while samples and samples[0][0] < now_us - self._lookback_us:
            samples.popleft()
        oldest = samples[0][1]
        # 1e-9 bps of slack: an exact 10 bps drop must not be lost to binary rounding.
        if oldest > 0 and (mid / oldest - 1.0) * 10_000.0 <= -self.cfg.drop_bps + 1e-9:
            if not self.active(now_us):
                self.engagements += 1
            self.until_us = now_us + self._cooldown_us

    def active(self, now_us: int) -> bool:
        return now_us < self.until_us
