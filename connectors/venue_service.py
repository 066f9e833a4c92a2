"""The paper-trading execution connector: intents and market data in; fills, order updates and
positions out.

It drives the same ``PaperVenue`` as the backtest, one per market. It survives a SIGKILL without
losing or repeating a fill by Kafka's exactly-once loop: each batch of consumed records, the
fills, order updates and positions they produced, the venues' state and the consumed offsets are committed in
one transaction (``transactional.id`` = the venue's group). A restart fences the dead process,
whose open transaction is aborted, restores the state and the input offsets committed together,
and numbers its fills in a new incarnation. Consumers of the fills topic read committed
records only (librdkafka's default ``isolation.level``).

It publishes each market's position (its own count of its fills) after every fill and every few
seconds, for the flow's reconciliation.

Its metrics (``VenueMetrics``, ``mmflow_venue_*``) count what a committed transaction published:
a batch rewound after an aborted transaction is counted once, when it commits.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from mmflow.config import Settings
from mmflow.connectors.kafka_io import LagReporter, client_config, create_topics, redacted
from mmflow.connectors.metrics import VenueMetrics
from mmflow.connectors.paper_venue import PaperVenue
from mmflow.connectors.recorder import read_records
from mmflow.connectors.venue_state import dump_state, load_state
from mmflow.dead_reasons import reason_of
from mmflow.execution import Report
from mmflow.ids import incarnation_of
from mmflow.models import ID_MAX, POST_ONLY_REJECT, BookTick, Depth, Fill, OrderUpdate, Position, Trade
from mmflow.wire import WireError, decode_input, decode_intent, encode

log = logging.getLogger("mmflow.venue")

#: The state topic's key for the consumed offsets, committed with the state and the outputs.
_OFFSETS = "__offsets__"

#: Seconds between the periodic position reports of every market (besides one after each fill).
POSITION_INTERVAL_S = 2.0

#: The market label of an intent for no configured market, or of one that could not be decoded.
UNKNOWN_MARKET = "unknown"


def _retry(call: Any, attempts: int = 20) -> None:
    """A transactional call again while the broker says it may succeed later (a coordinator that is
    loading after a broker restart, a timeout); anything else is raised."""
    for attempt in range(1, attempts + 1):
        try:
            call()
            return
        except KafkaException as exc:
            err = exc.args[0]
            if attempt == attempts or not (isinstance(err, KafkaError) and err.retriable()):
                raise
            log.warning("venue: %s; retrying (%d)", err.str(), attempt)
            time.sleep(min(2.0, 0.2 * attempt))


class VenueService:
    def __init__(
        self,
        settings: Settings,
        group_id: str | None = None,
        incarnation: str | None = None,
        metrics: VenueMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or VenueMetrics()
        self._lag = LagReporter(self.metrics.consumer_lag)
        #: The batch's refusals, (market, reason): counted once its transaction commits.
        self._refused: list[tuple[str, str]] = []
        cfg = self.cfg = settings.kafka
        self.group = group_id or f"{cfg.group_id}-venue"
        self.incarnation = incarnation or incarnation_of(time.time_ns() // 1000)
        create_topics(cfg, 1, [cfg.venue_state_topic], config={"cleanup.policy": "compact"})
        conf = client_config(cfg, **{"transactional.id": self.group, "linger.ms": "5"})
        log.info("venue %s (incarnation %s) connecting with %s", self.group, self.incarnation, redacted(conf))
        self.producer = Producer(conf)
        # Fences an earlier process with the same id and aborts whatever it left open.
        self.producer.init_transactions(60)
        self.consumer = Consumer(
            client_config(
                cfg,
                **{
                    "group.id": self.group,
                    "enable.auto.commit": "false",
                    "isolation.level": "read_committed",
                },
            )
        )
        self.venues: dict[str, PaperVenue] = {}
        self.offsets: dict[str, int] = {}
        self.parts: list[TopicPartition] = []
        self._resume()
        self.fills = 0
        self.rejected = 0
        self._last_report = 0.0

    # -- state ------------------------------------------------------------------------------------
    def _resume(self) -> None:
        """Every market's last committed state and the input offsets committed with it, read from
        the compacted state topic to its end; consumption resumes exactly there.

        The offsets travel in the transaction as a record of the state topic, not through the
        consumer group (``send_offsets_to_transaction``): after a broker restart librdkafka could
        block in that call for minutes, while a plain transactional produce recovers in seconds.
        """
        latest = self._read_state()
        self.offsets = orjson.loads(latest.pop(_OFFSETS)) if _OFFSETS in latest else {}
        self.venues = {
            market: load_state(raw, *self._venue_args(market))
            for market, raw in latest.items()
            if market in self.settings.markets
        }
        if self.venues:
            log.info("venue restored %d market(s): %s", len(self.venues), sorted(self.venues))
        inputs = [self.cfg.market_data_topic, self.cfg.intents_topic]
        create_topics(self.cfg, 1, inputs)  # an input nobody created yet must not stop the venue
        parts = []
        for topic in inputs:
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            for p in sorted(meta.partitions):
                offset = self.offsets.get(f"{topic}:{p}", OFFSET_BEGINNING)
                parts.append(TopicPartition(topic, p, offset))
        self.consumer.assign(parts)
        self.parts = parts

    def _read_state(self) -> dict[str, bytes]:
        """The latest committed record per key of the state topic (it is compacted)."""
        records = read_records(self.cfg, self.cfg.venue_state_topic, idle_s=None)
        return {key.decode(): value for key, value in records if key is not None}

    def _venue_args(self, market: str) -> tuple:
        s = self.settings
        return s.spec(market), s.venue, s.strategy_for(market).safety.dedup_window, self.incarnation

    def _venue(self, market: str) -> PaperVenue | None:
        venue = self.venues.get(market)
        if venue is None and market in self.settings.markets:
            spec, cfg, window, incarnation = self._venue_args(market)
            venue = self.venues[market] = PaperVenue(market, spec, cfg, window, incarnation)
        return venue

    # -- records ----------------------------------------------------------------------------------
    def handle(self, topic: str, value: bytes) -> tuple[str | None, list[Report]]:
        """One record: (the market it touched, the fills and order updates it brought)."""
        try:
            if topic == self.cfg.intents_topic:
                intent = decode_intent(value)
                venue = self._venue(intent.market)
                if venue is None:
                    self._refused.append((UNKNOWN_MARKET, "unknown_market"))
                elif not venue.submit(intent):
                    self._refused.append((intent.market, "duplicate_intent"))
                return (intent.market if venue is not None else None), []
            event = decode_input(value)
        except WireError as err:
            self.rejected += 1
            log.warning("venue dropped a message from %s: %s", topic, err)
            if topic == self.cfg.intents_topic:
                self._refused.append((UNKNOWN_MARKET, reason_of(str(err))))
            else:
                self.metrics.child("dropped", topic, reason_of(str(err))).inc()
            return None, []
        venue = self._venue(event.market)
        cls = type(event)
        if venue is None or not (cls is BookTick or cls is Trade or cls is Depth):
            return None, []
        if cls is BookTick:
            reports = venue.on_book(event)  # type: ignore[arg-type]
        elif cls is Trade:
            reports = venue.on_trade(event)  # type: ignore[arg-type]
        else:
            reports = venue.on_depth(event)  # type: ignore[arg-type]
        return event.market, reports

    def _position(self, venue: PaperVenue) -> bytes:
        return encode(
            Position(
                market=venue.market,
                ts=time.time_ns() // 1000,
                position=venue.position,
                fills=venue.fill_count,
                source=self.group[:ID_MAX],
            )
        )

    def step(self, timeout: float = 0.1) -> int:
        """Consume one batch and commit it with its outputs in one transaction; return the
        number of records consumed."""
        msgs = [m for m in self.consumer.consume(500, timeout) if not self._error(m)]
        report = time.monotonic() - self._last_report >= POSITION_INTERVAL_S
        if not msgs and not report:
            return 0
        touched: set[str] = set()
        reports: list[Report] = []
        made_at: list[float] = []  # broker time (s) of each record that made reports
        self._refused.clear()
        for msg in msgs:
            market, made = self.handle(msg.topic(), msg.value())
            if market is not None:
                touched.add(market)
            if made:
                reports.extend(made)
                made_at.append(msg.timestamp()[1] / 1000)
        try:
            self._commit(reports, touched, report, bool(msgs))
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError) and err.txn_requires_abort()):
                raise
            log.warning("venue transaction aborted (%s): rewinding to the last commit", err.str())
            self._rewind()
            return 0
        self.fills += sum(1 for r in reports if type(r) is Fill)
        self._count(reports, made_at)
        if report:
            self._last_report = time.monotonic()
        self._lag.report(self.consumer, self.parts)
        return len(msgs)

    def _count(self, reports: list[Report], made_at: list[float]) -> None:
        """The metrics of a committed batch: its fills and rejects, how long its reports took to
        be published, and every market's orders and position (a few orders each: cheap)."""
        m, now = self.metrics, time.time()
        for at in made_at:
            m.report_latency.observe(max(0.0, now - at))
        for r in reports:
            if type(r) is Fill:
                m.child("fills", r.market).inc()
            elif type(r) is OrderUpdate and r.status == "rejected":
                reason = r.reason if r.reason == POST_ONLY_REJECT else "other"
                m.child("rejects", r.market, reason).inc()
        for market, reason in self._refused:
            m.child("rejects", market, reason).inc()
        for market, venue in self.venues.items():
            m.child("resting", market).set(sum(1 for o in venue.orders if o.live and o.remaining > 0))
            waiting = sum(1 for o in venue.orders if not o.live and o.remaining > 0)
            m.child("in_flight", market).set(waiting + len(venue.iocs))
            m.child("position", market).set(float(venue.position))

    def _commit(self, reports: list[Report], touched: set[str], report: bool, consumed: bool) -> None:
        """The batch's fills, order updates, positions, state and offsets, in one transaction.
        Fills and order updates of a market share its partition key, each topic in report order."""
        cfg, produce = self.cfg, self.producer.produce
        self.producer.begin_transaction()
        filled = set()
        for r in reports:
            topic = cfg.fills_topic if type(r) is Fill else cfg.orders_topic
            produce(topic, key=r.market.encode(), value=encode(r))
            if type(r) is Fill:
                filled.add(r.market)
        reported = self.venues if report else {m: self.venues[m] for m in filled}
        for market, venue in sorted(reported.items()):
            produce(cfg.positions_topic, key=market.encode(), value=self._position(venue))
        for market in sorted(touched):
            produce(cfg.venue_state_topic, key=market.encode(), value=dump_state(self.venues[market]))
        if consumed:
            for tp in self.consumer.position(self.consumer.assignment()):
                if tp.offset >= 0:
                    self.offsets[f"{tp.topic}:{tp.partition}"] = tp.offset
            produce(cfg.venue_state_topic, key=_OFFSETS.encode(), value=orjson.dumps(self.offsets))
        _retry(lambda: self.producer.commit_transaction(30))

    def _rewind(self) -> None:
        """Back to the last committed transaction: its state, and the offsets committed with it
        (what a restart would do, without one)."""
        _retry(lambda: self.producer.abort_transaction(30))
        self._resume()

    def _error(self, msg: object) -> bool:
        err = msg.error()  # type: ignore[attr-defined]
        if err is None:
            return False
        log.warning("consumer error: %s", err)
        return True

    def run(self, seconds: float | None = None) -> None:
        """Serve until interrupted (or for ``seconds``); reconnects are librdkafka's job. A failed
        transaction stops the process: its restart resumes from the last committed one."""
        end = time.monotonic() + seconds if seconds else None
        try:
            while end is None or time.monotonic() < end:
                self.step()
        except KafkaException as exc:
            log.error("kafka failure, stopping (a restart resumes from the last commit): %s", exc)
            raise
        finally:
            self.consumer.close()
