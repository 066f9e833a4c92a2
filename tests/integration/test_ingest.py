"""``mmflow ingest`` against ``mmflow exchange-sim`` over real sockets into a real Kafka broker.

The simulator (``create_app`` on a free port, in a thread of this process: ``SimServer``)
replays the raw recorded frames, held until the ingest subscribes (``start="subscribe"``) and
paced at ``SPEED`` x the recorded pace, which the ingest keeps up with; the ingest is the real
command in its own process, its metrics scraped over HTTP.
"""

from __future__ import annotations

import gzip
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from mmflow.book import OrderBook
from mmflow.config import load_settings
from mmflow.connectors.binance_frames import Diff, parse_frame, read_frames
from mmflow.connectors.exchange_sim.app import SimConfig
from mmflow.connectors.exchange_sim.faults import Faults
from mmflow.connectors.files import load_inputs
from mmflow.connectors.recorder import read_records
from mmflow.models import BookTick, Depth, Trade
from mmflow.wire import decode_input
from tests.conftest import BTC_QUOTES, BTC_TRADES, DATA
from tests.integration.exchange_sim_client import KEY, SECRET, SimServer, call
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import mmflow, start
from tests.integration.test_metrics_http import free_port, scrape

pytestmark = pytest.mark.kafka
FUTURES = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"
SPOT = DATA / "raw" / "binance_ETHUSDT_2024-08-09.txt.gz"
BTC = "binance-futures:BTCUSDT"
ETH = "binance:ETHUSDT"
#: x the recorded pace: the 344 s BTCUSDT window in ~17 s, the 304 s ETHUSDT one in ~15 s
#: (peaks of a few thousand frames a second, well under what the ingest takes: see the benchmark).
SPEED = 20.0


def _sim(venue: str, frames: Path, **kw) -> SimServer:
    if not frames.exists():
        pytest.skip(f"{frames.name} not found under ../shared/data")
    return SimServer(SimConfig(venue, frames, KEY, SECRET, speed=SPEED, start="subscribe", **kw))


def _frames(path: Path) -> list[tuple[str, dict]]:
    """The (stream, data) of every combined-stream line of a recording, in file order."""
    out = []
    for line in gzip.decompress(path.read_bytes()).splitlines():
        obj = orjson.loads(line.partition(b" ")[2])
        if "stream" in obj:
            out.append((obj["stream"], obj["data"]))
    return out


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
    sim: SimServer,
    sets: list[str],
    tmp_path: Path,
    expected: int,
    *extra: str,
    during: Callable[[dict], None] | None = None,
) -> dict:
    """Run ``mmflow ingest`` until the simulator's replay is over, the ingest has written at least
    ``expected`` events and nothing moved for 2 s (``during`` sees every scrape on the way);
    scrape its metrics, stop it with SIGTERM (exit 0 asserted); its metrics."""
    port = free_port()
    args = ["ingest", "--ws-url", sim.ws_base, "--rest-url", sim.base, "--metrics-port", str(port)]
    args += [*extra, *[a for s in sets for a in ("--set", s)]]
    log = tmp_path / "ingest.log"
    proc = start(mmflow(*args), log)
    try:
        deadline, last, since = time.monotonic() + 150, None, time.monotonic()
        samples: dict = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                samples = scrape(port)
            except OSError:
                time.sleep(0.3)
                continue
            if during is not None:
                during(samples)
            n = _total(samples, "mmflow_ingest_events_total")
            if n != last:
                last, since = n, time.monotonic()
            elif n >= expected and time.monotonic() - since > 2.0 and sim.status()["replay_finished"]:
                break
            time.sleep(0.1)
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
    return samples


def _topic_events(sets: list[str], prefix: str) -> list:
    cfg = load_settings("phase2", None, sets).kafka
    records = read_records(cfg, f"{prefix}.md", idle_s=3.0)
    assert all(key == decode_input(value).market.encode() for key, value in records[:100])
    return [decode_input(value) for _, value in records]


def _no_recv(events: list) -> list:
    return [replace(e, ts_recv=0) for e in events]


def _split(got: list, want: list) -> tuple[int, int]:
    """``(i, j)`` with ``got == want[:i] + want[j:]`` and ``i < j`` (one run of ``want`` lost);
    asserted to exist."""
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), len(got))
    j = len(want) - (len(got) - i)
    assert i < j and got[i:] == want[j:], f"not the file with one run lost: {i}, {j}"
    return i, j


def _diffs(path: Path, spot: bool, prefix: str) -> list[Diff]:
    out = []
    for stream, data in _frames(path):
        if "@depth" in stream:
            diff = parse_frame(prefix, spot, 0, b"", 0, stream, data)
            assert isinstance(diff, Diff)
            out.append(diff)
    return out


def test_futures_frames_give_the_tardis_csvs_book_ticks_and_trades(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    sim = _sim("binance-usdm", FUTURES)
    try:
        before = time.time_ns() // 1000
        samples = _ingest(sim, sets, tmp_path, 66_089 + 21_313 + 1, "--symbols", "BTCUSDT", "--depth")
        _, _, final = call(sim, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})
    finally:
        sim.stop()
    events = _topic_events(sets, prefix)
    csv, _ = load_inputs([BTC_QUOTES], [BTC_TRADES], [], None)
    books = [e for e in events if type(e) is BookTick]
    trades = [e for e in events if type(e) is Trade]
    assert len(books) == 66_089 and len(trades) == 21_313
    assert _no_recv(books) == _no_recv([e for e in csv if type(e) is BookTick])
    assert _no_recv(trades) == _no_recv([e for e in csv if type(e) is Trade])
    assert all(e.ts_recv >= before for e in events)  # stamped now, not the recording's time
    # Depth: one snapshot (the recorded one, or the simulator's book a little later: how far the
    # replay got before the ingest's first REST request), then every later diff of the file, and
    # the book they make is the simulator's at the end of the replay.
    depth = [e for e in events if type(e) is Depth]
    assert depth[0].snapshot and sum(d.snapshot for d in depth) == 1
    diffs = [d.depth for d in _diffs(FUTURES, False, "binance-futures")]
    assert len(depth) - 1 > len(diffs) * 0.9
    assert _no_recv(depth[1:]) == _no_recv(diffs[len(diffs) - len(depth) + 1 :])
    book = OrderBook()
    for d in depth:
        book.apply(d)
    state = book.to_state()
    assert (state["bids"][:1000], state["asks"][:1000]) == (final["bids"], final["asks"])
    assert _metric(samples, "mmflow_ingest_events_total", market=BTC, stream="bookTicker") == 66_089
    assert _metric(samples, "mmflow_ingest_events_total", market=BTC, stream="trade") == 21_313
    assert _metric(samples, "mmflow_ingest_depth_synced", market=BTC) == 1
    assert _metric(samples, "mmflow_ingest_depth_snapshots_total", market=BTC) == 1
    assert _total(samples, "mmflow_ingest_sequence_gaps_total") == 0
    assert _total(samples, "mmflow_ingest_duplicates_total") == 0
    assert _total(samples, "mmflow_ingest_reconnects_total") == 0
    assert _metric(samples, "mmflow_ingest_receive_to_ack_seconds_count", venue="binance-usdm") == len(events)
    assert abs(_metric(samples, "mmflow_ingest_clock_offset_seconds", venue="binance-usdm")) < 0.5
    assert (
        _metric(samples, "mmflow_ingest_exchange_delay_seconds_count", market=BTC, stream="trade") == 21_313
    )


DROP_AFTER = 30_000


def test_a_dropped_connection_is_resubscribed_without_duplicates_and_the_gap_counted(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    # The simulator's fault switch: the first connection is dropped (TCP aborted, no close frame)
    # after DROP_AFTER frames; once the ingest counts the reconnect the switch is turned off over
    # POST /_sim/faults, so the new connection runs to the end. What the replay sent while the
    # ingest was away (its backoff, 0.25-0.5 s: 5-10 s of the recording) is lost for good: a
    # trade-id gap, and a depth gap that a new snapshot fixes.
    sim = _sim("binance-usdm", FUTURES, faults=Faults(ws_drop_after=DROP_AFTER))
    cleared: list[dict] = []

    def clear_once_reconnected(samples: dict) -> None:
        if not cleared and _total(samples, "mmflow_ingest_reconnects_total") >= 1:
            cleared.append(sim.faults(ws_drop_after=None))

    try:
        samples = _ingest(
            sim, sets, tmp_path, 50_000, "--symbols", "BTCUSDT", "--depth", during=clear_once_reconnected
        )
    finally:
        sim.stop()
    assert cleared == [{"ws_drop_after": None, "fail_status": None, "delay_ms": 0.0, "clock_skew_ms": 0}]
    events = _topic_events(sets, prefix)
    frames = _frames(FUTURES)
    head = frames[:DROP_AFTER]
    file_events = read_frames(FUTURES)[0]
    trades = [e for e in events if type(e) is Trade]
    books = [e for e in events if type(e) is BookTick]
    # Nothing twice: every trade id once, and the book ticks and trades are the file's with one
    # run lost (at most what followed the first connection's DROP_AFTER frames), in order.
    assert len(trades) == len({t.trade_id for t in trades})
    i, j = _split(_no_recv(trades), _no_recv([e for e in file_events if type(e) is Trade]))
    assert i <= sum("@trade" in s for s, _ in head) and j - i > 100
    i, j = _split(_no_recv(books), _no_recv([e for e in file_events if type(e) is BookTick]))
    assert i <= sum("@bookTicker" in s for s, _ in head) and j - i > 100

    ids = [int(t.trade_id) for t in trades]
    assert sum(b - a > 1 for a, b in zip(ids, ids[1:], strict=False)) == 1
    assert _metric(samples, "mmflow_ingest_reconnects_total", venue="binance-usdm") == 1
    assert _metric(samples, "mmflow_ingest_connected", venue="binance-usdm") == 1
    assert _total(samples, "mmflow_ingest_duplicates_total") == 0  # the venue replays nothing twice
    assert _metric(samples, "mmflow_ingest_sequence_gaps_total", market=BTC, stream="trade") == 1
    assert _metric(samples, "mmflow_ingest_sequence_gaps_total", market=BTC, stream="depth") == 1
    # The depth gap asked for a new snapshot, the simulator's book at that point, and resynced.
    depth = [e for e in events if type(e) is Depth]
    assert sum(d.snapshot for d in depth) == 2
    assert _metric(samples, "mmflow_ingest_depth_snapshots_total", market=BTC) == 2
    assert _metric(samples, "mmflow_ingest_depth_synced", market=BTC) == 1
    diffs = [d.depth for d in _diffs(FUTURES, False, "binance-futures")]
    after = depth[[k for k, d in enumerate(depth) if d.snapshot][1] + 1 :]
    assert after and _no_recv(after) == _no_recv(diffs[len(diffs) - len(after) :])


def _with_malformed_trade(src: Path, dst_dir: Path, at: int) -> tuple[Path, bytes]:
    """A copy of the recording (same name: the venue and symbol come from it) with a trade frame
    whose trade id is not a number inserted before line ``at``, stamped as the line before it."""
    lines = gzip.decompress(src.read_bytes()).splitlines()
    stamp = lines[at - 1].partition(b" ")[0]
    bad = b'{"stream":"ethusdt@trade","data":{"e":"trade","s":"ETHUSDT","t":"x","p":"1","q":"1"}}'
    lines.insert(at, stamp + b" " + bad)
    dst = dst_dir / src.name
    dst.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return dst, bad


def test_spot_frames_and_a_malformed_one(kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir) -> None:
    prefix = unique_topic_prefix
    sets = _topics(kafka_bootstrap, prefix)
    if not SPOT.exists():
        pytest.skip(f"{SPOT.name} not found under ../shared/data")
    # The simulator replays a file byte for byte and has no switch for a bad frame: the bad
    # frame is a line of a copy of the recording, so it reaches the ingest over the websocket.
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    path, bad = _with_malformed_trade(SPOT, frames_dir, 100)
    expected = [e for e in read_frames(SPOT)[0] if type(e) in (BookTick, Trade)]
    sim = _sim("binance-spot", path)
    try:
        # The spot recording has no REST snapshot: the simulator's depth answer is its top of
        # book as one level a side, stamped with the last replayed diff's update id; before
        # anything is replayed, the recording's opening quote with update id 0.
        opening = next(e for e in expected if isinstance(e, BookTick))
        status, _, before = call(sim, "GET", "/api/v3/depth", {"symbol": "ETHUSDT", "limit": 1000})
        assert status == 200 and before["lastUpdateId"] == 0
        assert [[D(p), D(q)] for p, q in before["bids"]] == [[opening.bid_px, opening.bid_qty]]
        assert [[D(p), D(q)] for p, q in before["asks"]] == [[opening.ask_px, opening.ask_qty]]
        samples = _ingest(
            sim, sets, tmp_path, len(expected), "--venue", "binance-spot", "--symbols", "ETHUSDT", "--depth"
        )
    finally:
        sim.stop()
    events = _topic_events(sets, prefix)
    same = [
        replace(e, ts_recv=0, ts_exchange=0) if type(e) is BookTick else replace(e, ts_recv=0)
        for e in events
        if type(e) is not Depth
    ]
    want = [
        replace(e, ts_recv=0, ts_exchange=0) if type(e) is BookTick else replace(e, ts_recv=0)
        for e in expected
    ]
    assert same == want
    # Spot book tickers carry no exchange time: theirs is the receive time, here as in the file.
    assert all(e.ts_exchange == e.ts_recv for e in events if type(e) is BookTick)
    # Depth: the ingest takes the simulator's answer as a snapshot (it cannot tell a made-up
    # book from a real one) and syncs on it: that snapshot, at most one level a side, then every
    # later diff, no gap. The book on the topic is only as deep as the diffs made it.
    depth = [e for e in events if type(e) is Depth]
    assert depth[0].snapshot and len(depth[0].bids) <= 1 and len(depth[0].asks) <= 1
    assert sum(d.snapshot for d in depth) == 1
    diffs = [d.depth for d in _diffs(SPOT, True, "binance")]
    assert len(depth) - 1 > len(diffs) * 0.9  # those from the snapshot request on
    assert _no_recv(depth[1:]) == _no_recv(diffs[len(diffs) - len(depth) + 1 :])
    assert _metric(samples, "mmflow_ingest_depth_synced", market=ETH) == 1
    assert _total(samples, "mmflow_ingest_sequence_gaps_total") == 0
    # The malformed frame: one dead letter, keyed by its market, the frame as it came.
    assert _total(samples, "mmflow_ingest_dead_letters_total") == 1
    cfg = load_settings("phase2", None, sets).kafka
    dead = read_records(cfg, f"{prefix}.dlq", idle_s=2.0)
    assert len(dead) == 1 and dead[0][0] == ETH.encode() and orjson.loads(dead[0][1]) == orjson.loads(bad)
