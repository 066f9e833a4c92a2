"""Kafka benchmarks: end-to-end throughput, the bare-consumer ceiling, tick-to-intent latency and
scaling across processes. They run against a real broker (the local one, started by run.py)."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from mmflow.config import Settings, load_settings
from mmflow.connectors.kafka_io import (
    client_config,
    create_topics,
    producer,
    publish_event,
)
from mmflow.connectors.kafka_source import THROUGHPUT, RawKafkaSource
from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import build_flow, tune_gc
from mmflow.flows.live import route
from mmflow.models import BookTick, Trade
from mmflow.wire import encode

REPO = Path(__file__).resolve().parents[1]


def topic_settings(
    bootstrap: str, prefix: str, base: list[str] | None = None, config: Path | None = None
) -> Settings:
    names = {
        "market_data_topic": "md",
        "fills_topic": "fills",
        "intents_topic": "intents",
        "dead_letter_topic": "dlq",
        "control_topic": "control",
        "state_topic": "state",
    }
    sets = [f"kafka.{k}={prefix}.{v}" for k, v in names.items()]
    sets += [f"kafka.bootstrap_servers={bootstrap}", f"kafka.group_id={prefix}", *(base or [])]
    return load_settings("phase2", config, sets)


def repeat(
    events: Sequence[Any], times: int, markets: Sequence[str] = ("binance-futures:BTCUSDT",)
) -> list[Any]:
    """The recording ``times`` over, shifted in time so each market's clock keeps going forward,
    for each of ``markets`` (interleaved, as one feed carrying several markets would be)."""
    span = events[-1].ts_recv - events[0].ts_recv + 1_000_000
    out = []
    for k in range(times):
        for e in events:
            for m in markets:
                extra = {"trade_id": f"{e.trade_id}-{k}"} if isinstance(e, Trade) else {}
                out.append(
                    replace(
                        e,
                        market=m,
                        ts_recv=e.ts_recv + k * span,
                        ts_exchange=e.ts_exchange + k * span,
                        **extra,
                    )
                )
    return out


def fill_topic(settings: Settings, events: Sequence[Any], partitions: int) -> None:
    create_topics(settings.kafka, partitions)
    prod = producer(settings.kafka)
    topic = settings.kafka.market_data_topic
    for e in events:
        publish_event(prod, topic, e)
    prod.flush(120)


def drop_topics(settings: Settings) -> list[str]:
    """Delete the benchmark's topics (every topic named with its prefix); returns their names."""
    admin = AdminClient(client_config(settings.kafka))
    prefix = settings.kafka.market_data_topic.rsplit(".", 1)[0] + "."
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)
    return names


def bare_consumer(settings: Settings, total: int) -> float:
    """The broker-and-client ceiling: a tuned consumer that only counts messages (events/s)."""
    conf = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"bare-{uuid.uuid4().hex}",
        "enable.partition.eof": True,
        **THROUGHPUT,
    }
    consumer = Consumer(conf)
    topic = settings.kafka.market_data_topic
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    n, eofs, start = 0, 0, None
    while eofs < len(parts):
        msgs = consumer.consume(10_000, 1.0)
        if msgs and start is None:
            start = time.perf_counter()
        for m in msgs:
            if m.error():
                eofs += 1
            else:
                n += 1
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    assert n == total, (n, total)
    return n / elapsed


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh process, as a deployed flow or consumer runs: not inside this
    benchmark's own heap of a million recorded events (which slowed the flow by a tenth)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def flow_throughput(settings: Settings, total: int) -> tuple[float, float]:
    """The flow consuming the pre-filled topic to its end (one worker): (steady events/s from
    the first record, events/s including start-up)."""
    first: list[float] = []

    class Timed(RawKafkaSource):
        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            part = super().build_part(step_id, for_part, resume_state)
            inner = part.next_batch

            def next_batch() -> list[Any]:
                batch = inner()
                if batch and not first:
                    first.append(time.perf_counter())
                return batch

            part.next_batch = next_batch  # type: ignore[method-assign]
            return part

    cfg = settings.kafka
    source = Timed(cfg, [cfg.market_data_topic, cfg.fills_topic, cfg.control_topic], tail=False)
    flow = Dataflow("mmflow-bench")
    route(build_flow(flow, source, settings, FlowMetrics(), venue=None), cfg, confirm=False)
    tune_gc()  # as flows.live does in a real run
    start = time.perf_counter()
    run_main(flow)
    end = time.perf_counter()
    return total / (end - first[0]), total / (end - start)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p99/p99.9/max of latency samples (ms), NaN when there are too few to tell."""
    if len(samples) <= 10:
        nan = float("nan")
        return {"samples": len(samples), "p50": nan, "p99": nan, "p99.9": nan, "max": nan}
    q = statistics.quantiles(samples, n=1000)
    return {"samples": len(samples), "p50": q[499], "p99": q[989], "p99.9": q[998], "max": max(samples)}


def _stamp_of(value: bytes, field: str | None) -> int:
    return int(value) if field is None else orjson.loads(value)[field]


def _read_arrivals(bootstrap: str, topic: str, field: str | None, pipe: Connection) -> None:
    """The reader process: note how long ago each message on ``topic`` was stamped (ms) until
    told to stop; "clear" (sent when the warm-up ends) drops the samples so far."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": "false",
            "fetch.wait.max.ms": 100,
            "socket.nagle.disable": "true",
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    samples: list[float] = []
    pipe.send("ready")
    while True:
        # poll() returns as soon as one message is there; consume(n, t) would wait for n or t.
        m = consumer.poll(0.05)
        if m is not None and m.error() is None:
            samples.append((time.time_ns() // 1000 - _stamp_of(m.value(), field)) / 1000.0)
        if pipe.poll():
            if pipe.recv() == "stop":
                break
            samples.clear()
    consumer.close()
    pipe.send(samples)


class _Arrivals:
    """A reader of ``topic`` in a process of its own, so that the pacing loop of the producer
    and the reader never wait for each other (they would, for the GIL, as threads).

    It reads the partitions directly (no consumer group): a group join on a fresh broker first
    creates the offsets topic, and the seconds that takes would land in the samples.
    """

    def __init__(self, bootstrap: str, topic: str, field: str | None) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process holding Kafka clients
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_read_arrivals, args=(bootstrap, topic, field, child), daemon=True)
        self._proc.start()
        if not self._pipe.poll(60):
            raise RuntimeError(f"latency reader of {topic} did not start")
        self._pipe.recv()

    def clear(self) -> None:
        self._pipe.send("clear")

    def stop(self) -> list[float]:
        time.sleep(1)  # the last messages arrive
        self._pipe.send("stop")
        samples: list[float] = self._pipe.recv()
        self._proc.join(10)
        return samples


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _paced(
    prod: Producer,
    reader: _Arrivals,
    rate: float,
    seconds: float,
    send: Callable[[int, int], None],
    watch: int | None = None,
) -> tuple[list[float], float]:
    """Call ``send(i, now_us)`` at a steady ``rate`` for two seconds of warm-up (clients connect,
    estimators fill; not measured) and then ``seconds``. Returns the reader's samples and the
    share of one core that process ``watch`` used while they were taken (NaN without one)."""
    warm = int(rate * 2)
    cpu_start = wall_start = float("nan")
    start = time.perf_counter()
    for i in range(warm + int(rate * seconds)):
        if i == warm:
            reader.clear()
            wall_start = time.perf_counter()
            if watch:
                cpu_start = cpu_seconds(watch)
        due = start + i / rate
        while (delay := due - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.0005))
        send(i, time.time_ns() // 1000)
        prod.poll(0)
    busy = (cpu_seconds(watch) - cpu_start) / (time.perf_counter() - wall_start) if watch else float("nan")
    prod.flush(30)
    return reader.stop(), busy


def latency(bootstrap: str, events: Sequence[Any], rate: float, seconds: float) -> tuple[list[float], float]:
    """Tick-to-intent latency at a steady ``rate``: each tick carries the producer's wall clock as
    its receive time, each intent carries its tick's receive time, a reader notes arrival.
    Returns the samples (ms) and the flow process's CPU use (share of one core) meanwhile."""
    prefix = f"lat-{uuid.uuid4().hex[:8]}"
    # Every mid change is worth an intent here, so there are thousands of samples.
    extra = ["strategy.quoting.refresh_tolerance_bps=0", "strategy.safety.stale_enabled=false"]
    settings = topic_settings(bootstrap, prefix, extra)
    create_topics(settings.kafka, 1)
    sets = [f"kafka.{k}={v}" for k, v in settings.kafka.model_dump().items() if isinstance(v, str)]
    env = {
        **os.environ,
        "MMFLOW_RUN_PRESET": "phase2",
        "MMFLOW_RUN_CONFIG": "",
        "MMFLOW_RUN_SET": orjson.dumps(sets + extra).decode(),
        "MMFLOW_RUN_CONFIRM_WRITES": "0",  # as `mmflow run` without a recovery directory
    }
    flow = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "mmflow.flows.live:build()"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reader = _Arrivals(bootstrap, settings.kafka.intents_topic, "ts")
    prod = producer(settings.kafka, **{"linger.ms": "0"})
    time.sleep(6)  # the flow starts and connects; nothing is measured yet

    def send(i: int, now_us: int) -> None:
        e = events[i % len(events)]
        extra_id = {"trade_id": f"{e.trade_id}-{i}"} if isinstance(e, Trade) else {}
        tick = replace(e, ts_recv=now_us, ts_exchange=now_us, **extra_id)
        prod.produce(settings.kafka.market_data_topic, key=e.market.encode(), value=encode(tick))

    result = _paced(prod, reader, rate, seconds, send, watch=flow.pid)
    flow.kill()
    flow.wait(10)
    return result


def bare_latency(bootstrap: str, rate: float, seconds: float) -> list[float]:
    """The broker-and-client floor for the latency figure: produce -> consume, no flow between."""
    topic = f"rtt-{uuid.uuid4().hex[:8]}"
    settings = topic_settings(bootstrap, topic)
    create_topics(settings.kafka, 1, [topic])
    reader = _Arrivals(bootstrap, topic, None)
    prod = producer(settings.kafka, **{"linger.ms": "0"})

    def send(i: int, now_us: int) -> None:
        prod.produce(topic, value=str(now_us).encode())

    return _paced(prod, reader, rate, seconds, send)[0]


def scaling(bootstrap: str, events: Sequence[Any], markets: Sequence[str]) -> dict[int, float]:
    """Events/s (wall clock, start-up included) with one and two Bytewax processes on a topic of
    ``len(markets)`` partitions."""
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    settings = topic_settings(bootstrap, prefix)
    data = repeat(events, 1, markets)
    fill_topic(settings, data, partitions=len(markets))
    base = [
        sys.executable,
        "-m",
        "mmflow.cli",
        "run",
        "--until-end",
        *[
            a
            for k, v in settings.kafka.model_dump().items()
            if isinstance(v, str)
            for a in ("--set", f"kafka.{k}={v}")
        ],
    ]
    out = {}
    for n in (1, 2):
        ports = [free_port() for _ in range(n)]
        addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
        cmds = (
            [base]
            if n == 1
            else [[*base, "--process-id", str(i), "--addresses", addresses] for i in range(n)]
        )
        start = time.perf_counter()
        procs = [
            subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for cmd in cmds
        ]
        codes = [p.wait(600) for p in procs]
        assert codes == [0] * n, codes
        out[n] = len(data) / (time.perf_counter() - start)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = [
    "BookTick",
    "bare_consumer",
    "fill_topic",
    "flow_throughput",
    "latency",
    "repeat",
    "scaling",
    "topic_settings",
]
