"""The JSON wire form: exact round trips, and decode_input never failing except with WireError.

The hypothesis tests count every example they try; the total is printed at the end of the module
(through the terminal reporter, so it shows without ``-s``).
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmflow.config import load_settings
from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import make_decoder
from mmflow.models import BookTick, CancelAllIntent, DeadLetter, Fill, HedgeIntent, QuoteIntent, Trade
from mmflow.wire import WireError, decode_input, decode_intent, encode
from tests.builders import tick, trade
from tests.conftest import json_values

D = Decimal
EXAMPLES = TallyCounter()
HYP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- fixtures of every type ----------------------------------------------------------------------

TICK = BookTick(
    market="binance-futures:SOLUSDT",
    ts_exchange=1786310819053000,
    ts_recv=1786310819918750,
    bid_px=D("77.300"),
    bid_qty=D("1347.2"),
    ask_px=D("77.310"),
    ask_qty=D("212.6"),
)
TRADE = Trade(
    market="binance-futures:BTCUSDT",
    ts_exchange=1723161256322000,
    ts_recv=1723161255088176,
    trade_id="5266583935",
    side="buy",
    px=D("61800.30"),
    qty=D("0.006"),
)
FILL = Fill(
    market="binance-futures:SOLUSDT",
    ts=1786310821431163,
    fill_id="binance-futures:SOLUSDT-F000000001",
    intent_id="q-17",
    side="sell",
    px=D("77.31"),
    qty=D("0.010"),
    fee=D("-0.0000154620"),
    liquidity="maker",
    source="maker",
)
HEDGE_FILL = Fill(
    market="binance-futures:SOLUSDT",
    ts=5,
    fill_id="f2",
    intent_id="h-1",
    side="buy",
    px=D("77.32"),
    qty=D("0.009"),
    fee=D("0.00034794"),
    liquidity="taker",
    source="hedge",
)
QUOTE = QuoteIntent(
    market="binance-futures:SOLUSDT",
    ts=123,
    intent_id="q-1",
    bid_px=D("77.27"),
    bid_qty=D("0.011"),
    ask_px=None,
    ask_qty=None,
    best_bid=D("77.300"),
    best_ask=D("77.310"),
    inventory=D("-0.027"),
    reasons=("trend_down", "pnl_guard"),
)
QUOTE_BOTH = QuoteIntent(
    market="binance-futures:BTCUSDT",
    ts=0,
    intent_id="q-2",
    bid_px=D("61780.1"),
    bid_qty=D("0.010"),
    ask_px=D("61820.5"),
    ask_qty=D("0.0085"),
    best_bid=D("61800.2"),
    best_ask=D("61800.3"),
    inventory=D("0"),
)
HEDGE = HedgeIntent(
    market="binance-futures:SOLUSDT",
    ts=99,
    intent_id="h-1",
    side="sell",
    qty=D("0.026"),
    limit_px=D("77.2614"),
    best_bid=D("77.30"),
    best_ask=D("77.31"),
    inventory=D("0.027"),
    reasons=("inventory>trigger",),
)
CANCEL = CancelAllIntent(market="binance-futures:SOLUSDT", ts=7, intent_id="c-1", reasons=("stale",))
CANCEL_FULL = CancelAllIntent(
    market="binance-futures:SOLUSDT",
    ts=7,
    intent_id="c-2",
    best_bid=D("1.5"),
    best_ask=D("1.50E+1"),
    inventory=D("-0.000"),
    reasons=(),
)

DEC_FIELDS = (
    "bid_px",
    "bid_qty",
    "ask_px",
    "ask_qty",
    "px",
    "qty",
    "fee",
    "limit_px",
    "best_bid",
    "best_ask",
    "inventory",
)


def assert_exact(a: Any, b: Any) -> None:
    """Equal, and every Decimal is the same Decimal (same digits and exponent, not just value)."""
    assert type(a) is type(b)
    assert a == b
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        assert type(x) is type(y), name
        if isinstance(x, Decimal):
            assert x.as_tuple() == y.as_tuple(), name


@pytest.mark.parametrize("event", [TICK, TRADE, FILL, HEDGE_FILL], ids=lambda e: type(e).__name__)
def test_input_round_trip_is_exact(event) -> None:
    raw = encode(event)
    assert isinstance(raw, bytes)
    assert_exact(decode_input(raw), event)
    assert_exact(decode_input(raw.decode()), event)  # str input too


@pytest.mark.parametrize("intent", [QUOTE, QUOTE_BOTH, HEDGE, CANCEL, CANCEL_FULL], ids=lambda e: e.intent_id)
def test_intent_round_trip_is_exact(intent) -> None:
    assert_exact(decode_intent(encode(intent)), intent)


@pytest.mark.parametrize(
    "obj", [TICK, TRADE, FILL, QUOTE, QUOTE_BOTH, HEDGE, CANCEL_FULL], ids=lambda e: type(e).__name__
)
def test_decimals_are_json_strings(obj) -> None:
    doc = orjson.loads(encode(obj))
    assert doc["v"] == 1 and doc["type"] == obj.type
    seen = 0
    for name in DEC_FIELDS:
        if name in doc and getattr(obj, name) is not None:
            assert isinstance(doc[name], str), name
            assert doc[name] == str(getattr(obj, name))
            seen += 1
    assert seen >= 2
    assert not any(isinstance(v, float) for v in doc.values())


def test_encoded_bytes_contain_the_exact_decimal_text() -> None:
    raw = encode(TRADE)
    assert b'"px":"61800.30"' in raw and b'"qty":"0.006"' in raw
    assert b'"fee":"-0.0000154620"' in encode(FILL)


def test_intent_is_not_an_input_and_vice_versa() -> None:
    with pytest.raises(WireError):
        decode_input(encode(QUOTE))
    with pytest.raises(WireError):
        decode_intent(encode(TICK))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("bid_px"), "bid_px"),
        (lambda d: d.update(bid_px="NaN"), "bid_px"),
        (lambda d: d.update(ask_qty="Infinity"), "ask_qty"),
        (lambda d: d.update(ask_qty="-Infinity"), "ask_qty"),
        (lambda d: d.update(bid_qty="0"), "bid_qty"),
        (lambda d: d.update(ask_px="-77.31"), "ask_px"),
        (lambda d: d.update(ask_px="1e40"), "ask_px"),
        (lambda d: d.update(ask_px=1e40), "ask_px"),
        (lambda d: d.update(ts_recv=-1), "ts_recv"),
        (lambda d: d.update(ts_recv="soon"), "ts_recv"),
        (lambda d: d.update(market=""), "market"),
        (lambda d: d.update(v=2), "version"),
        (lambda d: d.pop("v"), "version"),
        (lambda d: d.update(type="candle"), "type"),
    ],
)
def test_specific_malformed_books_are_wire_errors(mutate, fragment) -> None:
    doc = orjson.loads(encode(TICK))
    mutate(doc)
    with pytest.raises(WireError, match=fragment):
        decode_input(orjson.dumps(doc))


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"nul", b"[]", b"3", b'"book"', b"\xff\xfe", b"NaN", b'{"v": NaN}']
)
def test_non_objects_are_wire_errors(raw) -> None:
    with pytest.raises(WireError):
        decode_input(raw)


# -- property tests: decode_input never raises anything but WireError ----------------------------


def check_decode(raw: bytes | str, tag: str) -> None:
    EXAMPLES[tag] += 1
    try:
        event = decode_input(raw)
    except WireError as err:
        assert str(err)  # a reason for the dead letter
        return
    # Whatever is accepted must be a genuinely valid event.
    assert isinstance(event, BookTick | Trade | Fill)
    assert event.v == 1
    for name in DEC_FIELDS:
        value = getattr(event, name, None)
        if value is None:
            continue
        assert isinstance(value, Decimal) and value.is_finite(), name
        if name != "fee":
            assert value > 0, name
    for name in ("ts", "ts_exchange", "ts_recv"):
        value = getattr(event, name, None)
        if value is not None:
            assert isinstance(value, int) and 0 <= value < 10**17, name
    assert isinstance(event.market, str) and event.market
    assert decode_input(encode(event)) == event


dec_text = st.decimals(
    min_value=D("0.00000001"), max_value=D("1000000"), allow_nan=False, allow_infinity=False, places=8
).map(str)
ts_int = st.integers(min_value=0, max_value=10**16)
name = st.text(min_size=1, max_size=12)

book_doc = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "type": st.just("book"),
        "market": name,
        "ts_exchange": ts_int,
        "ts_recv": ts_int,
        "bid_px": dec_text,
        "bid_qty": dec_text,
        "ask_px": dec_text,
        "ask_qty": dec_text,
    }
)
trade_doc = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "type": st.just("trade"),
        "market": name,
        "ts_exchange": ts_int,
        "ts_recv": ts_int,
        "trade_id": st.text(max_size=20),
        "side": st.sampled_from(["buy", "sell"]),
        "px": dec_text,
        "qty": dec_text,
    }
)
fill_doc = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "type": st.just("fill"),
        "market": name,
        "ts": ts_int,
        "fill_id": name,
        "intent_id": name,
        "side": st.sampled_from(["buy", "sell"]),
        "px": dec_text,
        "qty": dec_text,
        "fee": st.decimals(min_value=-1, max_value=1, places=10, allow_nan=False).map(str),
        "liquidity": st.sampled_from(["maker", "taker"]),
        "source": st.sampled_from(["maker", "hedge"]),
    }
)
valid_doc = st.one_of(book_doc, trade_doc, fill_doc)

json_scalar, json_value = json_values(20, 8, 4, 12)
bad_value = st.one_of(
    json_value,
    st.sampled_from(
        [
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            "sNaN",
            "0",
            "-0",
            "0.0",
            "-1",
            "-0.001",
            "1e40",
            "-1e40",
            "1E+400",
            "1e-400",
            "9" * 60,
            "0." + "0" * 50 + "1",
            "",
            " ",
            "1,5",
            "0x10",
            "1_000",
            "١٢٣",
        ]
    ),
    st.sampled_from([0, -1, -0.5, 0.0, 1e40, -1e40, 1e308, 5e-324, 2**63, -(2**63), True, False, None]),
)


@HYP
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    check_decode(raw, "random_bytes")


@HYP
@given(st.text(max_size=100))
def test_random_text_never_crashes(raw: str) -> None:
    check_decode(raw, "random_text")


@HYP
@given(json_value)
def test_random_json_values_never_crash(value: Any) -> None:
    check_decode(orjson.dumps(value), "random_json")


@HYP
@given(valid_doc)
def test_valid_documents_decode(doc: dict[str, Any]) -> None:
    EXAMPLES["valid"] += 1
    event = decode_input(orjson.dumps(doc))
    assert event.type == doc["type"]
    for key, value in doc.items():
        got = getattr(event, key)
        assert (D(value) == got) if isinstance(got, Decimal) else got == value, key


@HYP
@given(valid_doc, st.data())
def test_missing_field(doc: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(doc)))
    del doc[key]
    check_decode(orjson.dumps(doc), "missing_field")


@HYP
@given(valid_doc, st.text(min_size=1, max_size=10), json_value)
def test_extra_field(doc: dict[str, Any], key: str, value: Any) -> None:
    doc.setdefault(key, value)
    check_decode(orjson.dumps(doc), "extra_field")


@HYP
@given(valid_doc, st.data(), bad_value)
def test_wrong_or_hostile_value(doc: dict[str, Any], data: st.DataObject, value: Any) -> None:
    """Wrong types, NaN/Infinity, zero/negative, absurd magnitudes, bad "v" and "type"."""
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = value
    check_decode(orjson.dumps(doc), "wrong_value")


@HYP
@given(valid_doc, st.one_of(json_value, st.integers(), st.sampled_from([0, 2, "1", 1.5, "v1", None])))
def test_unknown_version(doc: dict[str, Any], v: Any) -> None:
    doc["v"] = v
    try:
        raw = orjson.dumps(doc)
    except TypeError:  # an integer beyond 64 bits cannot be encoded: feed it as text instead
        raw = orjson.dumps({**doc, "v": 0})[:-1] + b',"v":' + str(v).encode() + b"}"
    check_decode(raw, "unknown_version")
    if v not in (1, 1.0) or isinstance(v, str):
        # anything that is not the number 1 is refused
        with pytest.raises(WireError):
            decode_input(raw)


@HYP
@given(valid_doc, st.one_of(st.text(max_size=10), json_value))
def test_unknown_type(doc: dict[str, Any], kind: Any) -> None:
    doc["type"] = kind
    check_decode(orjson.dumps(doc), "unknown_type")
    if kind not in ("book", "trade", "fill"):
        with pytest.raises(WireError):
            decode_input(orjson.dumps(doc))


@HYP
@given(valid_doc, st.data(), st.integers(min_value=20, max_value=10_000), st.booleans(), st.booleans())
def test_absurd_magnitude(
    doc: dict[str, Any], data: st.DataObject, exp: int, negative_exp: bool, as_number: bool
) -> None:
    key = data.draw(st.sampled_from([k for k in doc if k in DEC_FIELDS or k.startswith("ts")]))
    text = f"1e{'-' if negative_exp else ''}{exp}"
    if as_number:
        raw = orjson.dumps({**doc, key: 0}).replace(f'"{key}":0'.encode(), f'"{key}":{text}'.encode())
    else:
        raw = orjson.dumps({**doc, key: text})
    check_decode(raw, "absurd_magnitude")
    if not negative_exp and exp >= 40:
        with pytest.raises(WireError):
            decode_input(raw)


@HYP
@given(valid_doc, st.data())
def test_truncated_or_corrupted_bytes(doc: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(orjson.dumps(doc))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=3))
    for pos, byte in flips:
        raw[pos] = byte
    check_decode(bytes(raw[:cut] if data.draw(st.booleans()) else raw), "corrupted")


# -- the flow's decoder -------------------------------------------------------------------------


def _book(market: str, ts: int, bid: str = "77.30", ask: str = "77.31") -> BookTick:
    return tick(ts, bid, ask, market=market, bid_qty="1", ask_qty="2")


def _trade(market: str, ts: int, px: str = "77.30") -> Trade:
    return trade(ts, f"t{ts}", "sell", px, "0.5", market=market)


def dead_count(metrics: FlowMetrics, source: str, reason: str) -> float:
    return (
        metrics.registry.get_sample_value("maker_dead_letters_total", {"source": source, "reason": reason})
        or 0.0
    )


def test_flow_decoder_splits_by_market_and_dead_letters_bad_records() -> None:
    settings = load_settings()
    metrics = FlowMetrics()
    decode = make_decoder(settings, metrics)
    sol1, btc1, sol2, btc2 = (
        _book("binance-futures:SOLUSDT", 1),
        _trade("binance-futures:BTCUSDT", 2, "61800.3"),
        _trade("binance-futures:SOLUSDT", 3),
        _book("binance-futures:BTCUSDT", 4, "61800.2", "61800.3"),
    )
    crossed = _book("binance-futures:SOLUSDT", 5, bid="77.31", ask="77.30")
    locked = _book("binance-futures:SOLUSDT", 6, bid="77.30", ask="77.30")
    unknown = _book("DOGEUSDT", 7, bid="0.1", ask="0.2")
    sol3 = _book("binance-futures:SOLUSDT", 8)
    batch = [
        encode(sol1),
        encode(btc1),
        b'{"v":1,"type":"book",',
        encode(sol2),
        encode(unknown),
        encode(crossed),
        bytearray(encode(btc2)),
        encode(locked),
        encode(sol3).decode(),
        b"\x00garbage",
    ]
    (out,) = decode(batch)
    chunks, dead = out.chunks, out.dead
    assert chunks and dead
    assert dict(chunks) == {
        "binance-futures:SOLUSDT": [sol1, sol2, sol3],
        "binance-futures:BTCUSDT": [btc1, btc2],
    }
    assert len(chunks) == 2  # one chunk per market
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert [(d.detail.split(":")[0], d.market) for d in dead] == [
        ("malformed json", None),
        ("unknown market", "DOGEUSDT"),
        ("crossed book", "binance-futures:SOLUSDT"),
        ("crossed book", "binance-futures:SOLUSDT"),
        ("malformed json", None),
    ]
    assert "DOGEUSDT" in dead[1].detail
    assert dead[0].raw == b'{"v":1,"type":"book",' and dead[2].raw == encode(crossed)
    assert all(d.source == "bytes" for d in dead)
    assert dead_count(metrics, "bytes", "malformed_json") == 2
    assert dead_count(metrics, "bytes", "unknown_market") == 1
    assert dead_count(metrics, "bytes", "crossed_book") == 2
    # a second batch keeps counting
    decode([b"{}", encode(unknown)])
    assert dead_count(metrics, "bytes", "schema_version") == 1
    assert dead_count(metrics, "bytes", "unknown_market") == 2


def test_flow_decoder_labels_kafka_like_messages_by_topic() -> None:
    metrics = FlowMetrics()
    decode = make_decoder(load_settings(), metrics)
    good = SimpleNamespace(value=encode(_book("binance-futures:SOLUSDT", 1)), topic="mmflow.marketdata")
    bad = SimpleNamespace(value=b"not json", topic="mmflow.marketdata")
    schema = SimpleNamespace(
        value=orjson.dumps({**orjson.loads(encode(_book("binance-futures:SOLUSDT", 2))), "bid_px": "NaN"}),
        topic="mmflow.fills",
    )
    # confluent-kafka's Message exposes value() and topic() as methods
    raw_msg = SimpleNamespace(value=lambda: b"x", topic=lambda: "mmflow.fills")
    (out,) = decode([good, bad, schema, raw_msg])
    assert len(out.chunks) == 1
    dead = out.dead
    assert [(d.source, d.reason) for d in dead] == [
        ("mmflow.marketdata", "malformed_json"),
        ("mmflow.fills", "schema"),
        ("mmflow.fills", "malformed_json"),
    ]
    assert dead[2].raw == b"x"
    assert dead_count(metrics, "mmflow.marketdata", "malformed_json") == 1
    assert dead_count(metrics, "mmflow.fills", "schema") == 1
    assert dead_count(metrics, "mmflow.fills", "malformed_json") == 1


def test_flow_decoder_passes_typed_events_and_dead_letters_through() -> None:
    metrics = FlowMetrics()
    decode = make_decoder(load_settings(), metrics)
    ev = _book("binance-futures:SOLUSDT", 1)
    dl = DeadLetter.of("file.csv", "crossed book: bid >= ask (row 2)", b"{}", "binance-futures:SOLUSDT")
    (out,) = decode([ev, dl])
    assert (out.chunks, out.dead) == ([("binance-futures:SOLUSDT", [ev])], [dl])
    assert dead_count(metrics, "file.csv", "crossed_book") == 1


def test_flow_decoder_survives_undecodable_text() -> None:
    # A str record that is not valid Unicode text (lone surrogate) must become a dead letter,
    # like any other malformed record, rather than abort the whole batch.
    metrics = FlowMetrics()
    decode = make_decoder(load_settings(), metrics)
    ok = encode(_book("binance-futures:SOLUSDT", 1))
    (out,) = decode([ok, "\ud800"])
    assert len(out.dead) == 1
    assert out.chunks == [("binance-futures:SOLUSDT", [_book("binance-futures:SOLUSDT", 1)])]


# -- the tally ----------------------------------------------------------------------------------


def test_zz_report_hypothesis_examples(capsys: pytest.CaptureFixture[str]) -> None:
    total = sum(EXAMPLES.values())
    with capsys.disabled():
        print(f"\ntest_wire: hypothesis examples tried: {total} ({dict(sorted(EXAMPLES.items()))})")
    if EXAMPLES["valid"]:  # zero only when the property tests were deselected
        assert EXAMPLES["valid"] >= 50
