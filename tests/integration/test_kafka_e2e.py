"""The live loop through a real Kafka broker: feed -> flow -> intents -> venue -> fills -> flow.

Real processes (``mmflow feed``, ``mmflow run``, ``mmflow venue``) talk over real connections to
the broker of the ``kafka_bootstrap`` fixture; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from confluent_kafka import Producer

from mmflow.config import Settings, load_settings
from mmflow.connectors.files import load_inputs
from mmflow.connectors.recorder import read_topic, record
from mmflow.flows.replay import replay
from mmflow.wire import decode_input
from tests.conftest import BTC_QUOTES, BTC_TRADES
from tests.integration.kafka_broker import create_topic
from tests.integration.test_metrics_http import free_port, scrape
from tests.integration.test_replay import BTC_CONFIG, independent_fifo

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
MALFORMED = [
    b"not json",
    b'{"v":1,"type":"book","market":"binance-futures:BTCUSDT"}',
    b'{"v":7,"type":"trade"}',
]


def topic_sets(prefix: str) -> list[str]:
    return [
        f"kafka.market_data_topic={prefix}.md",
        f"kafka.fills_topic={prefix}.fills",
        f"kafka.intents_topic={prefix}.intents",
        f"kafka.dead_letter_topic={prefix}.dlq",
        f"kafka.control_topic={prefix}.control",
        f"kafka.positions_topic={prefix}.positions",
        f"kafka.orders_topic={prefix}.orders",
        f"kafka.venue_state_topic={prefix}.venue-state",
        f"kafka.group_id={prefix}",
    ]


def kafka_session(
    bootstrap: str,
    prefix: str,
    topics: tuple[str, ...],
    *extra: str,
    config: Path | None = None,
    partitions: int = 2,
) -> tuple[list[str], Settings, list[str]]:
    """A test's own topics, created (``state``, where asked for, with one partition: its last record
    per market is what a test reads), and the ``--set`` overrides, settings and command-line arguments that
    name them (phase 2, ``config`` if given, then ``extra`` overrides)."""
    state = [f"kafka.state_topic={prefix}.state"] if "state" in topics else []
    sets = [*topic_sets(prefix), *state, f"kafka.bootstrap_servers={bootstrap}", *extra]
    for name in topics:
        create_topic(bootstrap, f"{prefix}.{name}", partitions=1 if name == "state" else partitions)
    files = ["--config", str(config)] if config is not None else []
    args = ["--preset", "phase2", *files, *[a for s in sets for a in ("--set", s)]]
    return sets, load_settings("phase2", config, sets), args


def mmflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmflow.cli", *args]


def run_ok(*args: str, timeout: float = 300) -> None:
    """Run an ``mmflow`` command to its end; it must succeed (its stderr tail says why not)."""
    done = subprocess.run(mmflow(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``args`` in a process group of its own, its output in ``log``; ``env`` adds variables."""
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_settled(port: int, market: str, expected: Callable[[], int], timeout: float = 180.0) -> dict:
    """Scrape until the flow has processed every expected event and nothing moved for 3 s."""
    key = ("maker_events_total", frozenset({("market", market)}))
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
        except OSError:
            samples = {}
        value = samples.get(key)
        if value != last:
            last, since = value, time.monotonic()
        elif value is not None and time.monotonic() - since > 3.0 and value == expected():
            return samples
        time.sleep(0.5)
    raise TimeoutError(f"flow did not settle: events={last}, expected {expected()}")


def wait_stable(count: Callable[[], int], quiet: float = 4.0, timeout: float = 120.0) -> int:
    """Until ``count()`` has not changed for ``quiet`` seconds; return it."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        value = count()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since > quiet:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"still moving: {last}")


def test_live_loop_end_to_end_and_offline_replay(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = [*topic_sets(prefix), f"kafka.bootstrap_servers={kafka_bootstrap}"]
    settings = load_settings("phase2", BTC_CONFIG, sets)
    for topic in (
        f"{prefix}.md",
        f"{prefix}.fills",
        f"{prefix}.intents",
        f"{prefix}.dlq",
        f"{prefix}.fills.journal",
    ):
        create_topic(kafka_bootstrap, topic, partitions=2)
    cfg_args = ["--preset", "phase2", "--config", str(BTC_CONFIG), *[a for s in sets for a in ("--set", s)]]

    # Malformed messages first: the flow must dead-letter them and go on.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for raw in MALFORMED:
        producer.produce(f"{prefix}.md", key=b"binance-futures:BTCUSDT", value=raw)
    producer.flush(10)

    port = free_port()
    venue = start(mmflow("venue", *cfg_args), tmp_path / "venue.log")
    flow = start(mmflow("run", "--metrics-port", str(port), *cfg_args), tmp_path / "flow.log")
    try:
        # Paced at 30x the recorded speed, so intents reach the venue while their market is still there.
        run_ok(
            "feed",
            "--quotes",
            str(BTC_QUOTES),
            "--trades",
            str(BTC_TRADES),
            "--speed",
            "30",
            *cfg_args,
            timeout=300,
        )
        fills_topic = f"{prefix}.fills"
        positions_topic = f"{prefix}.positions"
        # The venue reports positions every 2 s for ever: once its fills have stopped, stop it, so
        # the count of what the flow must consume (market data, fills, order updates, positions)
        # stops moving too.
        wait_stable(lambda: len(read_topic(settings.kafka, fills_topic, 1.0)))
        stop(venue)
        samples = wait_settled(
            port,
            "binance-futures:BTCUSDT",
            lambda: (
                87_402
                + len(read_topic(settings.kafka, fills_topic, 1.0))
                + len(read_topic(settings.kafka, positions_topic, 1.0))
                + len(read_topic(settings.kafka, f"{prefix}.orders", 1.0))
            ),
        )
    finally:
        stop(flow)
        stop(venue)

    # Inventory and realized PnL on /metrics equal those computed independently from the fills topic.
    fills = [decode_input(v) for v in read_topic(settings.kafka, f"{prefix}.fills", idle_s=2.0)]
    assert len(fills) > 5, "the venue produced too few fills for a meaningful check"
    frame = pl.DataFrame(
        {
            "side": [f.side for f in fills],
            "price": [f.px for f in fills],
            "qty": [f.qty for f in fills],
            "fee": [f.fee for f in fills],
        }
    )
    realized, position = independent_fifo(frame)
    btc = frozenset({("market", "binance-futures:BTCUSDT")})
    assert samples[("maker_inventory_base", btc)] == float(position)
    assert samples[("maker_fifo_realized_quote", btc)] == float(realized)
    positions = [decode_input(v) for v in read_topic(settings.kafka, f"{prefix}.positions", idle_s=2.0)]
    orders = [decode_input(v) for v in read_topic(settings.kafka, f"{prefix}.orders", idle_s=2.0)]
    assert orders and {o.status for o in orders} >= {"accepted", "cancelled"}
    assert samples[("maker_events_total", btc)] == 87_402 + len(fills) + len(positions) + len(orders)
    # The venue's own count agrees with the books: no reconciliation halt, the last report matches.
    assert positions and positions[-1].position == position and positions[-1].fills == len(fills)
    assert samples[("maker_reconcile_halt", btc)] == 0

    # Malformed input landed on the dead-letter topic with its bytes and reason.
    dead = read_topic(settings.kafka, f"{prefix}.dlq", idle_s=2.0)
    assert sorted(dead) == sorted(MALFORMED)
    dead_count = sum(v for (n, _), v in samples.items() if n == "maker_dead_letters_total")
    assert dead_count == len(MALFORMED)

    # Recorded topics replayed offline give exactly the live run's intents.
    rec = record(settings.kafka, tmp_path / "rec", idle_s=2.0)
    events, bad = load_inputs([rec["marketdata"]], [], [rec["journal"]], settings.markets)
    assert not bad
    offline = replay(events, settings, tmp_path / "offline", venue=None, report=False)
    live_intents = pl.read_parquet(rec["intents"]).sort("market", "seq")
    offline_intents = pl.read_parquet(tmp_path / "offline" / "intents.parquet").sort("market", "seq")
    assert live_intents.height > 100
    assert live_intents.equals(offline_intents)
    assert Decimal(offline.summary["markets"]["binance-futures:BTCUSDT"]["final_inventory_base"]) == position
