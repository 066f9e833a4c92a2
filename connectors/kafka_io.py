"""Kafka edges: client settings, topic creation, the flow's source and sink, plain producers.

Connection settings pass through to librdkafka unchanged (``kafka.extra`` in the settings, e.g.
``security.protocol``, ``sasl.mechanism``, ``sasl.username``, ``sasl.password``, ``ssl.*``);
``redacted`` is what may be logged. Every message is keyed by market, so one market's events stay
in one partition and in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import Gauge

from mmflow.config import KafkaConfig
from mmflow.connectors.metrics import flow_metrics
from mmflow.models import DeadLetter, Intent
from mmflow.outputs import Journaled
from mmflow.wire import encode

_SECRET_HINTS = ("password", "secret", "token", "key")

log = logging.getLogger("mmflow.kafka")


def client_config(cfg: KafkaConfig, **more: str) -> dict[str, str]:
    # TCP_NODELAY: a lone small request (one tick, one intent) must not wait for the previous
    # one's ACK, which is what Nagle's algorithm (librdkafka's default) does.
    conf = {"bootstrap.servers": cfg.bootstrap_servers, "socket.nagle.disable": "true", **cfg.extra}
    conf.update(more)
    return conf


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """The config with anything secret-looking masked, for logs and error messages."""
    return {k: ("***" if any(h in k.lower() for h in _SECRET_HINTS) else v) for k, v in conf.items()}


def broker_problem(cfg: KafkaConfig, timeout: float = 10.0) -> str | None:
    """None when the broker answers with these settings, else one line saying why not (no broker,
    refused credentials, ...); librdkafka's own retry chatter is kept off the terminal."""
    errors: list[KafkaError] = []
    quiet = logging.getLogger("mmflow.kafka.librdkafka")
    quiet.propagate = False
    conf: dict[str, Any] = {**client_config(cfg), "error_cb": errors.append, "logger": quiet}
    try:
        AdminClient(conf).list_topics(timeout=timeout)
        return None
    except KafkaException as exc:
        err = errors[-1] if errors else exc.args[0]
        text = err.str() if isinstance(err, KafkaError) else str(err)
        return f"cannot use the Kafka broker at {cfg.bootstrap_servers}: {text}"


def all_topics(cfg: KafkaConfig) -> list[str]:
    return [
        cfg.market_data_topic,
        cfg.fills_topic,
        cfg.intents_topic,
        cfg.dead_letter_topic,
        cfg.control_topic,
        cfg.positions_topic,
        cfg.orders_topic,
        journal_topic(cfg),
    ]


def journal_topic(cfg: KafkaConfig) -> str:
    return cfg.fills_topic + ".journal"


def create_topics(
    cfg: KafkaConfig,
    partitions: int,
    topics: Iterable[str] | None = None,
    config: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with topic ``config``); return the names created."""
    admin = AdminClient(client_config(cfg))
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [t for t in (topics or all_topics(cfg)) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1, config=config or {}) for t in wanted]
    )
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:  # another process created it first: fine
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until every new partition has a leader
        topics = admin.list_topics(timeout=10).topics
        if all(
            t in topics
            and topics[t].error is None
            and all(p.leader >= 0 for p in topics[t].partitions.values())
            for t in wanted
        ):
            break
        time.sleep(0.1)
    return wanted


def intent_message(cfg: KafkaConfig, intent: Intent) -> KafkaSinkMessage[bytes, bytes]:
    return KafkaSinkMessage(intent.market.encode(), encode(intent), topic=cfg.intents_topic)


def journal_message(cfg: KafkaConfig, entry: Journaled) -> KafkaSinkMessage[bytes, bytes]:
    """A booked input with its position (``after_events``) for the journal topic."""
    event = entry.event
    value = encode(event)[:-1] + b',"after_events":' + str(entry.after_events).encode() + b"}"
    return KafkaSinkMessage(event.market.encode(), value, topic=journal_topic(cfg))


def summary_message(cfg: KafkaConfig, summary: dict[str, Any]) -> KafkaSinkMessage[bytes, bytes]:
    """The final per-market state at the end of input (``mmflow run --until-end``)."""
    return KafkaSinkMessage(summary["market"].encode(), orjson.dumps(summary), topic=cfg.state_topic)


def dead_letter_message(cfg: KafkaConfig, dead: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    """The original bytes, with why and from where in the headers: ``reason`` the code,
    ``detail`` what this record got wrong, ``source`` the topic or file it came from."""
    headers = [
        ("reason", dead.reason.encode()),
        ("detail", dead.detail.encode()),
        ("source", dead.source.encode()),
    ]
    key = dead.market.encode() if dead.market else None
    return KafkaSinkMessage(key, dead.raw, topic=cfg.dead_letter_topic, headers=headers)


class _SinkPartition(StatelessSinkPartition[KafkaSinkMessage[bytes | None, bytes]]):
    def __init__(self, producer: Producer, confirm: bool) -> None:
        self._producer = producer
        self._confirm = confirm

    def write_batch(self, items: list[KafkaSinkMessage[bytes | None, bytes]]) -> None:
        produce, poll = self._producer.produce, self._producer.poll
        for msg in items:
            while True:
                try:
                    produce(msg.topic, msg.value, msg.key, headers=msg.headers, on_delivery=_delivered)
                    break
                except BufferError:  # the local queue is full: let the client send some
                    poll(0.05)
        poll(0)
        if self._confirm:
            self._producer.flush()

    def close(self) -> None:
        self._producer.flush()


def _delivered(err: KafkaError | None, msg: Any) -> None:
    if err is not None:
        log.error("output to %s not delivered: %s", msg.topic(), err)
        flow_metrics().child("kafka_errors", msg.topic() or "producer").inc()


class FlowSink(DynamicSink[KafkaSinkMessage[bytes | None, bytes]]):
    """The flow's output: each message to its own topic, keyed by market.

    ``confirm`` waits after every batch until the broker has every message, which a run with
    recovery needs (a snapshot must never get ahead of its outputs: at-least-once). Without
    recovery a restart starts over anyway, so the worker goes on at once and the client delivers
    in the background, in order (idempotent producer): one broker round trip less per intent.
    """

    def __init__(self, cfg: KafkaConfig, confirm: bool = True) -> None:
        self._cfg = cfg
        self._confirm = confirm

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SinkPartition:
        # No linger: intents are few and tick-to-intent latency matters more than batching them.
        conf = client_config(self._cfg, **{"linger.ms": "0", "enable.idempotence": "true"})
        return _SinkPartition(Producer(conf), self._confirm)


def flow_sink(cfg: KafkaConfig, confirm: bool = True) -> FlowSink:
    return FlowSink(cfg, confirm)


class DeliveryErrors(list[str]):
    """An ``on_delivery`` callback keeping why each message the broker did not take was lost (a
    refused write, a timeout): a command can then say so instead of claiming it sent."""

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.append(err.str())


def publish_event(prod: Producer, topic: str, event: Any, on_delivery: Any = None) -> None:
    """Publish one event keyed by its market, waiting for room when the local queue is full."""
    while True:
        try:
            prod.produce(topic, key=event.market.encode(), value=encode(event), on_delivery=on_delivery)
            return
        except BufferError:
            prod.poll(0.05)


def producer(cfg: KafkaConfig, **more: str) -> Producer:
    """The producer of the feed, the venue and the tools. Idempotent: a request the broker wrote
    but could not acknowledge (it went down) is retried without being written twice."""
    conf = {"linger.ms": "5", "compression.type": "lz4", "enable.idempotence": "true", **more}
    return Producer(client_config(cfg, **conf))


#: Seconds between two lag reports of one consumer: a scrape every few seconds still sees a fresh
#: value, and the per-partition calls stay off the per-message path.
LAG_INTERVAL_S = 1.0


def partition_lag(consumer: Consumer, assigned: Iterable[TopicPartition]) -> list[tuple[str, int, int]]:
    """(topic, partition, records behind) of each assigned partition whose lag the client knows
    already: its cached high watermark (updated by every fetch response, no broker round trip)
    minus the consumer's position. A partition nothing was read from yet counts from where it
    was assigned (an explicit offset, or the low watermark for the beginning)."""
    assigned = list(assigned)
    lags = []
    for start, now in zip(assigned, consumer.position(assigned), strict=True):
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(start.topic, start.partition), cached=True
            )
        except KafkaException:
            continue
        position = now.offset
        if position < 0:
            position = start.offset if start.offset >= 0 else low if start.offset == OFFSET_BEGINNING else -1
        if high >= 0 and position >= 0:
            lags.append((start.topic, start.partition, max(0, high - position)))
    return lags


class LagReporter:
    """A consumer's lag per partition into ``gauge{topic,partition}``, at most every
    ``interval_s``: called from the consumer's own loop, so no thread shares the client."""

    def __init__(self, gauge: Gauge, interval_s: float = LAG_INTERVAL_S) -> None:
        self._gauge = gauge
        self._interval = interval_s
        self._next = 0.0

    def report(self, consumer: Consumer, assigned: Iterable[TopicPartition]) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        for topic, partition, lag in partition_lag(consumer, assigned):
            self._gauge.labels(topic, str(partition)).set(lag)
