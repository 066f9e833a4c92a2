"""Recorded data on disk: Tardis-style CSV (gzipped or not) and our own Parquet recordings.

Tardis quotes, trades and ``incremental_book_L2`` (depth: consecutive rows with one receive time
are one ``Depth``); raw Binance frames are read by ``binance_frames`` and merged here too.

Every row becomes the wire form of its event and is checked by the very decoder Kafka records go
through (``mmflow.wire``), so a record gets the same verdict from a file as from a topic; a row
that fails is a ``DeadLetter`` with the decoder's reason and its row number, and the rest are
typed events. Decimals are read as text and become ``Decimal`` directly: no price ever passes
through a binary float.

A file that cannot be read as a whole (missing, empty, a truncated gzip, a missing column, a
quotes file given as trades, an instrument without a spec) raises ``InputError`` naming the file
and the column; a ragged row or a row that is not UTF-8 is one dead letter, and the rest is read.
CSV is read line by line with the standard library's ``csv`` for exactly that: polars reads a
well-formed file faster but fails it whole on one bad line.

Our Parquet recording has one row per wire message with the wire field names
(``type, market, ts_exchange, ts_recv, bid_px, ...``) and decimals stored as exact strings.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from mmflow.connectors.binance_frames import read_frames
from mmflow.connectors.reading import InputError, dead_row, raw_bytes
from mmflow.models import DECIMAL_FIELDS, SCHEMA_VERSION, Control, DeadLetter, Depth, InputEvent, arrival_time
from mmflow.wire import WireError, decode_object, inconsistency

TARDIS_QUOTES = {
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
}
TARDIS_TRADES = {"exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"}
TARDIS_BOOK_L2 = {
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "is_snapshot",
    "side",
    "price",
    "amount",
}
_TARDIS = {"symbol", "timestamp", "local_timestamp"}
_DEC = DECIMAL_FIELDS
_INT = ("ts_exchange", "ts_recv", "ts", "fills")

Row = dict[str, Any]


# -- reading ----------------------------------------------------------------------------------------


def _csv_rows(path: Path, dead: list[DeadLetter]) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and the (row number, fields) of every well-formed line; a line that is not
    UTF-8 or has the wrong number of fields is a dead letter."""
    lines = raw_bytes(path).splitlines()
    try:
        header = next(csv.reader([lines[0].decode("utf-8")]))
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: the header is not UTF-8 text") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                dead.append(dead_row(path, line, f"not UTF-8 text at byte {err.start}", n))
                continue
            fields = next(csv.reader([text]))
            if len(fields) != len(header):
                reason = f"ragged row: {len(fields)} fields, the header has {len(header)}"
                dead.append(dead_row(path, line, reason, n))
                continue
            yield n, fields

    return header, rows()


def _text(value: Any) -> Any:
    """A Parquet decimal as minimal exact text (61800.300000000000000000 -> "61800.3", 1E+2 ->
    "100"): the wire form of decimals; text stays the text it was."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return value


def _tardis(header: list[str], name: str, expect: str | None) -> str | None:
    """``book`` or ``trade`` for a Tardis header, ``our-fills`` for a replay's fills.parquet, None
    for our recording; InputError naming the missing columns, or a quotes file given as trades
    (and the other way round)."""
    cols = set(header)
    if {"fill_id", "price", "fee"} <= cols and "type" not in cols:
        return "our-fills"  # fills.parquet of a replay
    if not _TARDIS <= cols and not ("type" in cols and "market" in cols):
        raise InputError(
            f"{name}: unrecognised columns {sorted(cols)}: expected Tardis quotes/trades or an mmflow recording"
        )
    if not _TARDIS <= cols:
        return None
    kind = "book" if {"bid_price", "ask_price"} & cols else "trade"
    wanted = TARDIS_QUOTES if kind == "book" else TARDIS_TRADES
    if not wanted <= cols:
        raise InputError(f"{name}: missing column(s) {', '.join(sorted(wanted - cols))}")
    if expect is not None and expect != kind:
        given, other = ("--trades", "quotes") if expect == "trade" else ("--quotes", "trades")
        raise InputError(f"{name}: a {other} file given as {given}")
    return kind


def _from_tardis(kind: str, r: Row) -> Row:
    """A Tardis row in wire form: the ``exchange`` column names the venue, so Binance spot
    BTCUSDT is not Binance USD-M BTCUSDT."""
    base = {
        "type": kind,
        "market": f"{r['exchange']}:{r['symbol']}",
        "ts_exchange": r["timestamp"],
        "ts_recv": r["local_timestamp"],
    }
    if kind == "book":
        return base | {
            "bid_px": r["bid_price"],
            "bid_qty": r["bid_amount"],
            "ask_px": r["ask_price"],
            "ask_qty": r["ask_amount"],
        }
    return base | {"trade_id": r["id"], "side": r["side"], "px": r["price"], "qty": r["amount"]}


def _rows(path: Path, expect: str | None, dead: list[DeadLetter]) -> Iterator[tuple[int, Row]]:
    """(row number, wire-form row) of every readable row of a CSV or Parquet file."""
    if path.suffix == ".parquet":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        df = pl.read_parquet(path)
        header = df.columns
        records: Iterable[tuple[int, Row]] = enumerate(df.iter_rows(named=True), start=1)
    else:
        header, lines = _csv_rows(path, dead)
        records = ((n, dict(zip(header, fields, strict=True))) for n, fields in lines)
    kind = _tardis(list(header), path.name, expect)
    for n, row in records:
        if kind in ("book", "trade"):
            yield n, _from_tardis(kind, row)
        elif kind == "our-fills":
            yield (
                n,
                {**{k: v for k, v in row.items() if k != "price"}, "px": row.get("price"), "type": "fill"},
            )
        else:
            yield n, {k: v for k, v in row.items() if v is not None}


def _event(row: Row) -> InputEvent:
    """A wire-form row, decoded exactly as a Kafka record of the same JSON would be."""
    obj = {k: _text(v) if k in _DEC else v for k, v in row.items()}
    for key in _INT:
        value = obj.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            obj[key] = int(value)
    obj.setdefault("v", SCHEMA_VERSION)
    return decode_object(obj)


def read_events(
    path: str | Path, markets: Iterable[str] | None = None, expect: str | None = None
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Read one file of quotes, trades, fills or a mixed recording; invalid rows are dead letters.

    ``expect`` (``book`` or ``trade``) is what the caller was given the file as. With
    ``markets``, an instrument the settings have no spec for stops the read (a replay of it
    would use no spec, or the wrong one): ``InputError`` names the instrument and the file.
    """
    path = Path(path)
    known = set(markets) if markets is not None else None
    events: list[InputEvent] = []
    dead: list[DeadLetter] = []
    unknown: set[str] = set()
    for n, row in _rows(path, expect, dead):
        try:
            event = _event(row)
            problem = inconsistency(event)
        except WireError as err:
            problem = str(err)
        if problem is not None:
            market = row.get("market") if isinstance(row.get("market"), str) else None
            dead.append(dead_row(path, orjson.dumps(row, default=str), problem, n, market))
            continue
        if (
            known is not None
            and event.market not in known
            and not (type(event) is Control and event.market == "*")
        ):
            unknown.add(event.market)
        events.append(event)
    if unknown:
        raise InputError(
            f"{path.name}: no instrument spec for {', '.join(map(repr, sorted(unknown)))} "
            f"(settings.markets has {len(known or ())}; add it under markets in the config)"
        )
    return events, dead


# -- Tardis incremental_book_L2 ----------------------------------------------------------------------


def _l2_problem(r: Row) -> str | None:
    """What a schema cannot say about one L2 row (the side, the snapshot flag, the integer
    timestamps); prices and amounts are left to the wire decoder."""
    if r["side"] not in ("bid", "ask"):
        return f"invalid: side: expected bid or ask, got {r['side']!r}"
    if r["is_snapshot"] not in ("true", "false"):
        return f"invalid: is_snapshot: expected true or false, got {r['is_snapshot']!r}"
    for key in ("timestamp", "local_timestamp"):
        if not (r[key].isascii() and r[key].isdigit()):
            return f"invalid: {key}: expected integer microseconds, got {r[key]!r}"
    return None


def _l2_depth(rows: Sequence[tuple[int, Row]], snapshot: bool) -> Row:
    """One group of L2 rows in wire form: stamped with its receive time and its latest
    exchange time."""
    first = rows[0][1]
    return {
        "type": "depth",
        "market": f"{first['exchange']}:{first['symbol']}",
        "ts_exchange": max(int(r["timestamp"]) for _, r in rows),
        "ts_recv": int(first["local_timestamp"]),
        "bids": [[r["price"], r["amount"]] for _, r in rows if r["side"] == "bid"],
        "asks": [[r["price"], r["amount"]] for _, r in rows if r["side"] == "ask"],
        "snapshot": snapshot,
        "v": SCHEMA_VERSION,
    }


def _l2_event(
    path: Path, rows: list[tuple[int, Row]], snapshot: bool, dead: list[DeadLetter]
) -> Depth | None:
    """The group's Depth; when the decoder refuses the group, each row is decoded alone so the
    bad ones become dead letters with their row numbers and the good ones still count."""
    try:
        return decode_object(_l2_depth(rows, snapshot))  # type: ignore[return-value]
    except WireError:
        pass
    good = []
    for n, row in rows:
        try:
            decode_object(_l2_depth([(n, row)], snapshot))
            good.append((n, row))
        except WireError as err:
            market = f"{row['exchange']}:{row['symbol']}"
            dead.append(dead_row(path, orjson.dumps(row), str(err), n, market))
    return decode_object(_l2_depth(good, snapshot)) if good else None  # type: ignore[return-value]


def _l2_groups(path: Path, dead: list[DeadLetter]) -> Iterator[tuple[list[tuple[int, Row]], bool]]:
    """Runs of consecutive rows with one market, receive time and snapshot flag, each with
    whether it is a snapshot: snapshot rows after other rows of the market start a new book, a
    second run of snapshot rows continues the same one."""
    header, lines = _csv_rows(path, dead)
    missing = TARDIS_BOOK_L2 - set(header)
    if missing:
        raise InputError(f"{path.name}: missing column(s) {', '.join(sorted(missing))} (incremental_book_L2)")
    in_snapshot: dict[str, bool] = {}
    group: list[tuple[int, Row]] = []
    key: tuple[str, str, str] | None = None
    for n, fields in lines:
        row = dict(zip(header, fields, strict=True))
        problem = _l2_problem(row)
        if problem is not None:
            dead.append(dead_row(path, orjson.dumps(row), problem, n, f"{row['exchange']}:{row['symbol']}"))
            continue
        row_key = (f"{row['exchange']}:{row['symbol']}", row["local_timestamp"], row["is_snapshot"])
        if row_key != key and group:
            yield group, _starts_snapshot(in_snapshot, group)
            group = []
        key = row_key
        group.append((n, row))
    if group:
        yield group, _starts_snapshot(in_snapshot, group)


def _starts_snapshot(in_snapshot: dict[str, bool], group: list[tuple[int, Row]]) -> bool:
    row = group[0][1]
    market, flagged = f"{row['exchange']}:{row['symbol']}", row["is_snapshot"] == "true"
    starts = flagged and not in_snapshot.get(market, False)
    in_snapshot[market] = flagged
    return starts


def read_depth(
    path: str | Path, markets: Iterable[str] | None = None
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """A Tardis ``incremental_book_L2`` CSV (gzipped or not) as Depth events, one per run of rows
    with the same receive time; a bad row is a dead letter with its row number."""
    path = Path(path)
    dead: list[DeadLetter] = []
    events: list[InputEvent] = []
    for group, snapshot in _l2_groups(path, dead):
        event = _l2_event(path, group, snapshot, dead)
        if event is not None:
            events.append(event)
    _check_markets(path, events, markets)
    return events, dead


def _check_markets(path: Path, events: Iterable[InputEvent], markets: Iterable[str] | None) -> None:
    if markets is None:
        return
    unknown = sorted({e.market for e in events} - set(markets))
    if unknown:
        raise InputError(
            f"{path.name}: no instrument spec for {', '.join(map(repr, unknown))} "
            "(add it under markets in the config)"
        )


def load_inputs(
    quotes: Sequence[str | Path],
    trades: Sequence[str | Path],
    fills: Sequence[str | Path],
    markets: Iterable[str] | None = None,
    depth: Sequence[str | Path] = (),
    frames: Sequence[str | Path] = (),
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Read every file, validate, merge by arrival time (see ``merge_arrival``).

    ``depth`` are Tardis incremental_book_L2 files, ``frames`` raw Binance websocket frames
    (book ticks, trades and depth, see ``binance_frames``). A fills file recorded from a live
    flow's journal (``after_events`` column) is merged by position instead, which reproduces
    the live flow's order exactly.
    """
    markets = list(markets) if markets is not None else None
    streams, dead, journal = [], [], []
    named = [*((p, "book") for p in quotes), *((p, "trade") for p in trades)]
    readers = [*((p, "depth") for p in depth), *((p, "frames") for p in frames), *((p, None) for p in fills)]
    for path, expect in [*named, *readers]:
        if str(path).endswith(".parquet") and Path(path).is_file():
            if "after_events" in pl.read_parquet_schema(path):
                journal.extend(read_journal(path))
                continue
        if expect == "depth":
            events, bad = read_depth(path, markets)
        elif expect == "frames":
            events, bad = read_frames(path, markets)
        else:
            events, bad = read_events(path, markets, expect)
        streams.append(events)
        dead.extend(bad)
    merged = merge_arrival(streams)
    return (merge_journal(merged, journal) if journal else merged), dead


# -- ordering ---------------------------------------------------------------------------------------


#: The ordering key of ``merge_arrival``: the flow's clock (``mmflow.models.arrival_time``).
arrival_key = arrival_time


def merge_arrival(streams: Sequence[Sequence[InputEvent]]) -> list[InputEvent]:
    """Interleave streams by receive time; ties keep stream order (quotes, trades, fills).

    This is the ordering rule of the whole product: a replay sees events exactly in the order
    a live flow would have consumed them had they arrived on one partition.
    """
    merged = [e for stream in streams for e in stream]
    merged.sort(key=arrival_key)
    return merged


def read_journal(path: str | Path) -> list[tuple[InputEvent, int]]:
    """Inputs as a live flow took them (fills, controls, positions, its incarnations), each with
    the count of its market's market events before it."""
    path = Path(path)
    df = pl.read_parquet(path)
    out = []
    for n, row in enumerate(df.iter_rows(named=True), start=1):
        after = row.pop("after_events")
        try:
            out.append((_event({k: v for k, v in row.items() if v is not None}), after))
        except WireError as err:
            raise InputError(f"{path.name}: row {n}: {err}") from None
    return out


def merge_journal(
    market_events: Sequence[InputEvent], journal: Sequence[tuple[InputEvent, int]]
) -> list[InputEvent]:
    """Put each journalled input back after exactly the market events the live flow had seen."""
    pending: dict[str, list[tuple[int, InputEvent]]] = {}
    for item, after in journal:
        pending.setdefault(item.market, []).append((after, item))
    for items in pending.values():
        items.reverse()  # pop() from the end = journal order
    seen: dict[str, int] = {}
    out: list[InputEvent] = []
    for event in market_events:
        m = event.market
        queue = pending.get(m)
        while queue and queue[-1][0] <= seen.get(m, 0):
            out.append(queue.pop()[1])
        out.append(event)
        seen[m] = seen.get(m, 0) + 1
    for queue in pending.values():
        out.extend(f for _, f in reversed(queue))
    return out


# -- writing our recording ------------------------------------------------------------------------


def events_frame(events: Iterable[InputEvent]) -> pl.DataFrame:
    """Events as a recording table: wire field names, decimals as exact strings."""
    rows = []
    for e in events:
        row = {f: getattr(e, f) for f in e.__dataclass_fields__}
        for k in _DEC:
            if row.get(k) is not None:
                row[k] = str(row[k])
        rows.append(row)
    return (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame({"type": [], "market": []}, schema={"type": pl.Utf8, "market": pl.Utf8})
    )


def write_recording(events: Iterable[InputEvent], path: str | Path) -> Path:
    path = Path(path)
    events_frame(events).write_parquet(path)
    return path
