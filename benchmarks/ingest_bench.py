"""``mmflow ingest`` throughput and receive-to-topic latency, printed (not a timed test).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m benchmarks.ingest_bench

``mmflow exchange-sim`` (its own process, ``--speed 0 --start subscribe``) replays the raw BTCUSDT
futures frames over a real local websocket as fast as possible from the ingest's subscription;
the ingest (the product's ``Ingest`` and ``KafkaOut``, in this process) writes them to a fresh
topic of the broker.
Figures: events/s from the first frame received to the last acknowledgement; receive time to the
broker's acknowledgement (delivery callback) and to the record's CreateTime (read back), p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from mmflow.config import load_settings
from mmflow.connectors.binance_ws import VENUES, Ingest, KafkaOut, poll_loop
from mmflow.connectors.kafka_io import client_config, create_topics
from mmflow.connectors.metrics import IngestMetrics
from mmflow.wire import decode_input
from tests.conftest import DATA

FRAMES = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"


def start_sim(port: int) -> subprocess.Popen:
    """``mmflow exchange-sim`` on ``port``, the replay held until the first subscriber."""
    env = dict(os.environ, MMFLOW_EXCHANGE_SIM_API_SECRET="bench-secret-not-real")
    args = ["--venue", "binance-usdm", "--frames", str(FRAMES), "--speed", "0", "--start", "subscribe"]
    cmd = [sys.executable, "-m", "mmflow.cli.main", "exchange-sim", *args, "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--api-key", "bench"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/fapi/v1/ping", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("exchange-sim did not start") from None
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


def create_times(cfg, topic: str, n: int) -> list[float]:
    """CreateTime minus ts_recv (ms) of every record of ``topic``."""
    consumer = Consumer(
        client_config(cfg, **{"group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": "false"})
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out: list[float] = []
    deadline = time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                out.append(msg.timestamp()[1] - decode_input(msg.value()).ts_recv / 1000)
    consumer.close()
    return out


async def run(ingest: Ingest, out: KafkaOut, expected: int) -> tuple[float, float]:
    stop = asyncio.Event()
    poller = asyncio.ensure_future(poll_loop(out, stop, every=0.005))
    task = asyncio.ensure_future(ingest.run(stop))
    start = None
    while len(out.latencies or []) < expected:
        if start is None and out.sent:
            start = time.monotonic()
        await asyncio.sleep(0.01)
    end = time.monotonic()
    stop.set()
    await task
    await poller
    return start or end, end


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        "phase2",
        None,
        [
            f"kafka.bootstrap_servers={bootstrap}",
            f"kafka.market_data_topic={prefix}.md",
            f"kafka.dead_letter_topic={prefix}.dlq",
        ],
    )
    create_topics(settings.kafka, 2, [f"{prefix}.md", f"{prefix}.dlq"])
    port = free_port()
    sim = start_sim(port)
    expected = 66_089 + 21_313  # the recording's book ticks and trades
    latencies: list[int] = []
    metrics = IngestMetrics()
    out = KafkaOut(settings.kafka, "binance-usdm", metrics, latencies)
    venue = VENUES["binance-usdm"]
    ingest = Ingest(
        venue, ["BTCUSDT"], out, metrics, ws_url=f"ws://127.0.0.1:{port}", rest_url=f"http://127.0.0.1:{port}"
    )
    try:
        start, end = asyncio.run(run(ingest, out, expected))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
        out.flush(10)
    wall = end - start
    ack_ms = [x / 1000 for x in latencies]
    created = create_times(settings.kafka, f"{prefix}.md", len(latencies))
    print(f"ingest: {len(latencies):,} events (book ticks and trades)")
    print(f"  throughput                 {len(latencies) / wall:,.0f} events/s ({wall:.2f} s)")
    print(f"  receive -> broker ack      p50 {pct(ack_ms, 0.5):.2f} ms   p99 {pct(ack_ms, 0.99):.2f} ms")
    print(
        f"  receive -> CreateTime      p50 {pct(created, 0.5):.2f} ms   p99 {pct(created, 0.99):.2f} ms (1 ms resolution)"
    )


if __name__ == "__main__":
    main()
