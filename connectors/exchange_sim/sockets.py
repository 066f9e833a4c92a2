"""One websocket's outgoing messages: queued by whoever produces them (the replay, the account),
sent by one task per connection, so a slow client never holds up the replay or an order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import WSMsgType, web

from mmflow.connectors.exchange_sim.faults import Faults


class Outbox:
    """The messages waiting for one connection; ``None`` closes it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(self, text: str) -> None:
        self.queue.put_nowait(text)

    def close(self) -> None:
        self.queue.put_nowait(None)


async def _pump(ws: web.WebSocketResponse, outbox: Outbox, faults: Faults, request: web.Request) -> None:
    sent = 0
    while True:
        text = await outbox.queue.get()
        if text is None:
            await ws.close()
            return
        if faults.ws_drop_after is not None and sent >= faults.ws_drop_after:
            if request.transport is not None:
                request.transport.abort()  # a drop, not a close: no close frame
            return
        await ws.send_str(text)
        sent += 1


async def serve(
    request: web.Request, outbox: Outbox, faults: Faults, on_text: Callable[[str], None] | None = None
) -> web.WebSocketResponse:
    """Upgrade ``request``, send what ``outbox`` gets until it closes or the client goes, and hand
    each text message the client sends to ``on_text``."""
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    pump = asyncio.create_task(_pump(ws, outbox, faults, request))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and on_text is not None:
                on_text(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        pump.cancel()
    return ws
