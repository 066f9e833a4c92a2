"""Live Binance market data into Kafka (``mmflow ingest``): the venue's own websocket protocol
over aiohttp.

Why not ccxt: its ``watch*`` methods hand back normalized dicts with float prices, drop the
frames' update ids (``u``, ``U``/``pu``), keep the order book themselves (hiding the gaps this
has to count) and do not say when each frame arrived. The product needs Decimal money, the book
ticker's sizes, the ids for dedupe and gap detection, and a receive time per frame, so this
speaks Binance's documented protocol directly: combined streams on ``/stream?streams=...``
(``{"stream": ..., "data": ...}``), REST ``depth`` snapshots and ``time``.

Each text frame is stamped with the local clock on arrival (microseconds), parsed by the same
functions as the recorded frames (``binance_frames.parse_frame``: the wire decoder's verdict),
checked against the stream's last id (``mmflow.ingest.SequenceCheck``: a reconnect's overlap is
dropped, a skipped trade id counted), depth sequenced by ``binance_frames.DepthBook`` (Binance's
"how to manage a local order book"), and produced keyed by market to the market-data topic. A
malformed frame goes to the dead-letter topic with its reason. A dropped connection is retried
with exponential backoff and jitter and the same streams subscribed again; a depth gap or a
snapshot too old for the buffered diffs fetches a new snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from confluent_kafka import KafkaError, Producer

from mmflow.config import KafkaConfig
from mmflow.connectors.binance_frames import (
    DepthBook,
    Diff,
    FrameError,
    parse_frame,
    parse_snapshot,
    stream_kind,
)
from mmflow.connectors.kafka_io import producer
from mmflow.connectors.metrics import IngestMetrics
from mmflow.dead_reasons import reason_of
from mmflow.ingest import ClockSample, SequenceCheck, backoff_delay, clock_offset, jittered
from mmflow.models import InputEvent
from mmflow.wire import WireError, encode

log = logging.getLogger("mmflow.ingest")

#: Buffered depth diffs kept per market while it waits for a snapshot (older ones cannot help).
MAX_BUFFERED_DIFFS = 10_000


@dataclass(frozen=True, slots=True)
class Venue:
    """A Binance market type: its market-name prefix, URLs and REST paths."""

    name: str  # the --venue value
    prefix: str  # market names: "<prefix>:<SYMBOL>" (the Tardis exchange name, as the recordings use)
    spot: bool
    ws: str
    rest: str
    testnet_ws: str
    testnet_rest: str
    api: str  # REST path prefix
    depth_stream: str

    def streams(self, symbols: Sequence[str], depth: bool) -> list[str]:
        kinds = ["bookTicker", "trade", *([self.depth_stream] if depth else [])]
        return [f"{s.lower()}@{k}" for s in symbols for k in kinds]


VENUES = {
    v.name: v
    for v in (
        # https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
        Venue(
            "binance-usdm",
            "binance-futures",
            False,
            "wss://fstream.binance.com",
            "https://fapi.binance.com",
            "wss://fstream.binancefuture.com",
            "https://testnet.binancefuture.com",
            "/fapi/v1",
            "depth@100ms",
        ),
        # https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
        Venue(
            "binance-spot",
            "binance",
            True,
            "wss://stream.binance.com:9443",
            "https://api.binance.com",
            "wss://stream.testnet.binance.vision",
            "https://testnet.binance.vision",
            "/api/v3",
            "depth@100ms",
        ),
    )
}


def stream_url(ws_base: str, streams: Sequence[str]) -> str:
    base = ws_base.rstrip("/")
    for tail in ("/stream", "/ws"):
        base = base.removesuffix(tail)
    return f"{base}/stream?streams={'/'.join(streams)}"


def _now_us() -> int:
    return time.time_ns() // 1000


class KafkaOut:
    """The ingest's output: events keyed by market to the market-data topic, malformed frames to
    the dead-letter topic; every delivery's receive-to-ack time is observed (and kept in
    ``latencies``, microseconds, when given a list)."""

    def __init__(
        self,
        cfg: KafkaConfig,
        venue: str,
        metrics: IngestMetrics,
        latencies: list[int] | None = None,
        **more: str,
    ) -> None:
        self.prod: Producer = producer(cfg, **more)
        self.topic, self.dlq_topic = cfg.market_data_topic, cfg.dead_letter_topic
        self.venue, self.source = venue, f"ingest:{venue}"
        self.latencies = latencies
        self.errors: list[str] = []
        self._ack = metrics.child("ingest_to_topic", venue)
        self._failed = metrics.child("ingest_delivery_errors", venue)
        self.sent = 0

    def event(self, event: InputEvent, recv: int) -> None:
        value = encode(event)
        key = event.market.encode()

        def delivered(err: KafkaError | None, msg: Any, recv: int = recv) -> None:
            if err is not None:
                self.errors.append(err.str())
                self._failed.inc()
                return
            took = _now_us() - recv
            self._ack.observe(took / 1e6)
            if self.latencies is not None:
                self.latencies.append(took)

        while True:
            try:
                self.prod.produce(self.topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                self.prod.poll(0.05)
        self.sent += 1
        if self.sent % 256 == 0:
            self.prod.poll(0)

    def dead(self, raw: bytes, reason: str, market: str | None) -> None:
        """A malformed frame to the dead-letter topic: the ``reason`` header is its code, ``detail``
        the refusal's text (as the flow's dead letters)."""
        headers = [
            ("reason", reason_of(reason).encode()),
            ("detail", reason.encode()),
            ("source", self.source.encode()),
        ]
        key = market.encode() if market else None
        self.prod.produce(self.dlq_topic, raw, key, headers=headers)

    def poll(self) -> None:
        self.prod.poll(0)

    def flush(self, timeout: float) -> int:
        return self.prod.flush(timeout)


@dataclass(slots=True)
class _Market:
    book: DepthBook | None = None
    checks: dict[str, SequenceCheck] = field(default_factory=dict)
    fetching: bool = False
    snapshot_attempt: int = 0


class Ingest:
    """One venue's streams for ``symbols`` on one websocket connection, until ``stop`` is set."""

    def __init__(
        self,
        venue: Venue,
        symbols: Sequence[str],
        out: KafkaOut,
        metrics: IngestMetrics,
        *,
        depth: bool = False,
        ws_url: str | None = None,
        rest_url: str | None = None,
        testnet: bool = False,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        clock_interval: float = 30.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.venue, self.out, self.metrics, self.depth = venue, out, metrics, depth
        self.symbols = [s.upper() for s in symbols]
        self.ws_base = ws_url or (venue.testnet_ws if testnet else venue.ws)
        self.rest_base = (rest_url or (venue.testnet_rest if testnet else venue.rest)).rstrip("/")
        self.url = stream_url(self.ws_base, venue.streams(self.symbols, depth))
        self.backoff_base, self.backoff_cap, self.rand = backoff_base, backoff_cap, rand
        self.clock_interval = clock_interval
        self.markets: dict[str, _Market] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self._http: aiohttp.ClientSession | None = None
        c = metrics.child
        self._connected = c("ingest_connected", venue.name)
        self._reconnects = c("ingest_reconnects", venue.name)
        for symbol in self.symbols:
            self._market(f"{venue.prefix}:{symbol}")

    # -- the connection -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self._http = http
            self._spawn(self._clock_loop(stop))
            attempt = 0
            while not stop.is_set():
                got = 0
                try:
                    got = await self._session(http, stop)
                except (TimeoutError, aiohttp.ClientError, OSError) as err:
                    log.warning("websocket %s: %s", self.url, err or type(err).__name__)
                self._connected.set(0)
                if stop.is_set():
                    break
                self._reconnects.inc()
                attempt = 1 if got else attempt + 1
                delay = jittered(backoff_delay(attempt, self.backoff_base, self.backoff_cap), self.rand())
                log.info("reconnecting in %.2f s (attempt %d)", delay, attempt)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _session(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> int:
        """One connection: subscribe (the streams are in the URL), read until it drops or
        ``stop``; the number of frames it brought."""
        got = 0
        async with http.ws_connect(self.url, heartbeat=None, autoping=True, max_msg_size=0) as ws:
            self.connections += 1
            self._connected.set(1)
            log.info("connected to %s", self.url)

            async def close_on_stop() -> None:
                await stop.wait()
                await ws.close()

            closer = asyncio.ensure_future(close_on_stop())
            try:
                async for msg in ws:  # ends when the socket closes (dropped, or closed on stop)
                    recv = _now_us()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        got += 1
                        self.on_text(msg.data, recv)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        got += 1
                        self.on_text(msg.data.decode("utf-8", "replace"), recv)
                    elif msg.type == aiohttp.WSMsgType.ERROR:
                        break
                if not stop.is_set():
                    log.warning("websocket closed after %d frames (code %s)", got, ws.close_code)
                return got
            finally:
                closer.cancel()

    # -- frames ---------------------------------------------------------------------------------
    def on_text(self, text: str, recv: int) -> None:
        """One frame as it arrived at ``recv`` (local clock, microseconds)."""
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            return self._dead(text, f"malformed json: {err}", None)
        if not isinstance(obj, dict):
            return self._dead(text, "not a combined-stream frame", None)
        data, stream = obj.get("data"), obj.get("stream")
        if not isinstance(data, dict) or not isinstance(stream, str):
            if "result" in obj and "id" in obj:  # a reply to a SUBSCRIBE request
                return None
            return self._dead(text, "not a combined-stream frame", None)
        try:
            item = parse_frame(self.venue.prefix, self.venue.spot, 0, b"", recv, stream, data)
        except FrameError as err:
            return self._dead(text, str(err), err.market)
        kind = stream_kind(stream)
        market_name = item.depth.market if isinstance(item, Diff) else item.market
        market = self.markets.get(market_name)
        if market is None:
            return self._dead(text, f"unsubscribed market {market_name}", market_name)
        seq = data.get("t" if kind == "trade" else "u")
        if type(seq) is int:
            check = market.checks.get(kind)
            if check is None:
                check = market.checks[kind] = SequenceCheck(contiguous=kind == "trade")
            verdict = check.check(seq)
            if verdict == "duplicate":
                self.metrics.child("ingest_duplicates", market_name, kind).inc()
                return None
            if verdict == "gap":
                log.warning("%s %s: ids skipped before %d", market_name, kind, seq)
                self.metrics.child("ingest_gaps", market_name, kind).inc()
        if isinstance(item, Diff):
            return self._diff(market_name, market, item)
        ts_exchange = data.get("E" if kind == "bookTicker" else "T")
        if type(ts_exchange) is int:
            self.metrics.child("ingest_exchange_delay", market_name, kind).observe(
                recv / 1e6 - ts_exchange / 1e3
            )
        self._emit(item, kind, recv)

    def _emit(self, event: InputEvent, kind: str, recv: int) -> None:
        self.out.event(event, recv)
        self.metrics.child("ingest_events", event.market, kind).inc()

    def _dead(self, text: str, reason: str, market: str | None) -> None:
        log.warning("dead letter: %s", reason)
        self.metrics.dead_letter(reason)
        self.out.dead(text.encode(), reason, market)

    # -- depth ----------------------------------------------------------------------------------
    def _market(self, name: str) -> _Market:
        market = self.markets[name] = _Market()
        if self.depth:

            def emit(event: InputEvent) -> None:
                self._emit(event, "depth", event.ts_recv)

            def refuse(row: int, raw: bytes, reason: str, market_name: str) -> None:
                self._refused(market_name, reason)

            market.book = DepthBook(self.venue.spot, emit, refuse)
            self.metrics.child("ingest_depth_synced", name).set(0)
        return market

    def _refused(self, name: str, reason: str) -> None:
        """The book's word on a gap or an unusable snapshot: counted, and a new snapshot asked."""
        log.warning("%s: %s", name, reason)
        self.metrics.child("ingest_depth_synced", name).set(0)
        if reason.startswith("depth gap"):
            self.metrics.child("ingest_gaps", name, "depth").inc()
        else:
            self.metrics.child("ingest_snapshot_failures", name, reason.split(":")[0][:60]).inc()

    def _diff(self, name: str, market: _Market, diff: Diff) -> None:
        book = market.book
        if book is None:
            return
        was_synced = book.book_id is not None
        book.on_diff(diff)
        if book.book_id is None and len(book.buffer) > MAX_BUFFERED_DIFFS:
            del book.buffer[: len(book.buffer) - MAX_BUFFERED_DIFFS]
        if book.book_id is not None and not was_synced:
            self.metrics.child("ingest_depth_synced", name).set(1)
        if book.wants_snapshot and not market.fetching:
            market.fetching = True
            self._spawn(self._snapshot(name, market))

    async def _snapshot(self, name: str, market: _Market) -> None:
        """Fetch depth snapshots until one syncs the book (a gap later asks again)."""
        book = market.book
        assert book is not None and self._http is not None
        symbol = name.partition(":")[2]
        url = f"{self.rest_base}{self.venue.api}/depth"
        try:
            while book.wants_snapshot:
                if market.snapshot_attempt:
                    delay = backoff_delay(market.snapshot_attempt, self.backoff_base, self.backoff_cap)
                    await asyncio.sleep(jittered(delay, self.rand()))
                market.snapshot_attempt += 1
                try:
                    async with self._http.get(url, params={"symbol": symbol, "limit": "1000"}) as resp:
                        body = await resp.read()
                        recv = _now_us()
                        if resp.status != 200:
                            raise WireError(f"HTTP {resp.status}: {body[:200]!r}")
                    snap = parse_snapshot(0, body, name, recv, orjson.loads(body))
                except (TimeoutError, aiohttp.ClientError, OSError, WireError, orjson.JSONDecodeError) as err:
                    log.warning("%s: depth snapshot %s failed: %s", name, url, err)
                    self.metrics.child("ingest_snapshot_failures", name, "request failed").inc()
                    continue
                self.metrics.child("ingest_snapshots", name).inc()
                if not book.wants_snapshot:  # cannot happen while fetching, but never apply twice
                    break
                book.on_snapshot(snap, recv)
                if book.book_id is not None:
                    market.snapshot_attempt = 0
                    self.metrics.child("ingest_depth_synced", name).set(1)
                elif book.snapshot is not None:  # waiting for the first diff past it
                    market.snapshot_attempt = 0
        finally:
            market.fetching = False

    # -- the clock ------------------------------------------------------------------------------
    async def probe_clock(self, samples: int = 5) -> tuple[float, int] | None:
        """``(offset, rtt)`` in microseconds from ``samples`` ``GET /time`` round trips (the
        shortest one), or None when none answered."""
        assert self._http is not None
        url = f"{self.rest_base}{self.venue.api}/time"
        got = []
        for _ in range(samples):
            try:
                sent = _now_us()
                async with self._http.get(url) as resp:
                    body = await resp.read()
                received = _now_us()
                server = orjson.loads(body).get("serverTime")
                if resp.status == 200 and type(server) is int:
                    got.append(ClockSample(sent, server * 1000, received))
            except (
                TimeoutError,
                aiohttp.ClientError,
                OSError,
                orjson.JSONDecodeError,
                AttributeError,
            ) as err:
                log.warning("clock probe %s failed: %s", url, err)
        if not got:
            return None
        offset, rtt = clock_offset(got)
        self.metrics.child("ingest_clock_offset", self.venue.name).set(offset / 1e6)
        self.metrics.child("ingest_clock_rtt", self.venue.name).set(rtt / 1e6)
        return offset, rtt

    async def _clock_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.probe_clock()
            try:
                await asyncio.wait_for(stop.wait(), self.clock_interval)
            except TimeoutError:
                pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def poll_loop(out: KafkaOut, stop: asyncio.Event, every: float = 0.05) -> None:
    """Serve the producer's delivery callbacks while frames are few."""
    while not stop.is_set():
        out.poll()
        await asyncio.sleep(every)
