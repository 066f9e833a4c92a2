"""A live session with a kill-switch halt and resume and a silent end, recorded and replayed.

Real processes over the real broker: ``mmflow run`` (the flow) and ``mmflow venue`` (paper
execution) are fed the SOL sample by ``mmflow feed``; ``mmflow control`` halts and resumes in the
middle; the feed stops before the end, so the flow's wall-clock timer fires the stale-data
cancel. ``mmflow record`` saves the session and ``mmflow replay`` of the recording must make
every live intent again, one for one, the timer's cancel included.
"""

from __future__ import annotations

import polars as pl
import pytest
from confluent_kafka import Producer

from mmflow.connectors.recorder import read_topic
from tests.conftest import SOL_QUOTES, SOL_TRADES
from tests.integration.test_kafka_e2e import kafka_session, mmflow, run_ok, start, stop
from tests.integration.test_kafka_kill_switch import gauge, wait_for
from tests.integration.test_metrics_http import free_port

pytestmark = pytest.mark.kafka
SOL = "bybit:SOLUSDT"
SOL_EVENTS = 383 + 165


def test_live_session_with_halt_resume_and_timer_replays_every_intent(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    topics = ("md", "fills", "control", "intents", "dlq", "positions", "orders", "fills.journal")
    _, settings, args = kafka_session(kafka_bootstrap, prefix, topics, partitions=1)
    port = free_port()
    venue = start(mmflow("venue", *args), tmp_path / "venue.log")
    flow = start(mmflow("run", "--metrics-port", str(port), *args), tmp_path / "flow.log")
    # 42 s of data at 2x: about 21 s of feed, time to halt and resume in the middle.
    feed = start(
        mmflow("feed", "--quotes", str(SOL_QUOTES), "--trades", str(SOL_TRADES), "--speed", "2", *args),
        tmp_path / "feed.log",
    )
    try:
        # A command takes a few seconds to start: sent as soon as the data flows, it lands inside.
        wait_for(lambda: (gauge(port, "maker_events_total", SOL) or 0) > 0)
        run_ok("control", "halt", "--market", SOL, "--reason", "drill", *args, timeout=60)
        wait_for(lambda: gauge(port, "maker_kill_switch_active", SOL) == 1)
        run_ok("control", "resume", "--market", SOL, *args, timeout=60)
        wait_for(lambda: gauge(port, "maker_kill_switch_active", SOL) == 0)
        assert feed.wait(120) == 0, (tmp_path / "feed.log").read_text()[-2000:]
        # The feed has stopped: only the flow's wall-clock timer can fire the stale guard now.
        wait_for(lambda: gauge(port, "maker_stale_data_guard", SOL) == 1, timeout=30)
    finally:
        stop(feed)
        stop(venue)
        stop(flow)

    # An intent on the topic twice, as a recovered session had them: recorded once.
    live_topic = read_topic(settings.kafka, f"{prefix}.intents", idle_s=1.0)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{prefix}.intents", key=SOL.encode(), value=live_topic[len(live_topic) // 2])
    assert producer.flush(10) == 0

    rec = tmp_path / "rec"
    run_ok("record", "--out", str(rec), "--idle", "2", *args, timeout=120)
    out = tmp_path / "offline"
    run_ok(
        "replay",
        "--quotes",
        str(rec / "marketdata.parquet"),
        "--fills",
        str(rec / "journal.parquet"),
        "--out",
        str(out),
        "--no-report",
        "--quiet",
        *args,
        timeout=120,
    )
    live = pl.read_parquet(rec / "intents.parquet")
    offline = pl.read_parquet(out / "intents.parquet")
    assert live.height == len(live_topic) and live["intent_id"].n_unique() == live.height
    journal = pl.read_parquet(rec / "journal.parquet")
    # The halt and the resume came in the middle of the data; the last decision is the timer's
    # cancel, journalled after the last market event.
    controls = journal.filter(pl.col("type") == "control")
    assert controls["action"].to_list() == ["halt", "resume"]
    assert all(0 < n < SOL_EVENTS for n in controls["after_events"])
    assert journal.filter(pl.col("type") == "timer")["after_events"].to_list()[-1] == SOL_EVENTS
    reasons = [tuple(r) for r in live["reasons"].to_list()]
    assert ("operator_halt",) in reasons and reasons[-1] == ("stale_data",)
    # One for one, every field: ids, kinds, prices, sizes, reasons, stamps.
    assert offline.columns == live.columns
    assert offline.to_dicts() == live.to_dicts()
