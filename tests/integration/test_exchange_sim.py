"""The exchange simulator over real sockets: a standard-library client, ccxt and websockets
against Binance USD-M (the BTCUSDT frames, the recorded exchangeInfo) and spot (the ETHUSDT
frames, exchangeInfo built from the instrument specs)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import ccxt
import pytest

from mmflow.connectors.exchange_sim.app import SimConfig
from mmflow.connectors.exchange_sim.exchange_info import DEFAULT_RATE_LIMITS
from tests.conftest import BTC_FRAMES, ETH_FRAMES, EXCHANGE_INFO
from tests.integration.exchange_sim_client import GTX_BUY, KEY, SECRET, SimServer, call, gtx_buy, signed

D = Decimal


def _sim(venue: str, frames: Path, **kw: Any) -> SimServer:
    if not frames.exists():
        pytest.skip(f"{frames.name} not found under ../shared/data")
    return SimServer(SimConfig(venue, frames, KEY, SECRET, **kw))


@pytest.fixture(scope="module")
def usdm() -> Iterator[SimServer]:
    sim = _sim("binance-usdm", BTC_FRAMES, speed=0, exchange_info=EXCHANGE_INFO)
    sim.wait_replayed()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def spot() -> Iterator[SimServer]:
    sim = _sim("binance-spot", ETH_FRAMES, speed=0)
    sim.wait_replayed()
    yield sim
    sim.stop()


@pytest.fixture
def fresh_usdm() -> Iterator[SimServer]:
    """A simulator whose replay starts at the first market-stream subscriber."""
    sim = _sim("binance-usdm", BTC_FRAMES, speed=1000, exchange_info=EXCHANGE_INFO, start="subscribe")
    yield sim
    sim.stop()


def _touch(sim: SimServer, path: str, symbol: str) -> tuple[D, D]:
    status, _, t = call(sim, "GET", path, {"symbol": symbol})
    assert status == 200, t
    return D(t["bidPrice"]), D(t["askPrice"])


async def _user_events(
    sim: SimServer, key: str, action: Callable[[], Any], count: int
) -> tuple[Any, list[dict]]:
    """Connect to the user stream, run ``action`` (blocking REST calls), collect ``count`` events."""
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{sim.ws_base}/ws/{key}") as ws:
        result = await asyncio.to_thread(action)
        events = []
        while len(events) < count:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            events.append(json.loads(msg.data))
    return result, events


# -- USD-M: public REST -----------------------------------------------------------------------------


def test_usdm_public_endpoints(usdm: SimServer) -> None:
    assert call(usdm, "GET", "/fapi/v1/ping")[2] == {}
    status, headers, t = call(usdm, "GET", "/fapi/v1/time")
    assert status == 200 and abs(t["serverTime"] - time.time() * 1000) < 5000
    assert headers["X-MBX-USED-WEIGHT-1M"].isdigit()
    _, _, info = call(usdm, "GET", "/fapi/v1/exchangeInfo")
    recorded = json.loads(gzip.decompress(EXCHANGE_INFO.read_bytes()).split(b": ", 1)[1].splitlines()[0])
    assert info["rateLimits"] == recorded["rateLimits"]
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["filters"] == next(s for s in recorded["symbols"] if s["symbol"] == "BTCUSDT")["filters"]
    assert info["serverTime"] > recorded["serverTime"]
    bid, ask = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    assert D("50000") < bid < ask
    _, _, depth = call(usdm, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5})
    assert len(depth["bids"]) == len(depth["asks"]) == 5 and depth["lastUpdateId"] > 0
    assert D(depth["bids"][0][0]) < D(depth["asks"][0][0])
    assert [D(b[0]) for b in depth["bids"]] == sorted((D(b[0]) for b in depth["bids"]), reverse=True)
    assert call(usdm, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 7})[2]["code"] == -1130
    assert call(usdm, "GET", "/fapi/v1/ticker/bookTicker", {"symbol": "NOPE"})[2]["code"] == -1121


# -- USD-M: signed requests and their errors ----------------------------------------------------------


def test_usdm_signature_and_recv_window_errors(usdm: SimServer) -> None:
    path, now = "/fapi/v1/openOrders", int(time.time() * 1000)
    assert call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True, key=KEY)[0] == 200
    status, _, err = call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True, key=KEY, secret="wrong")
    assert (status, err["code"]) == (400, -1022)
    late = call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True, key=KEY, timestamp=now - 10_000)
    assert late[2]["code"] == -1021
    wide = call(
        usdm,
        "GET",
        path,
        {"symbol": "BTCUSDT", "recvWindow": 20_000},
        signed=True,
        key=KEY,
        timestamp=now - 10_000,
    )
    assert wide[0] == 200
    ahead = call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True, key=KEY, timestamp=now + 5_000)
    assert ahead[2]["code"] == -1021
    assert call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True)[2]["code"] == -2014
    status, _, err = call(usdm, "GET", path, {"symbol": "BTCUSDT"}, signed=True, key="other")
    assert (status, err["code"]) == (401, -2015)


def test_usdm_order_lifecycle_by_order_id_and_client_id(usdm: SimServer) -> None:
    bid, _ = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    px = str(bid - 100)
    new = GTX_BUY | {"price": px}
    status, headers, order = call(
        usdm,
        "POST",
        "/fapi/v1/order",
        new | {"newClientOrderId": "mm-life-1"},
        signed=True,
        key=KEY,
        in_body=True,
    )
    assert status == 200, order
    assert (order["status"], order["clientOrderId"], order["timeInForce"]) == ("NEW", "mm-life-1", "GTX")
    assert isinstance(order["orderId"], int) and headers["X-MBX-ORDER-COUNT-1M"].isdigit()
    oid = order["orderId"]
    assert (
        signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=oid)[2]["clientOrderId"]
        == "mm-life-1"
    )
    by_client = signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="mm-life-1")[2]
    assert by_client["orderId"] == oid and by_client["price"] == px
    assert oid in [o["orderId"] for o in signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2]]
    dup = signed(usdm, "POST", "/fapi/v1/order", **new, newClientOrderId="mm-life-1")[2]
    assert dup["code"] == -4116
    assert signed(usdm, "POST", "/fapi/v1/order", **new, newClientOrderId="bad id!")[2]["code"] == -1100
    cancelled = signed(usdm, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="mm-life-1")[2]
    assert (cancelled["orderId"], cancelled["status"]) == (oid, "CANCELED")
    assert signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=oid)[2]["status"] == "CANCELED"
    status, _, again = signed(usdm, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=oid)
    assert (status, again) == (400, {"code": -2011, "msg": "Unknown order sent."})
    assert signed(usdm, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=987654)[2]["code"] == -2011
    assert signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=987654)[2]["code"] == -2013


def test_usdm_filters_are_checked(usdm: SimServer) -> None:
    bid, _ = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    base = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTX")
    assert (
        signed(usdm, "POST", "/fapi/v1/order", **base, quantity="0.0015", price=str(bid - 100))[2]["code"]
        == -1111
    )
    assert (
        signed(usdm, "POST", "/fapi/v1/order", **base, quantity="0.001", price=str(bid - D("0.005")))[2][
            "code"
        ]
        == -4014
    )
    assert signed(usdm, "POST", "/fapi/v1/order", **base, quantity="0.001", price="100")[2]["code"] == -4164


def test_usdm_crossing_gtx_is_rejected_5022_and_not_recorded(usdm: SimServer) -> None:
    _, ask = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    status, _, err = gtx_buy(usdm, ask, newClientOrderId="cross-1")
    assert (status, err["code"]) == (400, -5022)
    assert (
        signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="cross-1")[2]["code"]
        == -2013
    )


def test_usdm_fill_produces_order_trade_update_and_account_update(usdm: SimServer) -> None:
    key = call(usdm, "POST", "/fapi/v1/listenKey", key=KEY)[2]["listenKey"]
    assert call(usdm, "POST", "/fapi/v1/listenKey", key=KEY)[2]["listenKey"] == key  # the active one
    _, ask = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")

    def buy() -> Any:
        return signed(
            usdm, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001"
        )

    (status, _, order), events = asyncio.run(_user_events(usdm, key, buy, 3))
    assert status == 200 and order["status"] == "FILLED" and order["executedQty"] == "0.001"
    new, trade, account = events
    assert (new["e"], new["o"]["x"], new["o"]["X"], new["o"]["i"]) == (
        "ORDER_TRADE_UPDATE",
        "NEW",
        "NEW",
        order["orderId"],
    )
    assert (trade["o"]["x"], trade["o"]["X"], trade["o"]["l"]) == ("TRADE", "FILLED", "0.001")
    assert D(trade["o"]["L"]) == ask and trade["o"]["m"] is False and D(trade["o"]["n"]) > 0
    assert account["e"] == "ACCOUNT_UPDATE" and account["a"]["m"] == "ORDER"
    assert account["a"]["P"][0]["s"] == "BTCUSDT" and D(account["a"]["P"][0]["pa"]) == D("0.001")
    [risk] = signed(usdm, "GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")[2]
    assert D(risk["positionAmt"]) == D("0.001") and D(risk["entryPrice"]) == ask
    acct = signed(usdm, "GET", "/fapi/v2/account")[2]
    assert D(acct["totalWalletBalance"]) < 100_000  # the taker fee
    assert signed(usdm, "GET", "/fapi/v2/balance")[2][0]["asset"] == "USDT"
    signed(usdm, "POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.001")
    assert D(signed(usdm, "GET", "/fapi/v2/positionRisk", symbol="BTCUSDT")[2][0]["positionAmt"]) == 0
    assert call(usdm, "PUT", "/fapi/v1/listenKey", key=KEY)[0] == 200
    assert call(usdm, "DELETE", "/fapi/v1/listenKey", key=KEY)[0] == 200
    assert call(usdm, "PUT", "/fapi/v1/listenKey", key=KEY)[2]["code"] == -1125


def test_usdm_countdown_cancel_all_fires_unless_refreshed(usdm: SimServer) -> None:
    bid, _ = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    key = call(usdm, "POST", "/fapi/v1/listenKey", key=KEY)[2]["listenKey"]
    countdown = dict(symbol="BTCUSDT", countdownTime=400)

    def refresh_then_lapse() -> tuple[int, str]:
        kept = gtx_buy(usdm, bid - 200)[2]["orderId"]
        for _ in range(6):  # refreshed every 100 ms: never fires
            answer = signed(usdm, "POST", "/fapi/v1/countdownCancelAll", **countdown)[2]
            assert answer == {"symbol": "BTCUSDT", "countdownTime": "400"}
            time.sleep(0.1)
        status = signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=kept)[2]["status"]
        time.sleep(0.8)  # the last countdown lapses
        return kept, status

    (kept, status_while_refreshed), events = asyncio.run(_user_events(usdm, key, refresh_then_lapse, 2))
    assert status_while_refreshed == "NEW"
    assert [(e["o"]["i"], e["o"]["X"]) for e in events] == [(kept, "NEW"), (kept, "CANCELED")]
    assert signed(usdm, "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=kept)[2]["status"] == "CANCELED"
    assert signed(usdm, "POST", "/fapi/v1/countdownCancelAll", symbol="BTCUSDT", countdownTime=0)[0] == 200


def test_usdm_all_open_orders_cancel(usdm: SimServer) -> None:
    bid, _ = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    for i in (1, 2):
        gtx_buy(usdm, bid - 300 - i)
    assert len(signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2]) == 2
    done = signed(usdm, "DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")[2]
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2] == []


def test_usdm_user_trades_list_the_fills_by_time_id_and_order(usdm: SimServer) -> None:
    started = int(time.time() * 1000)
    ids = []
    for side in ("BUY", "SELL"):
        _, _, order = signed(
            usdm, "POST", "/fapi/v1/order", symbol="BTCUSDT", side=side, type="MARKET", quantity="0.002"
        )
        assert order["status"] == "FILLED", order
        ids.append(order["orderId"])
    status, headers, rows = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=started)
    assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 5
    assert [(r["orderId"], r["side"], r["qty"], r["buyer"], r["maker"]) for r in rows] == [
        (ids[0], "BUY", "0.002", True, False),
        (ids[1], "SELL", "0.002", False, False),
    ]
    first = rows[0]
    assert first["id"] < rows[1]["id"] and started <= first["time"] <= int(time.time() * 1000)
    assert D(first["commission"]) > 0 and first["commissionAsset"] == "USDT"
    assert D(first["quoteQty"]) == D(first["price"]) * D("0.002") and first["positionSide"] == "BOTH"
    assert D(rows[1]["realizedPnl"]) == (D(rows[1]["price"]) - D(first["price"])) * D("0.002")
    by_id = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", fromId=rows[1]["id"])[2]
    assert [r["id"] for r in by_id] == [rows[1]["id"]]
    by_order = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=ids[0])[2]
    assert [r["id"] for r in by_order] == [first["id"]]
    assert [r["id"] for r in signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", limit=1)[2]] == [
        rows[1]["id"]
    ]  # without a start, the most recent
    later = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=first["time"] + 60_000)
    assert later[2] == []
    both = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", fromId=1, startTime=started)
    assert both[2]["code"] == -1128
    week = 7 * 24 * 3_600_000 + 1
    wide = signed(usdm, "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=1, endTime=1 + week)
    assert wide[2]["code"] == -1127


def test_usdm_weight_budget_answers_429_with_retry_after() -> None:
    sim = _sim("binance-usdm", BTC_FRAMES, speed=0, exchange_info=EXCHANGE_INFO, start="subscribe")
    try:
        for _ in range(400):  # depth limit=1000 weighs 20 against 2400 a minute
            status, headers, body = call(sim, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})
            if status == 429:
                break
        assert status == 429 and body["code"] == -1003
        assert int(headers["Retry-After"]) >= 1 and int(headers["X-MBX-USED-WEIGHT-1M"]) > 2400
    finally:
        sim.stop()


# -- USD-M: fault switches -----------------------------------------------------------------------------


def test_faults_429_and_5xx_for_a_while_then_recovery(usdm: SimServer) -> None:
    usdm.faults(fail_status=503, fail_for_s=0.6)
    status, _, body = call(usdm, "GET", "/fapi/v1/time")
    assert (status, body["code"]) == (503, -1001)
    time.sleep(0.7)
    assert call(usdm, "GET", "/fapi/v1/time")[0] == 200
    usdm.faults(fail_status=429, fail_for_s=0.6)
    status, headers, body = call(usdm, "GET", "/fapi/v1/ping")
    assert (status, body["code"]) == (429, -1003) and int(headers["Retry-After"]) >= 1
    time.sleep(0.7)
    assert call(usdm, "GET", "/fapi/v1/ping")[0] == 200


def test_faults_delay_and_clock_skew(usdm: SimServer) -> None:
    usdm.faults(delay_ms=300)
    start = time.monotonic()
    call(usdm, "GET", "/fapi/v1/ping")
    assert time.monotonic() - start >= 0.3
    usdm.faults(delay_ms=0, clock_skew_ms=30_000)
    try:
        assert call(usdm, "GET", "/fapi/v1/time")[2]["serverTime"] - time.time() * 1000 > 25_000
        assert signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2]["code"] == -1021
    finally:
        usdm.faults(clock_skew_ms=0)
    assert call(usdm, "POST", "/_sim/faults", json_body={"nope": 1}, key=KEY)[0] == 400
    assert call(usdm, "POST", "/_sim/faults", json_body={"delay_ms": 1}, key="other")[0] == 401


STREAMS = ("btcusdt@bookTicker", "btcusdt@trade", "btcusdt@depth@0ms")


def _recorded_frames() -> list[str]:
    out = []
    for line in gzip.decompress(BTC_FRAMES.read_bytes()).splitlines():
        body = line.partition(b" ")[2]
        if body.startswith(b'{"stream"') and json.loads(body)["stream"] in STREAMS:
            out.append(body.decode())
    return out


async def _receive(url: str, limit: int | None = None) -> tuple[list[str], bool]:
    """Messages until the server ends the connection (or ``limit``); True if it was dropped."""
    got: list[str] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while limit is None or len(got) < limit:
            msg = await asyncio.wait_for(ws.receive(), 15)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return got, True
            got.append(msg.data)
    return got, False


def test_market_stream_replays_the_recorded_frames_in_order(fresh_usdm: SimServer) -> None:
    expected = _recorded_frames()
    url = f"{fresh_usdm.ws_base}/stream?streams={'/'.join(STREAMS)}"
    got, dropped = asyncio.run(_receive(url, len(expected)))
    assert not dropped and got == expected  # every frame, in order, byte for byte


def test_restamped_frames_carry_the_wall_clock_and_keep_the_recorded_delay() -> None:
    sim = _sim("binance-usdm", BTC_FRAMES, speed=1000, start="subscribe", restamp=True)
    try:
        before = _touch(sim, "/fapi/v1/ticker/bookTicker", "BTCUSDT")  # the opening quote, pre-open
        sent_at = int(time.time() * 1000)
        got, _ = asyncio.run(_receive(f"{sim.ws_base}/stream?streams={'/'.join(STREAMS)}", 200))
    finally:
        sim.stop()
    recorded = [json.loads(f) for f in _recorded_frames()[:200]]
    frames = [json.loads(f) for f in got]
    assert [f["stream"] for f in frames] == [f["stream"] for f in recorded]
    opening = next(r["data"] for r in recorded if r["stream"].endswith("@bookTicker"))
    assert before == (D(opening["b"]), D(opening["a"]))
    shifts = {f["data"]["E"] - r["data"]["E"] for f, r in zip(frames, recorded, strict=True)}
    assert all(abs(f["data"]["E"] - sent_at) < 60_000 for f in frames)  # today, not 2024
    # One shift per frame, the same for E and T: the exchange-to-recorder delay is kept.
    assert all(
        f["data"]["E"] - r["data"]["E"] == f["data"]["T"] - r["data"]["T"]
        for f, r in zip(frames, recorded, strict=True)
    )
    assert len(shifts) > 1 and max(shifts) - min(shifts) < 10_000
    strip = [{k: v for k, v in f["data"].items() if k not in "ET"} for f in frames]
    assert strip == [{k: v for k, v in r["data"].items() if k not in "ET"} for r in recorded]


def test_market_stream_subscribe_and_agg_trade(fresh_usdm: SimServer) -> None:
    async def run() -> list[dict]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{fresh_usdm.ws_base}/stream") as ws,
        ):
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 7}))
            return [json.loads((await asyncio.wait_for(ws.receive(), 10)).data) for _ in range(3)]

    ack, *frames = asyncio.run(run())
    assert ack == {"result": None, "id": 7}
    assert all(f["stream"] == "btcusdt@aggTrade" and f["data"]["e"] == "aggTrade" for f in frames)


def test_a_depth_stream_asked_at_another_speed_gets_the_recorded_diffs_under_its_name(
    fresh_usdm: SimServer,
) -> None:
    # The recording is btcusdt@depth@0ms; a client asking @depth@100ms (what Binance documents)
    # or plain @depth gets the same diffs, named as it asked. A partial-depth stream is not one.
    depth = [json.loads(f) for f in _recorded_frames() if "@depth@0ms" in f][:20]
    url = f"{fresh_usdm.ws_base}/stream?streams=btcusdt@depth@100ms/btcusdt@depth5@100ms"
    got, dropped = asyncio.run(_receive(url, 20))
    assert not dropped
    assert [json.loads(g) for g in got] == [{**d, "stream": "btcusdt@depth@100ms"} for d in depth]


def test_depth_before_the_recorded_snapshot_is_replayed_is_that_snapshot(fresh_usdm: SimServer) -> None:
    # Nothing replayed yet (start=subscribe): the book the recorder fetched over REST is the
    # answer (newer than the stream, as Binance's often is), not an empty or one-level book.
    recorded = next(
        json.loads(line.partition(b" ")[2])
        for line in gzip.decompress(BTC_FRAMES.read_bytes()).splitlines()
        if b"lastUpdateId" in line and b'{"stream"' not in line
    )
    status, _, depth = call(fresh_usdm, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})
    assert status == 200 and not fresh_usdm.status()["replay_started"]
    assert depth["lastUpdateId"] == recorded["lastUpdateId"]
    assert (depth["bids"], depth["asks"]) == (recorded["bids"][:1000], recorded["asks"][:1000])
    assert (depth["E"], depth["T"]) == (recorded["E"], recorded["T"])
    five = call(fresh_usdm, "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 5})[2]
    assert five["bids"] == recorded["bids"][:5] and five["asks"] == recorded["asks"][:5]


def test_fault_websocket_drops_after_n_messages(fresh_usdm: SimServer) -> None:
    fresh_usdm.faults(ws_drop_after=50)
    got, dropped = asyncio.run(_receive(f"{fresh_usdm.ws_base}/stream?streams=btcusdt@bookTicker"))
    assert dropped and len(got) == 50


# -- ccxt --------------------------------------------------------------------------------------------


def _point(exchange: Any, sim: SimServer) -> Any:
    exchange.urls["api"] = {k: sim.base + urlparse(v).path for k, v in exchange.urls["api"].items()}
    return exchange


def test_ccxt_binanceusdm_against_the_simulator(usdm: SimServer) -> None:
    # The wallet's sapi endpoints (currencies, margin pairs) are not simulated: ccxt is told not to ask.
    options = {"fetchCurrencies": False, "fetchMargins": False}
    ex = _point(ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET, "options": options}), usdm)
    assert abs(ex.fetch_time() - time.time() * 1000) < 5000
    markets = ex.load_markets()
    assert markets["BTC/USDT:USDT"]["precision"]["price"] == 0.01
    book = ex.fetch_order_book("BTC/USDT:USDT", limit=5)
    bid = book["bids"][0][0]
    assert bid < book["asks"][0][0]
    order = ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.001, bid - 100, {"postOnly": True})
    assert order["status"] == "open"
    assert [o["id"] for o in ex.fetch_open_orders("BTC/USDT:USDT")] == [order["id"]]
    assert ex.cancel_order(order["id"], "BTC/USDT:USDT")["status"] == "canceled"
    assert ex.fetch_open_orders("BTC/USDT:USDT") == []
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(order["id"], "BTC/USDT:USDT")


def test_ccxt_binance_spot_against_the_simulator(spot: SimServer) -> None:
    options = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
    ex = _point(ccxt.binance({"apiKey": KEY, "secret": SECRET, "options": options}), spot)
    assert abs(ex.fetch_time() - time.time() * 1000) < 5000
    assert "ETH/USDT" in ex.load_markets()
    book = ex.fetch_order_book("ETH/USDT", limit=5)
    bid = book["bids"][0][0]
    order = ex.create_order("ETH/USDT", "limit", "buy", 0.01, round(bid - 10, 2), {"postOnly": True})
    assert [o["id"] for o in ex.fetch_open_orders("ETH/USDT")] == [order["id"]]
    assert ex.cancel_order(order["id"], "ETH/USDT")["status"] == "canceled"
    assert ex.fetch_open_orders("ETH/USDT") == []


# -- spot ---------------------------------------------------------------------------------------------


def test_spot_public_endpoints_and_built_exchange_info(spot: SimServer) -> None:
    assert call(spot, "GET", "/api/v3/ping")[2] == {}
    _, _, info = call(spot, "GET", "/api/v3/exchangeInfo")
    assert info["rateLimits"] == DEFAULT_RATE_LIMITS[True]
    eth = next(s for s in info["symbols"] if s["symbol"] == "ETHUSDT")
    price = next(f for f in eth["filters"] if f["filterType"] == "PRICE_FILTER")
    assert price["tickSize"] == "0.01" and "LIMIT_MAKER" in eth["orderTypes"]
    bid, ask = _touch(spot, "/api/v3/ticker/bookTicker", "ETHUSDT")
    _, _, depth = call(spot, "GET", "/api/v3/depth", {"symbol": "ETHUSDT", "limit": 5})
    assert (D(depth["bids"][0][0]), D(depth["asks"][0][0])) == (bid, ask)


def test_spot_orders_errors_and_user_stream(spot: SimServer) -> None:
    bid, ask = _touch(spot, "/api/v3/ticker/bookTicker", "ETHUSDT")
    maker = dict(symbol="ETHUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.0100")
    status, _, err = signed(spot, "POST", "/api/v3/order", **maker, price=str(ask))
    assert (status, err) == (400, {"code": -2010, "msg": "Order would immediately match and take."})
    status, _, order = signed(
        spot,
        "POST",
        "/api/v3/order",
        **maker,
        price=str(bid - 5),
        newClientOrderId="s-1",
        newOrderRespType="FULL",
    )
    assert status == 200 and order["status"] == "NEW" and order["fills"] == []
    cancelled = signed(spot, "DELETE", "/api/v3/order", symbol="ETHUSDT", origClientOrderId="s-1")[2]
    assert (cancelled["status"], cancelled["origClientOrderId"]) == ("CANCELED", "s-1")
    assert signed(spot, "DELETE", "/api/v3/order", symbol="ETHUSDT", orderId=424242)[2]["code"] == -2011
    assert call(spot, "GET", "/api/v3/account", {}, signed=True, key=KEY, secret="x")[2]["code"] == -1022
    key = call(spot, "POST", "/api/v3/userDataStream", key=KEY)[2]["listenKey"]

    def buy() -> Any:
        return signed(
            spot, "POST", "/api/v3/order", symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.0100"
        )

    (status, _, filled), events = asyncio.run(_user_events(spot, key, buy, 4))
    assert status == 200 and filled["status"] == "FILLED" and D(filled["fills"][0]["price"]) == ask
    kinds = [(e["e"], e.get("x")) for e in events]
    assert kinds == [
        ("executionReport", "NEW"),
        ("outboundAccountPosition", None),
        ("executionReport", "TRADE"),
        ("outboundAccountPosition", None),
    ]
    assert events[2]["X"] == "FILLED" and D(events[2]["L"]) == ask
    eth = next(b for b in events[3]["B"] if b["a"] == "ETH")
    assert D(eth["f"]) == D("10.01")
    balances = {b["asset"]: b for b in signed(spot, "GET", "/api/v3/account")[2]["balances"]}
    assert D(balances["ETH"]["free"]) == D("10.01") and D(balances["USDT"]["free"]) < 100_000
    (mine,) = signed(spot, "GET", "/api/v3/myTrades", symbol="ETHUSDT", orderId=filled["orderId"])[2]
    assert (mine["id"], mine["qty"], mine["isBuyer"], mine["isMaker"]) == (
        filled["fills"][0]["tradeId"],
        "0.01000000",
        True,
        False,
    )
    assert D(mine["price"]) == ask and mine["commission"] == filled["fills"][0]["commission"]
    assert call(spot, "PUT", "/api/v3/userDataStream", {"listenKey": key}, key=KEY)[0] == 200
    assert call(spot, "DELETE", "/api/v3/userDataStream", {"listenKey": key}, key=KEY)[0] == 200


# -- the command ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mmflow.cli.main",
        "exchange-sim",
        "--venue",
        "binance-usdm",
        "--frames",
        str(BTC_FRAMES),
        "--api-key",
        KEY,
        *extra,
    ]


def test_command_refuses_a_literal_secret_without_echoing_it() -> None:
    done = subprocess.run(
        _command("--api-secret", "hunter2-literal"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "env:NAME or file:PATH" in done.stderr
    assert "hunter2-literal" not in done.stderr + done.stdout


def test_command_serves_with_the_secret_from_the_environment() -> None:
    if not BTC_FRAMES.exists():
        pytest.skip("frames not found")
    port = _free_port()
    env = os.environ | {"MMFLOW_EXCHANGE_SIM_API_SECRET": SECRET}
    proc = subprocess.Popen(
        _command("--port", str(port), "--seconds", "30", "--speed", "0"),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "exchange-sim: binance-usdm on http://127.0.0.1:" in proc.stderr.readline()
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert SECRET.encode() not in cmdline

        class Remote:
            base = f"http://127.0.0.1:{port}"

        status, _, body = call(
            Remote, "GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, signed=True, key=KEY
        )  # type: ignore[arg-type]
        assert (status, body) == (200, [])
    finally:
        proc.terminate()
        proc.wait(10)


def test_usdm_modify_changes_price_and_quantity_in_place(usdm: SimServer) -> None:
    """PUT /fapi/v1/order: same orderId and clientOrderId, new price and size; one order open."""
    bid, _ = _touch(usdm, "/fapi/v1/ticker/bookTicker", "BTCUSDT")
    placed = gtx_buy(usdm, bid - 400, newClientOrderId="mm-modify-1")[2]
    status, _, body = signed(
        usdm,
        "PUT",
        "/fapi/v1/order",
        symbol="BTCUSDT",
        origClientOrderId="mm-modify-1",
        side="BUY",
        quantity="0.002",
        price=str(bid - 401),
    )
    assert status == 200, body
    assert (body["orderId"], body["clientOrderId"]) == (placed["orderId"], "mm-modify-1")
    assert (D(body["price"]), D(body["origQty"])) == (bid - 401, D("0.002"))
    open_ = signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2]
    assert [(o["orderId"], D(o["price"])) for o in open_] == [(placed["orderId"], bid - 401)]
    same = dict(
        symbol="BTCUSDT", orderId=placed["orderId"], side="BUY", quantity="0.002", price=str(bid - 401)
    )
    assert signed(usdm, "PUT", "/fapi/v1/order", **same)[2]["code"] == -5027
    crossing = {**same, "price": str(bid + 1000)}
    assert signed(usdm, "PUT", "/fapi/v1/order", **crossing)[2]["code"] == -5022
    assert signed(usdm, "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])[0] == 200
    assert signed(usdm, "GET", "/fapi/v1/openOrders", symbol="BTCUSDT")[2] == []
