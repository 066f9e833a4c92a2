"""A lean Kafka source for the flow: raw confluent-kafka messages, in batches, resumable.

Bytewax's own ``KafkaSource`` wraps every message in a Python dataclass; at 100k+ messages a
second that wrapper costs more than the strategy. This source hands the flow the client's
messages as they are (the decode step reads ``value()`` and ``topic()``) and keeps one offset per
partition as its recovery state.

One consumer serves every partition a worker reads (market data, fills, control): an idle worker
waits inside librdkafka, without the GIL, and wakes on the first message of any of its
partitions. With one consumer per partition a worker could only poll them in turn, and the
polling cost both latency (a message waits for the next round) and CPU (thousands of empty
rounds a second on a quiet feed, on the cores the broker needs).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from mmflow.config import KafkaConfig
from mmflow.connectors.kafka_io import LagReporter, client_config, create_topics
from mmflow.connectors.metrics import flow_metrics

log = logging.getLogger("mmflow.kafka")

#: Longest an idle worker waits inside librdkafka before it hands control back to Bytewax; a
#: message ends the wait at once. librdkafka counts in whole milliseconds, so 1 ms is the shortest
#: real wait: anything less is a poll that never waits, and the worker spins a full core. On two
#: cores shared with the broker that spin cost more than it saved: at 2,000 ticks/s tick-to-intent
#: p99 was 4.8-5.8 ms spinning (107% of a core) and 2.3-3.5 ms waiting (40%), runs alternated.
IDLE_BLOCK_S = 0.001

#: "Call again at once": a time already past. The waiting happens in the consumer instead.
_DUE = datetime(1970, 1, 1, tzinfo=UTC)

#: Large fetches: the broker sends megabytes per request instead of one small batch per poll.
THROUGHPUT = {
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "10485760",
    "queued.min.messages": "1000000",
    "fetch.wait.max.ms": "5",
}

#: A live (tailing) worker: the broker answers a fetch as soon as any data arrives, so a long wait
#: costs no latency, only fewer empty round trips on a quiet feed.
TAILING = {**THROUGHPUT, "fetch.wait.max.ms": "100"}


#: Set by a signal handler (``request_stop``): every partition ends its input at its next batch,
#: so the dataflow runs to its end and stops cleanly (outputs flushed) instead of an exception
#: crossing Bytewax's Rust frames, which it reports as a panic.
_STOP = threading.Event()


def request_stop() -> None:
    _STOP.set()


class _WorkerConsumer:
    """The consumer of one worker thread, dispatching messages to its partitions' buffers."""

    def __init__(self, conf: dict[str, str], batch_size: int) -> None:
        self._consumer = Consumer(conf)
        self._batch = batch_size
        self._buffers: dict[str, dict[int, list[Message]]] = {}
        self._pending = 0  # messages buffered for any partition
        self._grace = 0  # pumps left that must not wait: the last messages are still on their way
        self.eof: set[tuple[str, int]] = set()
        self._assigned: dict[tuple[str, int], TopicPartition] = {}
        self._lag = LagReporter(flow_metrics().consumer_lag)

    def add(self, topic: str, partition: int, offset: int) -> list[Message]:
        buffer: list[Message] = []
        self._buffers.setdefault(topic, {})[partition] = buffer
        tp = self._assigned[(topic, partition)] = TopicPartition(topic, partition, offset)
        self._consumer.incremental_assign([tp])
        return buffer

    def remove(self, topic: str, partition: int) -> bool:
        """Stop reading a partition; True when it was the last one (the consumer is closed)."""
        del self._buffers[topic][partition]
        del self._assigned[(topic, partition)]
        if not self._buffers[topic]:
            del self._buffers[topic]
        if self._buffers:
            self._consumer.incremental_unassign([TopicPartition(topic, partition)])
            return False
        self._consumer.close()
        return True

    def taken(self, n: int) -> None:
        """A partition handed ``n`` messages to the flow. No wait for the next round of
        partitions: Bytewax moves those messages on only after the source's turn ends."""
        self._pending -= n
        self._grace = sum(len(parts) for parts in self._buffers.values())

    def pump(self) -> None:
        """Fetch what the client holds into the buffers; wait a little only when every buffer is
        empty (another partition's pending messages must not wait behind an idle one). Once a
        second it also reports the partitions' lag (``maker_consumer_lag_records``)."""
        self._lag.report(self._consumer, self._assigned.values())
        msgs = self._consumer.consume(self._batch, 0)
        if not msgs and not self._pending:
            if self._grace:
                self._grace -= 1
                return
            first = self._consumer.poll(IDLE_BLOCK_S)  # returns on the first message
            if first is None:
                return
            msgs = [first, *self._consumer.consume(self._batch - 1, 0)]
        buffers = self._buffers
        for m in msgs:
            if m.error() is None:
                buffers[m.topic()][m.partition()].append(m)
                self._pending += 1
            else:
                self._error(m)

    def _error(self, msg: Message) -> None:
        err = msg.error()
        if err.code() == KafkaError._PARTITION_EOF:
            self.eof.add((msg.topic(), msg.partition()))
            return
        name = f"{msg.topic()}[{msg.partition()}]" if msg.topic() else "consumer"
        log.warning("%s: %s", name, err)  # librdkafka retries these itself
        flow_metrics().child("kafka_errors", name).inc()


class _Partition(StatefulSourcePartition[Any, int]):
    def __init__(
        self, shared: _WorkerConsumer, topic: str, partition: int, offset: int, on_close: Any
    ) -> None:
        self._shared = shared
        self._key = (topic, partition)
        self._buffer = shared.add(topic, partition, offset)
        self._offset = offset
        self._on_close = on_close

    def next_batch(self) -> list[Any]:
        if _STOP.is_set():
            raise StopIteration
        if not self._buffer:
            if self._key in self._shared.eof:
                raise StopIteration
            self._shared.pump()
            if not self._buffer:
                return []
        out = self._buffer[:]
        self._buffer.clear()
        self._shared.taken(len(out))
        self._offset = out[-1].offset() + 1
        return out

    def next_awake(self) -> datetime:
        return _DUE

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._shared.remove(*self._key):
            self._on_close()


class RawKafkaSource(FixedPartitionedSource[Any, int]):
    """Every partition of ``topics``, from the beginning or the recovered offsets.

    ``tail=False`` stops at the end of every partition (a bounded run, benchmarks and tests).
    """

    def __init__(
        self, cfg: KafkaConfig, topics: list[str], tail: bool = True, batch_size: int = 10_000
    ) -> None:
        self._cfg = cfg
        self._topics = topics
        self._tail = tail
        self._batch = batch_size
        self._consumers: dict[int, _WorkerConsumer] = {}
        self._lock = threading.Lock()

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

    def _worker_consumer(self) -> tuple[_WorkerConsumer, Any]:
        """The calling worker thread's consumer (Bytewax builds a worker's parts on its thread)."""
        worker = threading.get_ident()
        with self._lock:
            if worker not in self._consumers:
                conf = client_config(
                    self._cfg,
                    **(TAILING if self._tail else THROUGHPUT),
                    **{
                        "group.id": f"{self._cfg.group_id}-source",
                        "enable.auto.commit": "false",
                        "enable.partition.eof": "false" if self._tail else "true",
                    },
                )
                self._consumers[worker] = _WorkerConsumer(conf, self._batch)
        return self._consumers[worker], lambda: self._consumers.pop(worker, None)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        partition, _, topic = for_part.partition(":")
        start = OFFSET_BEGINNING if resume_state is None else resume_state
        shared, on_close = self._worker_consumer()
        return _Partition(shared, topic, int(partition), start, on_close)
