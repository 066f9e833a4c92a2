"""The venue's REST routes: USD-M under /fapi, spot under /api/v3, with each one's security type,
weight and handler (answers in the venue's JSON, from the market and the account)."""

from __future__ import annotations

from typing import Any

from mmflow.connectors.exchange_sim import answers, errors, limits
from mmflow.connectors.exchange_sim.exchange import Exchange, Route

_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def _limit(ex: Exchange, p: dict[str, str]) -> int:
    raw = p.get("limit", "100" if ex.spot else "500")
    if not raw.isdigit():
        raise errors.bad_param("limit")
    n = int(raw)
    if ex.spot and not 1 <= n <= 5000 or not ex.spot and n not in _DEPTH_LIMITS:
        raise errors.ApiError(-1130, "Invalid data sent for a parameter.")
    return n


def _public(ex: Exchange, prefix: str) -> list[Route]:
    now = ex.faults.server_ms

    def info(p: dict[str, str]) -> Any:
        return ex.info | {"serverTime": now()}

    def depth(p: dict[str, str]) -> Any:
        symbol = ex.symbol_param(p)
        assert symbol is not None
        return ex.market.depth(symbol, _limit(ex, p), now())

    def ticker(p: dict[str, str]) -> Any:
        return ex.market.book_ticker(ex.symbol_param(p, required=False), now())

    def ticker_weight(p: dict[str, str]) -> int:
        return limits.WEIGHTS[(ex.spot, "bookTicker" if p.get("symbol") else "bookTicker*")]

    return [
        Route("GET", f"{prefix}/ping", "ping", "NONE", lambda p: {}),
        Route("GET", f"{prefix}/time", "time", "NONE", lambda p: {"serverTime": now()}),
        Route("GET", f"{prefix}/exchangeInfo", "exchangeInfo", "NONE", info),
        Route("GET", f"{prefix}/ticker/bookTicker", "bookTicker", "NONE", ticker, ticker_weight),
        Route(
            "GET",
            f"{prefix}/depth",
            "depth",
            "NONE",
            depth,
            lambda p: limits.depth_weight(ex.spot, _limit(ex, p)),
        ),
    ]


def _orders(ex: Exchange, prefix: str) -> list[Route]:
    acct, spot = ex.account, ex.spot

    def new(p: dict[str, str]) -> Any:
        order = acct.new_order(p)
        if not spot:
            return answers.order_json(order, False)
        default = "FULL" if order.type in ("LIMIT", "MARKET") else "ACK"
        return answers.spot_new_order(order, p.get("newOrderRespType", default))

    def cancel(p: dict[str, str]) -> Any:
        order = acct.cancel(p)
        out = answers.order_json(order, spot)
        if spot:
            out |= {"origClientOrderId": order.client_id, "clientOrderId": order.cancel_client_id}
        return out

    def open_orders(p: dict[str, str]) -> Any:
        return [answers.order_json(o, spot) for o in acct.open_orders(ex.symbol_param(p, required=False))]

    def open_weight(p: dict[str, str]) -> int:
        return limits.WEIGHTS[(spot, "openOrders" if p.get("symbol") else "openOrders*")]

    def cancel_all(p: dict[str, str]) -> Any:
        symbol = ex.symbol_param(p)
        assert symbol is not None
        done = acct.cancel_all(symbol)
        if not spot:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        return [answers.order_json(o, True) for o in done]

    def trades(p: dict[str, str]) -> Any:
        return [answers.trade_json(o, t, spot) for o, t in acct.trades(p)]

    def trades_weight(p: dict[str, str]) -> int:
        return limits.WEIGHTS[(spot, "myTrades" if not p.get("orderId") else "myTrades1")]

    query_weight = "queryOrder" if spot else "order"
    trades_path = f"{prefix}/myTrades" if spot else f"{prefix}/userTrades"
    all_path = f"{prefix}/openOrders" if spot else f"{prefix}/allOpenOrders"
    return [
        Route("POST", f"{prefix}/order", "order", "SIGNED", new, orders=1),
        Route(
            "GET", f"{prefix}/order", query_weight, "SIGNED", lambda p: answers.order_json(acct.find(p), spot)
        ),
        Route("DELETE", f"{prefix}/order", "order", "SIGNED", cancel),
        *(
            []
            if spot
            else [
                Route(
                    "PUT",
                    f"{prefix}/order",
                    "order",
                    "SIGNED",
                    lambda p: answers.order_json(acct.modify(p), False),
                    orders=1,
                )
            ]
        ),
        Route("GET", f"{prefix}/openOrders", "openOrders", "SIGNED", open_orders, open_weight),
        Route("GET", trades_path, "myTrades", "SIGNED", trades, trades_weight),
        Route("DELETE", all_path, "allOpenOrders", "SIGNED", cancel_all),
    ]


def _listen_key(ex: Exchange, path: str) -> list[Route]:
    streams = ex.streams

    def keepalive(p: dict[str, str]) -> Any:
        streams.keepalive(p.get("listenKey"))
        return {}

    def close(p: dict[str, str]) -> Any:
        streams.close(p.get("listenKey"))
        return {}

    return [
        Route("POST", path, "listenKey", "USER_STREAM", lambda p: {"listenKey": streams.create()}),
        Route("PUT", path, "listenKey", "USER_STREAM", keepalive),
        Route("DELETE", path, "listenKey", "USER_STREAM", close),
    ]


def _usdm_account(ex: Exchange) -> list[Route]:
    acct = ex.account
    out = []
    for version in ("v2", "v3"):
        out += [
            Route(
                "GET",
                f"/fapi/{version}/positionRisk",
                "positionRisk",
                "SIGNED",
                lambda p: answers.position_risk(acct, ex.symbol_param(p, required=False)),
            ),
            Route(
                "GET", f"/fapi/{version}/account", "account", "SIGNED", lambda p: answers.usdm_account(acct)
            ),
            Route(
                "GET", f"/fapi/{version}/balance", "balance", "SIGNED", lambda p: answers.usdm_balances(acct)
            ),
        ]
    out.append(Route("POST", "/fapi/v1/countdownCancelAll", "countdownCancelAll", "SIGNED", ex.countdown))
    return out


def routes(ex: Exchange) -> list[Route]:
    """Every REST route of the simulated venue."""
    if ex.spot:
        prefix = "/api/v3"
        account = [
            Route("GET", f"{prefix}/account", "account", "SIGNED", lambda p: answers.spot_account(ex.account))
        ]
        return [
            *_public(ex, prefix),
            *_orders(ex, prefix),
            *_listen_key(ex, f"{prefix}/userDataStream"),
            *account,
        ]
    prefix = "/fapi/v1"
    return [
        *_public(ex, prefix),
        *_orders(ex, prefix),
        *_listen_key(ex, f"{prefix}/listenKey"),
        *_usdm_account(ex),
    ]
