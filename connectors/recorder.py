"""``mmflow record``: the topics of a live session, written to Parquet in arrival order.

Each partition is read from the beginning until the topic has been idle for ``idle_s``; one
market lives in one partition, so its order is kept exactly. Outputs: ``marketdata.parquet``
(our recording format), ``journal.parquet`` (every input the flow took besides market data, and
its timer's firings, each with ``after_events``: see ``flows/runtime.py``) and ``intents.parquet``
(what the live flow decided, one row per intent id).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import orjson
import polars as pl
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from mmflow.config import KafkaConfig
from mmflow.connectors.files import events_frame
from mmflow.connectors.kafka_io import client_config, journal_topic
from mmflow.connectors.tables import intents_frame
from mmflow.models import Intent
from mmflow.wire import WireError, decode_input, decode_intent


def read_records(
    cfg: KafkaConfig, topic: str, idle_s: float | None = 3.0
) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) of ``topic``, partition by partition, from the beginning to its end,
    committed records only. With ``idle_s`` it also stops once the topic has been idle that long
    (a recording); without, it reads to the end of every partition and raises on any error (a
    state that must be read whole)."""
    consumer = Consumer(
        client_config(
            cfg,
            **{
                "group.id": f"{cfg.group_id}-recorder",
                "enable.auto.commit": "false",
                "enable.partition.eof": "true",
                "isolation.level": "read_committed",
            },
        )
    )
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        consumer.close()
        return []
    records: dict[int, list[tuple[bytes | None, bytes]]] = {p: [] for p in meta.partitions}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    done: set[int] = set()
    last = time.monotonic()
    while len(done) < len(records) and (idle_s is None or time.monotonic() - last < idle_s):
        for msg in consumer.consume(1000, 0.2):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                elif idle_s is None:
                    consumer.close()
                    raise KafkaException(msg.error())
                continue
            records[msg.partition()].append((msg.key(), msg.value()))
            done.discard(msg.partition())
            last = time.monotonic()
    consumer.close()
    return [r for p in sorted(records) for r in records[p]]


def read_topic(cfg: KafkaConfig, topic: str, idle_s: float = 3.0) -> list[bytes]:
    """Every value of ``topic``, partition by partition, from the beginning."""
    return [value for _, value in read_records(cfg, topic, idle_s)]


def _journal_frame(values: list[bytes]) -> pl.DataFrame:
    events, after = [], []
    for raw in values:
        obj = orjson.loads(raw)
        after.append(obj.pop("after_events"))
        events.append(decode_input(orjson.dumps(obj)))
    if not events:
        return pl.DataFrame(schema={"type": pl.Utf8, "market": pl.Utf8, "after_events": pl.Int64})
    return events_frame(events).with_columns(pl.Series("after_events", after, dtype=pl.Int64))


def unique_intents(values: Iterable[bytes]) -> list[Intent]:
    """The intents of a topic in its order, one per id (the first copy): the topic can hold an
    intent twice (a session recovered after a restart held 164 rows for 157 ids), the session
    decided it once, and a replay of the recording makes it once."""
    seen: set[str] = set()
    out = []
    for raw in values:
        intent = decode_intent(raw)
        if intent.intent_id not in seen:
            seen.add(intent.intent_id)
            out.append(intent)
    return out


def record(cfg: KafkaConfig, out: Path, idle_s: float = 3.0) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    events = []
    for raw in read_topic(cfg, cfg.market_data_topic, idle_s):
        try:
            events.append(decode_input(raw))
        except WireError:
            continue  # the flow dead-lettered it too; it made no decision
    paths = {
        "marketdata": out / "marketdata.parquet",
        "journal": out / "journal.parquet",
        "intents": out / "intents.parquet",
    }
    events_frame(events).write_parquet(paths["marketdata"])
    _journal_frame(read_topic(cfg, journal_topic(cfg), idle_s)).write_parquet(paths["journal"])
    intents = unique_intents(read_topic(cfg, cfg.intents_topic, idle_s))
    intents_frame(intents).write_parquet(paths["intents"])
    return paths
