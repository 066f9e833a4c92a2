"""Binance's REST API as ``mmflow execute`` calls it: signed requests over aiohttp, the rate
budget read from every answer, 429/418 backed off per ``Retry-After``.

Signing is Binance's documented scheme: ``timestamp`` (the local clock corrected by the offset
``GET /time`` measured) and ``recvWindow`` join the parameters, and ``signature`` is the hex
HMAC-SHA256 of that query string keyed by the API secret. Everything travels in the query string.
A signed request refused with -1021 (its timestamp outside ``recvWindow`` of the exchange's clock:
the local clock or the exchange's has jumped) was not carried out: it is counted, the offset is
measured again and the same request (an order with the same client id) is sent again, signed anew.
The key and the secret are never logged, put in a metric or in an error: an error carries the
endpoint, the HTTP status and Binance's ``code``/``msg`` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from mmflow.connectors.metrics import ExecMetrics
from mmflow.rate_budget import RateBudget

log = logging.getLogger("mmflow.execute")

RECV_WINDOW_MS = 5000
#: How often one request is re-signed and sent again after -1021, each time after a re-sync.
CLOCK_RETRIES = 2


class ApiError(Exception):
    """The exchange refused a request: HTTP ``status``, Binance ``code`` and ``msg``."""

    def __init__(self, endpoint: str, status: int, code: int, msg: str) -> None:
        super().__init__(f"{endpoint}: HTTP {status}, {code} {msg}")
        self.endpoint, self.status, self.code, self.msg = endpoint, status, code, msg


class Unreachable(Exception):
    """No answer (a timeout, a refused or dropped connection): the request may or may not have
    been carried out."""


@dataclass(eq=False)
class Rest:
    session: aiohttp.ClientSession
    base: str
    api_key: str = field(repr=False)
    secret: bytes = field(repr=False)
    budget: RateBudget
    metrics: ExecMetrics
    venue: str
    timeout_s: float = 10.0
    offset_ms: int = 0  # exchange clock minus local clock
    time_path: str = ""  # GET .../time, remembered by the first sync for the re-syncs
    synced_at: float = 0.0  # time.monotonic() of the last sync
    _clock_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def sync_clock(self, path: str) -> None:
        """The offset from the shortest of three ``GET /time`` round trips."""
        self.time_path = path
        best: tuple[float, int] | None = None
        for _ in range(3):
            t0 = time.time()
            body = await self.call("GET", path)
            t1 = time.time()
            rtt = t1 - t0
            offset = int(body["serverTime"] - (t0 + t1) * 500)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        self.offset_ms = best[1]
        self.synced_at = time.monotonic()
        self.metrics.child("exec_clock_offset", self.venue).set(self.offset_ms / 1000)

    async def _resync(self, sent: float) -> None:
        """Measure the offset again, unless another request's re-sync did since ``sent``."""
        async with self._clock_lock:
            if self.synced_at <= sent:
                before = self.offset_ms
                await self.sync_clock(self.time_path)
                log.warning("execute: clock re-synced: offset %+d ms (was %+d ms)", self.offset_ms, before)

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = False,
        key: bool = False,
        order: bool = False,
        retries_429: int = 20,
    ) -> Any:
        """One request; its JSON answer, ApiError for a refusal, Unreachable for no answer.
        A 429/418 waits ``Retry-After`` and tries again (the same request: idempotent); a signed
        one refused with -1021 re-syncs the clock and goes again (it was not carried out)."""
        for clock_attempt in range(CLOCK_RETRIES + 1):
            sent = time.monotonic()
            try:
                return await self._call(method, path, params, signed, key, order, retries_429)
            except ApiError as err:
                if not signed or err.code != -1021 or clock_attempt == CLOCK_RETRIES or not self.time_path:
                    raise
                self.metrics.child("exec_clock_rejects", method, path.rsplit("/", 1)[-1]).inc()
                log.warning(
                    "execute: %s %s refused for its timestamp (-1021): re-syncing the clock", method, path
                )
                await self._resync(sent)
        raise AssertionError("not reached")

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        signed: bool,
        key: bool,
        order: bool,
        retries_429: int,
    ) -> Any:
        for _attempt in range(retries_429 + 1):
            wait = self.budget.wait_s(time.monotonic(), order)
            if wait > 0:
                self.metrics.child("exec_throttle_waits", self.venue).inc()
                await asyncio.sleep(wait)
            status, headers, body = await self._once(method, path, params, signed, key or signed)
            self.budget.update(headers, status, time.monotonic())
            self.metrics.child("exec_rate_budget_used", self.venue).set(self.budget.fraction_used())
            if status in (429, 418):
                log.warning("execute: %s %s answered %d; backing off per Retry-After", method, path, status)
                continue
            if status >= 400 or (isinstance(body, dict) and "code" in body and body.get("code", 0) < 0):
                b = body if isinstance(body, dict) else {}
                raise ApiError(f"{method} {path}", status, int(b.get("code", 0)), str(b.get("msg", "")))
            return body
        raise ApiError(f"{method} {path}", 429, -1003, "still rate limited after backing off")

    async def _once(
        self, method: str, path: str, params: dict[str, Any] | None, signed: bool, key: bool
    ) -> tuple[int, Any, Any]:
        items = {k: v for k, v in (params or {}).items() if v is not None}
        if signed:
            items["recvWindow"] = RECV_WINDOW_MS
            items["timestamp"] = int(time.time() * 1000) + self.offset_ms
        query = urlencode(items)
        if signed:
            sig = hmac.new(self.secret, query.encode(), hashlib.sha256).hexdigest()
            query = f"{query}&signature={sig}" if query else f"signature={sig}"
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        headers = {"X-MBX-APIKEY": self.api_key} if key else {}
        endpoint = path.rsplit("/", 1)[-1]
        t0 = time.perf_counter()
        try:
            async with self.session.request(
                method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as resp:
                raw = await resp.read()
                status, rheaders = resp.status, resp.headers
        except (TimeoutError, aiohttp.ClientError) as err:
            self.metrics.child("exec_request_errors", endpoint).inc()
            raise Unreachable(f"{method} {path}: {type(err).__name__}") from None
        finally:
            self.metrics.child("exec_request_latency", endpoint).observe(time.perf_counter() - t0)
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = {"code": 0, "msg": raw[:200].decode(errors="replace")}
        return status, rheaders, body
