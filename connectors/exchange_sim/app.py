"""The aiohttp application: the venue's REST routes (routes.py) on one ``Exchange``
(exchange.py), its websockets and the fault switches.

Websockets: ``/stream?streams=...`` (the replayed market) and ``/ws/<listenKey>`` (the account).
``/_sim/faults`` and ``/_sim/status`` are the simulator's own, outside the venue's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mmflow.connectors.exchange_sim import errors
from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.exchange import (
    VENUES,
    Exchange,
    Route,
    SimConfig,
    SimError,
    json_response,
)
from mmflow.connectors.exchange_sim.faults import Faults
from mmflow.connectors.exchange_sim.market import Subscriber, parse_streams
from mmflow.connectors.exchange_sim.routes import routes
from mmflow.connectors.exchange_sim.sockets import serve

__all__ = ["VENUES", "SimConfig", "SimError", "create_app"]


def _fault_middleware(faults: Faults) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/") or path == "/stream" or path.startswith("/ws/"):
            return await handler(request)
        if faults.delay_ms > 0:
            await asyncio.sleep(faults.delay_ms / 1000)
        err = faults.failure()
        if err is not None:
            return json_response(err.body(), err.status, err.headers)
        return await handler(request)

    return middleware


EXCHANGE = web.AppKey("exchange", Exchange)


def create_app(cfg: SimConfig) -> web.Application:
    """The simulator as an aiohttp application (run it with ``web.run_app`` or an AppRunner)."""
    ex = Exchange(cfg)
    app = web.Application(middlewares=[_fault_middleware(ex.faults)])
    app[EXCHANGE] = ex
    for route in routes(ex):
        app.router.add_route(route.method, route.path, _handler(ex, route))
    app.router.add_get("/stream", _market_ws)
    app.router.add_get("/ws/{key}", _user_ws)
    app.router.add_post("/_sim/faults", _faults)
    app.router.add_get("/_sim/status", _status)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app


def _handler(ex: Exchange, route: Route) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        return await ex.call(request, route)

    return handle


async def _market_ws(request: web.Request) -> web.StreamResponse:
    ex = request.app[EXCHANGE]
    sub = Subscriber(parse_streams(request.query.get("streams", "")))
    ex.market.subscribers.add(sub)
    if ex.cfg.start == "subscribe":
        ex.start_replay()
    try:
        return await serve(request, sub.outbox, ex.faults, sub.on_text)
    finally:
        ex.market.subscribers.discard(sub)


async def _user_ws(request: web.Request) -> web.StreamResponse:
    ex = request.app[EXCHANGE]
    key = request.match_info["key"]
    box = ex.streams.attach(key)
    if box is None:
        return json_response(errors.ApiError(-1125, "This listenKey does not exist.").body(), 400, {})
    try:
        return await serve(request, box, ex.faults)
    finally:
        ex.streams.detach(key, box)


async def _faults(request: web.Request) -> web.Response:
    ex = request.app[EXCHANGE]
    try:
        ex._check_key(request)
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("a JSON object of fault switches")
        ex.faults.update(data)
    except ApiError as err:
        return json_response(err.body(), err.status, {})
    except ValueError as err:
        return json_response({"code": -1100, "msg": str(err)}, 400, {})
    f = ex.faults
    return json_response(
        {
            "ws_drop_after": f.ws_drop_after,
            "fail_status": f.fail_status,
            "delay_ms": f.delay_ms,
            "clock_skew_ms": f.clock_skew_ms,
        },
        200,
        {},
    )


async def _status(request: web.Request) -> web.Response:
    ex = request.app[EXCHANGE]
    status = {
        "venue": ex.cfg.venue,
        "symbol": ex.symbol,
        "replay_started": ex.replay is not None,
        "replay_finished": ex.market.finished.is_set(),
        "frames_sent": ex.market.frames_sent,
        "open_orders": len(ex.account.open_orders(None)),
    }
    return json_response(status, 200, {})


async def _on_startup(app: web.Application) -> None:
    ex = app[EXCHANGE]
    if ex.cfg.start == "now":
        ex.start_replay()


async def _on_cleanup(app: web.Application) -> None:
    ex = app[EXCHANGE]
    for handle in ex.countdowns.values():
        handle.cancel()
    if ex.replay is not None:
        ex.replay.cancel()
