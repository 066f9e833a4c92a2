"""The exchange's rate budget as its own answers tell it (``mmflow execute``).

exchangeInfo's ``rateLimits`` give each budget (request weight per minute, orders per 10 s and
per minute or day); every answer carries what is used of it (``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S``, ...). A 429 (or 418, an IP ban) says ``Retry-After`` seconds: nothing
is sent before then. ``wait_s`` is how long to hold a request: until the ban lifts, or while a
budget is used past ``headroom`` (new orders only; cancels always go, they lower the risk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_UNITS = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


@dataclass(slots=True)
class RateBudget:
    #: header suffix (``1M``, ``10S``) -> limit, for weight and for orders
    weight_limits: dict[str, int] = field(default_factory=dict)
    order_limits: dict[str, int] = field(default_factory=dict)
    used_weight: dict[str, int] = field(default_factory=dict)
    used_orders: dict[str, int] = field(default_factory=dict)
    banned_until: float = 0.0
    headroom: float = 0.9
    throttled: int = 0

    @classmethod
    def from_exchange_info(cls, limits: list[dict[str, Any]], headroom: float = 0.9) -> RateBudget:
        b = cls(headroom=headroom)
        for lim in limits:
            key = f"{lim.get('intervalNum', 1)}{_UNITS.get(lim.get('interval', ''), '?')}"
            if lim.get("rateLimitType") == "REQUEST_WEIGHT":
                b.weight_limits[key] = int(lim["limit"])
            elif lim.get("rateLimitType") == "ORDERS":
                b.order_limits[key] = int(lim["limit"])
        return b

    def update(self, headers: dict[str, str] | Any, status: int, now: float) -> None:
        """Read an answer's usage headers (case-insensitive), and its Retry-After on 429/418."""
        for name, value in headers.items():
            upper = name.upper()
            if not str(value).isdigit():
                continue
            if upper.startswith("X-MBX-USED-WEIGHT-"):
                self.used_weight[upper.removeprefix("X-MBX-USED-WEIGHT-")] = int(value)
            elif upper.startswith("X-MBX-ORDER-COUNT-"):
                self.used_orders[upper.removeprefix("X-MBX-ORDER-COUNT-")] = int(value)
        if status in (429, 418):
            retry = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            seconds = float(retry) if retry is not None and str(retry).replace(".", "", 1).isdigit() else 1.0
            self.banned_until = max(self.banned_until, now + seconds)
            self.throttled += 1

    def fraction_used(self) -> float:
        """The most used of every budget, 0..1 (and above, past a limit)."""
        parts = [self.used_weight.get(k, 0) / v for k, v in self.weight_limits.items() if v]
        parts += [self.used_orders.get(k, 0) / v for k, v in self.order_limits.items() if v]
        return max(parts, default=0.0)

    def wait_s(self, now: float, order: bool) -> float:
        """Seconds to hold a request now (0: send it)."""
        if now < self.banned_until:
            return self.banned_until - now
        if order:
            for k, v in self.order_limits.items():
                if v and self.used_orders.get(k, 0) >= v * self.headroom:
                    self.used_orders[k] = 0  # known again from the next answer, after the wait
                    return 1.0 if k.endswith("S") else 5.0
            for k, v in self.weight_limits.items():
                if v and self.used_weight.get(k, 0) >= v * self.headroom:
                    self.used_weight[k] = 0
                    return 5.0
        return 0.0
