"""The Prometheus endpoint, scraped over real HTTP after a replay of real data."""

from __future__ import annotations

import socket
import urllib.request
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from mmflow.config import load_settings
from mmflow.connectors.files import load_inputs
from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.replay import replay
from tests.conftest import SOL_QUOTES, SOL_TRADES

NAMED = (
    "maker_fifo_realized_quote",
    "maker_regime_state",
    "maker_volatility_bps",
    "maker_trend_down_guard",
    "maker_pnl_guard_active",
    "maker_inventory_base",
    "maker_quoted_spread_bps",
    "maker_fills_total",
    "maker_intents_total",
    "maker_hedge_volume_base_total",
    "maker_hedge_cost_quote_total",
    "maker_processing_latency_seconds_bucket",
    "maker_events_total",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }


def test_metrics_endpoint_serves_the_analysis_metrics(data_dir) -> None:
    settings = load_settings(
        "phase2",
        overrides=[
            "strategy.quoting.base_size=0.02",
            "strategy.spreads.min_bps=2",
            "strategy.spreads.max_bps=3",
        ],
    )
    events, dead = load_inputs([SOL_QUOTES], [SOL_TRADES], [], settings.markets)
    metrics = FlowMetrics()
    port = free_port()
    metrics.serve(port)
    bad = [b'{"v":1,"type":"book"', b'{"v":9}']
    result = replay([*bad, *events], settings, None, metrics=metrics, report=False)
    samples = scrape(port)
    names = {name for name, _ in samples}
    for name in NAMED:
        assert name in names, name
    sol = frozenset({("market", "bybit:SOLUSDT")})
    summary = result.summary["markets"]["bybit:SOLUSDT"]
    assert samples[("maker_inventory_base", sol)] == float(Decimal(summary["final_inventory_base"]))
    assert samples[("maker_fifo_realized_quote", sol)] == float(Decimal(summary["realized_pnl_quote"]))
    assert samples[("maker_events_total", sol)] == 383 + 165
    dead_total = sum(v for (n, _), v in samples.items() if n == "maker_dead_letters_total")
    assert dead_total == 2 == result.summary["dead_letters"]
    # The venue's order updates, by status, as many as orders.parquet would hold.
    statuses: dict[str, int] = {}
    for update in result.outputs.orders:
        statuses[update.status] = statuses.get(update.status, 0) + 1
    assert statuses.get("accepted", 0) > 0
    for status, count in statuses.items():
        key = ("maker_order_updates_total", frozenset({("market", "bybit:SOLUSDT"), ("status", status)}))
        assert samples[key] == count, status
    assert samples[("maker_post_only_rejects_total", sol)] == summary["post_only_rejects"]
    assert ("maker_open_orders", sol) in samples and ("maker_hedge_in_flight_base", sol) in samples
