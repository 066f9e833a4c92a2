"""Recorded data on disk: the real Tardis files, bad rows as dead letters, and our Parquet recording."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest

from mmflow.connectors.files import InputError, arrival_key, merge_arrival, read_events, write_recording
from mmflow.models import BookTick, DeadLetter, Fill, Trade
from mmflow.wire import WireError, decode_input, inconsistency
from tests.conftest import BTC_QUOTES, BTC_TRADES, SOL_QUOTES, SOL_TRADES

D = Decimal


def csv_rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def real(data_dir: Path) -> dict[str, list]:
    out = {}
    for key, path in {
        "btc_q": BTC_QUOTES,
        "btc_t": BTC_TRADES,
        "sol_q": SOL_QUOTES,
        "sol_t": SOL_TRADES,
    }.items():
        events, dead = read_events(path)
        assert dead == [], (path.name, dead[:3])
        out[key] = events
    return out


# -- the real files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "count", "kind"),
    [
        ("btc_q", 66_089, BookTick),
        ("btc_t", 21_313, Trade),
        ("sol_q", 383, BookTick),
        ("sol_t", 165, Trade),
    ],
)
def test_real_files_row_counts(real, key: str, count: int, kind: type) -> None:
    events = real[key]
    assert len(events) == count
    assert all(type(e) is kind for e in events)


@pytest.mark.parametrize(
    ("key", "path", "market"),
    [
        ("btc_q", BTC_QUOTES, "binance-futures:BTCUSDT"),
        ("sol_q", SOL_QUOTES, "bybit:SOLUSDT"),
    ],
)
def test_real_quotes_equal_the_csv_text(real, key: str, path: Path, market: str) -> None:
    rows = csv_rows(path)
    events = real[key]
    assert len(rows) == len(events)
    for row, e in zip(rows, events, strict=True):
        assert e.market == market == f"{row['exchange']}:{row['symbol']}"
        assert (e.ts_exchange, e.ts_recv) == (int(row["timestamp"]), int(row["local_timestamp"]))
        assert (str(e.bid_px), str(e.bid_qty), str(e.ask_px), str(e.ask_qty)) == (
            row["bid_price"],
            row["bid_amount"],
            row["ask_price"],
            row["ask_amount"],
        )
        assert all(isinstance(x, Decimal) for x in (e.bid_px, e.bid_qty, e.ask_px, e.ask_qty))


@pytest.mark.parametrize(
    ("key", "path", "market"),
    [
        ("btc_t", BTC_TRADES, "binance-futures:BTCUSDT"),
        ("sol_t", SOL_TRADES, "bybit:SOLUSDT"),
    ],
)
def test_real_trades_equal_the_csv_text(real, key: str, path: Path, market: str) -> None:
    rows = csv_rows(path)
    events = real[key]
    assert len(rows) == len(events)
    for row, e in zip(rows, events, strict=True):
        assert e.market == market
        assert (e.ts_exchange, e.ts_recv, e.trade_id, e.side) == (
            int(row["timestamp"]),
            int(row["local_timestamp"]),
            row["id"],
            row["side"],
        )
        assert (str(e.px), str(e.qty)) == (row["price"], row["amount"])
        assert isinstance(e.px, Decimal) and isinstance(e.qty, Decimal)


def test_real_first_rows_spot_check(real) -> None:
    assert real["btc_q"][0] == BookTick(
        market="binance-futures:BTCUSDT",
        ts_exchange=1723161256313000,
        ts_recv=1723161255088169,
        bid_px=D("61800.20"),
        bid_qty=D("2.507"),
        ask_px=D("61800.30"),
        ask_qty=D("2.510"),
    )
    assert real["sol_t"][0] == Trade(
        market="bybit:SOLUSDT",
        ts_exchange=1786310821322000,
        ts_recv=1786310821431163,
        trade_id="4b0832c3-70e8-5f68-a914-c53f304f507c",
        side="sell",
        px=D("77.300"),
        qty=D("5.1"),
    )


def test_real_files_with_markets_filter(data_dir: Path) -> None:
    events, dead = read_events(SOL_QUOTES, markets=["bybit:SOLUSDT"])
    assert len(events) == 383 and dead == []
    # An instrument without a spec stops the read, naming the instrument and the file (today every
    # row was a dead letter and the replay went on with nothing).
    with pytest.raises(InputError, match=r"SOLUSDT.csv.gz: no instrument spec for 'bybit:SOLUSDT'"):
        read_events(SOL_TRADES, markets=["binance-futures:BTCUSDT"])
    # The venue is part of the instrument: Binance USD-M's SOLUSDT spec does not serve Bybit's.
    with pytest.raises(InputError, match="bybit:SOLUSDT"):
        read_events(SOL_TRADES, markets=["binance-futures:SOLUSDT"])


# -- merge_arrival ------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [("btc_q", "btc_t"), ("sol_q", "sol_t")])
def test_merge_arrival_sorted_and_stable_on_real_data(real, pair) -> None:
    streams = [real[pair[0]], real[pair[1]]]
    merged = merge_arrival(streams)
    assert len(merged) == sum(map(len, streams))
    keys = [arrival_key(e) for e in merged]
    assert keys == sorted(keys)
    # stable: ties keep stream order, then order within the stream
    tagged = [(arrival_key(e), s, i, e) for s, stream in enumerate(streams) for i, e in enumerate(stream)]
    tagged.sort(key=lambda t: t[:3])
    assert all(a is b for a, b in zip(merged, (t[3] for t in tagged), strict=True))


def test_merge_arrival_ties_keep_stream_order() -> None:
    def bk(ts: int, n: int) -> BookTick:
        return BookTick(
            market="bybit:SOLUSDT",
            ts_exchange=n,
            ts_recv=ts,
            bid_px=D("1"),
            bid_qty=D("1"),
            ask_px=D("2"),
            ask_qty=D("1"),
        )

    def tr(ts: int, n: int) -> Trade:
        return Trade(
            market="bybit:SOLUSDT",
            ts_exchange=n,
            ts_recv=ts,
            trade_id=str(n),
            side="buy",
            px=D("2"),
            qty=D("1"),
        )

    def fl(ts: int, n: int) -> Fill:
        return Fill(
            market="bybit:SOLUSDT",
            ts=ts,
            fill_id=str(n),
            intent_id="",
            side="buy",
            px=D("2"),
            qty=D("1"),
            fee=D("0"),
            liquidity="maker",
            source="maker",
        )

    quotes = [bk(10, 1), bk(20, 2), bk(20, 3), bk(30, 4)]
    trades = [tr(5, 5), tr(20, 6), tr(20, 7), tr(25, 8)]
    fills = [fl(20, 9), fl(1, 10)]  # not sorted within the stream: merge sorts them
    merged = merge_arrival([quotes, trades, fills])
    order = [e.ts_exchange if not isinstance(e, Fill) else int(e.fill_id) for e in merged]
    assert order == [10, 5, 1, 2, 3, 6, 7, 9, 8, 4]
    merged_rev = merge_arrival([trades, quotes])
    assert [e.ts_exchange for e in merged_rev] == [5, 1, 6, 7, 2, 3, 8, 4]
    assert merge_arrival([]) == []


# -- hand-written Tardis files with bad rows ----------------------------------------------------

QUOTES_CSV = """exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount
bybit,SOLUSDT,1000,1100,1.5,77.310,77.300,2.0
bybit,SOLUSDT,1001,1101,1.5,abc,77.300,2.0
bybit,SOLUSDT,1002,1102,1.5,77.310,77.300,-1
bybit,SOLUSDT,1003,1103,1.5,77.310,77.400,2.0
bybit,BTCUSDT,1005,1105,0.010,61800.30,61800.20,2.507
bybit,SOLUSDT,1006,1106,1.5,77.300,77.300,2.0
bybit,SOLUSDT,1007,1107,1.5,77.310,,2.0
bybit,SOLUSDT,1008,1108,1.5,NaN,77.300,2.0
bybit,SOLUSDT,1009,1109,0,77.310,77.300,2.0
bybit,SOLUSDT,-5,1110,1.5,77.310,77.300,2.0
bybit,SOLUSDT,1011,later,1.5,77.310,77.300,2.0
bybit,SOLUSDT,1012,1112,1.5,inf,77.300,2.0
bybit,SOLUSDT,1013,1113,0.1,77.320,77.290,0.3
"""

TRADES_CSV = """exchange,symbol,timestamp,local_timestamp,id,side,price,amount
bybit,SOLUSDT,2000,2100,a-1,sell,77.300,5.1
bybit,SOLUSDT,2001,2101,a-2,hold,77.300,5.1
bybit,SOLUSDT,2002,2102,a-3,buy,77.310,x
bybit,SOLUSDT,2003,2103,a-4,buy,0,1
bybit,SOLUSDT,2004,2104,a-5,buy,77.310,-0.5
bybit,SOLUSDT,2006,2106,a-7,BUY,77.310,1
bybit,SOLUSDT,2007,2107,123456,buy,77.320,0.001
"""

# The kind of refusal, as the wire decoder words it (the same verdict a Kafka record gets).
BOOK_BAD = "invalid"
BOOK_CROSSED = "crossed book"
TRADE_BAD = "invalid"
MARKETS = ["bybit:SOLUSDT", "bybit:BTCUSDT"]


def _write(tmp_path: Path, name: str, text: str, gz: bool) -> Path:
    if gz:
        path = tmp_path / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
    return path


def _by_ts(dead: list[DeadLetter], key: str) -> dict[str, str]:
    """Refused rows by their timestamp text, with the kind of refusal (the reason's first clause)."""
    return {orjson.loads(d.raw)[key]: d.detail.split(":")[0] for d in dead}


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_tardis_quotes_with_bad_rows(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path, "quotes", QUOTES_CSV, gz)
    events, dead = read_events(path, markets=MARKETS)
    assert events == [
        BookTick(
            market="bybit:SOLUSDT",
            ts_exchange=1000,
            ts_recv=1100,
            bid_px=D("77.300"),
            bid_qty=D("2.0"),
            ask_px=D("77.310"),
            ask_qty=D("1.5"),
        ),
        BookTick(
            market="bybit:BTCUSDT",
            ts_exchange=1005,
            ts_recv=1105,
            bid_px=D("61800.20"),
            bid_qty=D("2.507"),
            ask_px=D("61800.30"),
            ask_qty=D("0.010"),
        ),
        BookTick(
            market="bybit:SOLUSDT",
            ts_exchange=1013,
            ts_recv=1113,
            bid_px=D("77.290"),
            bid_qty=D("0.3"),
            ask_px=D("77.320"),
            ask_qty=D("0.1"),
        ),
    ]
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert all(d.source == path.name for d in dead)
    assert _by_ts(dead, "ts_exchange") == {
        "1001": BOOK_BAD,
        "1002": BOOK_BAD,
        "1003": BOOK_CROSSED,
        "1006": BOOK_CROSSED,
        "1007": BOOK_BAD,
        "1008": BOOK_BAD,
        "1009": BOOK_BAD,
        "-5": BOOK_BAD,
        "1011": BOOK_BAD,
        "1012": BOOK_BAD,
    }
    assert len(dead) == 10
    # the raw record keeps the offending value and the market
    bad_px = next(d for d in dead if orjson.loads(d.raw)["ts_exchange"] == "1001")
    assert orjson.loads(bad_px.raw)["ask_px"] == "abc" and bad_px.market == "bybit:SOLUSDT"


@pytest.mark.parametrize("kind", ["quotes", "trades"])
def test_tardis_file_with_an_instrument_without_spec_stops(tmp_path: Path, kind: str) -> None:
    """One unknown instrument stops the read, naming it and the file (it was a dead letter per row,
    and a file of nothing else replayed 0 events and exited 0)."""
    row = (
        "bybit,DOGEUSDT,1004,1104,100,0.1001,0.1000,100\n"
        if kind == "quotes"
        else "bybit,DOGEUSDT,2005,2105,a-6,buy,0.1001,1\n"
    )
    path = _write(tmp_path, kind, (QUOTES_CSV if kind == "quotes" else TRADES_CSV) + row, False)
    with pytest.raises(InputError, match=rf"{kind}.csv: no instrument spec for 'bybit:DOGEUSDT'"):
        read_events(path, markets=MARKETS)


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_tardis_trades_with_bad_rows(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path, "trades", TRADES_CSV, gz)
    events, dead = read_events(path, markets=MARKETS)
    assert events == [
        Trade(
            market="bybit:SOLUSDT",
            ts_exchange=2000,
            ts_recv=2100,
            trade_id="a-1",
            side="sell",
            px=D("77.300"),
            qty=D("5.1"),
        ),
        Trade(
            market="bybit:SOLUSDT",
            ts_exchange=2007,
            ts_recv=2107,
            trade_id="123456",
            side="buy",
            px=D("77.320"),
            qty=D("0.001"),
        ),
    ]
    assert _by_ts(dead, "ts_exchange") == {
        "2001": TRADE_BAD,
        "2002": TRADE_BAD,
        "2003": TRADE_BAD,
        "2004": TRADE_BAD,
        "2006": TRADE_BAD,
    }


@pytest.mark.parametrize("text", [QUOTES_CSV, TRADES_CSV], ids=["quotes", "trades"])
def test_a_row_gets_the_verdict_its_kafka_record_gets(tmp_path: Path, text: str) -> None:
    """Each row of a file is refused (or taken) exactly as the same record on Kafka: same decoder,
    same reason. (A file accepted ts_recv 1e17+5, liquidity MAKER, source hedgee; Kafka refused.)"""
    path = _write(tmp_path, "rows", text, False)
    events, dead = read_events(path, markets=MARKETS)
    by_row = {int(d.extra["row"]): d.detail.rsplit(" (row", 1)[0] for d in dead}
    header, *rows = list(csv.DictReader(text.splitlines()))[0].keys(), *csv.DictReader(text.splitlines())
    taken = iter(events)
    for n, row in enumerate(rows, start=2):
        wire = _kafka_form(row)
        try:
            event = decode_input(orjson.dumps(wire))
            kafka = inconsistency(event)
        except WireError as err:
            kafka, event = str(err), None
        assert by_row.get(n) == kafka, (n, row)
        if kafka is None:
            assert next(taken) == event
    assert next(taken, None) is None and len(header) > 1


def _kafka_form(row: dict[str, str]) -> dict[str, object]:
    """The Kafka record a feeder would publish for a Tardis row (decimals as strings)."""
    as_int = {"timestamp": "ts_exchange", "local_timestamp": "ts_recv"}
    out: dict[str, object] = {"market": f"{row['exchange']}:{row['symbol']}", "v": 1}
    for src, dst in as_int.items():
        out[dst] = int(row[src]) if row[src].isdigit() else row[src]
    if "bid_price" in row:
        out |= {"type": "book", "bid_px": row["bid_price"], "bid_qty": row["bid_amount"]}
        out |= {"ask_px": row["ask_price"], "ask_qty": row["ask_amount"]}
    else:
        out |= {
            "type": "trade",
            "trade_id": row["id"],
            "side": row["side"],
            "px": row["price"],
            "qty": row["amount"],
        }
    return out


@pytest.mark.parametrize(
    ("field", "value"),
    [("ts_recv", 10**17 + 5), ("liquidity", "MAKER"), ("source", "hedgee"), ("ts", 10**17)],
)
def test_recording_refuses_what_kafka_refuses(tmp_path: Path, field: str, value: object) -> None:
    fill = _fills()[0]
    row = {k: getattr(fill, k) for k in fill.__dataclass_fields__} | {
        "px": str(fill.px),
        "qty": str(fill.qty),
    }
    row["fee"] = str(fill.fee)
    if field == "ts_recv":
        book = {"type": "book", "market": "bybit:SOLUSDT", "ts_exchange": 1, "ts_recv": value}
        row = book | {"bid_px": "1", "bid_qty": "1", "ask_px": "2", "ask_qty": "1", "v": 1}
    else:
        row[field] = value
    path = tmp_path / "rec.parquet"
    pl.DataFrame([row]).write_parquet(path)
    events, dead = read_events(path)
    assert events == [] and len(dead) == 1
    with pytest.raises(WireError):
        decode_input(orjson.dumps(row))


def test_empty_trade_ids_do_not_collide(tmp_path: Path) -> None:
    """An empty trade id stays empty (it became the text "None", so two such trades collided as
    duplicates in the runtime)."""
    text = (
        TRADES_CSV.splitlines()[0]
        + "\nbybit,SOLUSDT,3000,3100,,buy,77.310,1\nbybit,SOLUSDT,3001,3101,,buy,77.310,1\n"
    )
    events, dead = read_events(_write(tmp_path, "t", text, False), markets=MARKETS)
    assert dead == [] and [e.trade_id for e in events] == ["", ""]


def test_without_markets_filter_every_market_passes(tmp_path: Path) -> None:
    text = TRADES_CSV + "bybit,DOGEUSDT,2008,2108,a-8,buy,0.1001,1\n"
    events, dead = read_events(_write(tmp_path, "trades", text, False))
    assert [e.market for e in events] == ["bybit:SOLUSDT", "bybit:SOLUSDT", "bybit:DOGEUSDT"]
    assert "unknown market" not in {d.detail for d in dead}


def test_unrecognised_columns_raise(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="x.csv: unrecognised columns"):
        read_events(path)


# -- our recording ------------------------------------------------------------------------------


def _fills() -> list[Fill]:
    return [
        Fill(
            market="bybit:SOLUSDT",
            ts=1786310821431163,
            fill_id="SOLUSDT-F000000001",
            intent_id="q-1",
            side="buy",
            px=D("77.30"),
            qty=D("0.010"),
            fee=D("0.0001546000"),
            liquidity="maker",
            source="maker",
        ),
        Fill(
            market="bybit:SOLUSDT",
            ts=1786310821431999,
            fill_id="SOLUSDT-F000000002",
            intent_id="h-1",
            side="sell",
            px=D("77.29"),
            qty=D("0.009"),
            fee=D("-0.00034780"),
            liquidity="taker",
            source="hedge",
        ),
        Fill(
            market="binance-futures:BTCUSDT",
            ts=1723161255088200,
            fill_id="BTCUSDT-F000000001",
            intent_id="",
            side="sell",
            px=D("61800.3"),
            qty=D("0.001"),
            fee=D("0"),
            liquidity="maker",
            source="maker",
        ),
    ]


def test_recording_round_trip_real_data(real, tmp_path: Path) -> None:
    events = (
        merge_arrival([real["sol_q"], real["sol_t"], _fills()]) + real["btc_q"][:500] + real["btc_t"][:500]
    )
    path = write_recording(events, tmp_path / "rec.parquet")
    back, dead = read_events(path)
    assert dead == []
    assert back == events
    assert [type(e) for e in back] == [type(e) for e in events]
    with pytest.raises(InputError, match="no instrument spec for 'binance-futures:BTCUSDT'"):
        read_events(path, markets=["bybit:SOLUSDT"])
    back2, dead2 = read_events(path, markets=["bybit:SOLUSDT", "binance-futures:BTCUSDT"])
    assert (back2, dead2) == (events, [])


def test_recording_round_trip_empty(tmp_path: Path) -> None:
    assert read_events(write_recording([], tmp_path / "empty.parquet")) == ([], [])


# Values inside the wire bounds (|x| < 1e9, at most 18 places), written in every decimal notation.
@pytest.mark.parametrize(
    "text", ["0.0001546000", "100", "100.0", "1E+2", "1.5E-10", "2.50E+8", "-0.0", "7.000E-7"]
)
def test_recording_round_trip_keeps_decimal_values(tmp_path: Path, text: str) -> None:
    fill = Fill(
        market="bybit:SOLUSDT",
        ts=1,
        fill_id="f",
        intent_id="i",
        side="buy",
        px=D("77.3"),
        qty=D("0.001"),
        fee=D(text),
        liquidity="maker",
        source="maker",
    )
    trade = Trade(
        market="bybit:SOLUSDT",
        ts_exchange=1,
        ts_recv=2,
        trade_id="t",
        side="buy",
        px=abs(D(text)) or D(1),
        qty=D("0.001"),
    )
    back, dead = read_events(write_recording([fill, trade], tmp_path / "one.parquet"))
    assert dead == []
    assert back[0].fee == D(text), (text, back[0].fee)
    assert back[1].px == trade.px, (text, back[1].px)
