"""Versioned JSON wire form of events and intents (see docs/wire-format.md).

Decoding validates with pydantic against the very dataclasses the strategy uses; anything that
fails raises ``WireError`` with a reason short enough for a dead-letter record.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from mmflow.models import (
    DECIMAL_PLACES,
    ID_MAX,
    NAME_MAX,
    SCHEMA_VERSION,
    TS_DIGITS,
    TS_LIMIT,
    VALUE_DIGITS,
    VALUE_LIMIT,
    BookTick,
    CancelAllIntent,
    Control,
    Depth,
    Fill,
    HedgeIntent,
    Incarnation,
    InputEvent,
    Intent,
    OrderUpdate,
    Position,
    QuoteIntent,
    Timer,
    Trade,
)


class WireError(ValueError):
    """A record that cannot become an event; the message is the dead-letter reason."""


_INPUT = TypeAdapter(
    Annotated[
        BookTick | Trade | Depth | Fill | OrderUpdate | Control | Position | Incarnation | Timer,
        Field(discriminator="type"),
    ]
)
_INTENT = TypeAdapter(Annotated[QuoteIntent | HedgeIntent | CancelAllIntent, Field(discriminator="type")])


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(obj: InputEvent | Intent) -> bytes:
    """Serialize an event or intent; decimals become strings, so the bytes are exact."""
    return orjson.dumps(obj, default=_default)


def _reason(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "invalid: " + "; ".join(parts)


def _load(raw: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"malformed json: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("malformed json: top level is not an object")
    _check_version(obj)
    return obj


def _check_version(obj: dict[str, Any]) -> None:
    version = obj.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:  # noqa: E721 (True is not version 1)
        raise WireError(f"unknown schema version: {version!r}")


_BOOK_KEYS = frozenset(
    {"market", "ts_exchange", "ts_recv", "bid_px", "bid_qty", "ask_px", "ask_qty", "type", "v"}
)
_TRADE_KEYS = frozenset({"market", "ts_exchange", "ts_recv", "trade_id", "side", "px", "qty", "type", "v"})
_PX_LIMIT = VALUE_LIMIT
_TS_LIMIT = TS_LIMIT
_SIDES = ("buy", "sell")


def _plain(s: Any) -> bool:
    """A decimal written plainly: ASCII digits, at most one point and 18 places, 38 characters."""
    if type(s) is not str or len(s) > 38 or not s.isascii() or not s.replace(".", "", 1).isdigit():
        return False
    point = s.find(".")
    return point < 0 or len(s) - point <= DECIMAL_PLACES + 1


def _fast(obj: dict[str, Any]) -> InputEvent | None:
    """The hot path for canonical market data, or None to let pydantic decide.

    It accepts only what the pydantic schema accepts (a property test holds the two paths equal)
    and costs a fraction of full validation; anything unusual falls through to pydantic, which
    also produces the precise dead-letter reason.
    """
    market = obj.get("market")
    ts_recv, ts_exchange = obj.get("ts_recv"), obj.get("ts_exchange")
    if (
        type(market) is not str
        or not 0 < len(market) <= 64
        or type(ts_recv) is not int
        or not 0 <= ts_recv < _TS_LIMIT
        or type(ts_exchange) is not int
        or not 0 <= ts_exchange < _TS_LIMIT
    ):
        return None
    kind, keys, D, lim = obj.get("type"), obj.keys(), Decimal, _PX_LIMIT
    if kind == "book" and keys == _BOOK_KEYS:
        bp, bq, ap, aq = obj["bid_px"], obj["bid_qty"], obj["ask_px"], obj["ask_qty"]
        if not (_plain(bp) and _plain(bq) and _plain(ap) and _plain(aq)):
            return None
        bp, bq, ap, aq = D(bp), D(bq), D(ap), D(aq)
        if not (0 < bp < lim and 0 < bq < lim and 0 < ap < lim and 0 < aq < lim):
            return None
        return BookTick(
            market=market,
            ts_exchange=ts_exchange,
            ts_recv=ts_recv,
            bid_px=bp,
            bid_qty=bq,
            ask_px=ap,
            ask_qty=aq,
        )
    if kind == "trade" and keys == _TRADE_KEYS:
        px, qty, tid, side = obj["px"], obj["qty"], obj["trade_id"], obj["side"]
        if (
            not (_plain(px) and _plain(qty))
            or type(tid) is not str
            or len(tid) > ID_MAX
            or side not in _SIDES
        ):
            return None
        px, qty = D(px), D(qty)
        if not (0 < px < lim and 0 < qty < lim):
            return None
        return Trade(
            market=market, ts_exchange=ts_exchange, ts_recv=ts_recv, trade_id=tid, side=side, px=px, qty=qty
        )
    return None


# The canonical bytes of market data, exactly as ``encode`` writes them: keys in field order, no
# whitespace, no escapes, plain decimals under 1e9 (at most VALUE_DIGITS integer digits). One regular
# expression reads such a message in a fraction of the time of JSON parsing plus ``_fast``; anything
# else (another key order, an escape, a sign) takes that path, so this is a shortcut, never a rule
# (property tests hold the two equal).
_TS = f"(0|[1-9][0-9]{{0,{TS_DIGITS - 1}}})"
_MARKET = f'"market":"([A-Za-z0-9_.:/-]{{1,{NAME_MAX}}})","ts_exchange":{_TS},"ts_recv":{_TS},'
_NUM = f"([0-9]{{1,{VALUE_DIGITS}}}(?:\\.[0-9]{{1,{DECIMAL_PLACES}}})?)"
_BOOK_RE = re.compile(
    r"\{"
    + _MARKET
    + "".join(f'"{key}":"{_NUM}",' for key in ("bid_px", "bid_qty", "ask_px", "ask_qty"))
    + r'"type":"book","v":1\}'
)
_TRADE_RE = re.compile(
    r"\{"
    + _MARKET
    + r'"trade_id":"([\x20\x21\x23-\x5b\x5d-\x7e]{0,'
    + str(ID_MAX)
    + r'})","side":"(buy|sell)",'
    + f'"px":"{_NUM}","qty":"{_NUM}",'
    + r'"type":"trade","v":1\}'
)


def _canonical(raw: bytes) -> InputEvent | None:
    """Market data in its canonical bytes, or None to parse it as JSON.

    The pattern admits no sign and at most VALUE_DIGITS integer digits, so a decimal here is >= 0 and < 1e9,
    and "> 0" is its truth value.
    """
    text = raw.decode("latin-1")  # never fails; the pattern admits ASCII only
    D = Decimal
    if text.endswith('"book","v":1}'):
        found = _BOOK_RE.fullmatch(text)
        if found is None:
            return None
        market, ts_exchange, ts_recv, bp, bq, ap, aq = found.groups()
        bp, bq, ap, aq = D(bp), D(bq), D(ap), D(aq)
        if not (bp and bq and ap and aq):
            return None
        return BookTick(
            market=market,
            ts_exchange=int(ts_exchange),
            ts_recv=int(ts_recv),
            bid_px=bp,
            bid_qty=bq,
            ask_px=ap,
            ask_qty=aq,
        )
    found = _TRADE_RE.fullmatch(text)
    if found is not None:
        market, ts_exchange, ts_recv, tid, side, px, qty = found.groups()
        px, qty = D(px), D(qty)
        if not (px and qty):
            return None
        return Trade(
            market=market,
            ts_exchange=int(ts_exchange),
            ts_recv=int(ts_recv),
            trade_id=tid,
            side=side,
            px=px,
            qty=qty,
        )
    return None


def decode_input(raw: bytes | str) -> InputEvent:
    """Decode a market-data, fill or control message, checking types, signs and finiteness."""
    if type(raw) is bytes:
        event = _canonical(raw)
        if event is not None:
            return event
    obj = _load(raw)
    event = _fast(obj)
    if event is not None:
        return event
    return decode_input_validated(obj)


_D, _I, _S, _B = "decimal (a JSON string)", "integer", "string", "boolean"
_L = "list of [price, size] pairs of decimal strings"
#: The JSON type of every field of every input message: decimals travel as strings, timestamps as
#: integers, nothing else is accepted (pydantic alone would quietly coerce 77.29 or "1" or true).
_FIELDS: dict[str, dict[str, str]] = {
    "book": {
        "market": _S,
        "ts_exchange": _I,
        "ts_recv": _I,
        "bid_px": _D,
        "bid_qty": _D,
        "ask_px": _D,
        "ask_qty": _D,
    },
    "trade": {
        "market": _S,
        "ts_exchange": _I,
        "ts_recv": _I,
        "trade_id": _S,
        "side": _S,
        "px": _D,
        "qty": _D,
    },
    "depth": {
        "market": _S,
        "ts_exchange": _I,
        "ts_recv": _I,
        "bids": _L,
        "asks": _L,
        "snapshot": _B,
    },
    "fill": {
        "market": _S,
        "ts": _I,
        "fill_id": _S,
        "intent_id": _S,
        "side": _S,
        "px": _D,
        "qty": _D,
        "fee": _D,
        "liquidity": _S,
        "source": _S,
        "cause": _S,
    },
    "order": {
        "market": _S,
        "ts": _I,
        "intent_id": _S,
        "side": _S,
        "kind": _S,
        "status": _S,
        "px": _D,
        "qty": _D,
        "filled_qty": _D,
        "reason": _S,
        "source": _S,
    },
    "control": {
        "market": _S,
        "ts": _I,
        "command_id": _S,
        "action": _S,
        "reason": _S,
        "clear_loss_limit": _B,
    },
    "position": {"market": _S, "ts": _I, "position": _D, "fills": _I, "source": _S},
    "incarnation": {"market": _S, "ts": _I, "incarnation": _S},
    "timer": {"market": _S, "ts": _I},
}
_PY = {_D: str, _S: str, _I: int, _B: bool, _L: list}


def _bad_level(levels: list[Any]) -> str | None:
    """Why a depth side is not a list of [string, string] pairs (a float price would be
    coerced by pydantic), or None."""
    for i, level in enumerate(levels):
        if type(level) is not list or len(level) != 2:
            return f"{i}: expected a [price, size] pair"
        if type(level[0]) is not str or type(level[1]) is not str:
            return f"{i}: expected decimal strings, got {type(level[0]).__name__}, {type(level[1]).__name__}"
    return None


def _check_fields(obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    fields = _FIELDS.get(kind) if type(kind) is str else None
    if fields is None:
        return  # an unknown type: pydantic's discriminator names it
    for key, value in obj.items():
        if key in ("type", "v"):
            continue
        expected = fields.get(key)
        if expected is None:
            raise WireError(f"invalid: {key}: unknown field")
        if type(value) is not _PY[expected]:
            raise WireError(f"invalid: {key}: expected a {expected}, got {type(value).__name__}")
        if expected is _L:
            problem = _bad_level(value)
            if problem is not None:
                raise WireError(f"invalid: {key}.{problem}")


def inconsistency(event: InputEvent) -> str | None:
    """A check across fields a schema cannot express: the dead-letter reason, or None."""
    if type(event) is BookTick and event.bid_px >= event.ask_px:
        return "crossed book: bid >= ask"
    return None


def decode_object(obj: dict[str, Any]) -> InputEvent:
    """An input message already loaded from JSON (a file's row, say), decoded exactly as
    ``decode_input`` decodes its bytes: the same checks, the same dead-letter reasons."""
    _check_version(obj)
    return _fast(obj) or decode_input_validated(obj)


def decode_input_validated(obj: dict[str, Any]) -> InputEvent:
    """Full validation of a loaded message (the reference path): field names and JSON types,
    then every constraint of the schema."""
    _check_fields(obj)
    try:
        return _INPUT.validate_python(obj)
    except ValidationError as err:
        raise WireError(_reason(err)) from None


def decode_intent(raw: bytes | str) -> Intent:
    """Decode an intent message (used by the execution side and by recorders)."""
    obj = _load(raw)
    try:
        return _INTENT.validate_python(obj)
    except ValidationError as err:
        raise WireError(_reason(err)) from None
