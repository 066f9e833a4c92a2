"""The market: a recorded frames file replayed at ``--speed``, the public REST answers built from
it, and the combined market streams (``/stream?streams=...``) that carry it.

Each frame is sent to the subscribers of its stream byte for byte as it was recorded (the
``{"stream", "data"}`` body of its line), at its receive time scaled by the speed; its events go
to the account's paper venues first, so an order's fills are known before the client sees the
frame that caused them. ``<symbol>@aggTrade`` is served too, built from each ``@trade`` frame
(one trade per aggregate). A diff-depth stream asked at another update speed than the recording's
(``btcusdt@depth@100ms`` or ``btcusdt@depth`` of a ``btcusdt@depth@0ms`` recording) gets the
recorded diffs under the name it asked for: the same ``U``/``u``/``pu`` chain, finer-grained.
bookTicker and depth REST answers are the book as the replay has it: the depth book once a
snapshot synced it; before the recording's REST snapshot line is replayed, that snapshot (the
answer the recorder got, newer than the stream, as Binance's often is); with no snapshot in the
recording, the top of book as one level a side.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mmflow.book import OrderBook
from mmflow.connectors.binance_frames import frame_lines
from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.sockets import Outbox
from mmflow.connectors.reading import raw_bytes
from mmflow.models import BookTick, Depth, MarketEvent

#: Frames sent between two yields to the event loop when the replay runs behind its schedule.
_BURST = 200
#: A diff-depth stream name (not a partial-depth one such as ``btcusdt@depth5@100ms``).
_DIFF_DEPTH = re.compile(r"^([a-z0-9]+)@depth(?:@\d+ms)?$")


class Subscriber:
    """One market-stream connection: the streams it asked for and its outbox."""

    def __init__(self, streams: set[str]) -> None:
        self.streams = streams
        self.outbox = Outbox()

    def on_text(self, text: str) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, answered as the venue does."""
        try:
            msg = orjson.loads(text)
            method, params, rid = msg["method"], msg.get("params", []), msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.outbox.put(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}).decode())
            return
        if method == "SUBSCRIBE":
            self.streams |= {_stream_name(s) for s in params}
        elif method == "UNSUBSCRIBE":
            self.streams -= {_stream_name(s) for s in params}
        result: Any = sorted(self.streams) if method == "LIST_SUBSCRIPTIONS" else None
        self.outbox.put(orjson.dumps({"result": result, "id": rid}).decode())


def _stream_name(name: str) -> str:
    symbol, sep, rest = name.partition("@")
    return symbol.lower() + sep + rest


def parse_streams(query: str) -> set[str]:
    return {_stream_name(s) for s in query.split("/") if s}


#: How far into the recording its opening quote is looked for.
_PRE_OPEN_FRAMES = 1000


class Market:
    """The replayed market of one frames file."""

    def __init__(
        self,
        path: Path,
        spot: bool,
        speed: float,
        on_event: Callable[[MarketEvent], None],
        restamp: bool = False,
    ) -> None:
        self.path, self.spot, self.speed, self.on_event = path, spot, speed, on_event
        self.restamp = restamp
        self.books: dict[str, OrderBook] = {}
        self.tickers: dict[str, BookTick] = {}
        self.update_ids: dict[str, int] = {}
        self.last_event_ms: dict[str, int] = {}
        self.subscribers: set[Subscriber] = set()
        self.frames_sent = 0
        self.finished = asyncio.Event()
        self.recorded_snapshot = _first_snapshot(path)
        # An exchange always shows a book: until the replay starts, the recording's first quote
        # (a connector checks its sizes against the price before it trades).
        self.tickers.update(_first_tickers(path))

    async def run(self) -> None:
        """Replay the file once, paced at ``speed`` (0: as fast as possible)."""
        start = time.monotonic()
        first: int | None = None
        burst = 0
        for recv, body, events in frame_lines(self.path):
            first = recv if first is None else first
            wait = (recv - first) / 1e6 / self.speed - (time.monotonic() - start) if self.speed > 0 else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
                burst = 0
            elif (burst := burst + 1) >= _BURST:
                await asyncio.sleep(0)
                burst = 0
            self._frame(body, events, recv)
        self.finished.set()

    def _frame(self, body: bytes, events: list[Any], recv_us: int) -> None:
        for event in events:
            self._event(event)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        stream = obj.get("stream") if isinstance(obj, dict) else None
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(stream, str) or not isinstance(data, dict):
            return  # the REST snapshot line: it feeds the book, not a stream
        symbol = str(data.get("s", "")).upper()
        if type(data.get("u")) is int and "depth" in stream:
            self.update_ids[symbol] = data["u"]
        if self.restamp:
            body = _restamped(stream, data, int(time.time() * 1000) - recv_us // 1000)
        text = body.decode()
        agg = _agg_trade(stream, data) if stream.endswith("@trade") else None
        depth = _DIFF_DEPTH.match(stream)
        for sub in self.subscribers:
            if stream in sub.streams:
                sub.outbox.put(text)
            elif depth is not None:
                for asked in sub.streams:
                    other = _DIFF_DEPTH.match(asked)
                    if other is not None and other.group(1) == depth.group(1):
                        sub.outbox.put(_renamed(text, stream, asked))
            if agg is not None and agg[0] in sub.streams:
                sub.outbox.put(agg[1])
        self.frames_sent += 1

    def _event(self, event: MarketEvent) -> None:
        symbol = event.market.partition(":")[2]
        if isinstance(event, BookTick):
            self.tickers[symbol] = event
        elif isinstance(event, Depth):
            book = self.books.get(symbol)
            if event.snapshot or book is not None:
                book = self.books.setdefault(symbol, OrderBook())
                book.apply(event)
        self.last_event_ms[symbol] = event.ts_exchange // 1000
        self.on_event(event)

    # -- public REST ---------------------------------------------------------------------------
    def book_ticker(self, symbol: str | None, server_ms: int) -> Any:
        symbols = [symbol] if symbol else sorted(self.tickers)
        out = []
        for s in symbols:
            t = self.tickers.get(s)
            if t is None:
                continue
            row = {"symbol": s, "bidPrice": str(t.bid_px), "bidQty": str(t.bid_qty)}
            row |= {"askPrice": str(t.ask_px), "askQty": str(t.ask_qty)}
            if not self.spot:
                row |= {"time": t.ts_exchange // 1000, "lastUpdateId": self.update_ids.get(s, 0)}
            out.append(row)
        if symbol:
            if not out:
                raise ApiError(-1121, "Invalid symbol.")
            return out[0]
        return out

    def depth(self, symbol: str, limit: int, server_ms: int) -> dict[str, Any]:
        book, ticker = self.books.get(symbol), self.tickers.get(symbol)
        if book is not None:
            state = book.to_state()
            bids, asks = state["bids"][:limit], state["asks"][:limit]
        elif (recorded := self.recorded_snapshot) is not None:
            out = {"lastUpdateId": recorded["lastUpdateId"]}
            if not self.spot:
                out |= {k: recorded[k] for k in ("E", "T") if k in recorded}
            return out | {"bids": recorded["bids"][:limit], "asks": recorded["asks"][:limit]}
        elif ticker is not None:
            bids = [[str(ticker.bid_px), str(ticker.bid_qty)]]
            asks = [[str(ticker.ask_px), str(ticker.ask_qty)]]
        else:
            bids, asks = [], []
        out: dict[str, Any] = {"lastUpdateId": self.update_ids.get(symbol, 0)}
        if not self.spot:
            at = self.last_event_ms.get(symbol, server_ms)
            out |= {"E": at, "T": at}
        return out | {"bids": bids, "asks": asks}


def _restamped(stream: str, data: dict[str, Any], shift_ms: int) -> bytes:
    """The frame with its exchange times (``E``, ``T``) moved by ``shift_ms``: the recorded delay
    between the exchange and the recorder kept, at today's wall clock."""
    for name in ("E", "T"):
        if type(data.get(name)) is int:
            data[name] += shift_ms
    return orjson.dumps({"stream": stream, "data": data})


def _first_tickers(path: Path) -> dict[str, BookTick]:
    """Each symbol's first book ticker of the recording's first frames."""
    found: dict[str, BookTick] = {}
    for n, (_, _, events) in enumerate(frame_lines(path)):
        for event in events:
            if isinstance(event, BookTick):
                found.setdefault(event.market.partition(":")[2], event)
        if found or n >= _PRE_OPEN_FRAMES:
            break
    return found


def _first_snapshot(path: Path) -> dict[str, Any] | None:
    """The recording's first REST depth snapshot line (``{"lastUpdateId", ...}``), if any."""
    for line in raw_bytes(path).splitlines():
        body = line.partition(b" ")[2]
        if body.startswith(b'{"lastUpdateId"') or (b'"lastUpdateId"' in body and b'"stream"' not in body):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and type(obj.get("lastUpdateId")) is int:
                return obj
    return None


def _renamed(text: str, stream: str, asked: str) -> str:
    """A recorded ``{"stream":...,"data":...}`` frame under another stream name."""
    head = '{"stream":"' + stream + '",'
    if text.startswith(head):
        return '{"stream":"' + asked + '",' + text[len(head) :]
    obj = orjson.loads(text)
    obj["stream"] = asked
    return orjson.dumps(obj).decode()


def _agg_trade(stream: str, d: dict[str, Any]) -> tuple[str, str] | None:
    """The ``@aggTrade`` frame of one ``@trade`` frame (an aggregate of that one trade)."""
    t = d.get("t")
    if type(t) is not int:
        return None
    name = stream[: -len("@trade")] + "@aggTrade"
    data = {"e": "aggTrade", "E": d.get("E"), "s": d.get("s"), "a": t, "p": d.get("p"), "q": d.get("q")}
    data |= {"f": t, "l": t, "T": d.get("T"), "m": d.get("m")}
    if "M" in d:
        data["M"] = d["M"]
    return name, orjson.dumps({"stream": name, "data": data}).decode()
