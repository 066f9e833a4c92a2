"""The pure parts of the live market-data ingest (``mmflow ingest``, ``connectors/binance_ws.py``):
the reconnect schedule, the per-stream sequence check that drops what a reconnect replays, and the
clock offset estimate. No I/O and no clock: every input is given, so each is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (1 = the first after a drop), before jitter:
    ``base * 2**(attempt-1)``, capped at ``cap``."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return min(cap, base * 2.0 ** min(attempt - 1, 62))


def jittered(delay: float, draw: float, spread: float = 0.5) -> float:
    """``delay`` scaled by a factor in ``[1 - spread, 1)`` from ``draw`` in ``[0, 1)`` ("equal
    jitter" without the cap's overshoot: never longer than the schedule, never below its
    ``1 - spread``), so many clients dropped at once do not reconnect in step."""
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), got {draw}")
    return delay * (1.0 - spread * draw)


Verdict = Literal["new", "duplicate", "gap"]


@dataclass(slots=True)
class SequenceCheck:
    """One stream's ids (trade id ``t``, book-ticker or depth update id ``u``) across reconnects.

    An id at or below the highest seen is a ``duplicate`` (a reconnect's overlap: dropped);
    above it, ``new``; with ``contiguous`` (trade ids step by one on Binance), an id beyond
    ``last + 1`` is a ``gap`` (``missing`` ids were lost) and is accepted as well."""

    contiguous: bool = False
    last: int | None = None
    duplicates: int = 0
    gaps: int = 0
    missing: int = 0

    def check(self, seq: int) -> Verdict:
        last = self.last
        if last is not None and seq <= last:
            self.duplicates += 1
            return "duplicate"
        self.last = seq
        if self.contiguous and last is not None and seq > last + 1:
            self.gaps += 1
            self.missing += seq - last - 1
            return "gap"
        return "new"


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One ``GET /time`` round trip: local send and receive times and the server's time, all in
    microseconds."""

    sent: int
    server: int
    received: int

    @property
    def rtt(self) -> int:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """Server clock minus local clock, assuming the server stamped at the round trip's middle."""
        return self.server - (self.sent + self.received) / 2


def clock_offset(samples: Iterable[ClockSample]) -> tuple[float, int]:
    """``(offset, rtt)`` in microseconds from the sample with the shortest round trip (the one
    whose midpoint assumption can be off by the least: at most ``rtt / 2``). Server minus local:
    a positive offset means the exchange clock is ahead."""
    best = min(samples, key=lambda s: s.rtt, default=None)
    if best is None:
        raise ValueError("no clock samples")
    if best.rtt < 0:
        raise ValueError(f"a round trip cannot end before it starts: {best}")
    return best.offset, best.rtt
