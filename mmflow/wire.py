"""Versioned JSON wire form of events and intents (see docs/wire-format.md).

Decoding validates with pydantic against the very dataclasses the strategy uses; anything that
fails raises ``WireError`` with a reason short enough for a dead-letter record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from mmflow.models import (
    SCHEMA_VERSION,
    BookTick,
    CancelAllIntent,
    Control,
    Fill,
    HedgeIntent,
    InputEvent,
    Intent,
    QuoteIntent,
    Trade,
)


class WireError(ValueError):
    """A record that cannot become an event; the message is the dead-letter reason."""


_INPUT = TypeAdapter(Annotated[BookTick | Trade | Fill | Control, Field(discriminator="type")])
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
    version = obj.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise WireError(f"unknown schema version: {version!r}")
    return obj


def decode_input(raw: bytes | str) -> InputEvent:
    """Decode a market-data, fill or control message, checking types, signs and finiteness."""
    obj = _load(raw)
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
