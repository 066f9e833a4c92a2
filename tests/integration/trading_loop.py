"""The whole trading loop on the raw BTCUSDT recording: exchange-sim -> ingest -> Kafka -> run ->
Kafka -> execute -> exchange-sim -> execute -> Kafka -> run, every process the real command.

Shared by the end-to-end test (``test_trading_loop.py``) and its benchmark
(``benchmarks/trading_loop_bench.py``): one harness, so the figures the closing note quotes come
from exactly what the test checks.

The simulator serves the recording at ``speed`` x its pace from the first market-data subscriber
on (the ingest's), so the flow, ingest and execute are all up before the first frame; the
simulator runs in a thread of the calling process, the other three in processes of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson

from mmflow.config import load_settings
from mmflow.connectors.exchange_sim.app import SimConfig
from mmflow.connectors.recorder import read_topic
from mmflow.models import Fill, OrderUpdate
from mmflow.wire import decode_input
from tests.conftest import BTC_FRAMES, EXCHANGE_INFO
from tests.integration.exchange_sim_client import KEY, SECRET, SimServer, call, signed
from tests.integration.test_kafka_e2e import REPO, kafka_session, mmflow, start, wait_stable
from tests.integration.test_metrics_http import free_port, scrape

BTC_CONFIG = REPO / "infra" / "config" / "btcusdt-tight.yaml"
BTC = "binance-futures:BTCUSDT"
TOPICS = ("md", "fills", "intents", "dlq", "control", "positions", "orders", "venue-state", "state")
Samples = dict[tuple[str, frozenset], float]
T = TypeVar("T")


@dataclass
class LoopResult:
    """What the loop left behind, read after every process stopped."""

    fills: list[Fill]
    updates: list[OrderUpdate]
    state: dict[str, Any]  # the flow's final summary of the market (Decimal strings)
    position_risk: Decimal  # the simulator's positionAmt at the end
    open_orders: int  # the simulator's open orders at the end (any client)
    flow_metrics: Samples  # the flow's last scrape before it stopped
    exec_metrics: Samples  # execute's last scrape before it stopped
    replay_s: float  # wall time of the recording's replay
    exec_log: str
    order_limits: list[dict[str, Any]] = field(default_factory=list)  # exchangeInfo ORDERS limits


def metric(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0.0 when absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum over every label set of ``name``."""
    return sum(v for (n, _), v in samples.items() if n == name)


def histogram_quantile(samples: Samples, name: str, q: float) -> float:
    """Prometheus' ``histogram_quantile`` over the cumulative ``<name>_bucket`` samples (linear
    within the bucket), summed over every label set but ``le``."""
    buckets: dict[float, float] = {}
    for (n, labels), v in samples.items():
        if n == f"{name}_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    bounds = sorted(buckets)
    count = buckets[float("inf")] if bounds else 0.0
    if not count:
        return float("nan")
    rank, lower, below = q * count, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-12)
        lower, below = le, buckets[le]
    return lower


class Proc:
    """One ``mmflow`` command in its own process group, its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.proc = start(args, log, env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, line: str, timeout: float) -> None:
        """Until the log says ``line``; fail with the log's end if the process ends first."""
        until(lambda: line in self.text() or not self.alive(), timeout, f"{self.log.name}: never '{line}'")
        assert self.alive(), self.text()[-3000:]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (SIGKILL if it does not end in time)."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def until(
    check: Callable[[], T], timeout: float, what: str, procs: Sequence[Proc] = (), every: float = 0.1
) -> T:
    """Poll ``check`` every ``every`` s until it is truthy; fail naming ``what`` (or a process
    that died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for p in procs:
            assert p.alive(), f"{p.log.name} died: {p.text()[-3000:]}"
        assert time.monotonic() < deadline, what
        time.sleep(every)


def _quiet_scrape(port: int) -> Samples:
    try:
        return scrape(port)
    except OSError:
        return {}


def run_loop(bootstrap: str, prefix: str, tmp: Path, speed: float) -> LoopResult:
    """The loop over the whole recording, then every process stopped cleanly (see the module)."""
    _, settings, cfg = kafka_session(bootstrap, prefix, TOPICS, config=BTC_CONFIG)
    sim = SimServer(
        SimConfig(
            "binance-usdm",
            BTC_FRAMES,
            KEY,
            SECRET,
            speed=speed,
            start="subscribe",
            exchange_info=EXCHANGE_INFO,
            restamp=True,
            # First in the queue at its price: the recording's trades at the quote's price fill
            # it, so six recorded minutes give the books enough fills to check.
            settings=load_settings(None, None, ["venue.queue.model=front"]),
        )
    )
    flow_port, exec_port = free_port(), free_port()
    urls = ["--rest-url", sim.base, "--ws-url", sim.ws_base]
    env = {"MMFLOW_API_KEY": KEY, "MMFLOW_API_SECRET": SECRET}
    execute = Proc(
        mmflow(
            "execute",
            "--venue",
            "binance-usdm",
            "--symbols",
            "BTCUSDT",
            *urls,
            "--metrics-port",
            str(exec_port),
            *cfg,
        ),
        tmp / "execute.log",
        env,
    )
    procs = [execute]
    try:
        execute.wait_for("execute: ready", 90)
        flow = Proc(mmflow("run", "--metrics-port", str(flow_port), *cfg), tmp / "flow.log")
        procs.append(flow)
        until(lambda: _quiet_scrape(flow_port), 90, "the flow never served its metrics", procs)
        ingest = Proc(
            mmflow("ingest", "--venue", "binance-usdm", "--symbols", "BTCUSDT", *urls, *cfg),
            tmp / "ingest.log",
        )
        procs.append(ingest)
        until(lambda: sim.status()["replay_started"], 60, "the ingest never subscribed", procs)
        began = time.monotonic()
        until(lambda: sim.status()["replay_finished"], 600, "the replay did not finish", procs)
        replay_s = time.monotonic() - began
        fills_topic = settings.kafka.fills_topic
        # The market is still once the replay ends: the stale-data guard pulls the quotes, and
        # nothing can fill after that; wait for the last fill and for the flow to book it.
        n = wait_stable(lambda: len(read_topic(settings.kafka, fills_topic, 1.0)), quiet=5.0, timeout=120)
        until(
            lambda: total(_quiet_scrape(flow_port), "maker_fills_total") == n,
            60,
            "the flow missed fills",
            procs,
        )
        assert ingest.stop() == 0, ingest.text()[-2000:]
        exec_metrics = scrape(exec_port)
        assert execute.stop() == 0, execute.text()[-3000:]
        flow_metrics = scrape(flow_port)
        assert flow.stop(120) == 0, flow.text()[-3000:]
    finally:
        for p in procs:
            p.kill()
    try:
        [risk] = signed(sim, "GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")[2]
        open_orders = signed(sim, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2]
        info = call(sim, "GET", "/fapi/v1/exchangeInfo")[2]
    finally:
        sim.stop()
    states = [orjson.loads(v) for v in read_topic(settings.kafka, f"{prefix}.state", 2.0)]
    records = [decode_input(v) for v in read_topic(settings.kafka, settings.kafka.orders_topic, 1.0)]
    return LoopResult(
        fills=[
            f
            for f in (decode_input(v) for v in read_topic(settings.kafka, fills_topic, 1.0))
            if isinstance(f, Fill)
        ],
        updates=[u for u in records if isinstance(u, OrderUpdate)],
        state=[s for s in states if s["market"] == BTC][-1],
        position_risk=Decimal(risk["positionAmt"]),
        open_orders=len(open_orders),
        flow_metrics=flow_metrics,
        exec_metrics=exec_metrics,
        replay_s=replay_s,
        exec_log=execute.text(),
        order_limits=[r for r in info.get("rateLimits", []) if r.get("rateLimitType") == "ORDERS"],
    )
