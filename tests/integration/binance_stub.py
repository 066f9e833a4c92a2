"""TEST-ONLY STAND-IN for ``mmflow exchange-sim`` (built on another branch): a minimal aiohttp
server speaking just enough of Binance's public protocol for ``mmflow ingest``'s tests.

Same URL shapes as the real venue and the simulator, so swapping it for ``mmflow exchange-sim``
is a change of fixture only:

- ``GET /stream?streams=a/b/c`` (websocket): replays the recorded frames of a raw frames file
  (``<receive ns> <JSON>`` per line) whose stream is asked for, in file order, in the combined
  shape ``{"stream": ..., "data": ...}``, as fast as the socket takes them. A stream is matched
  by symbol and kind (``btcusdt@depth@100ms`` gets the file's ``btcusdt@depth@0ms``, renamed).
- ``GET /fapi/v1/time``, ``/api/v3/time``: ``{"serverTime": <now, ms>}``.
- ``GET /fapi/v1/depth``, ``/api/v3/depth``: the file's REST snapshot line, or 404 when the
  recording has none.

``script`` forces drops: ``[(send_until, resume_at), ...]``: connection k sends frames up to
index ``send_until`` (of the asked-for frames) and closes the socket; connection k + 1 starts at
``resume_at`` (below ``send_until``: an overlap replayed twice; above: frames lost). After the
script the last connection sends to the end and stays open.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web

_DATA = b',"data":'


def _kind(stream: str) -> tuple[str, str]:
    symbol, _, kind = stream.partition("@")
    return symbol.lower(), "depth" if kind.startswith("depth") else kind


@dataclass
class BinanceStub:
    frames_path: Path
    script: list[tuple[int, int]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    frames: list[tuple[str, bytes]] = field(default_factory=list)  # (stream, data JSON)
    snapshot: bytes | None = None
    connections: int = 0
    sent: int = 0

    def __post_init__(self) -> None:
        raw = gzip.decompress(self.frames_path.read_bytes())
        for line in raw.splitlines():
            body = line.partition(b" ")[2]
            if body.startswith(b'{"stream":"'):
                end = body.index(b'"', 11)
                stream = body[11:end].decode()
                assert body[end + 1 : end + 1 + len(_DATA)] == _DATA, line[:80]
                self.frames.append((stream, body[end + 1 + len(_DATA) : -1]))
            elif b"lastUpdateId" in body:
                self.snapshot = body
        self._position = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # -- URLs -------------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- handlers -------------------------------------------------------------------------------
    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        wanted = {_kind(s): s for s in request.query.get("streams", "").split("/") if s}
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        k = self.connections
        self.connections += 1
        start = self.script[k - 1][1] if 0 < k <= len(self.script) else self._position
        until = self.script[k][0] if k < len(self.script) else None
        selected = [(wanted[_kind(stream)], data) for stream, data in self.frames if _kind(stream) in wanted]
        end = len(selected) if until is None else min(until, len(selected))
        for i in range(start, end):
            name, data = selected[i]
            await ws.send_str('{"stream":"' + name + '","data":' + data.decode() + "}")
            self.sent += 1
            self._position = i + 1
        if until is not None:
            await ws.close(code=1001, message=b"stub: forced drop")
            return ws
        async for msg in ws:  # stay open until the client goes
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": time.time_ns() // 1_000_000})

    async def _depth(self, request: web.Request) -> web.Response:
        if self.snapshot is None:
            return web.json_response({"code": -1121, "msg": "stub: no snapshot in the recording"}, status=404)
        return web.Response(body=self.snapshot, content_type="application/json")

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> BinanceStub:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/stream", self._stream)
            for api in ("/fapi/v1", "/api/v3"):
                app.router.add_get(f"{api}/time", self._time)
                app.router.add_get(f"{api}/depth", self._depth)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True, name="binance-stub").start()
        if not ready.wait(10):
            raise RuntimeError("binance stub did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
