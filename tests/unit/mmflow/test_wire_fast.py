"""The decoder's fast path must agree with full pydantic validation on every input."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.models import BookTick, Trade
from mmflow.wire import WireError, _canonical, _fast, _load, decode_input, decode_input_validated, encode

BOOK = BookTick(
    market="binance-futures:BTCUSDT",
    ts_exchange=1,
    ts_recv=2,
    bid_px=Decimal("61800.20"),
    bid_qty=Decimal("2.507"),
    ask_px=Decimal("61800.30"),
    ask_qty=Decimal("2.510"),
)
TRADE = Trade(
    market="binance-futures:SOLUSDT",
    ts_exchange=5,
    ts_recv=6,
    trade_id="4b08",
    side="sell",
    px=Decimal("77.300"),
    qty=Decimal("5.1"),
)

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=45),
    st.sampled_from(
        [
            "0",
            "-1",
            "1e5",
            "1E-3",
            "NaN",
            "Infinity",
            "1_000",
            " 1.5",
            "1.5 ",
            ".5",
            "5.",
            "0.0",
            "1" * 39,
            "9" * 12 + ".5",
            "999999999999",
            "1000000000000",
            "٣",
            "1..2",
            "+1",
            "0001.10",
            "buy",
            "sell",
            "",
            "x" * 65,
            "x" * 129,
        ]
    ),
)


def agrees(fast: object, reference: Callable[[], object]) -> None:
    """A shortcut either declines (None) or returns exactly what full validation returns."""
    try:
        expected = reference()
    except WireError:
        expected = None
    if fast is not None:
        assert fast == expected, (fast, expected)
        assert type(fast) is type(expected)


def both(obj: dict) -> None:
    """The fast path on a loaded message against the validated path."""
    agrees(_fast(obj), lambda: decode_input_validated(obj))


@settings(max_examples=1500, deadline=None)
@given(
    base=st.sampled_from([BOOK, TRADE]),
    field=st.text(min_size=1, max_size=12),
    value=odd_values,
    mode=st.sampled_from(["replace", "add", "remove"]),
)
def test_fast_path_never_disagrees_with_pydantic(base, field, value, mode) -> None:
    obj = _load(encode(base))
    keys = list(obj)
    target = keys[hash(field) % len(keys)]
    if mode == "replace":
        obj[target] = value
    elif mode == "add":
        obj[field] = value
    else:
        del obj[target]
    if obj.get("v") == 1 and type(obj.get("v")) is int:
        both(obj)


def test_fast_path_takes_canonical_market_data() -> None:
    for event in (BOOK, TRADE):
        obj = json.loads(encode(event))
        assert _fast(obj) == event
        both(obj)


def canonical_agrees(raw: bytes) -> None:
    """The byte-level path against JSON parsing plus full validation."""
    agrees(_canonical(raw), lambda: decode_input_validated(_load(raw)))


def test_canonical_bytes_take_the_byte_level_path() -> None:
    for event in (BOOK, TRADE):
        assert _canonical(encode(event)) == event
        assert decode_input(encode(event)) == event
    assert _canonical(b" " + encode(BOOK)) is None  # anything unusual goes the JSON way


@settings(max_examples=1500, deadline=None)
@given(base=st.sampled_from([BOOK, TRADE]), field=st.integers(0, 8), value=odd_values)
def test_byte_level_path_never_disagrees_when_a_value_changes(base, field, value) -> None:
    obj = json.loads(encode(base))
    obj[list(obj)[field]] = value
    canonical_agrees(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


@settings(max_examples=1500, deadline=None)
@given(
    base=st.sampled_from([BOOK, TRADE]),
    at=st.integers(0, 400),
    cut=st.integers(0, 3),
    insert=st.binary(max_size=3) | st.sampled_from([b'"', b"\\", b"-", b"0", b".", b"e", b"\xff"]),
)
def test_byte_level_path_never_disagrees_on_mangled_bytes(base, at, cut, insert) -> None:
    raw = encode(base)
    at %= len(raw) + 1
    canonical_agrees(raw[:at] + insert + raw[at + cut :])
