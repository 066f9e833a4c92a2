"""Scale-out: two Bytewax processes (-i/-a), or two worker threads in one process (each with its
own consumer), on a multi-partition topic decide like one worker."""

from __future__ import annotations

import subprocess

import polars as pl
import pytest

from mmflow.config import load_settings
from mmflow.connectors.recorder import read_topic
from mmflow.wire import decode_intent
from tests.conftest import BTC_QUOTES, BTC_TRADES, SOL_QUOTES, SOL_TRADES
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import REPO, mmflow, run_ok, topic_sets
from tests.integration.test_metrics_http import free_port

pytestmark = pytest.mark.kafka


def intents_by_market(settings, topic: str) -> dict[str, list[bytes]]:
    """Each market's intents, their ids without the incarnation (each run is a process of its
    own, so that part differs by design; everything else must be the same to the byte)."""
    out: dict[str, list] = {}
    for raw in read_topic(settings.kafka, topic, idle_s=2.0):
        intent = decode_intent(raw)
        stream, seq = intent.intent_id.rsplit("-", 1)
        anonymous = f"{stream.rsplit('-', 1)[0]}-*-{seq}"
        out.setdefault(intent.market, []).append(raw.replace(intent.intent_id.encode(), anonymous.encode()))
    return out


def test_two_processes_or_two_threads_give_the_same_intents_as_one(
    kafka_bootstrap, unique_topic_prefix, data_dir
) -> None:
    prefix = unique_topic_prefix
    base = [*topic_sets(prefix), f"kafka.bootstrap_servers={kafka_bootstrap}"]
    for topic in (
        f"{prefix}.md",
        f"{prefix}.fills",
        f"{prefix}.one",
        f"{prefix}.two",
        f"{prefix}.three",
        f"{prefix}.dlq",
        f"{prefix}.fills.journal",
    ):
        create_topic(kafka_bootstrap, topic, partitions=4)
    args = [a for s in base for a in ("--set", s)]
    run_ok(
        "feed",
        "--quotes",
        str(BTC_QUOTES),
        "--quotes",
        str(SOL_QUOTES),
        "--trades",
        str(BTC_TRADES),
        "--trades",
        str(SOL_TRADES),
        *args,
        timeout=300,
    )

    run_ok("run", "--until-end", *args, "--set", f"kafka.intents_topic={prefix}.one", timeout=300)
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            mmflow(
                "run",
                "--until-end",
                "--process-id",
                str(i),
                "--addresses",
                addresses,
                *args,
                "--set",
                f"kafka.intents_topic={prefix}.two",
            ),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]

    run_ok(
        "run",
        "--until-end",
        "--workers",
        "2",
        *args,
        "--set",
        f"kafka.intents_topic={prefix}.three",
        timeout=300,
    )

    settings = load_settings(None, None, base)
    single, double, two_threads = (
        intents_by_market(settings, f"{prefix}.one"),
        intents_by_market(settings, f"{prefix}.two"),
        intents_by_market(settings, f"{prefix}.three"),
    )
    assert set(single) == {"binance-futures:BTCUSDT", "bybit:SOLUSDT"}
    for market in single:
        assert len(single[market]) > 3
        assert double[market] == single[market], market
        assert two_threads[market] == single[market], market
    assert pl.Series(list(single)).n_unique() == 2
