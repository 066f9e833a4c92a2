"""Orders on Binance (``mmflow execute``): intents from Kafka become orders on USD-M or spot;
the user-data stream's executions become fills, order updates and positions on Kafka.

- Quotes: post-only limit orders (USD-M ``timeInForce=GTX``, spot ``type=LIMIT_MAKER``), priced
  and sized on the symbol's filters (``mmflow.exchange_orders``: bids down, asks up, sizes down,
  a side below minQty / min notional not sent). A new quote cancels the market's resting quotes
  and places its own (cancel, then place: never two sets resting). Of the quotes waiting while
  a request is out only the latest goes (``Coalescer``).
- Hedges: IOC limit orders. Cancel-all: this bot's orders only, found by client-id prefix.
- Client ids: ``exchange_orders.client_order_id``, a function of the intent id and side, so a
  request retried after a timeout is the same order: the exchange's duplicate answer (USD-M
  -4116, spot -2010 "Duplicate order sent.") means "already placed", and before a retry the order
  is looked up by its client id, so a timeout never makes a second order.
- Dead man's switch: USD-M ``countdownCancelAll`` armed per symbol and refreshed every third of
  the countdown; spot has none, so the connector cancels its orders itself when its user stream
  has been down for a countdown (which a SIGKILL or a lost host cannot do: see the README).
- User-stream gaps: after a reconnect, what the stream missed (fills, order ends) is read back by
  REST (``connectors.binance_recovery``); fills are published once per exchange trade id.
- At start: the clock offset, exchangeInfo (filters and rate limits), the settings checked
  against the filters (``ConfigError``: exit 2, one line naming the field), the credentials
  checked by a signed call, this bot's stale orders cancelled, positions published.

REST: ``connectors.binance_rest``. The process is one asyncio loop; the Kafka consumer's blocking
poll runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from mmflow.config import ConfigError, Settings
from mmflow.connectors.binance_recovery import GAP_MARGIN_MS, recover
from mmflow.connectors.binance_rest import ApiError, Rest, Unreachable
from mmflow.connectors.binance_ws import VENUES, Venue
from mmflow.connectors.kafka_io import LagReporter, client_config, create_topics, producer, publish_event
from mmflow.connectors.metrics import ExecMetrics
from mmflow.connectors.recorder import read_records
from mmflow.exchange_orders import (
    Coalescer,
    Filters,
    client_order_id,
    config_problems,
    intent_of,
    is_ours,
    order_price,
    order_qty,
    order_status,
    quote_sides,
)
from mmflow.ingest import backoff_delay, jittered
from mmflow.models import (
    ID_MAX,
    POST_ONLY_REJECT,
    TERMINAL_STATUSES,
    CancelAllIntent,
    Fill,
    HedgeIntent,
    Intent,
    OrderUpdate,
    Position,
    QuoteIntent,
    Side,
)
from mmflow.rate_budget import RateBudget
from mmflow.wire import WireError, decode_intent

log = logging.getLogger("mmflow.execute")

_ZERO = Decimal(0)
#: Codes that mean the credentials are refused (signature, key, permissions, IP).
AUTH_CODES = frozenset({-1022, -2014, -2015, -1002})
#: Seconds between the periodic position reports (besides one after each fill).
POSITION_INTERVAL_S = 2.0
#: Fill ids remembered so a fill read twice (the stream and a recovery) is published once.
FILL_IDS_KEPT = 100_000


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(eq=False)
class Order:
    market: str
    symbol: str
    client_id: str
    intent_id: str
    side: Side
    kind: str  # quote, hedge
    px: Decimal
    qty: Decimal
    post_only: bool
    intent_ts: int = 0
    filled: Decimal = _ZERO
    status: str = ""  # the last OrderUpdate status published ("" none yet)
    open: bool = True  # not known to be terminal
    order_id: int = 0  # the exchange's, once an answer or an event told it


class Executor:
    def __init__(
        self,
        settings: Settings,
        venue: str,
        symbols: list[str],
        api_key: str,
        api_secret: str,
        metrics: ExecMetrics,
        *,
        rest_url: str | None = None,
        ws_url: str | None = None,
        testnet: bool = False,
        prefix: str = "mmf",
        countdown_s: float = 10.0,
        request_timeout_s: float = 10.0,
        keepalive_s: float = 1800.0,
    ) -> None:
        self.settings, self.kafka = settings, settings.kafka
        self.venue: Venue = VENUES[venue]
        self.spot = self.venue.spot
        self.symbols = symbols
        self.markets = {f"{self.venue.prefix}:{s}": s for s in symbols}
        self.rest_url = (rest_url or (self.venue.testnet_rest if testnet else self.venue.rest)).rstrip("/")
        self.ws_url = (ws_url or (self.venue.testnet_ws if testnet else self.venue.ws)).rstrip("/")
        self._key, self._secret = api_key, api_secret.encode()
        self.metrics = metrics
        self.prefix = prefix
        self.countdown_s, self.timeout_s, self.keepalive_s = countdown_s, request_timeout_s, keepalive_s
        self.api = self.venue.api
        self.listen_path = "/api/v3/userDataStream" if self.spot else "/fapi/v1/listenKey"
        self.filters: dict[str, Filters] = {}
        self.orders: dict[str, Order] = {}  # client id -> order, while it may be open
        self.closed: deque[str] = deque()
        self.coalescer = Coalescer()
        self.wake = asyncio.Event()
        self.fill_counts: dict[str, int] = {}
        self.base_assets: dict[str, str] = {}
        self.stream_up = asyncio.Event()
        self.stream_down_since: float | None = time.monotonic()
        self.listen_key: str | None = None
        self.stream_seen_ms = 0  # exchange time of the stream's last message (or connection)
        self.gap_since_ms: int | None = None  # set while a lost stream's gap is not recovered
        self.fill_ids: set[str] = set()
        self.fill_id_order: deque[str] = deque()
        self.sent = 0
        self.producer = producer(self.kafka)
        self.consumer: Consumer | None = None
        self.rest: Rest

    # -- start -------------------------------------------------------------------------------
    async def start(self, session: aiohttp.ClientSession) -> None:
        self.rest = Rest(
            session,
            self.rest_url,
            self._key,
            self._secret,
            RateBudget(),
            self.metrics,
            self.venue.name,
            self.timeout_s,
        )
        try:
            await self.rest.sync_clock(f"{self.api}/time")
            info = await self.rest.call("GET", f"{self.api}/exchangeInfo")
        except Unreachable as err:
            raise ExchangeDown(f"cannot reach the exchange at {self.rest_url}: {err}") from None
        self.rest.budget = RateBudget.from_exchange_info(info.get("rateLimits", []))
        entries = {e["symbol"]: e for e in info.get("symbols", [])}
        problems = []
        for market, symbol in self.markets.items():
            entry = entries.get(symbol)
            if entry is None or entry.get("status", "TRADING") != "TRADING":
                raise ConfigError(f"execute: the exchange lists no trading symbol {symbol}")
            if market not in self.settings.markets:
                raise ConfigError(f"execute: markets.{market}: no instrument spec in the settings")
            f = self.filters[symbol] = Filters.from_exchange_info(entry)
            self.base_assets[symbol] = entry.get("baseAsset", "")
            spec, quoting = self.settings.spec(market), self.settings.strategy_for(market).quoting
            ticker = await self.rest.call("GET", f"{self.api}/ticker/bookTicker", {"symbol": symbol})
            mid = (Decimal(ticker["bidPrice"]) + Decimal(ticker["askPrice"])) / 2 if ticker else None
            problems += config_problems(market, spec.tick_size, spec.lot_size, quoting.base_size, mid, f)
        if problems:
            raise ConfigError(f"execute: {problems[0]}")
        try:
            await self.rest.call("GET", f"{self.api}/openOrders", {"symbol": self.symbols[0]}, signed=True)
        except ApiError as err:
            if err.code in AUTH_CODES or err.status in (401, 403):
                raise ConfigError(
                    f"execute: the exchange refused the API credentials (MMFLOW_API_KEY/MMFLOW_API_SECRET): "
                    f"{err.code} {err.msg}"
                ) from None
            raise
        self.fill_counts = self._count_fills()
        await self.reconcile()

    def _count_fills(self) -> dict[str, int]:
        """Fills already on the fills topic per market: the count the flow compares positions at."""
        counts = dict.fromkeys(self.markets, 0)
        for key, _ in read_records(self.kafka, self.kafka.fills_topic, idle_s=None):
            market = key.decode() if key else ""
            if market in counts:
                counts[market] += 1
        return counts

    async def reconcile(self) -> None:
        """This bot's orders left by an earlier process are stale: cancel them; others stay."""
        for market, symbol in self.markets.items():
            listed = await self.rest.call("GET", f"{self.api}/openOrders", {"symbol": symbol}, signed=True)
            ours = [o for o in listed if is_ours(self.prefix, o.get("clientOrderId", ""))]
            for o in ours:
                await self._cancel_id(symbol, o["clientOrderId"])
            log.info(
                "execute: %s reconciled: %d stale order(s) of this bot cancelled, %d other order(s) left alone",
                market,
                len(ours),
                len(listed) - len(ours),
            )
        await self.publish_positions()

    # -- positions ---------------------------------------------------------------------------
    async def publish_positions(self) -> None:
        if self.spot:
            account = await self.rest.call("GET", f"{self.api}/account", signed=True)
            held = {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in account["balances"]}
            for market, symbol in self.markets.items():
                self._position(market, held.get(self.base_assets[symbol], _ZERO))
        else:
            rows = await self.rest.call("GET", "/fapi/v2/positionRisk", signed=True)
            amounts = {r["symbol"]: Decimal(r["positionAmt"]) for r in rows}
            for market, symbol in self.markets.items():
                self._position(market, amounts.get(symbol, _ZERO))

    def _position(self, market: str, amount: Decimal) -> None:
        pos = Position(
            market=market,
            ts=_now_us(),
            position=amount,
            fills=self.fill_counts.get(market, 0),
            source=f"execute:{self.venue.name}"[:ID_MAX],
        )
        publish_event(self.producer, self.kafka.positions_topic, pos)
        self.metrics.child("exec_position", market).set(float(amount))

    # -- intents -----------------------------------------------------------------------------
    def open_consumer(self) -> None:
        """Intents from now on (older ones are stale: what they wanted is reconciled away)."""
        topic = self.kafka.intents_topic
        create_topics(
            self.kafka,
            1,
            [topic, self.kafka.fills_topic, self.kafka.orders_topic, self.kafka.positions_topic],
        )
        conf = client_config(
            self.kafka, **{"group.id": f"{self.kafka.group_id}-execute", "enable.auto.commit": "false"}
        )
        consumer = Consumer(conf)
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = []
        for p in sorted(meta.partitions):
            high = _high_watermark(consumer, TopicPartition(topic, p))
            parts.append(TopicPartition(topic, p, high))
        consumer.assign(parts)
        self.consumer = consumer
        self._assigned, self._lag = parts, LagReporter(self.metrics.exec_consumer_lag)

    def _poll(self) -> list[Any]:
        """What has arrived: the first record as soon as it comes (``consume(n, t)`` would wait the
        whole ``t`` for ``n``), then whatever else is already there."""
        assert self.consumer is not None
        self._lag.report(self.consumer, self._assigned)
        first = self.consumer.poll(0.1)
        return [] if first is None else [first, *self.consumer.consume(200, 0)]

    async def consume(self, stop: asyncio.Event) -> None:
        assert self.consumer is not None
        while not stop.is_set():
            msgs = await asyncio.to_thread(self._poll)
            for msg in msgs:
                if msg.error() is not None:
                    log.warning("execute: consumer error: %s", msg.error())
                    continue
                try:
                    intent = decode_intent(msg.value())
                except WireError as err:
                    log.warning("execute: dropped an intent: %s", err)
                    continue
                if intent.market in self.markets:
                    before = self.coalescer.superseded
                    self.coalescer.push(intent)
                    if self.coalescer.superseded > before:
                        self.metrics.child("exec_coalesced", intent.market).inc(
                            self.coalescer.superseded - before
                        )
            if msgs:
                self.wake.set()

    async def work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.wake.wait()
            self.wake.clear()
            by_market: dict[str, list[Intent]] = {}
            for intent in self.coalescer.drain():
                by_market.setdefault(intent.market, []).append(intent)
            await asyncio.gather(*(self._market_intents(items) for items in by_market.values()))

    async def _market_intents(self, items: list[Intent]) -> None:
        for intent in items:
            try:
                if isinstance(intent, QuoteIntent):
                    await self.quote(intent)
                elif isinstance(intent, HedgeIntent):
                    await self.hedge(intent)
                elif isinstance(intent, CancelAllIntent):
                    await self.cancel_all(intent.market)
            except (ApiError, Unreachable) as err:
                log.warning("execute: intent %s not carried out: %s", intent.intent_id, err)

    async def quote(self, intent: QuoteIntent) -> None:
        market, symbol = intent.market, self.markets[intent.market]
        f = self.filters[symbol]
        old = [o for o in self.orders.values() if o.market == market and o.kind == "quote" and o.open]
        if old:
            await asyncio.gather(*(self._cancel(o) for o in old))
            self.metrics.child("exec_replaced", market).inc(len(old))
        placing = []
        for side, px, qty in quote_sides(intent):
            p = order_price(px, side, f)
            q = order_qty(qty, p, f)
            if q is None:
                self.metrics.child("exec_rejected", market, "below_exchange_minimum").inc()
                continue
            cid = client_order_id(self.prefix, intent.intent_id, side)
            order = Order(market, symbol, cid, intent.intent_id, side, "quote", p, q, True, intent.ts)
            params: dict[str, Any] = {
                "symbol": symbol,
                "side": side.upper(),
                "quantity": str(q),
                "price": str(p),
            }
            if self.spot:
                params["type"] = "LIMIT_MAKER"
            else:
                params |= {"type": "LIMIT", "timeInForce": "GTX"}
            placing.append(self._place(order, params))
        await asyncio.gather(*placing)

    async def hedge(self, intent: HedgeIntent) -> None:
        market, symbol = intent.market, self.markets[intent.market]
        f = self.filters[symbol]
        p = order_price(intent.limit_px, intent.side, f)
        q = order_qty(intent.qty, p, f)
        if q is None:
            self.metrics.child("exec_rejected", market, "below_exchange_minimum").inc()
            return
        cid = client_order_id(self.prefix, intent.intent_id, intent.side)
        order = Order(market, symbol, cid, intent.intent_id, intent.side, "hedge", p, q, False, intent.ts)
        params = {
            "symbol": symbol,
            "side": intent.side.upper(),
            "type": "LIMIT",
            "timeInForce": "IOC",
            "quantity": str(q),
            "price": str(p),
            "newClientOrderId": cid,
        }
        await self._place(order, params)

    async def cancel_all(self, market: str) -> None:
        """Every open order of this bot on ``market`` (the exchange's list and ours); no other."""
        symbol = self.markets[market]
        listed = await self.rest.call("GET", f"{self.api}/openOrders", {"symbol": symbol}, signed=True)
        ids = {o["clientOrderId"] for o in listed if is_ours(self.prefix, o.get("clientOrderId", ""))}
        ids |= {o.client_id for o in self.orders.values() if o.market == market and o.open}
        await asyncio.gather(*(self._cancel_id(symbol, cid) for cid in sorted(ids)))

    async def cancel_everything(self) -> None:
        for market in self.markets:
            try:
                await self.cancel_all(market)
            except (ApiError, Unreachable) as err:
                log.warning("execute: cancelling %s failed: %s", market, err)

    # -- order requests ----------------------------------------------------------------------
    async def _place(self, order: Order, params: dict[str, Any]) -> None:
        params["newClientOrderId"] = order.client_id
        self.orders[order.client_id] = order
        self.metrics.child("exec_orders_sent", order.market, order.kind).inc()
        self.sent += 1
        in_flight = self.metrics.child("exec_in_flight", order.market)
        in_flight.inc()
        try:
            for attempt in range(1, 6):
                try:
                    body = await self.rest.call("POST", f"{self.api}/order", params, signed=True, order=True)
                except ApiError as err:
                    if self._duplicate(err):
                        body = await self._lookup(order)
                        if body is not None:
                            self._answered(order, body)
                            return
                        continue
                    self._refused(order, err)
                    return
                except Unreachable as err:
                    # It may have been placed: look before sending it again (the same client id).
                    log.warning(
                        "execute: %s %s unanswered (%s); looking it up", order.client_id, order.side, err
                    )
                    body = await self._lookup(order)
                    if body is not None:
                        self._answered(order, body)
                        return
                    await asyncio.sleep(jittered(backoff_delay(attempt), random.random()))
                    continue
                self._answered(order, body)
                return
            log.error("execute: %s not placed after retries", order.client_id)
        finally:
            in_flight.dec()
            self._resting_gauge(order.market)

    def _duplicate(self, err: ApiError) -> bool:
        return err.code == -4116 or (err.code == -2010 and "duplicate" in err.msg.lower())

    async def _lookup(self, order: Order) -> dict[str, Any] | None:
        """The order named by its client id, or None when the exchange has no such order; waits
        (with backoff) while the exchange does not answer."""
        params = {"symbol": order.symbol, "origClientOrderId": order.client_id}
        for attempt in range(1, 30):
            try:
                return await self.rest.call("GET", f"{self.api}/order", params, signed=True)
            except ApiError as err:
                if err.code == -2013:
                    return None
                raise
            except Unreachable:
                await asyncio.sleep(jittered(backoff_delay(attempt, cap=5.0), random.random()))
        raise Unreachable(f"GET order {order.client_id}: no answer")

    def _answered(self, order: Order, body: dict[str, Any]) -> None:
        order.order_id = order.order_id or int(body.get("orderId") or 0)
        if order.intent_ts:
            self.metrics.child("exec_tick_to_order", order.market).observe(
                max(0.0, (_now_us() - order.intent_ts) / 1e6)
            )
            order.intent_ts = 0
        status = body.get("status")
        if isinstance(status, str):
            self._update(order, status, Decimal(str(body.get("executedQty", "0"))))

    def _refused(self, order: Order, err: ApiError) -> None:
        post_only = err.code == -5022 or (err.code == -2010 and "immediately match" in err.msg.lower())
        reason = POST_ONLY_REJECT if post_only else f"{err.code} {err.msg}"[:256]
        self.metrics.child(
            "exec_rejected", order.market, POST_ONLY_REJECT if post_only else str(err.code)
        ).inc()
        if not post_only:
            log.warning("execute: %s refused: %s", order.client_id, err)
        self._publish_update(order, "rejected", reason)

    async def _cancel(self, order: Order) -> None:
        await self._cancel_id(order.symbol, order.client_id)

    async def _cancel_id(self, symbol: str, client_id: str) -> None:
        params = {"symbol": symbol, "origClientOrderId": client_id}
        for attempt in range(1, 6):
            try:
                body = await self.rest.call("DELETE", f"{self.api}/order", params, signed=True)
            except ApiError as err:
                if err.code == -2011:  # gone already (filled, cancelled): the stream says which
                    order = self.orders.get(client_id)
                    if order is not None and order.status in ("", "accepted") and order.filled == 0:
                        order.open = False
                    return
                raise
            except Unreachable:
                await asyncio.sleep(jittered(backoff_delay(attempt, cap=5.0), random.random()))
                continue
            order = self.orders.get(client_id)
            if order is not None:
                self._update(
                    order, str(body.get("status", "CANCELED")), Decimal(str(body.get("executedQty", "0")))
                )
                self._resting_gauge(order.market)
            return

    # -- updates out -------------------------------------------------------------------------
    def _update(self, order: Order, exchange_status: str, filled: Decimal) -> None:
        mapped = order_status(exchange_status, order.post_only, filled)
        if mapped is None:
            return
        status, reason = mapped
        if filled > order.filled:
            order.filled = filled
        if reason == POST_ONLY_REJECT:
            self.metrics.child("exec_rejected", order.market, POST_ONLY_REJECT).inc()
        self._publish_update(order, status, reason)

    def _publish_update(self, order: Order, status: str, reason: str = "") -> None:
        if status == order.status and status != "partially_filled":
            return  # the REST answer and the stream both tell it: once is enough
        if order.status in TERMINAL_STATUSES:
            return
        order.status = status
        if status in TERMINAL_STATUSES:
            order.open = False  # kept a while: its fills may still come on the stream
            self.closed.append(order.client_id)
            while len(self.closed) > 10_000:
                self.orders.pop(self.closed.popleft(), None)
        update = OrderUpdate(
            market=order.market,
            ts=_now_us(),
            intent_id=order.intent_id,
            side=order.side,
            kind=order.kind,  # type: ignore[arg-type]
            status=status,  # type: ignore[arg-type]
            px=order.px,
            qty=order.qty,
            filled_qty=min(order.filled, order.qty),
            reason=reason,
            source=f"execute:{self.venue.name}"[:ID_MAX],
        )
        publish_event(self.producer, self.kafka.orders_topic, update)
        self._resting_gauge(order.market)

    def _resting_gauge(self, market: str) -> None:
        n = sum(1 for o in self.orders.values() if o.market == market and o.open and o.status)
        self.metrics.child("exec_resting", market).set(n)

    # -- the user-data stream ----------------------------------------------------------------
    async def user_stream(
        self, session: aiohttp.ClientSession, stop: asyncio.Event, up: asyncio.Event
    ) -> None:
        """The user-data stream, reconnected with backoff (a new listenKey, or the active one again
        as Binance answers); after a lost connection, its gap is recovered by REST first."""
        attempt = 0
        while not stop.is_set():
            connected = False
            try:
                body = await self.rest.call("POST", self.listen_path, key=True)
                self.listen_key = body["listenKey"]
                url = f"{self.ws_url.removesuffix('/stream').removesuffix('/ws')}/ws/{self.listen_key}"
                async with session.ws_connect(url, heartbeat=30) as ws:
                    connected = True
                    self._stream_state(True)
                    up.set()
                    if self.gap_since_ms is not None:
                        self.metrics.child("exec_stream_reconnects", self.venue.name).inc()
                        await recover(self, self.gap_since_ms)
                        self.gap_since_ms = None
                    attempt = 0
                    await self._read_stream(ws)
            except (aiohttp.ClientError, ApiError, Unreachable, TimeoutError) as err:
                log.warning("execute: user stream: %s", err)
            except (KeyError, ValueError, TypeError) as err:
                log.warning("execute: user stream: an unreadable answer while recovering its gap: %r", err)
            if connected and self.gap_since_ms is None:
                log.warning("execute: user stream lost; reconnecting, then reading back what it missed")
                self.gap_since_ms = self.stream_seen_ms - GAP_MARGIN_MS
            self._stream_state(False)
            if stop.is_set():
                return
            attempt += 1
            await asyncio.sleep(jittered(backoff_delay(attempt, cap=10.0), random.random()))

    async def _read_stream(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.stream_seen_ms = self._exchange_ms()
                try:
                    self.on_user_event(orjson.loads(msg.data))
                except (KeyError, ValueError, TypeError) as err:
                    log.warning("execute: unreadable user-stream event: %s", err)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                break

    def _stream_state(self, up: bool) -> None:
        self.metrics.child("exec_stream_connected", self.venue.name).set(int(up))
        if up:
            self.stream_up.set()
            self.stream_down_since = None
            self.stream_seen_ms = self._exchange_ms()
            return
        self.stream_up.clear()
        if self.stream_down_since is None:
            self.stream_down_since = time.monotonic()

    def _exchange_ms(self) -> int:
        return int(time.time() * 1000) + self.rest.offset_ms

    async def keepalive(self, stop: asyncio.Event) -> None:
        while not await _wait(stop, self.keepalive_s):
            try:
                await self.rest.call("PUT", self.listen_path, {"listenKey": self.listen_key}, key=True)
            except (ApiError, Unreachable) as err:
                log.warning("execute: listenKey keep-alive: %s", err)

    def on_user_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("e")
        if kind == "ORDER_TRADE_UPDATE":
            o = ev["o"]
            self._execution(o["s"], o["c"], o)
        elif kind == "executionReport":
            cid = ev["C"] if ev.get("x") == "CANCELED" and ev.get("C") else ev["c"]
            self._execution(ev["s"], cid, ev)
        elif kind == "ACCOUNT_UPDATE":
            for p in ev.get("a", {}).get("P", []):
                market = f"{self.venue.prefix}:{p['s']}"
                if market in self.markets and p.get("ps", "BOTH") == "BOTH":
                    self._position(market, Decimal(p["pa"]))
        elif kind == "outboundAccountPosition":
            held = {b["a"]: Decimal(b["f"]) + Decimal(b["l"]) for b in ev.get("B", [])}
            for market, symbol in self.markets.items():
                asset = self.base_assets.get(symbol)
                if asset in held:
                    self._position(market, held[asset])

    def _execution(self, symbol: str, cid: str, o: dict[str, Any]) -> None:
        market = f"{self.venue.prefix}:{symbol}"
        if market not in self.markets or not is_ours(self.prefix, cid):
            return
        order = self.orders.get(cid)
        if order is None:
            mapped = intent_of(self.prefix, market, cid)
            if mapped is None:
                return
            post_only = o.get("f") == "GTX" or o.get("o") == "LIMIT_MAKER"
            order = Order(
                market, symbol, cid, mapped[0], mapped[1], "quote" if post_only else "hedge",
                Decimal(o["p"]), Decimal(o["q"]), post_only,
            )  # fmt: skip
            self.orders[cid] = order
        order.order_id = order.order_id or int(o.get("i") or 0)
        if o.get("x") == "TRADE":
            self.publish_fill(
                order,
                trade_id=int(o["t"]),
                ts_ms=int(o.get("T") or time.time() * 1000),
                px=Decimal(o["L"]),
                qty=Decimal(o["l"]),
                fee=Decimal(o.get("n") or "0"),
                fee_asset=o.get("N"),
                maker=bool(o.get("m")),
            )
        self._update(order, o["X"], Decimal(o.get("z", "0")))

    def publish_fill(
        self,
        order: Order,
        *,
        trade_id: int,
        ts_ms: int,
        px: Decimal,
        qty: Decimal,
        fee: Decimal,
        fee_asset: str | None,
        maker: bool,
    ) -> bool:
        """One exchange trade of ``order`` on the fills topic, unless it already is (the stream
        and a gap's recovery may both tell it); True when published."""
        fill_id = f"{order.market}-T{order.side[0]}-{trade_id}"
        if fill_id in self.fill_ids:
            return False
        self.fill_ids.add(fill_id)
        self.fill_id_order.append(fill_id)
        while len(self.fill_id_order) > FILL_IDS_KEPT:
            self.fill_ids.discard(self.fill_id_order.popleft())
        if fee_asset and fee_asset == self.base_assets.get(order.symbol):
            fee = fee * px  # a commission in the base asset, in quote terms
        fill = Fill(
            market=order.market,
            ts=ts_ms * 1000,
            fill_id=fill_id,
            intent_id=order.intent_id,
            side=order.side,
            px=px,
            qty=qty,
            fee=fee,
            liquidity="maker" if maker else "taker",
            source="maker" if order.kind == "quote" else "hedge",
        )
        publish_event(self.producer, self.kafka.fills_topic, fill)
        self.fill_counts[order.market] = self.fill_counts.get(order.market, 0) + 1
        self.metrics.child("exec_fills", order.market).inc()
        return True

    # -- the dead man's switch -----------------------------------------------------------------
    async def dead_mans_switch(self, stop: asyncio.Event) -> None:
        """USD-M: countdownCancelAll armed per symbol, refreshed every third of the countdown.
        Spot: the bot's orders cancelled when its user stream has been down a whole countdown."""
        ms = int(self.countdown_s * 1000)
        while True:
            if self.spot:
                down = self.stream_down_since
                if down is not None and time.monotonic() - down >= self.countdown_s:
                    if any(o.open for o in self.orders.values()):
                        log.warning(
                            "execute: user stream down %.0f s: cancelling this bot's orders",
                            time.monotonic() - down,
                        )
                        await self.cancel_everything()
            else:
                for symbol in self.symbols:
                    try:
                        await self.rest.call(
                            "POST",
                            "/fapi/v1/countdownCancelAll",
                            {"symbol": symbol, "countdownTime": ms},
                            signed=True,
                        )
                    except (ApiError, Unreachable) as err:
                        log.warning("execute: countdownCancelAll %s: %s", symbol, err)
            if await _wait(stop, self.countdown_s / 3):
                return

    async def disarm(self) -> None:
        if self.spot:
            return
        for symbol in self.symbols:
            try:
                await self.rest.call(
                    "POST", "/fapi/v1/countdownCancelAll", {"symbol": symbol, "countdownTime": 0}, signed=True
                )
            except (ApiError, Unreachable) as err:
                log.warning("execute: disarming the countdown of %s: %s", symbol, err)

    # -- the loop ----------------------------------------------------------------------------
    async def positions_loop(self, stop: asyncio.Event) -> None:
        while not await _wait(stop, POSITION_INTERVAL_S):
            try:
                await self.publish_positions()
            except (ApiError, Unreachable) as err:
                log.warning("execute: positions: %s", err)

    async def poll_producer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.producer.poll(0)
            await asyncio.sleep(0.02)

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            await self.start(session)
            up = asyncio.Event()
            tasks = [asyncio.ensure_future(self.poll_producer(stop))]
            tasks.append(asyncio.ensure_future(self.user_stream(session, stop, up)))
            try:
                await asyncio.wait_for(up.wait(), 30)
            except TimeoutError:
                raise ExchangeDown("the user-data stream did not connect within 30 s") from None
            tasks.append(asyncio.ensure_future(self.dead_mans_switch(stop)))
            await asyncio.to_thread(self.open_consumer)
            tasks += [
                asyncio.ensure_future(self.keepalive(stop)),
                asyncio.ensure_future(self.positions_loop(stop)),
                asyncio.ensure_future(self.consume(stop)),
            ]
            worker = asyncio.ensure_future(self.work(stop))
            log.info(
                "execute: ready on %s (%s) for %s, client ids %s-*",
                self.venue.name,
                self.rest_url,
                ",".join(self.symbols),
                self.prefix,
            )
            await stop.wait()
            self.wake.set()
            worker.cancel()
            await _quietly(worker)
            log.info("execute: stopping: cancelling this bot's orders")
            await self.cancel_everything()
            await self.disarm()
            if self.listen_key:
                try:
                    await self.rest.call("DELETE", self.listen_path, {"listenKey": self.listen_key}, key=True)
                except (ApiError, Unreachable):
                    pass
            for t in tasks:
                t.cancel()
            for t in tasks:
                await _quietly(t)
        if self.consumer is not None:
            await asyncio.sleep(0.3)  # the worker thread's last poll returns
            self.consumer.close()
        self.producer.flush(10)


_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    }
)


def _high_watermark(consumer: Consumer, tp: TopicPartition, attempts: int = 50) -> int:
    """The partition's end, asked again while a just-created topic has no leader yet."""
    for attempt in range(1, attempts + 1):
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=10)[1])
        except KafkaException as exc:
            err = exc.args[0]
            if attempt == attempts or not (
                isinstance(err, KafkaError) and (err.retriable() or err.code() in _NO_LEADER_YET)
            ):
                raise
            time.sleep(0.2)
    raise AssertionError("not reached")


class ExchangeDown(Exception):
    """The exchange cannot be used at start (exit 1)."""


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False


async def _quietly(task: Awaitable[Any]) -> None:
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
        pass
