"""Prometheus metrics, one registry per process role, each serving only its own families.

``FlowMetrics`` (``mmflow run``, replays: the analysis' ``maker_*`` names), ``IngestMetrics``
(``mmflow ingest``: ``mmflow_ingest_*``), ``ExecMetrics`` (``mmflow execute``: ``mmflow_exec_*``)
and ``VenueMetrics`` (``mmflow venue``: ``mmflow_venue_*``) share ``ProcessMetrics``: the
registry, the HTTP endpoint and the cached lookup of labelled children. A process that served
one registry holding every family showed the other processes' names with no samples, which a
dashboard cannot tell from a broken exporter.

The flow's step updates its metrics once per batch of events rather than per event: a scrape
every few seconds cannot tell the difference, and the hot path stays free of lock-taking metric
calls.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mmflow.config import Settings
from mmflow.dead_reasons import reason_of
from mmflow.models import Control, OrderUpdate
from mmflow.outputs import Outputs
from mmflow.stats import MarketStats
from mmflow.view import MarketView

LATENCY_BUCKETS = (
    1e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    5e-2,
    0.1,
    0.5,
    1.0,
)

#: Round trips and hand-offs between processes: a millisecond to ten seconds.
WIRE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Tick to order spans Kafka twice, the flow and a REST round trip: milliseconds to tens of them,
#: so the buckets are dense there (a p50/p99 read from them is within a few ms).
TICK_TO_ORDER_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.05,
    0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

_PARTITION = ["topic", "partition"]


class ProcessMetrics:
    """What every process' metrics share: its own registry, served over HTTP, and labelled
    children looked up once."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[str, ...], Any] = {}

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve /metrics over HTTP from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)

    def child(self, metric: str, *labels: str) -> Any:
        """The labelled child of ``metric``, looked up once: ``labels()`` takes a lock and costs
        microseconds, paid otherwise about twenty times per batch."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = getattr(self, metric).labels(*labels)
        return found

    def consumer_lag_gauge(self, prefix: str) -> Gauge:
        """``<prefix>_consumer_lag_records{topic,partition}``: the high watermark minus the
        consumer's position, per assigned partition (``kafka_io.LagReporter`` sets it)."""
        return Gauge(
            f"{prefix}_consumer_lag_records",
            "Records not yet consumed: high watermark minus the consumer's position, per partition",
            _PARTITION,
            registry=self.registry,
        )


class FlowMetrics(ProcessMetrics):
    """The flow's metrics (``mmflow run``, replays): the analysis' names, labelled by market."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r, m = self.registry, ["market"]
        self.realized = Gauge(
            "maker_fifo_realized_quote", "FIFO realized PnL net of fees (quote ccy)", m, registry=r
        )
        self.regime = Gauge(
            "maker_regime_state", "Volatility regime: 0 defensive, 1 aggressive", m, registry=r
        )
        self.volatility = Gauge(
            "maker_volatility_bps", "Realized volatility of the mid (bps per sample)", m, registry=r
        )
        self.trend = Gauge(
            "maker_trend_down_guard", "Downtrend cooldown active (1) or not (0)", m, registry=r
        )
        self.pnl_guard = Gauge("maker_pnl_guard_active", "PnL guard active (1) or not (0)", m, registry=r)
        self.inventory = Gauge("maker_inventory_base", "Signed inventory in base units", m, registry=r)
        self.unrealized = Gauge(
            "maker_unrealized_quote", "Mark-to-mid PnL of open lots (quote ccy)", m, registry=r
        )
        self.spread = Gauge(
            "maker_quoted_spread_bps", "Full quoted spread of the last decision (bps)", m, registry=r
        )
        self.stale = Gauge(
            "maker_stale_data_guard", "Market data too old: quotes pulled (1) or not (0)", m, registry=r
        )
        self.operator_halt = Gauge(
            "maker_kill_switch_active", "Halted by the operator's kill switch (1)", m, registry=r
        )
        self.loss_halt = Gauge(
            "maker_loss_limit_halt", "Halted by the loss limit until resumed (1)", m, registry=r
        )
        self.position_limit = Gauge(
            "maker_position_limit_active", "Inventory at the hard position limit (1)", m, registry=r
        )
        self.mid = Gauge("maker_mid_price", "Mid price of the last book", m, registry=r)
        self.reconcile_halt = Gauge(
            "maker_reconcile_halt",
            "Halted because the books disagree with the venue's position, until resumed (1)",
            m,
            registry=r,
        )
        self.position_mismatch = Gauge(
            "maker_position_mismatch_base",
            "Venue position minus the flow's FIFO inventory at the venue's last report (base)",
            m,
            registry=r,
        )
        self.open_orders = Gauge(
            "maker_open_orders", "Quote orders out (resting, in flight or being cancelled)", m, registry=r
        )
        self.hedge_in_flight = Gauge(
            "maker_hedge_in_flight_base",
            "Signed size of the hedges sent and not yet ended (base)",
            m,
            registry=r,
        )
        self.post_only_rejects = Counter(
            "maker_post_only_rejects",
            "Quotes the venue rejected for crossing the book on arrival (Binance -5022); each is re-quoted",
            m,
            registry=r,
        )
        self.requotes = Counter(
            "maker_requotes", "Quotes sent again at a new price after a post-only reject", m, registry=r
        )
        self.order_updates = Counter(
            "maker_order_updates",
            "Order updates from the execution side, by status",
            ["market", "status"],
            registry=r,
        )
        self.controls = Counter(
            "maker_control_commands", "Operator commands applied", ["market", "action"], registry=r
        )
        self.fills = Counter("maker_fills", "Fills booked", ["market", "source"], registry=r)
        self.intents = Counter("maker_intents", "Intents emitted", ["market", "kind"], registry=r)
        self.events = Counter("maker_events", "Input events processed", m, registry=r)
        self.hedge_volume = Counter("maker_hedge_volume_base", "Hedged quantity (base units)", m, registry=r)
        self.hedge_cost = Counter(
            "maker_hedge_cost_quote", "Hedge fees plus crossing cost vs mid (quote)", m, registry=r
        )
        self.guard_engagements = Counter(
            "maker_guard_engagements", "Guard engagements", ["market", "guard"], registry=r
        )
        self.dead_letters = Counter(
            "maker_dead_letters", "Records sent to the dead-letter output", ["source", "reason"], registry=r
        )
        self.kafka_errors = Counter(
            "maker_kafka_errors", "Consumer errors not tied to a record", ["topic"], registry=r
        )
        self.latency = Histogram(
            "maker_processing_latency_seconds",
            "Strategy step time per event",
            m,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_lag = Gauge(
            "maker_event_lag_seconds",
            "Wall clock minus the receive time of the market's last book tick or trade (live runs)",
            m,
            registry=r,
        )
        self.consumer_lag = self.consumer_lag_gauge("maker")
        self.soft_cap = Gauge(
            "maker_inventory_soft_cap_base",
            "Configured inventory soft cap (inventory.soft_cap_base with the market's override)",
            m,
            registry=r,
        )
        self._last: dict[str, dict[str, Any]] = {}
        self._last_event_us: dict[str, int] = {}
        self._lock = threading.Lock()

    def configure(self, settings: Settings) -> None:
        """The configured limits of every market, exported once so alerts can compare against
        them (``maker_inventory_soft_cap_base``)."""
        for market in settings.markets:
            soft_cap = settings.strategy_for(market).inventory.soft_cap_base
            self.child("soft_cap", market).set(float(soft_cap))

    def event_seen(self, market: str, ts_us: int) -> None:
        """The receive time of ``market``'s latest market event (live runs only: a replay's clock
        is the data's, and its distance to the wall clock means nothing). The lag is computed
        when scraped, so a market gone silent shows its lag growing."""
        if market not in self._last_event_us:
            self.event_lag.labels(market).set_function(partial(self._event_lag, market))
        self._last_event_us[market] = ts_us

    def _event_lag(self, market: str) -> float:
        return time.time() - self._last_event_us[market] / 1e6

    def dead_letter(self, source: str, reason: str) -> None:
        """One more dead letter; ``reason`` is its code (``DeadLetter.reason``), never its text."""
        self.child("dead_letters", source, reason).inc()

    def observe(
        self, view: MarketView, stats: MarketStats, n_events: int, seconds: float, out: Outputs
    ) -> None:
        """Refresh one market's metrics from its state after a batch of ``n_events`` that took
        ``seconds`` and produced ``out``."""
        market = view.market
        f = float
        c = self.child
        c("realized", market).set(f(view.realized_pnl))
        c("regime", market).set(view.regime)
        c("volatility", market).set(view.volatility_bps)
        c("trend", market).set(int(view.trend_guard))
        c("pnl_guard", market).set(int(view.pnl_guard))
        c("inventory", market).set(f(view.inventory))
        c("spread", market).set(view.spread_bps)
        if view.mid is not None:
            c("mid", market).set(f(view.mid))
        if view.unrealized_pnl is not None:
            c("unrealized", market).set(f(view.unrealized_pnl))
        c("stale", market).set(int(view.stale_guard))
        c("operator_halt", market).set(int(view.operator_halt))
        c("loss_halt", market).set(int(view.loss_halt))
        c("position_limit", market).set(int(view.position_limit))
        c("reconcile_halt", market).set(int(view.reconcile_halt))
        c("position_mismatch", market).set(f(view.position_mismatch))
        c("open_orders", market).set(view.open_orders)
        c("hedge_in_flight", market).set(f(view.hedge_in_flight))
        for update in out.orders:  # the embedded venue's
            c("order_updates", market, update.status).inc()
        for entry in out.journal:
            kind = type(entry.event)
            if kind is Control:
                c("controls", market, entry.event.action).inc()
            elif kind is OrderUpdate:  # the execution side's, read from its topic
                c("order_updates", market, entry.event.status).inc()
        for dead in out.dead:
            self.dead_letter(dead.source, dead.reason)
        for fill in out.fills:
            c("fills", market, fill.source).inc()
        for intent in out.intents:
            c("intents", market, intent.type).inc()
        if n_events:
            c("events", market).inc(n_events)
            c("latency", market).observe(seconds / n_events)
        counts = view.guard_engagements()
        with self._lock:
            last = self._last.setdefault(market, {"hv": Decimal(0), "hc": Decimal(0)})
            c("hedge_volume", market).inc(f(stats.hedge_volume - last["hv"]))
            c("hedge_cost", market).inc(max(0.0, f(stats.hedge_cost - last["hc"])))
            for guard, count in counts.items():
                c("guard_engagements", market, guard).inc(count - last.get(guard, 0))
            c("post_only_rejects", market).inc(view.post_only_rejects - last.get("por", 0))
            c("requotes", market).inc(view.requotes - last.get("rq", 0))
            last.update(
                hv=stats.hedge_volume,
                hc=stats.hedge_cost,
                por=view.post_only_rejects,
                rq=view.requotes,
                **counts,
            )


class IngestMetrics(ProcessMetrics):
    """``mmflow ingest`` (connectors/binance_ws.py): market data from the exchange into Kafka."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r, m = self.registry, ["market"]
        ms = ["market", "stream"]
        self.ingest_events = Counter(
            "mmflow_ingest_events", "Events written to the market-data topic", ms, registry=r
        )
        self.ingest_gaps = Counter(
            "mmflow_ingest_sequence_gaps",
            "Sequence gaps: trade ids skipped, depth U/u/pu not continuing the book (each resyncs)",
            ms,
            registry=r,
        )
        self.ingest_duplicates = Counter(
            "mmflow_ingest_duplicates",
            "Frames dropped as already written (a reconnect's overlap, by trade or update id)",
            ms,
            registry=r,
        )
        self.ingest_dead_letters = Counter(
            "mmflow_ingest_dead_letters",
            "Malformed frames sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.ingest_reconnects = Counter(
            "mmflow_ingest_reconnects", "Websocket connections lost or refused", ["venue"], registry=r
        )
        self.ingest_connected = Gauge(
            "mmflow_ingest_connected",
            "Websocket connected and subscribed (1) or not (0)",
            ["venue"],
            registry=r,
        )
        self.ingest_snapshots = Counter(
            "mmflow_ingest_depth_snapshots",
            "REST depth snapshots fetched (first sync and resyncs)",
            m,
            registry=r,
        )
        self.ingest_snapshot_failures = Counter(
            "mmflow_ingest_depth_snapshot_failures",
            "Depth snapshots that failed or could not sync the book (too old, refused, unreachable)",
            ["market", "reason"],
            registry=r,
        )
        self.ingest_depth_synced = Gauge(
            "mmflow_ingest_depth_synced",
            "The local order book is in sync (1) or waits for a snapshot (0)",
            m,
            registry=r,
        )
        self.ingest_exchange_delay = Histogram(
            "mmflow_ingest_exchange_delay_seconds",
            "Receive time minus exchange time, local clock (add mmflow_ingest_clock_offset_seconds to correct)",
            ms,
            buckets=WIRE_BUCKETS,
            registry=r,
        )
        self.ingest_clock_offset = Gauge(
            "mmflow_ingest_clock_offset_seconds",
            "Exchange clock minus local clock (GET /time, shortest round trip of the last probe)",
            ["venue"],
            registry=r,
        )
        self.ingest_clock_rtt = Gauge(
            "mmflow_ingest_clock_rtt_seconds", "Round trip of the clock probe used", ["venue"], registry=r
        )
        self.ingest_to_topic = Histogram(
            "mmflow_ingest_receive_to_ack_seconds",
            "Frame receive time to the broker's acknowledgement of its event",
            ["venue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_delivery_errors = Counter(
            "mmflow_ingest_delivery_errors", "Events the broker did not take", ["venue"], registry=r
        )

    def dead_letter(self, reason: str) -> None:
        """One malformed frame, counted by the code of its refusal's text."""
        self.child("ingest_dead_letters", reason_of(reason)).inc()


class ExecMetrics(ProcessMetrics):
    """``mmflow execute`` (connectors/binance_exec.py): orders on the exchange."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r, m = self.registry, ["market"]
        self.exec_orders_sent = Counter(
            "mmflow_exec_orders_sent", "Orders sent to the exchange", ["market", "kind"], registry=r
        )
        self.exec_replaced = Counter(
            "mmflow_exec_orders_replaced", "Resting quotes cancelled for a newer quote", m, registry=r
        )
        self.exec_rejected = Counter(
            "mmflow_exec_orders_rejected",
            "Orders the exchange refused, by reason",
            ["market", "reason"],
            registry=r,
        )
        self.exec_coalesced = Counter(
            "mmflow_exec_intents_coalesced", "Quote intents superseded before they went out", m, registry=r
        )
        self.exec_resting = Gauge("mmflow_exec_orders_resting", "This bot's orders resting", m, registry=r)
        self.exec_in_flight = Gauge(
            "mmflow_exec_requests_in_flight", "Order requests sent and not yet answered", m, registry=r
        )
        self.exec_rate_budget_used = Gauge(
            "mmflow_exec_rate_budget_used",
            "Most used rate budget of the exchange (0..1)",
            ["venue"],
            registry=r,
        )
        self.exec_throttle_waits = Counter(
            "mmflow_exec_throttle_waits",
            "Requests held back for the rate budget or a 429",
            ["venue"],
            registry=r,
        )
        self.exec_request_latency = Histogram(
            "mmflow_exec_request_latency_seconds",
            "REST round trip to the exchange",
            ["endpoint"],
            buckets=WIRE_BUCKETS,
            registry=r,
        )
        self.exec_request_errors = Counter(
            "mmflow_exec_request_errors", "REST requests without an answer", ["endpoint"], registry=r
        )
        self.exec_tick_to_order = Histogram(
            "mmflow_exec_tick_to_order_seconds",
            "Intent time (the flow's clock: the tick's receive time) to the order's acknowledgement",
            m,
            buckets=TICK_TO_ORDER_BUCKETS,
            registry=r,
        )
        self.exec_fills = Counter(
            "mmflow_exec_fills",
            "Fills published (from the user-data stream or a gap's recovery)",
            m,
            registry=r,
        )
        self.exec_stream_reconnects = Counter(
            "mmflow_exec_user_stream_reconnects",
            "User-data stream connections made again after one was lost (each followed by a recovery)",
            ["venue"],
            registry=r,
        )
        self.exec_stream_connected = Gauge(
            "mmflow_exec_user_stream_connected",
            "User-data stream connected (1) or not (0)",
            ["venue"],
            registry=r,
        )
        self.exec_recovered = Counter(
            "mmflow_exec_recovered",
            "Fills and order updates the user stream missed while down, found by REST after it reconnected",
            ["market", "kind"],
            registry=r,
        )
        self.exec_clock_rejects = Counter(
            "mmflow_exec_clock_rejects",
            "Signed requests refused for a timestamp outside recvWindow (-1021); each re-syncs the clock",
            ["method", "endpoint"],
            registry=r,
        )
        self.exec_clock_offset = Gauge(
            "mmflow_exec_clock_offset_seconds",
            "Exchange clock minus local clock (GET /time at start and after a -1021)",
            ["venue"],
            registry=r,
        )
        self.exec_position = Gauge(
            "mmflow_exec_position_base",
            "The exchange's position (USD-M) or base balance (spot), as last published",
            m,
            registry=r,
        )
        self.exec_consumer_lag = self.consumer_lag_gauge("mmflow_exec")


class VenueMetrics(ProcessMetrics):
    """``mmflow venue`` (connectors/venue_service.py): the paper venue on Kafka."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r, m = self.registry, ["market"]
        self.fills = Counter("mmflow_venue_fills", "Fills published (committed)", m, registry=r)
        self.resting = Gauge("mmflow_venue_orders_resting", "Orders live on the paper book", m, registry=r)
        self.in_flight = Gauge(
            "mmflow_venue_orders_in_flight",
            "Orders and hedges received, not yet live or executed (their entry latency)",
            m,
            registry=r,
        )
        self.rejects = Counter(
            "mmflow_venue_rejects",
            "Orders rejected (post_only_would_cross) and intents refused (duplicate_intent, "
            "unknown_market, a dead-letter code for an undecodable one)",
            ["market", "reason"],
            registry=r,
        )
        self.position = Gauge(
            "mmflow_venue_position_base",
            "The venue's own position: the signed sum of its fills",
            m,
            registry=r,
        )
        self.report_latency = Histogram(
            "mmflow_venue_report_latency_seconds",
            "Broker timestamp of the input record whose handling made reports (a tick crossing an "
            "order, a trade) to the commit of the transaction that published them",
            buckets=WIRE_BUCKETS,
            registry=r,
        )
        self.dropped = Counter(
            "mmflow_venue_dropped_records",
            "Input records the venue could not decode, by topic and dead-letter code",
            ["topic", "reason"],
            registry=r,
        )
        self.consumer_lag = self.consumer_lag_gauge("mmflow_venue")


_FLOW: FlowMetrics | None = None


def flow_metrics() -> FlowMetrics:
    """The flow process' metrics (created on first use): the Kafka source and sink count into
    the same registry as the steps."""
    global _FLOW
    if _FLOW is None:
        _FLOW = FlowMetrics()
    return _FLOW
