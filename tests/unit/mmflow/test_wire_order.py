"""The order record on the wire: exact round trip, strict types, the statuses it may carry."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from mmflow.models import OrderUpdate
from mmflow.wire import WireError, decode_input, encode

UPDATE = OrderUpdate(
    market="binance:ETHUSDT",
    ts=1_723_161_600_050_000,
    intent_id="binance:ETHUSDT-0-000000012",
    side="sell",
    kind="quote",
    status="partially_filled",
    px=Decimal("2681.74"),
    qty=Decimal("0.0050"),
    filled_qty=Decimal("0.0020"),
)


def test_an_order_update_round_trips_exactly() -> None:
    assert decode_input(encode(UPDATE)) == UPDATE


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("px", 2681.74, "expected a decimal"),
        ("status", "done", "status"),
        ("kind", "limit", "kind"),
        ("filled_qty", "-1", "filled_qty"),
        ("side", "long", "side"),
    ],
)
def test_a_bad_order_update_is_refused_with_its_field(field: str, value: object, says: str) -> None:
    doc = orjson.loads(encode(UPDATE))
    doc[field] = value
    with pytest.raises(WireError, match=says):
        decode_input(orjson.dumps(doc))
