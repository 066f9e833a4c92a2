"""Fault switches for tests and rehearsals: what a connector must survive, on demand.

- ``ws_drop_after``: every websocket is dropped (its TCP connection aborted, no close frame) after
  that many messages, as a flaky network or an exchange restart does;
- ``fail_status`` for ``fail_for_s`` seconds: every REST request is answered 429 (with -1003 and
  ``Retry-After``) or that 5xx, as during an overload or an outage;
- ``delay_ms``: every REST response is held back that long;
- ``clock_skew_ms``: the server clock runs that far ahead (negative: behind), so a client that
  does not sync its clock meets -1021.

Set at start (command-line options) or at run time: ``POST /_sim/faults`` with a JSON object of
these names (the simulator's own path, outside the venue's API, authenticated by the API key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mmflow.connectors.exchange_sim.errors import ApiError

_SERVER_ERROR = "Internal error; unable to process your request. Please try again."
_FIELDS = {"ws_drop_after", "fail_status", "fail_for_s", "delay_ms", "clock_skew_ms"}


@dataclass(slots=True)
class Faults:
    ws_drop_after: int | None = None
    fail_status: int | None = None
    fail_until: float = 0.0  # time.monotonic() the failures stop
    delay_ms: float = 0.0
    clock_skew_ms: int = 0

    def fail_for(self, status: int | None, seconds: float) -> None:
        if status is not None and status != 429 and not 500 <= status <= 599:
            raise ValueError(f"fail_status must be 429 or a 5xx, not {status}")
        self.fail_status = status
        self.fail_until = time.monotonic() + seconds if status is not None else 0.0

    def failure(self) -> ApiError | None:
        """The error every REST request gets now, if a failure is switched on."""
        if self.fail_status is None:
            return None
        left = self.fail_until - time.monotonic()
        if left <= 0:
            self.fail_status = None
            return None
        if self.fail_status == 429:
            retry = {"Retry-After": str(max(1, round(left + 0.5)))}
            return ApiError(-1003, "Too many requests; the simulator's 429 fault is on.", 429, retry)
        return ApiError(-1001, _SERVER_ERROR, self.fail_status)

    def update(self, data: dict[str, Any]) -> None:
        """Apply a ``/_sim/faults`` body; unknown names are a ValueError naming them."""
        unknown = set(data) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault switches {sorted(unknown)}; known: {sorted(_FIELDS)}")
        if "ws_drop_after" in data:
            n = data["ws_drop_after"]
            self.ws_drop_after = None if n is None else int(n)
        if "fail_status" in data:
            self.fail_for(data["fail_status"], float(data.get("fail_for_s", 0)))
        if "delay_ms" in data:
            self.delay_ms = float(data["delay_ms"])
        if "clock_skew_ms" in data:
            self.clock_skew_ms = int(data["clock_skew_ms"])

    def server_ms(self) -> int:
        """The server clock: the wall clock in ms, skewed as switched."""
        return int(time.time() * 1000) + self.clock_skew_ms
