"""Smoke test of the Kafka broker fixture: keyed round trip through a 2-partition topic."""

import time

import pytest
from confluent_kafka import Consumer, Producer

from tests.integration.kafka_broker import create_topic


@pytest.mark.kafka
def test_produce_consume_roundtrip(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    topic = f"{unique_topic_prefix}-roundtrip"
    create_topic(kafka_bootstrap, topic, partitions=2)

    sent = {b"k1": b"v1", b"k2": b"v2", b"k3": b"v3"}
    errors = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0, "messages still in flight after 30s"
    assert not errors, errors

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{unique_topic_prefix}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received[msg.key()] = msg.value()
    finally:
        consumer.close()

    assert received == sent
