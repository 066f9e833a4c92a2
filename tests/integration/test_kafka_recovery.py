"""Crash recovery and broker restarts, injected for real: SIGKILL the flow, restart the broker.

A market maker that double-counts a fill after a restart, or loses one, trades the wrong size
afterwards. These tests kill things mid-run on the real BTCUSDT recording and check that the
books come out exactly as in an uninterrupted run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mmflow.config import Settings, load_settings
from mmflow.connectors.files import load_inputs
from mmflow.connectors.recorder import read_topic
from mmflow.flows.replay import replay
from mmflow.models import Fill
from mmflow.wire import decode_input, encode
from tests.conftest import BTC_QUOTES, BTC_TRADES
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import (
    REPO,
    kafka_session,
    mmflow,
    run_ok,
    start,
    stop,
    topic_sets,
    wait_settled,
    wait_stable,
)
from tests.integration.test_metrics_http import free_port
from tests.integration.test_replay import BTC_CONFIG, independent_fifo

pytestmark = pytest.mark.kafka


def timeline(settings: Settings) -> tuple[list, list[Fill]]:
    """The real BTC events, and the fills a paper run makes on them, in arrival order."""
    events, _ = load_inputs([BTC_QUOTES], [BTC_TRADES], [], settings.markets)
    fills = replay(events, settings, None, report=False).outputs.fills
    return events, fills


def publish(
    bootstrap: str,
    prefix: str,
    events: list,
    fills: list[Fill],
    pace_s: float = 0.0,
    progress: list[int] | None = None,
) -> None:
    """Market data to ``prefix.md``, each fill (and every 10th fill again, a duplicate) to
    ``prefix.fills`` right after the market event it happened on."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    pending = list(fills)
    resend: list[Fill] = []
    chunk = max(1, len(events) // 200)
    for n, event in enumerate(events, 1):
        producer.produce(f"{prefix}.md", key=event.market.encode(), value=encode(event))
        while pending and pending[0].ts <= event.ts_recv:
            fill = pending.pop(0)
            producer.produce(f"{prefix}.fills", key=fill.market.encode(), value=encode(fill))
            if len(pending) % 10 == 0:
                resend.append(fill)
        for dup in resend:
            producer.produce(f"{prefix}.fills", key=dup.market.encode(), value=encode(dup))
        resend.clear()
        if n % chunk == 0:
            producer.poll(0)
            if progress is not None:
                progress[0] = n
            if pace_s:
                time.sleep(pace_s)
    producer.flush(60)
    if progress is not None:
        progress[0] = len(events)


def make_topics(bootstrap: str, prefix: str) -> None:
    for name in ("md", "fills", "control", "intents", "dlq", "state", "fills.journal"):
        create_topic(bootstrap, f"{prefix}.{name}", partitions=1 if name == "state" else 2)


def final_state(settings: Settings, prefix: str) -> dict:
    states = [orjson.loads(v) for v in read_topic(settings.kafka, f"{prefix}.state", idle_s=2.0)]
    btc = [s for s in states if s["market"] == "binance-futures:BTCUSDT"]
    assert btc, "the flow wrote no final state"
    return btc[-1]


def test_sigkill_mid_run_then_restart_matches_an_uninterrupted_run(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    # Recorded fills and no execution side: nothing reports the orders' life (fills only).
    sets = [f"kafka.bootstrap_servers={kafka_bootstrap}", "kafka.order_reports=false"]
    settings = load_settings("phase2", BTC_CONFIG, sets)
    events, fills = timeline(settings)
    assert len(fills) > 20

    def args(prefix: str) -> list[str]:
        extra = [*topic_sets(prefix), f"kafka.state_topic={prefix}.state", *sets]
        return ["--preset", "phase2", "--config", str(BTC_CONFIG), *[a for s in extra for a in ("--set", s)]]

    # Uninterrupted reference.
    ref = f"{unique_topic_prefix}-ref"
    make_topics(kafka_bootstrap, ref)
    publish(kafka_bootstrap, ref, events, fills)
    run_ok("run", "--until-end", *args(ref), timeout=300)
    reference = final_state(
        load_settings("phase2", BTC_CONFIG, [*sets, f"kafka.state_topic={ref}.state"]), ref
    )

    # The same input arriving over ~10 s; the flow is SIGKILLed half way, then restarted.
    run = f"{unique_topic_prefix}-crash"
    make_topics(kafka_bootstrap, run)
    recovery = tmp_path / "recovery"
    assert subprocess.run(mmflow("recovery-init", str(recovery)), cwd=REPO).returncode == 0
    progress = [0]
    feeder = threading.Thread(target=publish, args=(kafka_bootstrap, run, events, fills, 0.05, progress))
    flow = start(
        mmflow("run", "--recovery-dir", str(recovery), "--snapshot-interval", "1", *args(run)),
        tmp_path / "flow1.log",
    )
    feeder.start()
    while progress[0] < len(events) // 2:
        time.sleep(0.05)
    killed_at = progress[0]
    assert flow.poll() is None, (tmp_path / "flow1.log").read_text()[-2000:]
    os.killpg(flow.pid, 9)  # SIGKILL: no flush, no goodbye
    flow.wait(10)
    feeder.join(120)
    assert killed_at < len(events), "the kill must land before the input ends"
    run_ok(
        "run",
        "--until-end",
        "--recovery-dir",
        str(recovery),
        "--snapshot-interval",
        "1",
        *args(run),
        timeout=300,
    )
    after = final_state(load_settings("phase2", BTC_CONFIG, [*sets, f"kafka.state_topic={run}.state"]), run)

    for key in ("final_inventory_base", "realized_pnl_quote", "fees_quote"):
        assert Decimal(after[key]) == Decimal(reference[key]), key
    assert after["open_lots"] == reference["open_lots"]
    # And both equal the truth: every distinct fill counted exactly once.
    unique = {f.fill_id: f for f in fills}
    realized, position = independent_fifo_from(list(unique.values()))
    assert Decimal(after["final_inventory_base"]) == position
    assert Decimal(after["realized_pnl_quote"]) == realized
    # It resumed from a snapshot rather than starting over: starting over after a kill at half way
    # would re-emit every intent (about 1.5x the reference), a resume only the last second's.
    ref_intents = read_topic(
        load_settings(None, None, [*topic_sets(ref), *sets]).kafka, f"{ref}.intents", 2.0
    )
    run_intents = read_topic(
        load_settings(None, None, [*topic_sets(run), *sets]).kafka, f"{run}.intents", 2.0
    )
    assert len(ref_intents) > 100
    assert len(run_intents) < 1.3 * len(ref_intents), (len(run_intents), len(ref_intents))
    # The duplicates went to the dead-letter topic, not into the books.
    dead = read_topic(load_settings(None, None, [*topic_sets(run), *sets]).kafka, f"{run}.dlq", idle_s=2.0)
    assert len(dead) >= len(fills) // 10


def independent_fifo_from(fills: list[Fill]) -> tuple[Decimal, Decimal]:
    import polars as pl

    frame = pl.DataFrame(
        {
            "side": [f.side for f in fills],
            "price": [f.px for f in fills],
            "qty": [f.qty for f in fills],
            "fee": [f.fee for f in fills],
        }
    )
    return independent_fifo(frame)


def kafka_sh(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "kafka" / "kafka.sh"), *args],
        env={**os.environ, **env},
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"kafka.sh {' '.join(args)}: {done.stdout[-1000:]} {done.stderr[-2000:]}"


def own_broker(data_dir: Path) -> dict[str, str]:
    """Start a broker of our own on free ports (another test or process may grab a port between
    the probe and the bind, so try fresh ports a few times)."""
    last: AssertionError | None = None
    for attempt in range(3):
        env = {
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data_dir / f"kafka{attempt}"),
            "KAFKA_HEAP": "512m",  # a second broker beside the shared one: keep the pair small
        }
        try:
            kafka_sh("up", env=env)
            return env
        except AssertionError as err:
            last = err
            kafka_sh("down", "--purge", env=env)
    raise AssertionError(f"could not start a dedicated broker: {last}")


def wait_until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def published(bootstrap: str, topic: str) -> int:
    """How many records ``topic`` holds, from its partitions' high watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        parts = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in parts)
    finally:
        consumer.close()


def last_report_us(cfg, topic: str) -> int:
    reports = [decode_input(v) for v in read_topic(cfg, topic, 1.0)]
    return max((r.ts for r in reports), default=0)


def test_broker_restart_during_a_live_run_loses_nothing(tmp_path, unique_topic_prefix, data_dir) -> None:
    """A broker of our own (the shared one must not go down under other tests), restarted mid-run."""
    env = own_broker(tmp_path)
    bootstrap = f"127.0.0.1:{env['KAFKA_PORT']}"
    prefix = unique_topic_prefix
    topics = ("md", "fills", "control", "intents", "dlq", "fills.journal")
    _, settings, cfg_args = kafka_session(bootstrap, prefix, topics, config=BTC_CONFIG)
    metrics_port = free_port()
    venue = start(mmflow("venue", *cfg_args), tmp_path / "venue.log")
    flow = start(mmflow("run", "--metrics-port", str(metrics_port), *cfg_args), tmp_path / "flow.log")
    feed = start(
        mmflow("feed", "--quotes", str(BTC_QUOTES), "--trades", str(BTC_TRADES), "--speed", "10", *cfg_args),
        tmp_path / "feed.log",
    )
    try:
        # Mid-run: once the feed is publishing (on a loaded machine its start-up alone can take
        # longer than a fixed pause, and a broker that is down before it starts is another test).
        wait_until(lambda: published(bootstrap, f"{prefix}.md") > 5_000, timeout=120)
        kafka_sh("down", env=env)  # producers buffer, consumers retry
        time.sleep(3)
        kafka_sh("up", env=env)
        assert feed.wait(300) == 0, (tmp_path / "feed.log").read_text()[-2000:]
        fed_at = time.time_ns() // 1000
        # The venue is caught up once it commits again after the feed ended (its periodic position
        # report is a transaction) and its fills stopped moving; then it is stopped, so the count of
        # what the flow must consume stops moving too.
        wait_stable(lambda: len(read_topic(settings.kafka, f"{prefix}.fills", 1.0)), quiet=6.0, timeout=240)
        wait_until(lambda: last_report_us(settings.kafka, f"{prefix}.positions") > fed_at, timeout=120)
        stop(venue)
        samples = wait_settled(
            metrics_port,
            "binance-futures:BTCUSDT",
            lambda: (
                87_402
                + len(read_topic(settings.kafka, f"{prefix}.fills", 1.0))
                + len(read_topic(settings.kafka, f"{prefix}.positions", 1.0))
                + len(read_topic(settings.kafka, f"{prefix}.orders", 1.0))
            ),
            timeout=240,
        )
        fills = [decode_input(v) for v in read_topic(settings.kafka, f"{prefix}.fills", idle_s=2.0)]
        reports = read_topic(settings.kafka, f"{prefix}.positions", idle_s=2.0)
        orders = read_topic(settings.kafka, f"{prefix}.orders", idle_s=2.0)
        # The feed's retries across the outage wrote nothing twice (its producer is idempotent).
        assert len(read_topic(settings.kafka, f"{prefix}.md", idle_s=2.0)) == 87_402
    finally:
        stop(flow)
        stop(venue)
        stop(feed)
        kafka_sh("down", "--purge", env=env)
    btc = frozenset({("market", "binance-futures:BTCUSDT")})
    assert len(fills) > 3
    # Every market event, fill and position report processed exactly once across the outage ...
    assert samples[("maker_events_total", btc)] == 87_402 + len(fills) + len(reports) + len(orders)
    # ... and the books agree with the fills topic to the last decimal.
    realized, position = independent_fifo_from(fills)
    assert samples[("maker_inventory_base", btc)] == float(position)
    assert samples[("maker_fifo_realized_quote", btc)] == float(realized)
