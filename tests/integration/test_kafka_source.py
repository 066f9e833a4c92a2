"""The Kafka source on a real broker: an idle worker waits for messages instead of spinning."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from mmflow.config import load_settings
from mmflow.connectors.kafka_source import RawKafkaSource
from tests.integration.kafka_broker import create_topic

pytestmark = pytest.mark.kafka


def test_an_idle_partition_waits_in_the_client_and_wakes_on_a_message(
    kafka_bootstrap, unique_topic_prefix
) -> None:
    topic = f"{unique_topic_prefix}.md"
    create_topic(kafka_bootstrap, topic)
    cfg = load_settings(None, None, [f"kafka.bootstrap_servers={kafka_bootstrap}"]).kafka
    part = RawKafkaSource(cfg, [topic]).build_part("input", f"0:{topic}", None)
    try:
        calls, end = 0, time.monotonic() + 0.5
        while time.monotonic() < end:
            assert part.next_batch() == []
            calls += 1
        # Each empty call waits up to 1 ms in librdkafka; a poll that never waits (any timeout
        # under 1 ms) makes tens of thousands of calls in the same half second.
        assert 0 < calls < 2_000, calls

        feed = Producer({"bootstrap.servers": kafka_bootstrap})
        feed.produce(topic, b"tick")
        feed.flush(10)
        got, deadline = [], time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = part.next_batch()
        assert [m.value() for m in got] == [b"tick"]
        assert part.snapshot() == 1
    finally:
        part.close()
