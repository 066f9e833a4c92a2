"""Test helpers for the exchange simulator: a server on a free port in a thread of its own, and a
plain standard-library client (urllib + hmac) that signs requests as Binance documents."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from aiohttp import web

from mmflow.connectors.exchange_sim.app import SimConfig, create_app

KEY = "test-key"
SECRET = "test-secret-not-real"


class SimServer:
    """``create_app(cfg)`` served on 127.0.0.1:<free port> by an event loop in its own thread."""

    def __init__(self, cfg: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(cfg), self.loop).result(60)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"

    async def _start(self, cfg: SimConfig) -> int:
        self.runner = web.AppRunner(create_app(cfg), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def status(self) -> dict[str, Any]:
        return call(self, "GET", "/_sim/status")[2]

    def wait_replayed(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.status()["replay_finished"]:
            assert time.monotonic() < deadline, "the replay did not finish"
            time.sleep(0.1)

    def faults(self, **switches: Any) -> dict[str, Any]:
        status, _, body = call(self, "POST", "/_sim/faults", json_body=switches, key=KEY)
        assert status == 200, body
        return body


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def call(
    sim: SimServer,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    signed: bool = False,
    key: str | None = None,
    secret: str = SECRET,
    timestamp: int | None = None,
    in_body: bool = False,
    json_body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; (status, headers, JSON body). Signed: ``timestamp`` and ``signature`` added,
    the parameters sent in the query string or (``in_body``) as a form body."""
    items = dict(params or {})
    if signed:
        items["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    text = urllib.parse.urlencode(items)
    if signed:
        text += ("&" if text else "") + "signature=" + sign(secret, text)
    url, data = sim.base + path, None
    headers = {"X-MBX-APIKEY": key} if key else {}
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif in_body:
        data, headers["Content-Type"] = text.encode(), "application/x-www-form-urlencoded"
    elif text:
        url += "?" + text
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def signed(sim: SimServer, method: str, path: str, **params: Any) -> tuple[int, dict[str, str], Any]:
    return call(sim, method, path, params, signed=True, key=KEY)


#: A post-only buy of BTCUSDT's minimum size: the order the tests rest below the touch.
GTX_BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.001"}


def gtx_buy(sim: SimServer, px: Any, **extra: Any) -> tuple[int, dict[str, str], Any]:
    """``POST /fapi/v1/order`` of ``GTX_BUY`` at ``px`` (plus ``extra``, e.g. newClientOrderId)."""
    return signed(sim, "POST", "/fapi/v1/order", **GTX_BUY, price=str(px), **extra)
