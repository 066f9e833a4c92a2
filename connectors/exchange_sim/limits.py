"""Request weights and order counts against the rate limits exchangeInfo publishes.

Binance counts, per fixed window (a minute for REQUEST_WEIGHT, 10 s / 1 min / 1 day for ORDERS),
the weight of every request and the number of new orders, reports the counts in
``X-MBX-USED-WEIGHT-<n><unit>`` and ``X-MBX-ORDER-COUNT-<n><unit>`` headers, and answers 429 with
``Retry-After`` (seconds to the window's end) once a budget is spent: -1003 for weight, -1015 for
orders. The budgets are the ``rateLimits`` of the exchangeInfo served, so the recorded file's
limits (or the documented defaults) are the ones a client meets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mmflow.connectors.exchange_sim.errors import ApiError

_UNIT_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_UNIT_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


@dataclass(slots=True)
class Window:
    """One rate limit: a fixed window of ``span_ms`` and its budget."""

    kind: str  # REQUEST_WEIGHT or ORDERS
    span_ms: int
    limit: int
    label: str  # "1M", "10S", ...
    interval: str
    start_ms: int = 0
    used: int = 0

    def add(self, amount: int, now_ms: int) -> int:
        start = now_ms - now_ms % self.span_ms
        if start != self.start_ms:
            self.start_ms, self.used = start, 0
        self.used += amount
        return self.used

    def retry_after_s(self, now_ms: int) -> int:
        return max(1, math.ceil((self.start_ms + self.span_ms - now_ms) / 1000))


@dataclass(slots=True)
class RateLimiter:
    """The windows of the venue's rateLimits, charged per request (RAW_REQUESTS not counted)."""

    windows: list[Window] = field(default_factory=list)

    @classmethod
    def from_exchange_info(cls, rate_limits: list[dict[str, Any]]) -> RateLimiter:
        windows = []
        for rl in rate_limits:
            kind, unit = rl.get("rateLimitType"), rl.get("interval")
            if kind not in ("REQUEST_WEIGHT", "ORDERS") or unit not in _UNIT_MS:
                continue
            n = int(rl.get("intervalNum", 1))
            label = f"{n}{_UNIT_LETTER[unit]}"
            windows.append(Window(kind, n * _UNIT_MS[unit], int(rl["limit"]), label, unit))
        return cls(windows)

    def charge(self, weight: int, orders: int, now_ms: int) -> dict[str, str]:
        """Count one request; its usage headers, or ApiError 429 past a budget (the request
        still counts, as on the exchange)."""
        headers: dict[str, str] = {}
        over: Window | None = None
        for w in self.windows:
            weighs = w.kind == "REQUEST_WEIGHT"
            if not weighs and not orders:
                continue  # order counts are charged, and reported, by order requests only
            used = w.add(weight if weighs else orders, now_ms)
            name = "X-MBX-USED-WEIGHT-" if weighs else "X-MBX-ORDER-COUNT-"
            headers[name + w.label] = str(used)
            if used > w.limit and over is None:
                over = w
        if over is not None:
            headers["Retry-After"] = str(over.retry_after_s(now_ms))
            raise ApiError(*_too_many(over), status=429, headers=headers)
        return headers


def _too_many(w: Window) -> tuple[int, str]:
    if w.kind == "REQUEST_WEIGHT":
        per = w.interval.lower()
        return -1003, (
            f"Too many requests; current limit is {w.limit} requests per {per}. "
            "Please use the websocket for live updates to avoid polling the API."
        )
    return -1015, f"Too many new orders; current limit is {w.limit} orders per {w.label}."


def depth_weight(spot: bool, limit: int) -> int:
    """The documented weight of a depth request of ``limit`` levels."""
    if spot:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


#: (venue spot?, endpoint name) -> weight, from the venues' docs (depth and the symbol-less
#: variants are computed by the handlers).
WEIGHTS: dict[tuple[bool, str], int] = {
    (False, "ping"): 1,
    (False, "time"): 1,
    (False, "exchangeInfo"): 1,
    (False, "bookTicker"): 2,
    (False, "bookTicker*"): 5,
    (False, "order"): 1,
    (False, "openOrders"): 1,
    (False, "openOrders*"): 40,
    (False, "allOpenOrders"): 1,
    (False, "positionRisk"): 5,
    (False, "account"): 5,
    (False, "balance"): 5,
    (False, "listenKey"): 1,
    (False, "countdownCancelAll"): 10,
    (False, "myTrades"): 5,  # userTrades
    (False, "myTrades1"): 5,
    (True, "ping"): 1,
    (True, "time"): 1,
    (True, "exchangeInfo"): 20,
    (True, "bookTicker"): 2,
    (True, "bookTicker*"): 4,
    (True, "order"): 1,
    (True, "queryOrder"): 4,
    (True, "openOrders"): 6,
    (True, "openOrders*"): 80,
    (True, "allOpenOrders"): 1,
    (True, "account"): 20,
    (True, "listenKey"): 2,
    (True, "myTrades"): 20,
    (True, "myTrades1"): 5,  # with orderId
}
