"""The kill switch end to end: `mmflow control` -> control topic -> flow -> cancel-all, and back."""

from __future__ import annotations

import time

import orjson
import pytest

from mmflow.config import load_settings
from mmflow.connectors.recorder import read_topic
from tests.conftest import SOL_QUOTES, SOL_TRADES
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import mmflow, run_ok, start, stop, topic_sets
from tests.integration.test_metrics_http import free_port, scrape

pytestmark = pytest.mark.kafka


def gauge(port: int, name: str, market: str) -> float | None:
    try:
        return scrape(port).get((name, frozenset({("market", market)})))
    except OSError:
        return None


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError("condition not reached")


def test_kill_switch_halts_and_resume_restarts_quoting(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    prefix = unique_topic_prefix
    sets = [
        *topic_sets(prefix),
        f"kafka.bootstrap_servers={kafka_bootstrap}",
        # the 42 s SOL sample has pauses; keep the stale guard out of this test's way
        "strategy.safety.stale_enabled=false",
    ]
    settings = load_settings("phase2", None, sets)
    for name in ("md", "fills", "control", "intents", "dlq", "fills.journal"):
        create_topic(kafka_bootstrap, f"{prefix}.{name}", partitions=1)
    args = [a for s in sets for a in ("--set", s)]
    port = free_port()
    flow = start(mmflow("run", "--metrics-port", str(port), *args), tmp_path / "flow.log")
    try:
        run_ok("feed", "--quotes", str(SOL_QUOTES), "--trades", str(SOL_TRADES), *args, timeout=120)
        wait_for(lambda: (gauge(port, "maker_events_total", "bybit:SOLUSDT") or 0) >= 383 + 165)
        assert gauge(port, "maker_kill_switch_active", "bybit:SOLUSDT") == 0

        run_ok("control", "halt", "--all", "--reason", "test", *args, timeout=60)
        wait_for(lambda: gauge(port, "maker_kill_switch_active", "bybit:SOLUSDT") == 1)
        assert (
            gauge(port, "maker_kill_switch_active", "binance-futures:BTCUSDT") == 1
        )  # "--all" reached every market

        run_ok("control", "resume", "--market", "bybit:SOLUSDT", *args, timeout=60)
        wait_for(lambda: gauge(port, "maker_kill_switch_active", "bybit:SOLUSDT") == 0)
        assert (
            gauge(port, "maker_kill_switch_active", "binance-futures:BTCUSDT") == 1
        )  # resuming is per market, explicit
        time.sleep(1.0)
    finally:
        stop(flow)

    intents = [orjson.loads(v) for v in read_topic(settings.kafka, f"{prefix}.intents", idle_s=2.0)]
    # The flow's first intent per market is its start-up cancel (what an earlier process left).
    first = next(i for i in intents if i["market"] == "bybit:SOLUSDT")
    assert first["type"] == "cancel_all" and first["reasons"] == ["restart"]
    sol = [i for i in intents if i["market"] == "bybit:SOLUSDT" and i["reasons"] != ["restart"]]
    kinds = [i["type"] for i in sol]
    halt_at = kinds.index("cancel_all")
    assert sol[halt_at]["reasons"] == ["operator_halt"]
    assert "quote" in kinds[:halt_at]  # it was quoting before
    assert kinds[halt_at + 1] == "quote"  # and quotes again right after the resume
    assert bool(sol[halt_at + 1]["bid_px"] or sol[halt_at + 1]["ask_px"])
