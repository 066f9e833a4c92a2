"""One registry per process role: each serves its own families only, with the names agreed."""

from __future__ import annotations

import time

import pytest

from mmflow.connectors.metrics import ExecMetrics, FlowMetrics, IngestMetrics, ProcessMetrics, VenueMetrics
from tests.builders import SOL, settings

ROLES = {
    FlowMetrics: "maker_",
    IngestMetrics: "mmflow_ingest_",
    ExecMetrics: "mmflow_exec_",
    VenueMetrics: "mmflow_venue_",
}


def _families(metrics: ProcessMetrics) -> set[str]:
    return {family.name for family in metrics.registry.collect()}


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_has_only_its_own_families(role: type[ProcessMetrics]) -> None:
    names = _families(role())
    assert names and all(n.startswith(ROLES[role]) for n in names), sorted(names)


def test_the_agreed_names_exist() -> None:
    assert {"maker_event_lag_seconds", "maker_consumer_lag_records", "maker_inventory_soft_cap_base"} <= (
        _families(FlowMetrics())
    )
    assert {"mmflow_exec_position_base", "mmflow_exec_consumer_lag_records"} <= _families(ExecMetrics())
    venue = {
        "mmflow_venue_fills",
        "mmflow_venue_orders_resting",
        "mmflow_venue_orders_in_flight",
        "mmflow_venue_rejects",
        "mmflow_venue_position_base",
        "mmflow_venue_report_latency_seconds",
        "mmflow_venue_consumer_lag_records",
    }
    assert venue <= _families(VenueMetrics())  # counters' families drop the _total of their samples


def test_event_lag_is_computed_when_scraped() -> None:
    metrics = FlowMetrics()
    metrics.event_seen(SOL, int((time.time() - 2.0) * 1e6))
    first = metrics.registry.get_sample_value("maker_event_lag_seconds", {"market": SOL})
    time.sleep(0.05)
    later = metrics.registry.get_sample_value("maker_event_lag_seconds", {"market": SOL})
    assert first is not None and 2.0 <= first < 3.0 and later is not None and later > first


def test_the_soft_cap_is_the_markets_own() -> None:
    s = settings("strategy.inventory.soft_cap_base=0.04")
    metrics = FlowMetrics()
    metrics.configure(s)
    assert metrics.registry.get_sample_value("maker_inventory_soft_cap_base", {"market": SOL}) == 0.04
    assert len({m for m in s.markets}) == sum(
        1 for f in metrics.registry.collect() for x in f.samples if x.name == "maker_inventory_soft_cap_base"
    )


def test_ingest_dead_letters_count_by_code() -> None:
    metrics = IngestMetrics()
    metrics.dead_letter("unsubscribed market binance-futures:XRPUSDT")
    metrics.dead_letter("unsubscribed market binance-futures:ADAUSDT")
    samples = [
        s for f in metrics.registry.collect() for s in f.samples if s.name.endswith("dead_letters_total")
    ]
    assert [(s.labels, s.value) for s in samples] == [({"reason": "unknown_market"}, 2.0)]
