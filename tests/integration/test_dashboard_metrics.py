"""Every metric the dashboard queries is exported by a real process, read from its scrape.

The four processes run for real, each with ``--metrics-port``: the flow (``mmflow run``) and the
paper venue (``mmflow venue``) over a slice of the BTCUSDT recording fed to Kafka (plus a
malformed record, a dead letter), ``mmflow ingest`` and ``mmflow execute`` against the exchange
simulator (a slice of the BTCUSDT frames; execute gets one quote intent). Each is scraped over
HTTP and parsed with prometheus_client's parser: the names of the dashboard's expressions must be
among the scraped families, the ones that a little data must move have samples, and each
process serves its own families only.
"""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from mmflow.connectors.exchange_sim.app import SimConfig
from tests.conftest import BTC_QUOTES, BTC_TRADES
from tests.integration.exchange_sim_client import KEY, SECRET, SimServer
from tests.integration.kafka_broker import create_topic
from tests.integration.test_execute import BTC_FRAMES, EXCHANGE_INFO, Execute, Intents, _touch
from tests.integration.test_infra_files import DASHBOARD, _metric_names, _panels
from tests.integration.test_kafka_e2e import MALFORMED, mmflow, run_ok, start, stop, topic_sets
from tests.integration.test_metrics_http import free_port
from tests.integration.test_replay import BTC_CONFIG

pytestmark = pytest.mark.kafka
BTC = "binance-futures:BTCUSDT"
#: The first rows of the recording: about 80 s of BTCUSDT, fed at 30x (under 3 s).
QUOTE_ROWS = 20_000
FRAME_LINES = 3_000

#: Per process: its name prefix, and the names a few seconds of data must give samples.
PROCESSES = {
    "flow": (
        "maker_",
        {
            "maker_events_total",
            "maker_event_lag_seconds",
            "maker_consumer_lag_records",
            "maker_dead_letters_total",
            "maker_inventory_soft_cap_base",
            "maker_inventory_base",
            "maker_intents_total",
        },
    ),
    "venue": (
        "mmflow_venue_",
        {
            "mmflow_venue_orders_resting",
            "mmflow_venue_orders_in_flight",
            "mmflow_venue_position_base",
            "mmflow_venue_consumer_lag_records",
        },
    ),
    "ingest": (
        "mmflow_ingest_",
        {
            "mmflow_ingest_events_total",
            "mmflow_ingest_connected",
            "mmflow_ingest_receive_to_ack_seconds_bucket",
        },
    ),
    "execute": (
        "mmflow_exec_",
        {
            "mmflow_exec_orders_sent_total",
            "mmflow_exec_orders_resting",
            "mmflow_exec_position_base",
            "mmflow_exec_rate_budget_used",
            "mmflow_exec_request_latency_seconds_bucket",
            "mmflow_exec_consumer_lag_records",
        },
    ),
}

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


Scrape = dict[str, tuple[str, list[Any]]]


def families(port: int) -> Scrape:
    """Family name -> (type, samples) of one scrape over HTTP."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(body)}


def series_names(scraped: Scrape) -> set[str]:
    """Every name a query may use for the scraped families, whether sampled yet or not."""
    names: set[str] = set()
    for family, (kind, _) in scraped.items():
        names |= {family + s for s in _SUFFIXES.get(kind, ("",))}
    return names


def sampled(scraped: Scrape) -> set[str]:
    return {s.name for _, samples in scraped.values() for s in samples}


def dashboard_names() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    return {
        n for p in _panels(board["panels"]) for t in p.get("targets", []) for n in _metric_names(t["expr"])
    }


def _head(src: Path, dst: Path, rows: int, until: int | None = None, ts_col: int = 3) -> int:
    """The header and first ``rows`` rows of a gzipped recording (or those received by
    ``until``); the last receive time written."""
    lines = gzip.decompress(src.read_bytes()).splitlines()
    body = lines[1 : rows + 1]
    if until is not None:
        body = [line for line in lines[1:] if int(line.split(b",")[ts_col]) <= until]
    dst.write_bytes(b"\n".join([lines[0], *body]) + b"\n")
    return int(body[-1].split(b",")[ts_col])


@pytest.fixture(scope="module")
def scrapes(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scrape]:
    """The four processes run once for the module; one scrape of each once every one of them
    has samples of the names that data must move."""
    tmp = tmp_path_factory.mktemp("dashboard")
    if not BTC_FRAMES.exists() or not EXCHANGE_INFO.exists():
        pytest.skip("the BTCUSDT frames or the recorded exchangeInfo are not under ../shared/data")
    frames = tmp / BTC_FRAMES.name  # the name says the venue and symbol
    lines = gzip.decompress(BTC_FRAMES.read_bytes()).splitlines()[:FRAME_LINES]
    frames.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    # The ingest's simulator holds its replay until the ingest subscribes; execute's is a still
    # market (replayed to its end) with the recorded exchangeInfo.
    ingest_sim = SimServer(SimConfig("binance-usdm", frames, KEY, SECRET, speed=0, start="subscribe"))
    exec_sim = SimServer(SimConfig("binance-usdm", frames, KEY, SECRET, speed=0, exchange_info=EXCHANGE_INFO))
    try:
        exec_sim.wait_replayed()
        return _run_all(kafka_bootstrap, f"t-dashboard-{uuid.uuid4().hex[:8]}", tmp, ingest_sim, exec_sim)
    finally:
        ingest_sim.stop()
        exec_sim.stop()


def _run_all(bootstrap: str, prefix: str, tmp: Path, ingest_sim: SimServer, exec_sim: SimServer) -> dict:
    flow_sets = [*topic_sets(prefix), f"kafka.bootstrap_servers={bootstrap}"]
    for topic in ("md", "fills", "intents", "dlq", "fills.journal"):
        create_topic(bootstrap, f"{prefix}.{topic}")
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(f"{prefix}.md", key=BTC.encode(), value=MALFORMED[0])
    assert producer.flush(10) == 0
    cfg = ["--preset", "phase2", "--config", str(BTC_CONFIG), *[a for s in flow_sets for a in ("--set", s)]]
    side_sets = [f"kafka.bootstrap_servers={bootstrap}", *topic_sets(prefix + "-x")]
    side = [a for s in side_sets for a in ("--set", s)]
    ports = {name: free_port() for name in PROCESSES}
    quotes, trades = tmp / "quotes.csv", tmp / "trades.csv"
    _head(BTC_TRADES, trades, 0, until=_head(BTC_QUOTES, quotes, QUOTE_ROWS))
    ws = ["--ws-url", ingest_sim.ws_base, "--rest-url", ingest_sim.base]
    procs = [
        start(mmflow("venue", "--metrics-port", str(ports["venue"]), *cfg), tmp / "venue.log"),
        start(mmflow("run", "--metrics-port", str(ports["flow"]), *cfg), tmp / "flow.log"),
        start(
            mmflow("ingest", "--symbols", "BTCUSDT", *ws, "--metrics-port", str(ports["ingest"]), *side),
            tmp / "ingest.log",
        ),
    ]
    execute = None
    try:
        execute = Execute(exec_sim, side_sets, tmp / "execute.log", "--metrics-port", str(ports["execute"]))
        bid, ask = _touch(exec_sim)
        Intents(side_sets).quote(bid - 100, ask + 100)
        run_ok("feed", "--quotes", str(quotes), "--trades", str(trades), "--speed", "30", *cfg, timeout=60)
        return _scrape_until_sampled(ports, timeout=40)
    finally:
        if execute is not None:
            execute.kill()
        for proc in procs:
            stop(proc)


def _scrape_until_sampled(ports: dict[str, int], timeout: float) -> dict[str, Scrape]:
    """Scrape every process until each has samples of its names that data must move."""
    deadline = time.monotonic() + timeout
    while True:
        scraped, missing = {}, {}
        for name, port in ports.items():
            try:
                scraped[name] = families(port)
            except OSError:
                scraped[name] = {}
            missing[name] = PROCESSES[name][1] - sampled(scraped[name])
        if not any(missing.values()):
            return scraped
        assert time.monotonic() < deadline, f"no samples yet of {missing}"
        time.sleep(0.5)


def test_every_dashboard_metric_is_served_by_a_real_process(scrapes: dict[str, Scrape]) -> None:
    served = set().union(*(series_names(s) for s in scrapes.values()))
    used = dashboard_names()
    assert used, "no metric names found in the dashboard"
    assert used <= served, f"queried by the dashboard, served by no process: {sorted(used - served)}"


@pytest.mark.parametrize("process", list(PROCESSES))
def test_each_process_serves_only_its_own_families(scrapes: dict[str, Scrape], process: str) -> None:
    own = PROCESSES[process][0]
    foreign = sorted(f for f in scrapes[process] if not f.startswith(own))
    assert not foreign, f"{process} serves families of another process: {foreign}"


def test_the_venue_serves_no_flow_family(scrapes: dict[str, Scrape]) -> None:
    assert scrapes["venue"] and not [f for f in scrapes["venue"] if f.startswith("maker_")]


def test_dead_letters_are_counted_by_code(scrapes: dict[str, Scrape]) -> None:
    _, samples = scrapes["flow"]["maker_dead_letters"]
    assert {(s.labels["reason"], s.value) for s in samples if s.name.endswith("_total")} == {
        ("malformed_json", 1.0)
    }
