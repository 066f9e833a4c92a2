"""The wire form of ``Depth``: an exact round trip, and levels only as [string, string] pairs (a
float price or a bare number would be coerced by pydantic, so the field check refuses it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from mmflow.models import Depth
from mmflow.wire import WireError, decode_input, encode

D = Decimal
DEPTH = Depth(
    market="binance-futures:BTCUSDT",
    ts_exchange=1723161256352000,
    ts_recv=1723161255088309,
    bids=((D("61800.20"), D("2.909")), (D("61790.00"), D("0.000"))),
    asks=((D("61800.30"), D("1.5")),),
    snapshot=False,
)


def _doc(**change: Any) -> dict[str, Any]:
    return orjson.loads(encode(DEPTH)) | change


def test_round_trip_is_exact() -> None:
    raw = encode(DEPTH)
    assert orjson.loads(raw)["bids"] == [["61800.20", "2.909"], ["61790.00", "0.000"]]
    back = decode_input(raw)
    assert back == DEPTH and str(back.bids[1][1]) == "0.000"  # type: ignore[union-attr]
    snap = Depth(market="binance:ETHUSDT", ts_exchange=1, ts_recv=2, snapshot=True)
    assert decode_input(encode(snap)) == snap


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bids": [[61800.2, "1"]]}, "invalid: bids.0: expected decimal strings, got float, str"),
        ({"asks": [["1", 2]]}, "invalid: asks.0: expected decimal strings, got str, int"),
        ({"asks": [["1", "2", "3"]]}, "invalid: asks.0: expected a [price, size] pair"),
        ({"bids": [{"px": "1"}]}, "invalid: bids.0: expected a [price, size] pair"),
        (
            {"bids": "61800"},
            "invalid: bids: expected a list of [price, size] pairs of decimal strings, got str",
        ),
        ({"snapshot": 1}, "invalid: snapshot: expected a boolean, got int"),
        ({"depth": 5}, "invalid: depth: unknown field"),
    ],
)
def test_levels_must_be_string_pairs(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(WireError) as err:
        decode_input(orjson.dumps(_doc(**change)))
    assert str(err.value) == reason


@pytest.mark.parametrize(
    "change",
    [{"bids": [["-1", "1"]]}, {"asks": [["1", "-0.1"]]}, {"bids": [["0", "1"]]}, {"asks": [["NaN", "1"]]}],
)
def test_levels_are_bounded_like_every_price(change: dict[str, Any]) -> None:
    with pytest.raises(WireError, match=r"^invalid: "):
        decode_input(orjson.dumps(_doc(**change)))
