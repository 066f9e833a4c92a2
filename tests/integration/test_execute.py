"""``mmflow execute`` against the exchange simulator over real sockets, with a real Kafka broker.

The simulator (``create_app``, what ``mmflow exchange-sim`` serves) runs in a thread of the test
on a free port, over the BTCUSDT frames replayed to their end (a still market) and the recorded
exchangeInfo; ``mmflow execute`` is the real command in its own process. Intents are published
to the intents topic; what reaches the exchange is read back from the simulator's REST API.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Producer

from mmflow.config import load_settings
from mmflow.connectors.exchange_sim.app import EXCHANGE, SimConfig
from mmflow.connectors.recorder import read_records
from mmflow.ids import incarnation_of, make_id
from mmflow.models import (
    POST_ONLY_REJECT,
    CancelAllIntent,
    Fill,
    HedgeIntent,
    Intent,
    OrderUpdate,
    Position,
    QuoteIntent,
)
from mmflow.wire import decode_input, encode
from tests.conftest import BTC_FRAMES, ETH_FRAMES, EXCHANGE_INFO
from tests.integration.exchange_sim_client import KEY, SECRET, SimServer, call, gtx_buy, signed
from tests.integration.test_kafka_e2e import mmflow, topic_sets
from tests.integration.test_metrics_http import free_port, scrape
from tests.integration.trading_loop import Proc, until

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
BTC = "binance-futures:BTCUSDT"
T = TypeVar("T")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    if not BTC_FRAMES.exists() or not EXCHANGE_INFO.exists():
        pytest.skip("the BTCUSDT frames or the recorded exchangeInfo are not under ../shared/data")
    server = SimServer(
        SimConfig("binance-usdm", BTC_FRAMES, KEY, SECRET, speed=0, exchange_info=EXCHANGE_INFO)
    )
    server.wait_replayed()
    yield server
    server.stop()


@pytest.fixture
def sets(kafka_bootstrap: str, unique_topic_prefix: str) -> list[str]:
    return [f"kafka.bootstrap_servers={kafka_bootstrap}", *topic_sets(unique_topic_prefix)]


@pytest.fixture(autouse=True)
def _clean(sim: SimServer) -> Iterator[None]:
    yield
    sim.faults(fail_status=None, delay_ms=0, ws_drop_after=None, clock_skew_ms=0)
    signed(sim, "POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=0)
    signed(sim, "DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")


def _args(sim: SimServer, sets: list[str], *extra: str) -> list[str]:
    args = ["execute", "--rest-url", sim.base, "--ws-url", sim.ws_base, *extra]
    if "--venue" not in extra:
        args += ["--venue", "binance-usdm", "--symbols", "BTCUSDT"]
    return mmflow(*args, *[a for s in sets for a in ("--set", s)])


def _env(secret: str = SECRET) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MMFLOW_API_KEY": KEY, "MMFLOW_API_SECRET": secret}


class Execute(Proc):
    """``mmflow execute`` against ``sim``, ready to take intents."""

    def __init__(self, sim: SimServer, sets: list[str], log: Path, *extra: str) -> None:
        super().__init__(_args(sim, sets, *extra), log, _env())
        self.wait_for("execute: ready", 90)

    def stop(self, timeout: float = 30) -> int:
        return super().stop(timeout)


@pytest.fixture
def running() -> Iterator[list[Execute]]:
    started: list[Execute] = []
    yield started
    for ex in started:
        ex.kill()


class Intents:
    def __init__(self, sets: list[str], market: str = BTC) -> None:
        self.market = market
        self.kafka = load_settings(None, None, sets).kafka
        self.producer = Producer({"bootstrap.servers": self.kafka.bootstrap_servers})
        self.incarnation = incarnation_of(time.time_ns() // 1000)
        self.seq = 0

    def next_id(self) -> str:
        self.seq += 1
        return make_id(f"{self.market}-{self.incarnation}", self.seq)

    def cid(self, seq: int, side: str) -> str:
        return f"mmf-{self.incarnation}-{seq}{side}"

    def send(self, intent: Intent) -> None:
        self.producer.produce(self.kafka.intents_topic, key=self.market.encode(), value=encode(intent))
        assert self.producer.flush(10) == 0

    def quote(self, bid: D | None, ask: D | None, qty: D = D("0.01")) -> QuoteIntent:
        q = QuoteIntent(
            market=self.market,
            ts=time.time_ns() // 1000,
            intent_id=self.next_id(),
            bid_px=bid,
            bid_qty=qty if bid else None,
            ask_px=ask,
            ask_qty=qty if ask else None,
            best_bid=bid or D(1),
            best_ask=ask or D(1),
            inventory=D(0),
        )
        self.send(q)
        return q

    def records(self, topic: str) -> list[Any]:
        return [decode_input(v) for _, v in read_records(self.kafka, topic, idle_s=None)]


def _started(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> tuple[Execute, int, Intents]:
    """``mmflow execute`` ready, its metrics port, and an intent sender for it."""
    port = free_port()
    ex = Execute(sim, sets, tmp_path / "execute.log", "--metrics-port", str(port))
    running.append(ex)
    return ex, port, Intents(sets)


def _touch(sim: SimServer) -> tuple[D, D]:
    t = signed(sim, "GET", "/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")[2]
    return D(t["bidPrice"]), D(t["askPrice"])


def _open(sim: SimServer) -> dict[str, dict]:
    status, _, orders = signed(sim, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    if status == 429:  # the fault switch is on for the test's own client too
        return {}
    assert status == 200, orders
    return {o["clientOrderId"]: o for o in orders}


def _open_with(sim: SimServer, ids: set[str]) -> dict[str, dict] | None:
    orders = _open(sim)
    return orders if ids <= set(orders) else None


def _open_at(sim: SimServer, skew_ms: int) -> dict[str, dict]:
    """``_open`` signed on the simulator's skewed clock (``clock_skew_ms``)."""
    now = int(time.time() * 1000) + skew_ms
    status, _, orders = call(
        sim, "GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, signed=True, key=KEY, timestamp=now
    )
    assert status == 200, orders
    return {o["clientOrderId"]: o for o in orders}


def _placed(sim: SimServer, cid: str) -> int:
    """How many orders the simulated account ever took with client id ``cid``."""
    return [o.client_id for o in sim.runner.app[EXCHANGE].account.orders.values()].count(cid)


def _hedge(intents: Intents, side: str, limit: D, qty: D = D("0.002")) -> HedgeIntent:
    hedge = HedgeIntent(
        market=intents.market,
        ts=time.time_ns() // 1000,
        intent_id=intents.next_id(),
        side=side,  # type: ignore[arg-type]
        qty=qty,
        limit_px=limit,
        best_bid=limit,
        best_ask=limit,
        inventory=D(0),
    )
    intents.send(hedge)
    return hedge


def _of(intents: Intents, topic: str, kind: type[T]) -> list[T]:
    return [r for r in intents.records(topic) if isinstance(r, kind)]


def _metric(port: int, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when it is not there yet)."""
    return scrape(port).get((name, frozenset(labels.items())), 0.0)


def _manual(sim: SimServer, cid: str, px: D) -> None:
    status, _, body = gtx_buy(sim, px, newClientOrderId=cid)
    assert status == 200, body


# -- 1. intents become orders; replace; cancel-all spares other orders --------------------------------


def test_quotes_become_orders_replaced_and_cancel_all_spares_other_orders(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    _manual(sim, "manual-1", bid - 500)
    port = free_port()
    running.append(Execute(sim, sets, tmp_path / "execute.log", "--metrics-port", str(port)))
    intents = Intents(sets)
    intents.quote(bid - D("100.075"), ask + D("100.005"))  # off the 0.01 tick: bid down, ask up
    b1, s1 = intents.cid(1, "b"), intents.cid(1, "s")
    orders = until(lambda: _open_with(sim, {b1, s1}), 30, "the quote never rested")
    assert D(orders[b1]["price"]) == bid - D("100.08") and orders[b1]["timeInForce"] == "GTX"
    assert D(orders[s1]["price"]) == ask + D("100.01")
    assert D(orders[b1]["origQty"]) == D("0.01") and orders[s1]["side"] == "SELL"

    intents.quote(bid - 50, ask + 50)
    b2, s2 = intents.cid(2, "b"), intents.cid(2, "s")
    until(lambda: set(_open(sim)) == {"manual-1", b2, s2}, 30, "the second quote did not replace the first")

    intents.send(CancelAllIntent(market=BTC, ts=time.time_ns() // 1000, intent_id=intents.next_id()))
    until(lambda: set(_open(sim)) == {"manual-1"}, 30, "cancel-all left the bot's orders or took another's")

    updates = until(
        lambda: (
            (u := [r for r in intents.records(intents.kafka.orders_topic) if isinstance(r, OrderUpdate)])
            and len(u) >= 8
            and u
        ),
        30,
        "the order updates did not arrive",
    )
    by = {(u.intent_id, u.side, u.status) for u in updates}
    first, second = make_id(f"{BTC}-{intents.incarnation}", 1), make_id(f"{BTC}-{intents.incarnation}", 2)
    for iid in (first, second):
        for side in ("buy", "sell"):
            assert {(iid, side, "accepted"), (iid, side, "cancelled")} <= by
    samples = scrape(port)
    assert samples[("mmflow_exec_orders_sent_total", frozenset({("market", BTC), ("kind", "quote")}))] == 4
    assert samples[("mmflow_exec_orders_replaced_total", frozenset({("market", BTC)}))] == 2
    assert running[0].stop() == 0


def test_a_crossing_quote_is_rejected_post_only(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    running.append(Execute(sim, sets, tmp_path / "execute.log"))
    intents = Intents(sets)
    q = intents.quote(ask, None)  # a bid at the ask would take: GTX refuses it (-5022)
    (update,) = until(
        lambda: [r for r in intents.records(intents.kafka.orders_topic) if isinstance(r, OrderUpdate)],
        30,
        "no order update",
    )
    assert (update.intent_id, update.side, update.status, update.reason) == (
        q.intent_id,
        "buy",
        "rejected",
        POST_ONLY_REJECT,
    )
    assert not _open(sim)


# -- 2. fills and order updates out; positions equal positionRisk --------------------------------------


def test_a_fill_reaches_the_fills_and_orders_topics_and_positions_match_position_risk(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    running.append(Execute(sim, sets, tmp_path / "execute.log"))
    intents = Intents(sets)
    _, ask = _touch(sim)
    hedge = HedgeIntent(
        market=BTC,
        ts=time.time_ns() // 1000,
        intent_id=intents.next_id(),
        side="buy",
        qty=D("0.002"),
        limit_px=ask + 50,
        best_bid=ask - 1,
        best_ask=ask,
        inventory=D(0),
    )
    intents.send(hedge)
    fills = until(
        lambda: [f for f in intents.records(intents.kafka.fills_topic) if isinstance(f, Fill)],
        30,
        "no fill on the fills topic",
    )
    (fill,) = fills
    assert (fill.intent_id, fill.side, fill.qty, fill.liquidity, fill.source) == (
        hedge.intent_id,
        "buy",
        D("0.002"),
        "taker",
        "hedge",
    )
    assert fill.px == ask and fill.fee > 0 and fill.fill_id.startswith(f"{BTC}-Tb-")
    updates = until(
        lambda: [u for u in intents.records(intents.kafka.orders_topic) if isinstance(u, OrderUpdate)],
        30,
        "no order update",
    )
    assert [(u.intent_id, u.kind, u.status, u.filled_qty) for u in updates if u.status == "filled"] == [
        (hedge.intent_id, "hedge", "filled", D("0.002"))
    ]
    [risk] = signed(sim, "GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")[2]

    def latest() -> Position | None:
        pos = [p for p in intents.records(intents.kafka.positions_topic) if isinstance(p, Position)]
        return pos[-1] if pos and pos[-1].position == D(risk["positionAmt"]) and pos[-1].fills == 1 else None

    pos = until(latest, 30, "no position equal to positionRisk")
    assert pos.market == BTC and pos.position != 0
    # back to flat for the other tests
    signed(
        sim,
        "POST",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity=risk["positionAmt"],
    )


# -- 3. SIGKILL: the countdown cancels; a restart reconciles ---------------------------------------------


def test_sigkill_the_countdown_cancels_and_a_restart_reconciles(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    ex = Execute(sim, sets, tmp_path / "first.log", "--countdown", "2")
    running.append(ex)
    intents = Intents(sets)
    intents.quote(bid - 100, ask + 100)
    until(lambda: {intents.cid(1, "b"), intents.cid(1, "s")} <= set(_open(sim)), 30, "no quote resting")
    ex.kill()
    killed = time.monotonic()
    until(lambda: not _open(sim), 10, "the bot's orders outlived the countdown")
    assert time.monotonic() - killed < 2 + 1.5
    # As if a dead process had left one (the countdown was not yet due), beside another client's.
    _manual(sim, "mmf-1a2b-7b", bid - 300)
    _manual(sim, "manual-2", bid - 301)
    again = Execute(sim, sets, tmp_path / "second.log")
    running.append(again)
    assert set(_open(sim)) == {"manual-2"}
    assert "1 stale order(s) of this bot cancelled, 1 other order(s) left alone" in again.text()
    assert again.stop() == 0


# -- 4. refused credentials and settings that do not fit the filters: exit 2, one line -------------------


def test_a_bad_api_secret_is_one_line_and_exit_2(sim: SimServer, sets: list[str]) -> None:
    secret = "wrong-secret-value-42"
    done = subprocess.run(
        _args(sim, sets), cwd=REPO, capture_output=True, text=True, timeout=120, env=_env(secret)
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("mmflow")]
    assert "refused the API credentials" in line and "-1022" in line
    assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (
            "markets.binance-futures:BTCUSDT.tick_size=0.005",
            "tick_size 0.005 is not a multiple of the exchange's tickSize 0.01",
        ),
        (
            "strategy.quoting.base_size=0.0005",
            "base_size 0.0005 (binance-futures:BTCUSDT) is below the exchange's minQty 0.001",
        ),
    ],
)
def test_settings_that_do_not_fit_the_filters_exit_2_naming_the_field(
    sim: SimServer, sets: list[str], override: str, named: str
) -> None:
    done = subprocess.run(
        _args(sim, [*sets, override]), cwd=REPO, capture_output=True, text=True, timeout=120, env=_env()
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("mmflow")]
    assert named in line


# -- 5. 429s backed off; a retry after a timeout makes no second order -----------------------------------


def test_a_burst_of_429s_is_backed_off(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    ex = Execute(sim, sets, tmp_path / "execute.log")
    running.append(ex)
    intents = Intents(sets)
    sim.faults(fail_status=429, fail_for_s=2)
    started = time.monotonic()
    intents.quote(bid - 100, ask + 100)
    until(lambda: {intents.cid(1, "b"), intents.cid(1, "s")} <= set(_open(sim)), 30, "never placed")
    assert time.monotonic() - started >= 1.0
    assert "backing off per Retry-After" in ex.text()
    assert ex.stop() == 0


def test_a_retry_after_a_timeout_never_creates_a_second_order(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, _ = _touch(sim)
    ex = Execute(sim, sets, tmp_path / "execute.log", "--request-timeout", "0.5")
    running.append(ex)
    intents = Intents(sets)
    sim.faults(delay_ms=1200)  # every answer later than the client waits: it cannot know
    intents.quote(bid - 100, None)
    cid = intents.cid(1, "b")
    until(lambda: "unanswered" in ex.text(), 30, "the request did not time out")
    time.sleep(2.5)
    sim.faults(delay_ms=0)
    until(lambda: cid in _open(sim), 30, "never placed")
    time.sleep(2)  # any retry has had its chance
    account = sim.runner.app[EXCHANGE].account
    assert [o.client_id for o in account.orders.values()].count(cid) == 1
    assert list(_open(sim)) == [cid]


# -- spot ----------------------------------------------------------------------------------------------


def test_spot_quotes_are_limit_maker_and_a_hedge_fill_moves_the_base_position(
    sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    if not ETH_FRAMES.exists():
        pytest.skip("the ETHUSDT frames are not under ../shared/data")
    spot = SimServer(SimConfig("binance-spot", ETH_FRAMES, KEY, SECRET, speed=0))
    try:
        spot.wait_replayed()
        market = "binance:ETHUSDT"
        t = signed(spot, "GET", "/api/v3/ticker/bookTicker", symbol="ETHUSDT")[2]
        bid, ask = D(t["bidPrice"]), D(t["askPrice"])
        running.append(
            Execute(spot, sets, tmp_path / "spot.log", "--venue", "binance-spot", "--symbols", "ETHUSDT")
        )
        intents = Intents(sets, market)
        intents.quote(bid - 10, ask + 10)

        def resting() -> dict[str, dict] | None:
            orders = {
                o["clientOrderId"]: o for o in signed(spot, "GET", "/api/v3/openOrders", symbol="ETHUSDT")[2]
            }
            return orders if {intents.cid(1, "b"), intents.cid(1, "s")} <= set(orders) else None

        orders = until(resting, 30, "the spot quote never rested")
        assert {o["type"] for o in orders.values()} == {"LIMIT_MAKER"}
        hedge = HedgeIntent(
            market=market,
            ts=time.time_ns() // 1000,
            intent_id=intents.next_id(),
            side="buy",
            qty=D("0.01"),
            limit_px=ask + 5,
            best_bid=bid,
            best_ask=ask,
            inventory=D(0),
        )
        intents.send(hedge)
        (fill,) = until(
            lambda: [f for f in intents.records(intents.kafka.fills_topic) if isinstance(f, Fill)],
            30,
            "no fill",
        )
        assert (fill.intent_id, fill.qty, fill.px, fill.liquidity) == (
            hedge.intent_id,
            D("0.01"),
            ask,
            "taker",
        )
        eth = next(b for b in signed(spot, "GET", "/api/v3/account")[2]["balances"] if b["asset"] == "ETH")
        held = D(eth["free"]) + D(eth["locked"])
        until(
            lambda: any(
                isinstance(p, Position) and p.position == held and p.fills == 1
                for p in intents.records(intents.kafka.positions_topic)
            ),
            30,
            "no position equal to the ETH balance",
        )
        assert running[-1].stop() == 0
        assert not signed(spot, "GET", "/api/v3/openOrders", symbol="ETHUSDT")[2]  # cancelled at stop
    finally:
        spot.stop()


# -- 6. a dropped user stream: reconnected, and what it missed read back ----------------------------------


def test_a_dropped_user_stream_reconnects_and_recovers_the_fill_and_the_cancel_it_missed(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    started_ms = int(time.time() * 1000)
    ex, port, intents = _started(sim, sets, tmp_path, running)
    quote = intents.quote(bid - 100, None)
    b1 = intents.cid(1, "b")
    until(lambda: b1 in _open(sim), 30, "the quote never rested")
    # From now on every user-stream message drops its connection instead of arriving: whatever
    # reaches the topics comes from REST (order answers, or the recovery after each reconnect).
    sim.faults(ws_drop_after=0)
    buy = _hedge(intents, "buy", ask + 50)
    (fill,) = until(
        lambda: [f for f in _of(intents, intents.kafka.fills_topic, Fill) if f.intent_id == buy.intent_id],
        30,
        "the hedge's fill, which the stream never delivered, was not recovered",
    )
    assert signed(sim, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId=b1)[0] == 200

    def cancelled() -> bool:
        ends = [u for u in _of(intents, intents.kafka.orders_topic, OrderUpdate) if u.status == "cancelled"]
        return any(u.intent_id == quote.intent_id for u in ends)

    until(cancelled, 30, "the quote another client cancelled while the stream was down was not recovered")
    assert _metric(port, "mmflow_exec_recovered_total", market=BTC, kind="fill") == 1
    assert _metric(port, "mmflow_exec_recovered_total", market=BTC, kind="order_update") >= 1
    assert _metric(port, "mmflow_exec_user_stream_reconnects_total", venue="binance-usdm") >= 2

    sim.faults(ws_drop_after=None)  # the stream delivers again: trading goes on
    intents.quote(bid - 120, None)
    until(lambda: intents.cid(3, "b") in _open(sim), 30, "a quote after the reconnects never rested")
    sell = _hedge(intents, "sell", bid - 50)  # back to flat, its fill by the stream
    until(
        lambda: any(f.intent_id == sell.intent_id for f in _of(intents, intents.kafka.fills_topic, Fill)),
        30,
        "no fill by the reconnected stream",
    )
    time.sleep(1.5)  # a second copy of a fill has had its chance
    fills = _of(intents, intents.kafka.fills_topic, Fill)
    trades = signed(sim, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=started_ms)[2]
    sides = {"BUY": "b", "SELL": "s"}
    assert sorted(f.fill_id for f in fills) == sorted(f"{BTC}-T{sides[t['side']]}-{t['id']}" for t in trades)
    assert len(trades) >= 2
    (bought,) = [t for t in trades if t["side"] == "BUY"]
    assert (fill.px, fill.qty, fill.fee, fill.ts) == (
        D(bought["price"]),
        D(bought["qty"]),
        D(bought["commission"]),
        bought["time"] * 1000,
    )
    assert (fill.liquidity, fill.source) == ("taker", "hedge")
    assert _metric(port, "mmflow_exec_recovered_total", market=BTC, kind="fill") == 1
    assert _metric(port, "mmflow_exec_user_stream_connected", venue="binance-usdm") == 1
    assert "user stream lost; reconnecting" in ex.text()
    assert ex.stop() == 0


# -- 7. a storm of post-only rejects ------------------------------------------------------------------


def test_a_storm_of_post_only_rejects_is_counted_within_the_rate_budget_and_trading_goes_on(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, ask = _touch(sim)
    ex, port, intents = _started(sim, sets, tmp_path, running)
    n = 160  # two crossing sides each: 320 orders, past the 300 orders per 10 s the exchange allows
    sent = set()
    for _ in range(n):
        sent.add(intents.quote(ask + 1, bid - 1).intent_id)  # the bid at the ask, the ask at the bid
        time.sleep(0.01)

    def settled() -> list[OrderUpdate] | None:
        updates = _of(intents, intents.kafka.orders_topic, OrderUpdate)
        coalesced = _metric(port, "mmflow_exec_intents_coalesced_total", market=BTC)
        return updates if len(updates) + 2 * coalesced == 2 * n else None

    updates = until(settled, 60, "not every quote was rejected or superseded")
    assert {(u.status, u.reason, u.kind) for u in updates} == {("rejected", POST_ONLY_REJECT, "quote")}
    per_side = {(u.intent_id, u.side) for u in updates}
    assert len(per_side) == len(updates) and {i for i, _ in per_side} <= sent
    assert len(per_side) >= n  # most quotes reached the exchange (both sides of at least half)
    rejected = _metric(port, "mmflow_exec_orders_rejected_total", market=BTC, reason=POST_ONLY_REJECT)
    assert rejected == len(updates)
    assert ex.proc.poll() is None
    log = ex.text()
    assert "answered 429" not in log and "answered 418" not in log and "not carried out" not in log
    assert "Traceback" not in log

    intents.quote(bid - 100, ask + 100)
    last = intents.seq
    until(
        lambda: {intents.cid(last, "b"), intents.cid(last, "s")} <= set(_open(sim)),
        30,
        "a quote that does not cross did not rest after the storm",
    )
    assert ex.stop() == 0


# -- 8. a server clock beyond recvWindow ---------------------------------------------------------------


def test_a_server_clock_jump_beyond_recv_window_is_refused_counted_re_synced_and_retried_once(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, _ = _touch(sim)
    ex, port, intents = _started(sim, sets, tmp_path, running)
    skew = 0
    placement = ("mmflow_exec_clock_rejects_total", {"method": "POST", "endpoint": "order"})
    for _ in range(5):
        # 10 s beyond the offset the connector last measured, twice its recvWindow: the next signed
        # request is refused (-1021). The positions poll may meet it first, so until an order
        # placement is the one refused, jump again.
        skew += 10_000
        sim.faults(clock_skew_ms=skew)
        intents.quote(bid - 100 - intents.seq, None)
        cid = intents.cid(intents.seq, "b")
        until(lambda: cid in _open_at(sim, skew), 30, "no order after the clock jump")  # noqa: B023
        assert _placed(sim, cid) == 1  # the retry after -1021 was the same order, placed once
        if _metric(port, placement[0], **placement[1]) >= 1:
            break
    else:
        pytest.fail("in five clock jumps no order placement met -1021")
    samples = scrape(port)
    offset = samples[("mmflow_exec_clock_offset_seconds", frozenset({("venue", "binance-usdm")}))]
    assert abs(offset - skew / 1000) < 1.0
    assert "refused for its timestamp (-1021): re-syncing the clock" in ex.text()
    assert "not carried out" not in ex.text()
    assert ex.stop() == 0
    assert not _open_at(sim, skew)  # cancelled at stop, on the exchange's clock


def test_a_server_clock_skewed_before_the_start_is_measured_and_nothing_is_refused(
    sim: SimServer, sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    bid, _ = _touch(sim)
    skew = -20_000  # the exchange 20 s behind: unsynced timestamps would be "ahead of the server"
    sim.faults(clock_skew_ms=skew)
    ex, port, intents = _started(sim, sets, tmp_path, running)
    intents.quote(bid - 100, None)
    until(lambda: intents.cid(1, "b") in _open_at(sim, skew), 30, "the quote never rested")
    offset = _metric(port, "mmflow_exec_clock_offset_seconds", venue="binance-usdm")
    assert abs(offset - skew / 1000) < 1.0
    assert not [k for k in scrape(port) if k[0] == "mmflow_exec_clock_rejects_total"]
    assert ex.stop() == 0


def test_spot_a_fill_the_dropped_user_stream_missed_is_recovered_once_from_my_trades(
    sets: list[str], tmp_path: Path, running: list[Execute]
) -> None:
    if not ETH_FRAMES.exists():
        pytest.skip("the ETHUSDT frames are not under ../shared/data")
    spot = SimServer(SimConfig("binance-spot", ETH_FRAMES, KEY, SECRET, speed=0))
    try:
        spot.wait_replayed()
        started_ms = int(time.time() * 1000)
        t = signed(spot, "GET", "/api/v3/ticker/bookTicker", symbol="ETHUSDT")[2]
        port = free_port()
        ex = Execute(
            spot,
            sets,
            tmp_path / "spot.log",
            "--venue",
            "binance-spot",
            "--symbols",
            "ETHUSDT",
            "--metrics-port",
            str(port),
        )
        running.append(ex)
        intents = Intents(sets, "binance:ETHUSDT")
        spot.faults(ws_drop_after=0)
        buy = _hedge(intents, "buy", D(t["askPrice"]) + 5, D("0.01"))
        (fill,) = until(
            lambda: _of(intents, intents.kafka.fills_topic, Fill),
            30,
            "the missed spot fill was not recovered",
        )
        (trade,) = signed(spot, "GET", "/api/v3/myTrades", symbol="ETHUSDT", startTime=started_ms)[2]
        assert (fill.intent_id, fill.fill_id, fill.qty, fill.px, fill.liquidity) == (
            buy.intent_id,
            f"binance:ETHUSDT-Tb-{trade['id']}",
            D(trade["qty"]),
            D(trade["price"]),
            "taker",
        )
        spot.faults(ws_drop_after=None)
        time.sleep(1.5)
        assert len(_of(intents, intents.kafka.fills_topic, Fill)) == 1
        assert _metric(port, "mmflow_exec_recovered_total", market="binance:ETHUSDT", kind="fill") == 1
        assert ex.stop() == 0
    finally:
        spot.stop()
