"""The user-data stream: listen keys and the account's events on ``/ws/<listenKey>``.

A listen key is created (or, while one is active, returned again and extended), kept alive and
closed through REST with the API key only (USD-M ``/fapi/v1/listenKey``, spot
``/api/v3/userDataStream``); it lives 60 minutes after its last keep-alive. Events are the venue's
own shapes: ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE`` on USD-M, ``executionReport`` and
``outboundAccountPosition`` on spot, built here from the account's orders and balances.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.records import Order, TradeInfo, fmt
from mmflow.connectors.exchange_sim.sockets import Outbox

LIFETIME_MS = 60 * 60 * 1000


def no_such_key() -> ApiError:
    return ApiError(-1125, "This listenKey does not exist.")


class UserStreams:
    """The account's listen keys and the connections on each."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.clock_ms = clock_ms
        self.keys: dict[str, int] = {}  # key -> expiry (server ms)
        self.outboxes: dict[str, set[Outbox]] = {}

    def _alive(self, key: str) -> bool:
        expiry = self.keys.get(key)
        if expiry is None:
            return False
        if expiry < self.clock_ms():
            self.close(key)
            return False
        return True

    def create(self) -> str:
        """The active key, extended; a new one if none is active."""
        for key in list(self.keys):
            if self._alive(key):
                self.keys[key] = self.clock_ms() + LIFETIME_MS
                return key
        key = secrets.token_urlsafe(48)[:64]
        self.keys[key] = self.clock_ms() + LIFETIME_MS
        return key

    def keepalive(self, key: str | None) -> None:
        key = key or next((k for k in list(self.keys) if self._alive(k)), None)
        if key is None or not self._alive(key):
            raise no_such_key()
        self.keys[key] = self.clock_ms() + LIFETIME_MS

    def close(self, key: str | None) -> None:
        keys = [key] if key else list(self.keys)
        for k in keys:
            self.keys.pop(k, None)
            for box in self.outboxes.pop(k, set()):
                box.close()

    def attach(self, key: str) -> Outbox | None:
        """A connection's outbox on ``key``, or None for an unknown or expired key."""
        if not self._alive(key):
            return None
        box = Outbox()
        self.outboxes.setdefault(key, set()).add(box)
        return box

    def detach(self, key: str, box: Outbox) -> None:
        self.outboxes.get(key, set()).discard(box)

    def publish(self, event: dict[str, Any]) -> None:
        text = orjson.dumps(event).decode()
        for key, boxes in list(self.outboxes.items()):
            if self._alive(key):
                for box in boxes:
                    box.put(text)


def order_trade_update(order: Order, exec_type: str, now: int, trade: TradeInfo | None) -> dict[str, Any]:
    """USD-M ORDER_TRADE_UPDATE for one step of ``order``'s life."""
    f = lambda d: fmt(d, False)  # noqa: E731
    o: dict[str, Any] = {
        "s": order.symbol,
        "c": order.client_id,
        "S": order.side,
        "o": order.type,
        "f": order.tif,
        "q": f(order.qty),
        "p": f(order.price),
        "ap": f(order.avg_price()),
        "sp": "0",
        "x": exec_type,
        "X": order.status,
        "i": order.order_id,
        "l": f(trade.qty) if trade else "0",
        "z": f(order.executed),
        "L": f(trade.price) if trade else "0",
        "N": trade.fee_asset if trade else "USDT",
        "n": f(trade.fee) if trade else "0",
        "T": now,
        "t": trade.trade_id if trade else 0,
        "b": "0",
        "a": "0",
        "m": trade.maker if trade else False,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": order.type,
        "ps": "BOTH",
        "cp": False,
        "rp": f(trade.realized) if trade else "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "NONE",
        "pm": "NONE",
        "gtd": 0,
    }
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}


def execution_report(order: Order, exec_type: str, now: int, trade: TradeInfo | None) -> dict[str, Any]:
    """Spot executionReport for one step of ``order``'s life."""
    f = lambda d: fmt(d, True)  # noqa: E731
    return {
        "e": "executionReport",
        "E": now,
        "s": order.symbol,
        "c": order.client_id if exec_type != "CANCELED" else order.cancel_client_id,
        "S": order.side,
        "o": order.type,
        "f": order.tif,
        "q": f(order.qty),
        "p": f(order.price),
        "P": f(Decimal(0)),
        "F": f(Decimal(0)),
        "g": -1,
        "C": order.client_id if exec_type == "CANCELED" else "",
        "x": exec_type,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": f(trade.qty if trade else Decimal(0)),
        "z": f(order.executed),
        "L": f(trade.price if trade else Decimal(0)),
        "n": f(trade.fee if trade else Decimal(0)),
        "N": trade.fee_asset if trade else None,
        "T": now,
        "t": trade.trade_id if trade else -1,
        "I": 0,
        "w": order.status in ("NEW", "PARTIALLY_FILLED"),
        "m": trade.maker if trade else False,
        "M": False,
        "O": order.time_ms,
        "Z": f(order.cum_quote),
        "Y": f(trade.price * trade.qty if trade else Decimal(0)),
        "Q": f(Decimal(0)),
        "W": order.time_ms,
        "V": "NONE",
    }
