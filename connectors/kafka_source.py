"""A lean Kafka source for the flow: raw confluent-kafka messages, in batches, resumable.

Bytewax's own ``KafkaSource`` wraps every message in a Python dataclass; at 100k+ messages a
second that wrapper costs more than the strategy. This source hands the flow the client's
messages as they are (the decode step reads ``value()`` and ``topic()``) and keeps one offset per
partition as its recovery state. Consumer settings are tuned for throughput (large fetches).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.kafka_io import client_config, create_topics
from connectors.metrics import get_metrics
from mmflow.config import KafkaConfig

log = logging.getLogger("mmflow.kafka")

#: How long an idle partition sleeps before it is polled again: the latency floor it adds.
IDLE_WAIT = timedelta(microseconds=250)

#: Large fetches: the broker sends megabytes per request instead of one small batch per poll.
THROUGHPUT = {
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "10485760",
    "queued.min.messages": "1000000",
    "fetch.wait.max.ms": "5",
}


class _Partition(StatefulSourcePartition[Any, int]):
    def __init__(
        self, conf: dict[str, str], topic: str, partition: int, offset: int, tail: bool, batch_size: int
    ) -> None:
        self._consumer = Consumer(conf)
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._offset = offset
        self._tail = tail
        self._batch = batch_size
        self._eof = False
        self._name = f"{topic}[{partition}]"
        self._awake: datetime | None = None

    def next_batch(self) -> list[Any]:
        if self._eof:
            raise StopIteration
        # Never block here: a worker polls every partition in turn (market data, fills, control),
        # and a blocking wait on an idle one delays the busy one. An empty poll sleeps instead,
        # through next_awake, for IDLE_WAIT.
        msgs = self._consumer.consume(self._batch, 0)
        out = [m for m in msgs if m.error() is None]
        if len(out) != len(msgs):  # end of partition, or a client error (librdkafka retries those)
            for msg in msgs:
                err = msg.error()
                if err is None:
                    continue
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof = not self._tail
                else:
                    log.warning("%s: %s", self._name, err)
                    get_metrics().kafka_errors.labels(self._name).inc()
        if out:
            self._offset = out[-1].offset() + 1
        self._awake = None if out else datetime.now(UTC) + IDLE_WAIT
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class RawKafkaSource(FixedPartitionedSource[Any, int]):
    """Every partition of ``topics``, from the beginning or the recovered offsets."""

    def __init__(
        self, cfg: KafkaConfig, topics: list[str], tail: bool = True, batch_size: int = 10_000
    ) -> None:
        self._cfg = cfg
        self._topics = topics
        self._tail = tail
        self._batch = batch_size

    def list_parts(self) -> list[str]:
        admin = AdminClient(client_config(self._cfg))
        existing = admin.list_topics(timeout=10).topics
        missing = [t for t in self._topics if t not in existing]
        if missing:
            # An input topic nobody created yet (say, the control topic before the first kill-switch
            # command) must not stop the flow: create it, one partition, and say so.
            log.warning(
                "creating missing input topics %s (1 partition; use `mmflow topics` to choose)", missing
            )
            create_topics(self._cfg, 1, missing)
        parts = []
        for topic in self._topics:
            meta = admin.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None:
                raise RuntimeError(f"topic {topic!r}: {meta.error}")
            parts.extend(f"{p}:{topic}" for p in sorted(meta.partitions))
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        partition, _, topic = for_part.partition(":")
        conf = client_config(
            self._cfg,
            **THROUGHPUT,
            **{
                "group.id": f"{self._cfg.group_id}-source",
                "enable.auto.commit": "false",
                "enable.partition.eof": "true",
            },
        )
        start = OFFSET_BEGINNING if resume_state is None else resume_state
        return _Partition(conf, topic, int(partition), start, self._tail, self._batch)
