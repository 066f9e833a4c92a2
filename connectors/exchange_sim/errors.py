"""Binance's error answers: ``{"code": <negative int>, "msg": ...}`` with an HTTP status.

The codes and messages are the venue's documented ones (USD-M and spot share most), so a client's
error handling is exercised exactly as against the exchange.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the venue refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code, self.msg, self.status = code, msg, status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_param(name: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{name}'.")


def unknown_order_cancel() -> ApiError:
    return ApiError(-2011, "Unknown order sent.")


def no_such_order() -> ApiError:
    return ApiError(-2013, "Order does not exist.")


def bad_signature() -> ApiError:
    return ApiError(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> ApiError:
    return ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def ahead_of_server() -> ApiError:
    return ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def bad_api_key(present: bool) -> ApiError:
    if not present:
        return ApiError(-2014, "API-key format invalid.", 401)
    return ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def gtx_reject() -> ApiError:
    return ApiError(
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected. "
        "The order will not be recorded in the order history",
    )


def maker_reject() -> ApiError:
    """Spot: a LIMIT_MAKER that would cross is rejected (-2010, NEW_ORDER_REJECTED)."""
    return ApiError(-2010, "Order would immediately match and take.")


def unknown_symbol() -> ApiError:
    return ApiError(-1121, "Invalid symbol.")
