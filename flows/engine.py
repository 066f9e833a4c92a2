"""The market-making dataflow: input -> decode/validate -> key by market -> stateful step -> outputs.

The source is a parameter and the result is typed streams (``FlowStreams``: intents, fills,
journal, dead letters, timeline, summaries), as Bytewax's own Kafka operators return ``oks`` and
``errs``: a replay collects them, the live flow routes each to its topic. Items between steps are
per-market chunks of events (one chunk per market per source batch): Bytewax's per-item cost is
paid per chunk, not per tick, and the order of one market's events is never changed, so outputs
are identical whatever the batch size.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from confluent_kafka import Message as KafkaMessage

from mmflow.config import Settings
from mmflow.connectors.metrics import FlowMetrics
from mmflow.execution import VenueFactory
from mmflow.flows.runtime import MarketRuntime
from mmflow.markouts import Markout
from mmflow.models import (
    INTERNAL_TYPES,
    BookTick,
    Control,
    DeadLetter,
    Depth,
    Fill,
    Incarnation,
    InputEvent,
    Intent,
    OrderUpdate,
    Position,
    Timer,
    Trade,
    arrival_time,
)
from mmflow.outputs import Journaled, Outputs
from mmflow.view import MarketView
from mmflow.wire import WireError, decode_input, encode, inconsistency


class Chunk(list):  # type: ignore[type-arg]
    """One market's events from one source batch, in order, with where each came from.

    ``origins[i]`` is ``(raw bytes, source)`` for an event decoded here (None for one that was
    typed already), so a record the market's state refuses later (a duplicate, an out-of-order
    tick) still reaches the dead-letter output as the bytes that arrived.
    """

    __slots__ = ("origins",)

    def __init__(self) -> None:
        super().__init__()
        self.origins: list[tuple[bytes, str] | None] = []


log = logging.getLogger("mmflow.flow")

_TYPED = frozenset({BookTick, Trade, Depth, Fill, OrderUpdate, Control, Position, Incarnation, Timer})


def tune_gc() -> None:
    """Make the cyclic garbage collector fit a stream processor.

    Each batch allocates tens of thousands of short-lived dicts and events; with the default
    thresholds the collector runs every 700 allocations and re-scans everything still young,
    which cost more than a third of the decode step. Nothing on the hot path makes reference
    cycles, so: freeze what start-up allocated and collect far less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def validate(event: InputEvent, markets: Iterable[str]) -> str | None:
    """Checks a schema cannot express; returns the dead-letter reason or None."""
    cls = type(event)
    if event.type in INTERNAL_TYPES:
        return f"internal record: a {event.type} is written by the flow to its journal, never read"
    if cls is Control and event.market == "*":
        return None
    if event.market not in markets:
        return f"unknown market: {event.market!r}"
    return inconsistency(event)


def from_the_future(event: InputEvent, latest_us: int) -> str | None:
    """A record stamped after ``latest_us`` (the wall clock plus a tolerance) cannot have been
    received yet: refused before it can move its market's clock and freeze it (every valid tick
    after it would look out of order). Recorded data, years behind the wall clock, passes."""
    ts = arrival_time(event)
    if ts <= latest_us:
        return None
    return (
        f"ahead of the wall clock: stamped {ts} us, {(ts - latest_us) / 1e6:,.0f} s after the latest possible"
    )


def raw_bytes(item: Any) -> tuple[bytes, str]:
    """(payload, source label) of a raw record; Kafka messages expose ``.value``/``.topic``."""
    if type(item) is KafkaMessage:  # the hot path on Kafka
        return item.value() or b"", item.topic()
    if isinstance(item, bytes | bytearray):
        return bytes(item), "bytes"
    if isinstance(item, str):
        return item.encode("utf-8", "replace"), "str"
    value = getattr(item, "value", None)
    topic = getattr(item, "topic", "unknown")
    if callable(value):  # a confluent-kafka Message: accessors, not attributes
        value, topic = value(), topic()
    return (bytes(value) if value is not None else b""), str(topic)


def _add(chunks: dict[str, Chunk], event: InputEvent, origin: tuple[bytes, str] | None) -> None:
    chunk = chunks.get(event.market)
    if chunk is None:
        chunk = chunks[event.market] = Chunk()
    chunk.append(event)
    chunk.origins.append(origin)


@dataclass(slots=True)
class Decoded:
    """One source batch, decoded: per-market chunks in order, and the records refused."""

    chunks: list[tuple[str, Chunk]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def make_decoder(
    settings: Settings, metrics: FlowMetrics, clock: Callable[[], int] = lambda: time.time_ns() // 1000
) -> Callable[[list[Any]], list[Decoded]]:
    markets = frozenset(settings.markets)
    future_us = int(settings.strategy.safety.max_future_s * 1_000_000)

    def decode_batch(items: list[Any]) -> list[Decoded]:
        chunks: dict[str, Chunk] = {}
        out: list[DeadLetter] = []
        latest = clock() + future_us
        for item in items:
            cls = type(item)
            if cls is DeadLetter:
                out.append(item)
                continue
            origin = None
            if cls in _TYPED:
                event = item  # already typed and validated in bulk (files, synthetic data)
            else:
                if cls is KafkaMessage:  # the hot path on Kafka, inlined (this loop runs per record)
                    raw, source = item.value() or b"", item.topic()
                else:
                    raw, source = raw_bytes(item)
                try:
                    event = decode_input(raw)
                except WireError as err:
                    out.append(DeadLetter.of(source, str(err), raw))
                    continue
                reason = validate(event, markets)
                if reason is not None:
                    out.append(DeadLetter.of(source, reason, raw, event.market))
                    continue
                origin = (raw, source)
            late = from_the_future(event, latest)
            if late is not None:
                raw, source = origin or (encode(event), "flow")
                out.append(DeadLetter.of(source, late, raw, event.market))
                continue
            if type(event) is Control and event.market == "*":
                # A control for "*" reaches every configured market (each holds its own halt).
                for market in sorted(markets):
                    _add(chunks, replace(event, market=market), origin)
                continue
            _add(chunks, event, origin)
        for dead in out:
            metrics.dead_letter(dead.source, dead.reason)
        return [Decoded(list(chunks.items()), out)]

    return decode_batch


def _log_operations(out: Outputs) -> None:
    """Say what an operator must know: every control command with its reason, every halt on a
    books/venue mismatch with both numbers."""
    for entry in out.journal:
        event = entry.event
        if type(event) is Control:
            log.warning(
                "control %s %s%s: %r (command %s)",
                event.action,
                event.market,
                " --clear-loss-limit" if event.clear_loss_limit else "",
                event.reason,
                event.command_id,
            )
    for intent in out.intents:
        if "reconcile_mismatch" in intent.reasons:
            log.error(
                "%s halted: books and venue disagree (%s)", intent.market, ", ".join(intent.reasons[1:])
            )


class MarketLogic(StatefulBatchLogic[Chunk, Outputs, MarketRuntime]):
    """Bytewax's view of one market: feeds chunks to the runtime, reports metrics per batch.

    Bytewax builds the logic from the resume state alone, so a new market's runtime is created
    on its first batch, when the market name is known from the events.

    With ``live_clock`` (a live run) a wall-clock timer fires the stale-data guard when a market
    goes silent; a replay has no such timer, the next event's timestamp does the same job there,
    so replays stay deterministic. The timer counts from the wall-clock instant the market's
    latest data was taken, not from the latest batch: the venue's periodic position reports
    (every 2 s) must not keep a silent market looking fresh. ``wall`` is the clock (tests set it).
    """

    def __init__(
        self,
        settings: Settings,
        metrics: FlowMetrics,
        venue: VenueFactory | None,
        order_reports: bool,
        resume: MarketRuntime | None,
        live_clock: bool = False,
        incarnation: str | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.venue = venue
        self.order_reports = order_reports
        self.runtime = resume
        self.live_clock = live_clock
        self.incarnation = incarnation
        self.wall = wall
        self._wall_at_data: datetime | None = None
        self._data_us: int | None = None  # the market data time ``_wall_at_data`` was taken at

    def notify_at(self) -> datetime | None:
        rt = self.runtime
        if not self.live_clock or rt is None or self._wall_at_data is None:
            return None
        budget = rt.maker.safety.silence_budget_us()
        return None if budget is None else self._wall_at_data + timedelta(microseconds=budget)

    def on_notify(self) -> tuple[list[Outputs], bool]:
        rt = self.runtime
        out = Outputs()
        last = rt.maker.safety.last_data_us if rt is not None else None
        if rt is not None and last is not None and self._wall_at_data is not None:
            elapsed = (self.wall() - self._wall_at_data) // timedelta(microseconds=1)
            # Past the limit even when the clock woke us on the very microsecond, so one timer
            # decides (a timer that fired nothing would be journalled again on every wake-up).
            elapsed = max(elapsed, rt.maker.safety.stale_after_us + 1)
            # Through process(): the timer is journalled, so a replay fires it at the same place.
            rt.process(Timer(market=rt.market, ts=last + elapsed), out)
            self.metrics.observe(rt.view(), rt.stats, 0, 0.0, out)
        return [out], StatefulBatchLogic.RETAIN

    def on_batch(self, values: list[Chunk]) -> tuple[list[Outputs], bool]:
        runtime = self.runtime
        if runtime is None:
            market = values[0][0].market
            venue = self.venue(market) if self.venue is not None else None
            runtime = self.runtime = MarketRuntime(
                market, self.settings, venue, order_reports=self.order_reports or venue is not None
            )
        out = Outputs()
        if self.incarnation is not None:  # a live process takes the market over (once)
            first = values[0][0]
            at = runtime.stats.last_us if runtime.stats.first_us is not None else arrival_time(first)
            runtime.take_over(self.incarnation, at, out)
        process = runtime.process
        start = time.perf_counter()
        n = 0
        for chunk in values:
            n += len(chunk)
            for event, origin in zip(chunk, chunk.origins, strict=True):
                process(event, out, origin)
        self.metrics.observe(runtime.view(), runtime.stats, n, time.perf_counter() - start, out)
        if out.journal or out.intents:
            _log_operations(out)
        if self.live_clock:
            self._note_data(runtime)
        return [out], StatefulBatchLogic.RETAIN

    def _note_data(self, runtime: MarketRuntime) -> None:
        """Start the silence clock when the batch brought fresh market data (and only then)."""
        last = runtime.maker.safety.last_data_us
        if last != self._data_us:
            self._data_us, self._wall_at_data = last, self.wall()
            if last is not None:
                self.metrics.event_seen(runtime.market, last)

    def on_eof(self) -> tuple[list[Outputs], bool]:
        out = Outputs()
        if self.runtime is not None:
            self.runtime.finish(out)
        return [out], StatefulBatchLogic.RETAIN

    def snapshot(self) -> MarketRuntime:
        assert self.runtime is not None
        return self.runtime


@dataclass(frozen=True)
class FlowStreams:
    """The flow's outputs, one typed stream per kind."""

    intents: Stream[Intent]
    #: The embedded venue's fills and order updates (replays); empty on Kafka, where the venue
    #: is a process of its own.
    fills: Stream[Fill]
    orders: Stream[OrderUpdate]
    journal: Stream[Journaled]
    #: Every refused record: by the decoder (bad bytes, unknown market) and by a market's state.
    dead: Stream[DeadLetter]
    timeline: Stream[MarketView]
    #: Mark-outs of the fills booked (replays write them; the live flow does not route them).
    marks: Stream[Markout]
    summaries: Stream[dict[str, Any]]


def build_flow(
    flow: Dataflow,
    source: Source[Any],
    settings: Settings,
    metrics: FlowMetrics,
    venue: VenueFactory | None,
    live_clock: bool = False,
    incarnation: str | None = None,
    order_reports: bool = False,
) -> FlowStreams:
    """Add the market-making steps to ``flow``; the caller attaches sinks to the streams.

    ``incarnation`` (live runs) is this process' own: on its first batch each market is taken
    over by it (ids carry it; what an earlier process left resting is cancelled first).
    ``venue`` builds each market's embedded venue (replays), None when the execution side is a
    process of its own; ``order_reports``: its order updates reach the flow as input events."""
    metrics.configure(settings)
    raw = op.input("input", flow, source)
    decoded = op.flat_map_batch("decode", raw, make_decoder(settings, metrics))
    chunks = op.flat_map("chunks", decoded, attrgetter("chunks"))
    stepped = op.stateful_batch(
        "market",
        chunks,
        lambda resume: MarketLogic(settings, metrics, venue, order_reports, resume, live_clock, incarnation),  # type: ignore[arg-type]
    )
    outputs = op.map("drop_key", stepped, lambda kv: kv[1])

    def kind(name: str) -> Stream[Any]:
        return op.flat_map(name, outputs, attrgetter(name))

    refused = op.flat_map("decode_errors", decoded, attrgetter("dead"))
    return FlowStreams(
        intents=kind("intents"),
        fills=kind("fills"),
        orders=kind("orders"),
        journal=kind("journal"),
        dead=op.merge("dead_letters", refused, kind("dead")),
        timeline=kind("timeline"),
        marks=kind("marks"),
        summaries=kind("summaries"),
    )
