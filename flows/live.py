"""The flow on Kafka, for ``python -m bytewax.run "mmflow.flows.live:build()"`` (see ``mmflow run``).

Settings come from the environment: ``MMFLOW_RUN_PRESET``, ``MMFLOW_RUN_CONFIG`` (YAML path),
``MMFLOW_RUN_SET`` (JSON list of dotted overrides) and the usual ``MMFLOW_*`` variables.
``MMFLOW_RUN_METRICS_PORT`` serves /metrics (`mmflow run` gives process i port + i).
``MMFLOW_RUN_CONFIRM_WRITES=0`` lets the worker go on before the broker confirms its outputs
(`mmflow run` sets it when there is no recovery directory; see ``mmflow.connectors.kafka_io.FlowSink``).

Ordering rule: the flow consumes the market-data and fills topics, each market keyed to one
partition, and books a fill when it arrives. It writes every input besides market data (fills,
order updates, positions, controls), its own take-over of each market and each firing of its
wall-clock timer to the journal topic with the number of that market's market events processed
before it, so a replay (``mmflow record`` then ``mmflow replay --fills``) puts each back at the
same place and reproduces every decision.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from datetime import timedelta
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from mmflow.config import KafkaConfig, load_settings
from mmflow.connectors.kafka_io import (
    dead_letter_message,
    flow_sink,
    intent_message,
    journal_message,
    summary_message,
)
from mmflow.connectors.kafka_source import RawKafkaSource, request_stop
from mmflow.connectors.metrics import flow_metrics
from mmflow.flows.engine import FlowStreams, build_flow, tune_gc
from mmflow.ids import incarnation_of

log = logging.getLogger("mmflow.flow")


def flow_source(cfg: KafkaConfig, tail: bool = True, batch_size: int = 10_000) -> RawKafkaSource:
    """Market data, the execution side's fills, order updates and positions, and operator
    controls, from the beginning (or the recovery offsets)."""
    topics = [
        cfg.market_data_topic,
        cfg.fills_topic,
        cfg.orders_topic,
        cfg.positions_topic,
        cfg.control_topic,
    ]
    return RawKafkaSource(cfg, topics, tail, batch_size)


def route(flow_streams: FlowStreams, cfg: KafkaConfig, confirm: bool) -> None:
    """Each stream to its topic, through one sink. Fills, the timeline and the mark-outs have no
    topic: on Kafka the venue is its own process and owns the fills topic, and a fill the flow
    consumed must not be written back to it; mark-outs are a replay output (markouts.parquet)."""
    messages = op.merge(
        "to_kafka",
        op.map("intent_messages", flow_streams.intents, partial(intent_message, cfg)),
        op.map("journal_messages", flow_streams.journal, partial(journal_message, cfg)),
        op.map("dead_letter_messages", flow_streams.dead, partial(dead_letter_message, cfg)),
        op.map("summary_messages", flow_streams.summaries, partial(summary_message, cfg)),
    )
    op.output("kafka_out", messages, flow_sink(cfg, confirm=confirm))


def build(tail: bool = True) -> Dataflow:
    env = os.environ
    settings = load_settings(
        env.get("MMFLOW_RUN_PRESET") or None,
        env.get("MMFLOW_RUN_CONFIG") or None,
        json.loads(env.get("MMFLOW_RUN_SET") or "[]"),
    )
    metrics = flow_metrics()
    tune_gc()
    port = env.get("MMFLOW_RUN_METRICS_PORT")
    if port:
        metrics.serve(int(port), settings.metrics.host)
    flow = Dataflow("mmflow-live")
    # This process' incarnation: every id it makes carries it, so no restart reuses one.
    incarnation = incarnation_of(time.time_ns() // 1000)
    log.info("flow incarnation %s", incarnation)
    streams = build_flow(
        flow,
        flow_source(settings.kafka, tail=tail),
        settings,
        metrics,
        venue=None,  # the execution side is a process of its own: its reports arrive as input
        live_clock=True,
        incarnation=incarnation,
        order_reports=settings.kafka.order_reports,
    )
    route(streams, settings.kafka, confirm=env.get("MMFLOW_RUN_CONFIRM_WRITES", "1") != "0")
    return flow


def stop_on_sigterm() -> None:
    """SIGTERM stops a plain process as Ctrl-C does (a KeyboardInterrupt)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def stop_the_flow_on_signals() -> None:
    """SIGINT or SIGTERM end the flow's input at the next batch: it runs to its end and stops
    cleanly. (An exception raised from the handler would land inside a step and cross Bytewax's
    Rust frames: a panic and a traceback.) A second signal stops it at once."""

    def stop(signum: int, frame: object) -> None:
        log.info("stopping (signal %d): the input ends at the next batch", signum)
        request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """``python -m mmflow.flows.live``, what ``mmflow run`` replaces itself with: the flow on
    this process' workers, stopped cleanly by SIGINT or SIGTERM (no traceback, no panic)."""
    ap = argparse.ArgumentParser(prog="mmflow.flows.live")
    ap.add_argument("-w", "--workers", type=int, default=1)
    ap.add_argument("-i", "--process-id", type=int)
    ap.add_argument("-a", "--addresses")
    ap.add_argument("-r", "--recovery-dir")
    ap.add_argument("-s", "--snapshot-interval", type=float, default=5.0)
    ap.add_argument("-b", "--backup-interval", type=float, default=0.0)
    ap.add_argument("--until-end", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop_the_flow_on_signals()
    recovery = (
        RecoveryConfig(args.recovery_dir, timedelta(seconds=args.backup_interval))
        if args.recovery_dir
        else None
    )
    try:
        flow = build(tail=not args.until_end)
        cli_main(
            flow,
            workers_per_process=args.workers,
            process_id=args.process_id,
            addresses=args.addresses.split(";") if args.addresses else None,
            epoch_interval=timedelta(seconds=args.snapshot_interval),
            recovery_config=recovery,
        )
    except KeyboardInterrupt:
        log.info("flow stopped")
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
