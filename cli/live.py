"""The live commands: topics, feed, ingest, run, venue, record (all on Kafka)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmflow.cli.args import broker_unusable, common, kafka_settings, overrides, serving
from mmflow.cli.stopping import stop_event
from mmflow.connectors.files import load_inputs
from mmflow.connectors.kafka_io import DeliveryErrors, broker_problem, create_topics, producer, publish_event
from mmflow.connectors.metrics import IngestMetrics, VenueMetrics
from mmflow.connectors.recorder import record
from mmflow.connectors.venue_service import VenueService
from mmflow.flows.live import stop_on_sigterm
from mmflow.models import Control, Fill
from mmflow.wire import encode


def cmd_topics(args: argparse.Namespace) -> int:
    created = create_topics(kafka_settings(args).kafka, args.partitions)
    print(f"created {created or 'nothing (all exist)'}")
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    """Publish a recording to the market-data topic, paced or as fast as possible; exit 1 with the
    number of events the broker did not take."""
    settings = kafka_settings(args)
    events, dead = load_inputs(args.quotes or [], args.trades or [], [], settings.markets)
    if dead:
        print(f"feed: {len(dead)} invalid rows skipped (first: {dead[0].detail})", file=sys.stderr)
    market_data = [e for e in events if not isinstance(e, Fill)]
    problem = broker_problem(settings.kafka)
    if problem is not None:
        print(
            f"feed: {len(market_data):,} of {len(market_data):,} events not delivered: {problem}",
            file=sys.stderr,
        )
        return 1
    failed = DeliveryErrors()
    prod = producer(settings.kafka, **{"message.timeout.ms": str(int(args.timeout * 1000))})
    topic = settings.kafka.market_data_topic
    start_wall = time.monotonic()
    first_ts = None
    for n, event in enumerate(market_data, 1):
        if args.speed > 0:
            first_ts = first_ts or event.ts_recv
            due = (event.ts_recv - first_ts) / 1e6 / args.speed
            delay = due - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
        publish_event(prod, topic, event, on_delivery=failed)
        if n % 10_000 == 0:
            prod.poll(0)
    left = prod.flush(args.timeout + 5)
    wall = time.monotonic() - start_wall
    lost = len(failed) + left
    if lost:
        print(f"feed: {lost:,} of {len(market_data):,} events not delivered to {topic}", file=sys.stderr)
        return 1
    print(f"fed {len(market_data):,} events to {topic} in {wall:.2f} s")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Binance market data to the market-data topic until SIGINT/SIGTERM or ``--seconds``; exit 1
    when the broker is unusable or did not take every event, 2 for bad arguments."""
    from mmflow.connectors.binance_ws import VENUES, Ingest, KafkaOut, poll_loop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    venue = VENUES[args.venue]
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        print("mmflow ingest: give --symbols SYM[,SYM...]", file=sys.stderr)
        return 2
    if args.testnet and (args.ws_url or args.rest_url):
        print("mmflow ingest: --testnet or --ws-url/--rest-url, not both", file=sys.stderr)
        return 2
    if bool(args.ws_url) != bool(args.rest_url):
        print("mmflow ingest: --ws-url and --rest-url go together", file=sys.stderr)
        return 2
    settings = kafka_settings(args)
    unknown = [f"{venue.prefix}:{s}" for s in symbols if f"{venue.prefix}:{s}" not in settings.markets]
    if unknown:
        print(
            f"mmflow ingest: no instrument spec for {', '.join(unknown)}: the flow will refuse them",
            file=sys.stderr,
        )
    if broker_unusable(settings, "ingest"):
        return 1
    metrics = serving(IngestMetrics(), args, settings)
    out = KafkaOut(
        settings.kafka, venue.name, metrics, **{"message.timeout.ms": str(int(args.timeout * 1000))}
    )
    ingest = Ingest(
        venue,
        symbols,
        out,
        metrics,
        depth=args.depth,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        testnet=args.testnet,
        backoff_cap=args.backoff_cap,
    )

    async def main() -> None:
        stop = stop_event(args.seconds)
        poller = asyncio.ensure_future(poll_loop(out, stop))
        await ingest.run(stop)
        await poller

    start = time.monotonic()
    asyncio.run(main())
    left = out.flush(args.timeout + 5)
    lost = len(out.errors) + left
    topic = settings.kafka.market_data_topic
    if lost:
        print(f"ingest: {lost:,} of {out.sent:,} events not delivered to {topic}", file=sys.stderr)
        return 1
    wall = time.monotonic() - start
    print(f"ingested {out.sent:,} events to {topic} in {wall:.1f} s over {ingest.connections} connection(s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The flow on Kafka: this process becomes ``python -m mmflow.flows.live`` (exec), so a
    signal sent to ``mmflow run`` reaches the flow itself and nothing is left running."""
    env = dict(os.environ)
    env["MMFLOW_RUN_PRESET"] = args.preset or ""
    env["MMFLOW_RUN_CONFIG"] = args.config or ""
    env["MMFLOW_RUN_SET"] = json.dumps(overrides(args))
    settings = kafka_settings(args)  # fail here, naming the field, rather than inside the workers
    cmd = [sys.executable, "-m", "mmflow.flows.live", "-w", str(args.workers)]
    if args.until_end:
        cmd.append("--until-end")
    if args.process_id is not None:
        cmd += ["-i", str(args.process_id), "-a", args.addresses]
    if args.metrics_port is not None:
        env["MMFLOW_RUN_METRICS_PORT"] = str(args.metrics_port + (args.process_id or 0))
    # With recovery, outputs are confirmed by the broker before each snapshot can move past them.
    env["MMFLOW_RUN_CONFIRM_WRITES"] = "1" if args.recovery_dir else "0"
    if args.recovery_dir:
        if not any(Path(args.recovery_dir).glob("part-*.sqlite3")):
            print(
                f"mmflow run: no recovery partitions in {args.recovery_dir}; run `mmflow recovery-init "
                f"{args.recovery_dir}` first",
                file=sys.stderr,
            )
            return 2
        cmd += ["-r", args.recovery_dir, "-s", str(args.snapshot_interval), "-b", str(args.backup_interval)]
    if broker_unusable(settings, "run"):
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def cmd_recovery_init(args: argparse.Namespace) -> int:
    """Create Bytewax recovery partitions (once, before the first ``mmflow run --recovery-dir``).

    A directory that has them already is left alone, exit 0: Bytewax would panic on it, and a
    container's start command (infra/docker-compose.yml) runs this before every start."""
    if any(Path(args.dir).glob("part-*.sqlite3")):
        print(f"mmflow recovery-init: {args.dir} already has recovery partitions; left as it is")
        return 0
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    return subprocess.call([sys.executable, "-m", "bytewax.recovery", args.dir, str(args.partitions)])


def cmd_venue(args: argparse.Namespace) -> int:
    """The paper execution connector until SIGINT/SIGTERM (a clean stop) or ``--seconds``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = kafka_settings(args)
    if broker_unusable(settings, "venue"):
        return 1
    metrics = serving(VenueMetrics(), args, settings)
    stop_on_sigterm()
    try:
        VenueService(settings, group_id=args.group_id, metrics=metrics).run(args.seconds)
    except KeyboardInterrupt:
        logging.getLogger("mmflow.venue").info("venue stopped")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    """The kill switch: publish a halt or resume for one market or all to the control topic.

    Exit 1 when the broker did not take it (no broker, or this principal may not write the
    control topic: see docs/kafka-security.md); the flow logs and counts every command it applies.
    """
    settings = kafka_settings(args)
    market = "*" if args.all else args.market
    if not market:
        print("mmflow control: give --market NAME or --all", file=sys.stderr)
        return 2
    if market != "*" and market not in settings.markets:
        print(f"mmflow control: unknown market {market!r}", file=sys.stderr)
        return 2
    if args.clear_loss_limit and args.action != "resume":
        print("mmflow control: --clear-loss-limit goes with resume", file=sys.stderr)
        return 2
    cmd = Control(
        market=market,
        ts=time.time_ns() // 1000,
        command_id=uuid.uuid4().hex,
        action=args.action,
        reason=args.reason,
        clear_loss_limit=args.clear_loss_limit,
    )
    errors = DeliveryErrors()
    prod = producer(settings.kafka, **{"message.timeout.ms": str(int(args.timeout * 1000))})
    prod.produce(settings.kafka.control_topic, key=market.encode(), value=encode(cmd), on_delivery=errors)
    left = prod.flush(args.timeout + 5)
    if left or errors:
        why = errors[0] if errors else "no answer from the broker"
        print(f"mmflow control: {args.action} {market} not delivered: {why}", file=sys.stderr)
        return 1
    flag = " --clear-loss-limit" if args.clear_loss_limit else ""
    print(
        f"{args.action}{flag} {market} sent to {settings.kafka.control_topic} ({cmd.command_id}): {args.reason!r}"
    )
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    paths = record(kafka_settings(args).kafka, Path(args.out), idle_s=args.idle)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def register(sub: Any) -> None:
    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        common(p)
        p.add_argument(
            "--bootstrap", help="Kafka bootstrap servers (default: settings kafka.bootstrap_servers)"
        )
        p.set_defaults(func=fn)
        return p

    p = add("topics", cmd_topics, "create the Kafka topics")
    p.add_argument("--partitions", type=int, default=4)

    p = add("feed", cmd_feed, "publish a recording to the market-data topic")
    p.add_argument("--quotes", action="append")
    p.add_argument("--trades", action="append")
    p.add_argument("--speed", type=float, default=0.0, help="x recorded pace; 0 = as fast as possible")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds an event may wait for the broker before it counts as lost",
    )

    p = add("ingest", cmd_ingest, "Binance market data (websocket) to the market-data topic")
    p.add_argument("--venue", choices=["binance-usdm", "binance-spot"], default="binance-usdm")
    p.add_argument("--symbols", required=True, help="comma separated, e.g. SOLUSDT,BTCUSDT")
    p.add_argument("--depth", action="store_true", help="also the order book diffs (with REST snapshots)")
    p.add_argument("--ws-url", help="websocket base URL (default: the venue's production or testnet)")
    p.add_argument("--rest-url", help="REST base URL (with --ws-url)")
    p.add_argument("--testnet", action="store_true", help="the venue's testnet")
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until killed)")
    p.add_argument("--backoff-cap", type=float, default=30.0, help="longest wait between reconnects (s)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds an event may wait for the broker before it is lost",
    )

    p = add("run", cmd_run, "run the flow on Kafka (python -m bytewax.run)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--process-id", type=int, help="this process' index in a cluster (-i)")
    p.add_argument("--addresses", help='all processes, "host:port;host:port" (-a)')
    p.add_argument("--metrics-port", type=int)
    p.add_argument(
        "--until-end", action="store_true", help="stop at the end of the topics instead of tailing"
    )
    p.add_argument("--recovery-dir")
    p.add_argument("--snapshot-interval", type=int, default=5, help="seconds between state snapshots")
    p.add_argument("--backup-interval", type=int, default=0, help="seconds of old snapshots to keep")

    p = sub.add_parser("recovery-init", help="create the recovery partitions for mmflow run --recovery-dir")
    p.add_argument("dir")
    p.add_argument("--partitions", type=int, default=1)
    p.set_defaults(func=cmd_recovery_init)

    p = add("venue", cmd_venue, "paper-trading execution connector")
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--group-id")
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until killed)")

    p = add("control", cmd_control, "kill switch: halt or resume quoting for one market or all")
    p.add_argument("action", choices=["halt", "resume"])
    p.add_argument("--market")
    p.add_argument("--all", action="store_true")
    p.add_argument("--reason", default="")
    p.add_argument(
        "--clear-loss-limit",
        action="store_true",
        help="with resume: also lift a loss-limit halt (a plain resume does not)",
    )
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the broker to take it")

    p = add("record", cmd_record, "write the topics to Parquet for offline replay")
    p.add_argument("--out", required=True)
    p.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds with no message")
