"""``mmflow ingest`` against a Binance-protocol server over real sockets into a real Kafka broker.

The server is ``tests/integration/binance_stub.py`` (a test-only stand-in for ``mmflow
exchange-sim``) replaying the raw recorded frames; the ingest is the real command in its own
process, its metrics scraped over HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mmflow.config import load_settings
from mmflow.connectors.binance_frames import read_frames
from mmflow.connectors.files import load_inputs
from mmflow.connectors.recorder import read_records
from mmflow.models import BookTick, Depth, Trade
from mmflow.wire import decode_input
from tests.conftest import BTC_QUOTES, BTC_TRADES, DATA
from tests.integration.binance_stub import BinanceStub
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import mmflow, start
from tests.integration.test_metrics_http import free_port, scrape

pytestmark = pytest.mark.kafka
FUTURES = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"
SPOT = DATA / "raw" / "binance_ETHUSDT_2024-08-09.txt.gz"
BTC = "binance-futures:BTCUSDT"


def _topics(bootstrap: str, prefix: str) -> list[str]:
    for t in (f"{prefix}.md", f"{prefix}.dlq"):
        create_topic(bootstrap, t, partitions=2)
    return [
        f"kafka.bootstrap_servers={bootstrap}",
        f"kafka.market_data_topic={prefix}.md",
        f"kafka.dead_letter_topic={prefix}.dlq",
        f"kafka.group_id={prefix}",
    ]


def _metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def _ingest(
    stub: BinanceStub, sets: list[str], tmp_path: Path, expected: int, *extra: str
) -> tuple[dict, subprocess.CompletedProcess | int]:
    """Run ``mmflow ingest`` until it has written ``expected`` events and nothing moved for 2 s;
    scrape its metrics, stop it with SIGTERM; (metrics, exit code)."""
    port = free_port()
    args = ["ingest", "--ws-url", stub.ws_url, "--rest-url", stub.rest_url, "--metrics-port", str(port)]
    args += [*extra, *[a for s in sets for a in ("--set", s)]]
    log = tmp_path / "ingest.log"
    proc = start(mmflow(*args), log)
    try:
        deadline, last, since = time.monotonic() + 240, None, time.monotonic()
        samples: dict = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                samples = scrape(port)
            except OSError:
                time.sleep(0.3)
                continue
            n = _total(samples, "mmflow_ingest_events_total")
            if n != last:
                last, since = n, time.monotonic()
            elif n >= expected and time.monotonic() - since > 2.0:
                break
            time.sleep(0.3)
        else:
            raise TimeoutError(f"ingest wrote {last} of {expected} events\n{log.read_text()[-3000:]}")
        samples = scrape(port)
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert code == 0, log.read_text()[-3000:]
    return samples, code


def _topic_events(sets: list[str], prefix: str) -> list:
    cfg = load_settings("phase2", None, sets).kafka
    records = read_records(cfg, f"{prefix}.md", idle_s=3.0)
    assert all(key == decode_input(value).market.encode() for key, value in records[:100])
    return [decode_input(value) for _, value in records]


def _no_recv(events: list) -> list:
    return [replace(e, ts_recv=0) for e in events]


def test_futures_frames_give_the_tardis_csvs_book_ticks_and_trades(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    stub = BinanceStub(FUTURES).start()
    try:
        expected_depth = [e for e in read_frames(FUTURES)[0] if type(e) is Depth]
        before = time.time_ns() // 1000
        samples, _ = _ingest(
            stub, sets, tmp_path, 66_089 + 21_313 + len(expected_depth), "--symbols", "BTCUSDT", "--depth"
        )
    finally:
        stub.stop()
    events = _topic_events(sets, prefix)
    csv, _ = load_inputs([BTC_QUOTES], [BTC_TRADES], [], None)
    books = [e for e in events if type(e) is BookTick]
    trades = [e for e in events if type(e) is Trade]
    assert len(books) == 66_089 and len(trades) == 21_313
    assert _no_recv(books) == _no_recv([e for e in csv if type(e) is BookTick])
    assert _no_recv(trades) == _no_recv([e for e in csv if type(e) is Trade])
    assert all(e.ts_recv >= before for e in events)  # stamped now, not the recording's time
    # Depth: the snapshot then every diff, as the recorded-file reader sequences them.
    depth = [e for e in events if type(e) is Depth]
    assert _no_recv(depth) == _no_recv(expected_depth) and depth[0].snapshot
    assert _metric(samples, "mmflow_ingest_events_total", market=BTC, stream="bookTicker") == 66_089
    assert _metric(samples, "mmflow_ingest_events_total", market=BTC, stream="trade") == 21_313
    assert _metric(samples, "mmflow_ingest_depth_synced", market=BTC) == 1
    assert _total(samples, "mmflow_ingest_sequence_gaps_total") == 0
    assert _total(samples, "mmflow_ingest_duplicates_total") == 0
    assert _metric(samples, "mmflow_ingest_receive_to_ack_seconds_count", venue="binance-usdm") == len(events)
    assert abs(_metric(samples, "mmflow_ingest_clock_offset_seconds", venue="binance-usdm")) < 0.5
    assert (
        _metric(samples, "mmflow_ingest_exchange_delay_seconds_count", market=BTC, stream="trade") == 21_313
    )


def test_a_dropped_connection_is_resubscribed_without_duplicates_and_the_gap_counted(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    # Drop 1 at frame 30,000, resumed 1,000 frames back (an overlap to dedupe); drop 2 at 60,000,
    # resumed 500 frames on (lost for good: a trade-id gap and a depth gap the old snapshot cannot fill).
    stub = BinanceStub(FUTURES, script=[(30_000, 29_000), (60_000, 60_500)])
    frames = stub.frames
    stub.start()
    lost = frames[60_000:60_500]
    kept_ids = {
        int(d.split(b'"t":')[1].split(b",")[0]) for s, d in frames[:60_000] + frames[60_500:] if "@trade" in s
    }
    lost_books = sum("bookTicker" in s for s, _ in lost)
    lost_trades = sum("@trade" in s for s, _ in lost)
    assert lost_trades and sum("depth" in s for s, _ in lost)
    try:
        samples, _ = _ingest(
            stub,
            sets,
            tmp_path,
            66_089 - lost_books + 21_313 - lost_trades,
            "--symbols",
            "BTCUSDT",
            "--depth",
        )
        assert stub.connections == 3
    finally:
        stub.stop()
    events = _topic_events(sets, prefix)
    trades = [e for e in events if type(e) is Trade]
    books = [e for e in events if type(e) is BookTick]
    assert len(trades) == len({t.trade_id for t in trades}) == 21_313 - lost_trades
    assert {int(t.trade_id) for t in trades} == kept_ids
    assert len(books) == 66_089 - lost_books
    # The book ticks are the file's minus the lost ones, in order: none twice.
    file_books = [e for e in read_frames(FUTURES)[0] if type(e) is BookTick]
    at = [i for i, (stream, _) in enumerate(frames) if "bookTicker" in stream]
    kept = [book for book, i in zip(file_books, at, strict=True) if not 60_000 <= i < 60_500]
    assert _no_recv(books) == _no_recv(kept)
    assert _metric(samples, "mmflow_ingest_reconnects_total", venue="binance-usdm") == 2
    assert _metric(samples, "mmflow_ingest_duplicates_total", market=BTC, stream="bookTicker") > 0
    assert _metric(samples, "mmflow_ingest_duplicates_total", market=BTC, stream="trade") > 0
    assert _metric(samples, "mmflow_ingest_sequence_gaps_total", market=BTC, stream="trade") == 1
    assert _metric(samples, "mmflow_ingest_sequence_gaps_total", market=BTC, stream="depth") == 1
    # The only snapshot there is predates the gap: it cannot fill it, the book stays out of sync.
    assert _metric(samples, "mmflow_ingest_depth_synced", market=BTC) == 0
    assert (
        _metric(
            samples,
            "mmflow_ingest_depth_snapshot_failures_total",
            market=BTC,
            reason="depth snapshot too old",
        )
        >= 1
    )


def test_spot_frames_and_a_malformed_one(kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    stub = BinanceStub(SPOT)
    assert stub.snapshot is None  # the spot recording has no REST snapshot: depth never syncs
    stub.frames.insert(100, ("ethusdt@trade", b'{"e":"trade","s":"ETHUSDT","t":"x","p":"1","q":"1"}'))
    stub.start()
    expected = [e for e in read_frames(SPOT)[0] if type(e) in (BookTick, Trade)]
    try:
        samples, _ = _ingest(
            stub, sets, tmp_path, len(expected), "--venue", "binance-spot", "--symbols", "ETHUSDT", "--depth"
        )
    finally:
        stub.stop()
    events = _topic_events(sets, prefix)
    assert all(type(e) in (BookTick, Trade) for e in events)
    # Spot book tickers carry no exchange time: theirs is the receive time, here as in the file.
    assert all(e.ts_exchange == e.ts_recv for e in events if type(e) is BookTick)
    same = [
        replace(e, ts_recv=0, ts_exchange=0) if type(e) is BookTick else replace(e, ts_recv=0) for e in events
    ]
    want = [
        replace(e, ts_recv=0, ts_exchange=0) if type(e) is BookTick else replace(e, ts_recv=0)
        for e in expected
    ]
    assert same == want
    eth = "binance:ETHUSDT"
    assert _metric(samples, "mmflow_ingest_depth_synced", market=eth) == 0
    assert (
        _metric(samples, "mmflow_ingest_depth_snapshot_failures_total", market=eth, reason="request failed")
        >= 1
    )
    assert _total(samples, "mmflow_ingest_dead_letters_total") == 1
    cfg = load_settings("phase2", None, sets).kafka
    dead = read_records(cfg, f"{prefix}.dlq", idle_s=2.0)
    assert len(dead) == 1 and dead[0][0] == eth.encode() and b'"t":"x"' in dead[0][1]
