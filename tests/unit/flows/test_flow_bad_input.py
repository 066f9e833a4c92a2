"""Bad input through the decoder, the market runtimes and the real Bytewax flow.

A valid stream of two markets (SOLUSDT and BTCUSDT) gets bad records inserted at random places:
malformed JSON, missing and extra fields, wrong types, NaN and infinities, zero and negative
prices or sizes, crossed books, unknown markets, unknown schema versions, duplicated trades and
fills, out-of-order market data, absurd magnitudes, and decimals finer than the 18 places the
Decimal(38, 18) outputs can hold. Whatever the record:

* exactly one dead letter comes out for it, with a non-empty reason, and
  ``maker_dead_letters_total`` grows by the number of dead letters;
* no exception escapes;
* no market's state changes (``pickle.dumps`` of every ``MarketRuntime`` is byte-identical
  before and after the record), and the good records give the same outputs as a run over the
  good records alone.

The contract is docs/wire-format.md: "Unknown fields, a missing field, a wrong type, NaN/Infinity,
a non-positive price or size, or another "v" make the message a dead letter"; decimals are JSON
strings, timestamps JSON integers.

Every generated case is counted; the total is printed by the module's last test.
"""

from __future__ import annotations

import pickle
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mmflow.config import load_settings
from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import make_decoder
from mmflow.flows.replay import replay, run_events
from mmflow.flows.runtime import MarketRuntime
from mmflow.models import BookTick, Control, DeadLetter, Fill, Trade
from mmflow.outputs import Outputs
from mmflow.wire import encode
from tests.builders import paper_runtime
from tests.conftest import json_values

D = Decimal
SETTINGS = load_settings()
MARKETS = ("binance-futures:BTCUSDT", "binance-futures:SOLUSDT")
KNOWN = frozenset(SETTINGS.markets)
assert set(MARKETS) <= KNOWN
TICK = {m: SETTINGS.markets[m].tick_size for m in MARKETS}
START_MID = {
    "binance-futures:BTCUSDT": 618_000,
    "binance-futures:SOLUSDT": 7_730,
}  # in ticks: 61800.0 and 77.30
T0 = 1_786_310_000_000_000

CASES: Tally[str] = Tally()  # generated cases, by test
BAD: Tally[str] = Tally()  # bad records injected, by kind

RUNTIME_HYP = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # The mixed tests do not shrink (a failure there costs a minute of shrinking): the per-kind
    # tests below shrink, and give the minimal example of each failing kind.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
KIND_HYP = settings(RUNTIME_HYP, max_examples=25, phases=tuple(Phase))
FLOW_HYP = settings(RUNTIME_HYP, max_examples=30)
FLOW_KIND_HYP = settings(RUNTIME_HYP, max_examples=8)

# Where the record must be refused: by the decoder (schema and validate) or by the runtime.
DECODER_KINDS = (
    "malformed_json",
    "missing_field",
    "extra_field",
    "wrong_type",
    "nan_inf",
    "zero_negative",
    "crossed_book",
    "unknown_market",
    "unknown_version",
    "absurd_magnitude",
    "sub_resolution",
)
RUNTIME_KINDS = ("duplicate", "out_of_order")
KINDS = DECODER_KINDS + RUNTIME_KINDS
# A reason fragment the dead letter must carry, where the kind determines it.
REASON = {
    "crossed_book": "crossed book",
    "unknown_market": "unknown market",
    "unknown_version": "unknown schema version",
    "out_of_order": "out of order",
}

DEC_FIELDS = ("bid_px", "bid_qty", "ask_px", "ask_qty", "px", "qty", "fee")
POS_FIELDS = ("bid_px", "bid_qty", "ask_px", "ask_qty", "px", "qty")  # must be > 0
TS_FIELDS = ("ts", "ts_exchange", "ts_recv")
STR_FIELDS = ("market", "trade_id", "fill_id", "intent_id", "side", "liquidity", "source", "type")


# -- the valid base stream -----------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    raw: bytes
    kind: str | None  # None: a good record

    @property
    def bad(self) -> bool:
        return self.kind is not None


class Book:
    """What the scenario builder knows of the stream so far (good records only)."""

    def __init__(self) -> None:
        self.mid = dict(START_MID)
        self.last_ts: dict[str, int] = {}
        self.sent_ids: list[bytes] = []  # raw good trades and fills, for re-sending
        self.n = 0

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def ts(self, market: str) -> int:
        return self.last_ts.get(market, T0)

    def book(self, market: str, ts: int, half: int = 1, qty: int = 5) -> BookTick:
        tick, mid = TICK[market], self.mid[market]
        return BookTick(
            market=market,
            ts_exchange=max(0, ts - 900),
            ts_recv=ts,
            bid_px=(mid - half) * tick,
            bid_qty=D(qty) / 10,
            ask_px=(mid + half) * tick,
            ask_qty=D(qty + 3) / 10,
        )

    def trade(self, market: str, ts: int, side: str, qty: int, trade_id: str) -> Trade:
        tick, mid = TICK[market], self.mid[market]
        return Trade(
            market=market,
            ts_exchange=max(0, ts - 700),
            ts_recv=ts,
            trade_id=trade_id,
            side=side,  # type: ignore[arg-type]
            px=(mid - 1 if side == "sell" else mid + 1) * tick,
            qty=D(qty) / 1000,
        )

    def fill(self, market: str, ts: int, side: str, qty: int, fill_id: str) -> Fill:
        return Fill(
            market=market,
            ts=ts,
            fill_id=fill_id,
            intent_id=f"{market}-ext-000000001",  # an intent of an earlier incarnation
            side=side,  # type: ignore[arg-type]
            px=self.mid[market] * TICK[market],
            qty=D(qty) / 1000,
            fee=D(qty) * D("-0.0000013"),
            liquidity="maker",
            source="maker",
        )


step = st.tuples(
    st.sampled_from(MARKETS),
    st.sampled_from(("book", "book", "book", "book", "trade", "trade", "fill")),
    st.integers(-3, 3),  # mid move, ticks
    st.integers(1, 4),  # half spread, ticks
    st.integers(20_000, 1_500_000),  # time step, us
    st.sampled_from(("buy", "sell")),
    st.integers(1, 20),  # size
)


@st.composite
def base_steps(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    # Each market opens with a book and a trade, so duplicates and late records always have
    # something to refer to; then a random walk of books, trades and (input) fills.
    prefix = [(m, kind, 0, 1, 100_000, "sell", 5) for kind in ("book", "trade") for m in MARKETS]
    return prefix + draw(st.lists(step, min_size=8, max_size=50))


# -- bad records ---------------------------------------------------------------------------------

json_scalar, json_value = json_values(12, 6, 3, 8)
not_a_string = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(json_scalar, max_size=3),
    st.dictionaries(st.text(max_size=6), json_scalar, max_size=3),
)


def not_an_integer(ts: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(str(ts)),  # the right number, as a string
        st.just(float(ts)),  # the right number, as a float
        st.booleans(),
        st.none(),
        st.text(max_size=12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.lists(json_scalar, max_size=3),
        st.dictionaries(st.text(max_size=6), json_scalar, max_size=3),
    )


def with_token(doc: dict[str, Any], key: str, token: bytes) -> bytes:
    """The document with ``key``'s value written as a bare JSON token (NaN, 1e400, 10**30...)."""
    raw = orjson.dumps({**doc, key: 0})
    marker = orjson.dumps(key) + b":0"
    assert raw.count(marker) == 1
    return raw.replace(marker, orjson.dumps(key) + b":" + token)


def template(
    draw: st.DrawFn, ctx: Book, types: tuple[str, ...] = ("book", "trade", "fill")
) -> dict[str, Any]:
    """A valid record of a known market, in order and with fresh ids: refusing it is the mutation's doing."""
    market = draw(st.sampled_from(MARKETS))
    ts = ctx.ts(market)
    kind = draw(st.sampled_from(types))
    if kind == "book":
        event: Any = ctx.book(market, ts, draw(st.integers(1, 4)))
    elif kind == "trade":
        event = ctx.trade(market, ts, draw(st.sampled_from(("buy", "sell"))), 3, ctx.fresh("bad-t"))
    elif kind == "fill":
        event = ctx.fill(market, ts, draw(st.sampled_from(("buy", "sell"))), 3, ctx.fresh("bad-f"))
    else:
        event = Control(market=market, ts=ts, command_id=ctx.fresh("bad-c"), action="halt")
    return orjson.loads(encode(event))


def pick(draw: st.DrawFn, doc: dict[str, Any], names: tuple[str, ...]) -> str:
    return draw(st.sampled_from([k for k in doc if k in names]))


def bad_malformed(draw: st.DrawFn, ctx: Book) -> bytes:
    raw = orjson.dumps(template(draw, ctx))
    how = draw(st.sampled_from(("truncated", "trailing", "not_object", "bad_utf8", "garbage", "empty")))
    if how == "truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "trailing":
        return raw + draw(st.sampled_from((b"}", b",", b"{}", b" x", b"]", b"\x00", raw)))
    if how == "not_object":
        value = draw(json_value.filter(lambda v: not isinstance(v, dict)))
        return orjson.dumps(value)
    if how == "bad_utf8":
        return raw.replace(
            b'"market":"', b'"market":"' + draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80"))), 1
        )
    if how == "garbage":
        return b"\x00" + draw(st.binary(max_size=40))
    return b""


#: Fields a record may leave out (they have defaults); "type" and "v" it may not.
OPTIONAL = {
    f.name
    for cls in (BookTick, Trade, Fill, Control)
    for f in fields(cls)
    if f.name not in ("type", "v") and (f.default is not MISSING or f.default_factory is not MISSING)
}


def bad_missing(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    required = sorted(set(doc) - OPTIONAL)
    for key in draw(st.lists(st.sampled_from(required), min_size=1, max_size=3, unique=True)):
        del doc[key]
    return orjson.dumps(doc)


def bad_extra(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    every_field = {f.name for cls in (BookTick, Trade, Fill, Control) for f in fields(cls)}
    key = draw(
        st.one_of(
            st.sampled_from(sorted(every_field - set(doc))),  # another type's field
            st.sampled_from(("price", "seq", "exchange", "Market", "bid", "ts_local")),
            st.text(min_size=1, max_size=10),
        ).filter(lambda k: k not in doc)
    )
    doc[key] = draw(json_value)
    return orjson.dumps(doc)


def bad_wrong_type(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    key = pick(draw, doc, DEC_FIELDS + TS_FIELDS + STR_FIELDS)
    if key in TS_FIELDS:
        doc[key] = draw(not_an_integer(doc[key]))
    else:  # decimals and names are JSON strings
        doc[key] = draw(not_a_string)
    return orjson.dumps(doc)


NAN_INF_TEXT = (
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "-sNaN",
    "NAN",
    "Infinity",
    "-Infinity",
    "+Infinity",
    "inf",
    "-inf",
    "Inf",
    "infinity",
    "Infinity1",
    "1Infinity",
)


def bad_nan_inf(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    key = pick(draw, doc, DEC_FIELDS)
    if draw(st.booleans()):
        doc[key] = draw(st.sampled_from(NAN_INF_TEXT))
        return orjson.dumps(doc)
    return with_token(
        doc, key, draw(st.sampled_from((b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999")))
    )


def bad_zero_negative(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    key = pick(draw, doc, POS_FIELDS + TS_FIELDS)
    if key in TS_FIELDS:
        doc[key] = draw(st.one_of(st.just(-1), st.just(-doc[key]), st.integers(-(2**63), -1)))
    else:
        doc[key] = draw(
            st.one_of(
                st.sampled_from(("0", "-0", "0.0", "0.000", "0E-8", "-0.0", "00", "-1", "-0.001")),
                st.just("-" + doc[key]),
                st.decimals(max_value=0, allow_nan=False, allow_infinity=False, places=6).map(str),
            )
        )
    return orjson.dumps(doc)


def bad_crossed(draw: st.DrawFn, ctx: Book) -> bytes:
    market = draw(st.sampled_from(MARKETS))
    tick, mid = TICK[market], ctx.mid[market]
    ask = (mid + draw(st.integers(-3, 3))) * tick
    bid = ask + draw(st.integers(0, 5)) * tick  # bid == ask (locked) or above it
    return encode(
        BookTick(
            market=market,
            ts_exchange=ctx.ts(market),
            ts_recv=ctx.ts(market),
            bid_px=bid,
            bid_qty=D(1),
            ask_px=ask,
            ask_qty=D(1),
        )
    )


def bad_unknown_market(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx, ("book", "trade", "fill", "control"))
    doc["market"] = draw(
        st.one_of(
            st.sampled_from(
                (
                    "DOGEUSDT",
                    "solusdt",
                    "SOLUSDT ",
                    " BTCUSDT",
                    "BTC-USDT",
                    "SOLUSDT\x00",
                    "\uff33OLUSDT",
                    "BTCUSDT.P",
                )
            ),
            st.text(min_size=1, max_size=20),
        ).filter(lambda m: m not in KNOWN and m != "*")
    )
    return orjson.dumps(doc)


def bad_version(draw: st.DrawFn, ctx: Book) -> bytes:
    doc = template(draw, ctx)
    if draw(st.integers(0, 4)) == 0:  # beyond 64 bits: only writable as a raw token
        return with_token(doc, "v", str(draw(st.integers(2**64, 10**40))).encode())
    doc["v"] = draw(
        st.one_of(
            st.sampled_from((0, 2, 3, -1, 99, "1", "v1", "", 1.0, 1.5, True, False, None, [1], {"v": 1})),
            st.integers(-(2**63), 2**64 - 1).filter(lambda v: v != 1),
            json_value.filter(lambda v: v != 1 or type(v) is not int),
        )
    )
    return orjson.dumps(doc)


HUGE_TEXT = (
    "1e12",
    "1E+12",
    "1000000000000",
    "1000000000000.0",
    "999999999999999999999",
    "1e40",
    "9" * 39,
    "9" * 60,
    "1" + "0" * 37,
    "123456789012345678901234567890.123456789",
    "1E+400",
)


def bad_absurd(draw: st.DrawFn, ctx: Book) -> bytes:
    """Magnitudes far beyond any market: >= 1e12 prices/sizes/fees, timestamps >= 1e17 us."""
    doc = template(draw, ctx)
    key = pick(draw, doc, DEC_FIELDS + TS_FIELDS)
    if key in TS_FIELDS:
        if draw(st.booleans()):
            return with_token(doc, key, str(draw(st.integers(2**64, 10**60))).encode())
        doc[key] = draw(st.integers(10**17, 2**64 - 1))
        return orjson.dumps(doc)
    sign = "-" if key == "fee" and draw(st.booleans()) else ""
    doc[key] = sign + draw(
        st.one_of(
            st.sampled_from(HUGE_TEXT),
            st.integers(12, 10_000).map(lambda e: f"1e{e}"),
            st.integers(10**12, 10**40).map(str),
        )
    )
    return orjson.dumps(doc)


def bad_sub_resolution(draw: st.DrawFn, ctx: Book) -> bytes:
    """Decimals finer than 1e-18: Decimal(38, 18) outputs cannot hold them exactly (see replay._exact)."""
    doc = template(draw, ctx)
    key = pick(draw, doc, DEC_FIELDS)
    places = draw(st.integers(19, 36))
    # Not a multiple of 10: 10e-19 is 1.0E-18, which Decimal(38, 18) holds exactly.
    digits = draw(st.integers(1, 10**6).filter(lambda d: d % 10 != 0))
    tiny = str(D(digits).scaleb(-places))
    text = doc[key] if "." in doc[key] else doc[key] + "."
    longer = text + "0" * max(0, 18 - len(text.split(".")[1])) + "1"  # a 19th decimal on the value
    doc[key] = draw(st.sampled_from((tiny, longer)))
    return orjson.dumps(doc)


def bad_duplicate(draw: st.DrawFn, ctx: Book) -> bytes:
    return draw(st.sampled_from(ctx.sent_ids))  # the very bytes of a trade or fill already sent


def bad_out_of_order(draw: st.DrawFn, ctx: Book) -> bytes:
    market = draw(st.sampled_from(sorted(ctx.last_ts)))
    ts = ctx.last_ts[market] - draw(st.integers(1, 10_000_000))
    if draw(st.booleans()):
        return encode(ctx.book(market, ts, draw(st.integers(1, 4))))
    return encode(ctx.trade(market, ts, draw(st.sampled_from(("buy", "sell"))), 2, ctx.fresh("late")))


MAKERS: dict[str, Callable[[st.DrawFn, Book], bytes]] = {
    "malformed_json": bad_malformed,
    "missing_field": bad_missing,
    "extra_field": bad_extra,
    "wrong_type": bad_wrong_type,
    "nan_inf": bad_nan_inf,
    "zero_negative": bad_zero_negative,
    "crossed_book": bad_crossed,
    "unknown_market": bad_unknown_market,
    "unknown_version": bad_version,
    "absurd_magnitude": bad_absurd,
    "sub_resolution": bad_sub_resolution,
    "duplicate": bad_duplicate,
    "out_of_order": bad_out_of_order,
}
assert set(MAKERS) == set(KINDS)


@st.composite
def scenarios(draw: st.DrawFn, kinds: tuple[str, ...], max_bad: int = 8) -> list[Record]:
    """The base stream with bad records of ``kinds`` inserted at random positions."""
    steps = draw(base_steps())
    n_bad = draw(st.integers(1, max_bad))
    # Bad records go before base record i (i == len: at the end); never before the opening four,
    # so a duplicate or a late record always has a sent record to refer to.
    slots = Tally(draw(st.lists(st.integers(4, len(steps)), min_size=n_bad, max_size=n_bad)))
    ctx = Book()
    ts = T0
    records: list[Record] = []
    for i in range(len(steps) + 1):
        for _ in range(slots[i]):
            kind = draw(st.sampled_from(kinds))
            records.append(Record(MAKERS[kind](draw, ctx), kind))
        if i == len(steps):
            break
        market, kind, move, half, dt, side, size = steps[i]
        ts += dt
        ctx.mid[market] = max(ctx.mid[market] + move, 100)
        if kind == "book":
            raw = encode(ctx.book(market, ts, half, size))
        elif kind == "trade":
            raw = encode(ctx.trade(market, ts, side, size, ctx.fresh(f"{market}-t")))
            ctx.sent_ids.append(raw)
        else:
            raw = encode(ctx.fill(market, ts, side, size, ctx.fresh(f"ext-{market}")))
            ctx.sent_ids.append(raw)
        if kind != "fill":
            ctx.last_ts[market] = ts
        records.append(Record(raw, None))
    return records


# -- running the decoder and the runtimes by hand ------------------------------------------------


def dead_total(metrics: FlowMetrics) -> float:
    return sum(
        s.value
        for family in metrics.registry.collect()
        if family.name == "maker_dead_letters"
        for s in family.samples
        if s.name == "maker_dead_letters_total"
    )


def states(runtimes: dict[str, MarketRuntime]) -> dict[str, bytes]:
    return {m: pickle.dumps(rt) for m, rt in runtimes.items()}


def tagged(out: Outputs, without: str = "") -> list[tuple[str, Any]]:
    """A batch's outputs as one list of (kind, payload), kinds in a fixed order, for comparing
    two runs output for output."""
    return [(k, p) for k in Outputs.__slots__ if k != without for p in getattr(out, k)]


def drive(records: list[Record]) -> tuple[dict[str, list[Any]], dict[str, bytes]]:
    """Feed records one by one through make_decoder and per-market runtimes, checking every bad one.

    Returns each market's outputs (from good records, then finish()) and the final states.
    """
    metrics = FlowMetrics()
    decode = make_decoder(SETTINGS, metrics)
    runtimes = {m: paper_runtime(m, SETTINGS) for m in MARKETS}
    outputs: dict[str, list[Any]] = {m: [] for m in MARKETS}
    for n, rec in enumerate(records):
        where = f"record {n} ({rec.kind or 'good'}): {rec.raw[:300]!r}"
        before = states(runtimes) if rec.bad else None
        dead_before = dead_total(metrics)
        (decoded,) = decode([rec.raw])
        dead: list[tuple[str, DeadLetter]] = [("decoder", p) for p in decoded.dead]
        produced: dict[str, list[Any]] = {}
        for market, events in decoded.chunks:
            assert market in runtimes, f"{where}: unknown market {market!r} reached the runtimes"
            rt, out = runtimes[market], Outputs()
            for event in events:
                rt.process(event, out)
            metrics.observe(rt.view(), rt.stats, len(events), 0.0, out)
            dead += [("runtime", p) for p in out.dead]
            produced[market] = tagged(out, without="dead")
        assert dead_total(metrics) - dead_before == len(dead), where
        for _, letter in dead:
            assert isinstance(letter, DeadLetter) and letter.detail, where
            assert letter.reason != "other", f"{where}: no code for {letter.detail!r}"
        if not rec.bad:
            assert not dead, f"{where}: a good record was refused: {dead}"
            for market, out in produced.items():
                outputs[market].extend(out)
            continue
        BAD[rec.kind] += 1
        assert len(dead) == 1, f"{where}: expected one dead letter, got {dead}; outputs {produced}"
        stage, letter = dead[0]
        assert not any(produced.values()), f"{where}: a refused record produced outputs {produced}"
        assert states(runtimes) == before, f"{where}: a refused record changed a market's state"
        expected_stage = "runtime" if rec.kind in RUNTIME_KINDS else "decoder"
        assert stage == expected_stage, f"{where}: refused by the {stage}, not the {expected_stage}: {letter}"
        if rec.kind in REASON:
            assert REASON[rec.kind] in letter.detail, f"{where}: detail {letter.detail!r}"
        if rec.kind == "duplicate":
            assert letter.reason in ("duplicate_trade_id", "duplicate_fill_id", "out_of_order"), where
        assert letter.raw == rec.raw, f"{where}: dead letter does not keep the original bytes: {letter.raw!r}"
    for market, rt in runtimes.items():
        final = Outputs()
        rt.finish(final)
        outputs[market].extend(tagged(final))
    return outputs, states(runtimes)


def check_runtime_scenario(records: list[Record], tag: str) -> None:
    CASES[tag] += 1
    outputs, final = drive(records)
    clean_outputs, clean_final = drive([r for r in records if not r.bad])
    for market in MARKETS:
        assert outputs[market] == clean_outputs[market], f"{market}: bad records changed the outputs"
    assert final == clean_final, "bad records changed the final state"


@RUNTIME_HYP
@given(scenarios(KINDS))
def test_runtime_refuses_every_kind_of_bad_record(records: list[Record]) -> None:
    check_runtime_scenario(records, "runtime_mixed")


@pytest.mark.parametrize("kind", KINDS)
@KIND_HYP
@given(data=st.data())
def test_runtime_refuses_bad_records_of_one_kind(kind: str, data: st.DataObject) -> None:
    check_runtime_scenario(data.draw(scenarios((kind,))), f"runtime_{kind}")


def test_the_base_stream_is_busy_enough() -> None:
    """The comparison with a clean run means something only if the clean run decides things."""
    rng_steps = [
        (m, k, mv, 1, 300_000, s, 7)
        for mv, s in ((1, "buy"), (-1, "sell"), (2, "sell"))
        for m in MARKETS
        for k in ("book", "book", "trade")
    ] * 6
    ctx, ts, records = Book(), T0, []
    for market, kind, move, half, dt, side, size in rng_steps:
        ts += dt
        ctx.mid[market] += move
        event = (
            ctx.book(market, ts, half, size)
            if kind == "book"
            else ctx.trade(market, ts, side, size, ctx.fresh("t"))
        )
        records.append(Record(encode(event), None))
    outputs, _ = drive(records)
    kinds = Tally(k for out in outputs.values() for k, _ in out)
    assert kinds["intents"] > 0 and kinds["timeline"] > 0 and kinds["summaries"] == 2


# -- through the real Bytewax dataflow -----------------------------------------------------------


def check_flow_scenario(records: list[Record], batch_size: int, tag: str) -> None:
    CASES[tag] += 1
    bad = [r for r in records if r.bad]
    for r in bad:
        BAD[f"flow_{r.kind}"] += 1
    metrics = FlowMetrics()
    outputs, _ = run_events(
        [r.raw for r in records], SETTINGS, metrics=metrics, batch_size=batch_size, workers=1
    )
    clean, _ = run_events([r.raw for r in records if not r.bad], SETTINGS, batch_size=batch_size, workers=1)
    dead = outputs.dead
    detail = [(r.kind, r.raw[:200]) for r in bad]
    assert len(dead) == len(bad), f"dead letters {[d.detail for d in dead]} for bad records {detail}"
    assert all(isinstance(d, DeadLetter) and d.detail and d.reason != "other" for d in dead)
    assert sorted(d.raw for d in dead) == sorted(r.raw for r in bad)
    assert dead_total(metrics) == len(bad)
    assert outputs.intents == clean.intents, "bad records changed the intents"
    assert outputs.fills == clean.fills, "bad records changed the fills"
    assert outputs.summaries == clean.summaries


@FLOW_HYP
@given(data=st.data())
def test_bytewax_flow_dead_letters_every_kind_of_bad_record(data: st.DataObject) -> None:
    records = data.draw(scenarios(KINDS, max_bad=12))
    check_flow_scenario(records, data.draw(st.integers(1, len(records) + 1)), "flow_mixed")


@pytest.mark.parametrize("kind", KINDS)
@FLOW_KIND_HYP
@given(data=st.data())
def test_bytewax_flow_dead_letters_bad_records_of_one_kind(kind: str, data: st.DataObject) -> None:
    records = data.draw(scenarios((kind,), max_bad=6))
    check_flow_scenario(records, data.draw(st.integers(1, len(records) + 1)), f"flow_{kind}")


# -- the same contracts, on fixed examples -------------------------------------------------------


def test_runtime_dead_letters_keep_the_original_bytes() -> None:
    """A refused record is "kept whole: raw (the original bytes)" (docs/wire-format.md), also
    when the runtime refuses it (duplicate, out of order) and the producer's JSON is not ours."""
    ctx = Book()
    book = encode(ctx.book("binance-futures:SOLUSDT", T0 + 2_000_000))
    trade = encode(ctx.trade("binance-futures:SOLUSDT", T0 + 2_000_000, "sell", 3, "t-1"))
    resent = orjson.dumps(orjson.loads(trade), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    late = orjson.dumps(
        orjson.loads(encode(ctx.book("binance-futures:SOLUSDT", T0))), option=orjson.OPT_SORT_KEYS
    )
    CASES["fixed_original_bytes"] += 1
    outputs, _ = run_events([book, trade, resent, late], SETTINGS, workers=1)
    assert sorted(d.reason for d in outputs.dead) == ["duplicate_trade_id", "out_of_order"]
    assert sorted(d.raw for d in outputs.dead) == sorted([resent, late])


@pytest.mark.parametrize("where", ["book.bid_px", "fill.fee"])
def test_replay_survives_a_decimal_finer_than_its_outputs(where: str, tmp_path: Any) -> None:
    """A decimal with 19 places passes the decoder today, then replay's Decimal(38, 18) writer
    raises on it: the whole run dies instead of one dead letter."""
    CASES["fixed_sub_resolution_replay"] += 1
    ctx = Book()
    good = [encode(ctx.book("binance-futures:SOLUSDT", T0 + i * 400_000)) for i in range(20)]
    kind, key = where.split(".")
    last = T0 + 19 * 400_000
    event = (
        ctx.book("binance-futures:SOLUSDT", last)
        if kind == "book"
        else ctx.fill("binance-futures:SOLUSDT", last, "buy", 1, "ext-1")
    )
    doc = orjson.loads(encode(event))
    doc[key] = "0.0000000000000000001" if key != "fee" else "-0.0000000000000000001"
    bad = orjson.dumps(doc)
    result = replay([*good, bad], SETTINGS, tmp_path, report=False, workers=1)
    assert result.summary["dead_letters"] == 1
    assert [d.raw for d in result.outputs.dead] == [bad]


# -- the tally ------------------------------------------------------------------------------------


def test_zz_report_cases_tried(capsys: pytest.CaptureFixture[str]) -> None:
    total = sum(CASES.values())
    with capsys.disabled():
        print(
            f"\nflow bad-input cases tried: {total} (bad records injected: {sum(BAD.values())})"
            f"\n  cases by test: {dict(sorted(CASES.items()))}"
            f"\n  bad records by kind: {dict(sorted(BAD.items()))}"
        )
