"""Recorded market data and fills on disk: Tardis-style CSV (gzipped or not) and our Parquet.

Files are parsed and validated in bulk with polars; every row that fails a check becomes a
``DeadLetter`` with its reason and the original row, and the rest become typed events. Decimal
columns are read as text and turned into ``Decimal`` directly, so no price ever passes through
a binary float.

Our own Parquet recording has one row per wire message with the wire field names
(``type, market, ts_exchange, ts_recv, bid_px, ...``) and decimals stored as exact strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl

from mmflow.models import DECIMAL_PLACES, VALUE_LIMIT, BookTick, Control, DeadLetter, Fill, InputEvent, Trade

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
_TARDIS = {"symbol", "timestamp", "local_timestamp"}


class InputError(ValueError):
    """An input file that cannot be read as a whole; the message names the file (and column)."""


def _instrument() -> pl.Expr:
    """A Tardis row's instrument: the ``exchange`` column names the venue (binance-futures,
    binance, bybit, ftx, ...), so Binance spot BTCUSDT is not Binance USD-M BTCUSDT."""
    return pl.concat_str(pl.col("exchange"), pl.lit(":"), pl.col("symbol")).alias("market")


_DEC = ("bid_px", "bid_qty", "ask_px", "ask_qty", "px", "qty", "fee")


def _read_table(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    # Everything as text: exact decimals, and a bad cell becomes a dead letter, not a crash.
    return pl.read_csv(path, infer_schema=False)


def _num_ok(col: str, positive: bool = True) -> pl.Expr:
    """Numeric, finite, below the wire bounds and at most 18 decimal places (the float cast is a
    check only; the value itself is read from the text)."""
    v = pl.col(col).cast(pl.Float64, strict=False)
    text = pl.col(col).cast(pl.Utf8)
    ok = (
        v.is_not_null()
        & v.is_finite()
        & (v.abs() < float(VALUE_LIMIT))
        & ~text.str.contains(rf"\.\d{{{DECIMAL_PLACES + 1},}}").fill_null(False)
    )
    return ok & (v > 0) if positive else ok


def _int_ok(col: str) -> pl.Expr:
    v = pl.col(col).cast(pl.Int64, strict=False)
    return v.is_not_null() & (v >= 0)


def _normalise(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Map a Tardis frame onto the wire column names; a recording passes through unchanged."""
    cols = set(df.columns)
    if _TARDIS <= cols and not (TARDIS_QUOTES <= cols or TARDIS_TRADES <= cols):
        wanted = TARDIS_QUOTES if "bid_price" in cols or "ask_price" in cols else TARDIS_TRADES
        raise InputError(f"{name}: missing column(s) {', '.join(sorted(wanted - cols))}")
    if TARDIS_QUOTES <= cols:
        return df.select(
            pl.lit("book").alias("type"),
            _instrument(),
            pl.col("timestamp").alias("ts_exchange"),
            pl.col("local_timestamp").alias("ts_recv"),
            pl.col("bid_price").alias("bid_px"),
            pl.col("bid_amount").alias("bid_qty"),
            pl.col("ask_price").alias("ask_px"),
            pl.col("ask_amount").alias("ask_qty"),
        )
    if TARDIS_TRADES <= cols:
        return df.select(
            pl.lit("trade").alias("type"),
            _instrument(),
            pl.col("timestamp").alias("ts_exchange"),
            pl.col("local_timestamp").alias("ts_recv"),
            pl.col("id").cast(pl.Utf8).alias("trade_id"),
            pl.col("side"),
            pl.col("price").alias("px"),
            pl.col("amount").alias("qty"),
        )
    if {"fill_id", "price", "fee"} <= cols and "type" not in cols:  # our fills.parquet
        df = df.rename({"price": "px"}).with_columns(pl.lit("fill").alias("type"))
        cols = set(df.columns)
    if "type" in cols and "market" in cols:
        return df.with_columns(_text(c) for c in _DEC if c in cols)
    raise InputError(
        f"{name}: unrecognised columns {sorted(cols)}: expected Tardis quotes/trades or an mmflow recording"
    )


def _text(col: str) -> pl.Expr:
    """A decimal column as minimal exact text ("61800.300000" -> "61800.3")."""
    s = pl.col(col).cast(pl.Utf8)
    trimmed = s.str.strip_chars_end("0").str.strip_chars_end(".")
    plain = s.str.contains(".", literal=True) & ~s.str.contains("[eE]")
    return pl.when(plain).then(trimmed).otherwise(s).alias(col)


def _checks(df: pl.DataFrame) -> list[tuple[pl.Expr, str]]:
    """(condition that must hold, reason when it does not), in the order they are reported."""
    cols = set(df.columns)
    checks: list[tuple[pl.Expr, str]] = []
    kinds = set(df.get_column("type").unique().to_list())
    for kind in kinds:
        is_kind = pl.col("type") == kind
        if kind == "book":
            need = [_int_ok("ts_exchange"), _int_ok("ts_recv")] + [
                _num_ok(c) for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")
            ]
            checks.append(
                (~is_kind | pl.all_horizontal(need), "book: missing, non-numeric or non-positive field")
            )
            crossed = pl.col("bid_px").cast(pl.Float64, strict=False) >= pl.col("ask_px").cast(
                pl.Float64, strict=False
            )
            checks.append((~is_kind | ~crossed.fill_null(False), "book: crossed or locked (bid >= ask)"))
        elif kind == "trade":
            need = [
                _int_ok("ts_exchange"),
                _int_ok("ts_recv"),
                _num_ok("px"),
                _num_ok("qty"),
                pl.col("side").is_in(["buy", "sell"]),
            ]
            checks.append(
                (
                    ~is_kind | pl.all_horizontal(need),
                    "trade: missing, non-numeric or non-positive field, or bad side",
                )
            )
        elif kind == "fill" and {"fill_id", "fee"} <= cols:
            need = [
                _int_ok("ts"),
                _num_ok("px"),
                _num_ok("qty"),
                _num_ok("fee", positive=False),
                pl.col("side").is_in(["buy", "sell"]),
                pl.col("fill_id").is_not_null(),
            ]
            checks.append(
                (~is_kind | pl.all_horizontal(need), "fill: missing, non-numeric or non-positive field")
            )
        elif kind == "control" and {"command_id", "action"} <= cols:
            need = [
                _int_ok("ts"),
                pl.col("action").is_in(["halt", "resume"]),
                pl.col("command_id").is_not_null(),
            ]
            checks.append((~is_kind | pl.all_horizontal(need), "control: bad ts, action or command id"))
        else:
            checks.append((~is_kind, f"unknown record type {kind!r}"))
    return checks


def _dead(df: pl.DataFrame, source: str, reason: str) -> list[DeadLetter]:
    return [
        DeadLetter(source=source, reason=reason, raw=orjson.dumps(row), market=row.get("market"))
        for row in df.iter_rows(named=True)
    ]


def _to_events(df: pl.DataFrame) -> list[InputEvent]:
    D, out = Decimal, []
    for r in df.iter_rows(named=True):
        kind = r["type"]
        if kind == "book":
            out.append(
                BookTick(
                    market=r["market"],
                    ts_exchange=int(r["ts_exchange"]),
                    ts_recv=int(r["ts_recv"]),
                    bid_px=D(r["bid_px"]),
                    bid_qty=D(r["bid_qty"]),
                    ask_px=D(r["ask_px"]),
                    ask_qty=D(r["ask_qty"]),
                )
            )
        elif kind == "trade":
            out.append(
                Trade(
                    market=r["market"],
                    ts_exchange=int(r["ts_exchange"]),
                    ts_recv=int(r["ts_recv"]),
                    trade_id=str(r["trade_id"]),
                    side=r["side"],
                    px=D(r["px"]),
                    qty=D(r["qty"]),
                )
            )
        else:
            out.append(
                Fill(
                    market=r["market"],
                    ts=int(r["ts"]),
                    fill_id=str(r["fill_id"]),
                    intent_id=str(r.get("intent_id") or ""),
                    side=r["side"],
                    px=D(r["px"]),
                    qty=D(r["qty"]),
                    fee=D(r["fee"]),
                    liquidity=r.get("liquidity") or "maker",
                    source=r.get("source") or "maker",
                )
            )
    return out


def read_events(
    path: str | Path, markets: Iterable[str] | None = None
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Read one file of quotes, trades, fills or a mixed recording; invalid rows are dead letters.

    With ``markets``, an instrument the settings have no spec for stops the run here (a replay
    of it would use no spec, or the wrong one): ``InputError`` names the instrument and the file.
    """
    path = Path(path)
    df = _normalise(_read_table(path), path.name)
    if markets is not None:
        _check_instruments(df, set(markets), path.name)
    dead: list[DeadLetter] = []
    for cond, reason in _checks(df):
        bad = df.filter(~cond.fill_null(False))
        if bad.height:
            dead.extend(_dead(bad, str(path.name), reason))
            df = df.filter(cond.fill_null(False))
    return _to_events(df), dead


def _check_instruments(df: pl.DataFrame, known: set[str], name: str) -> None:
    found = df.filter(pl.col("type") != "control").get_column("market").drop_nulls().unique().to_list()
    unknown = sorted(m for m in found if m not in known)
    if unknown:
        raise InputError(
            f"{name}: no instrument spec for {', '.join(map(repr, unknown))} "
            f"(settings.markets has {len(known)}; add it under markets in the config)"
        )


def load_inputs(
    quotes: Sequence[str | Path],
    trades: Sequence[str | Path],
    fills: Sequence[str | Path],
    markets: Iterable[str] | None = None,
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Read every file, validate in bulk, merge by arrival time (see ``merge_arrival``).

    A fills file recorded from a live flow's journal (``after_events`` column) is merged by
    position instead, which reproduces the live flow's order exactly.
    """
    streams, dead, journal = [], [], []
    for path in [*quotes, *trades, *fills]:
        if str(path).endswith(".parquet") and "after_events" in pl.read_parquet_schema(path):
            journal.extend(read_journal(path))
            continue
        events, bad = read_events(path, markets)
        streams.append(events)
        dead.extend(bad)
    merged = merge_arrival(streams)
    return (merge_journal(merged, journal) if journal else merged), dead


def arrival_key(event: InputEvent) -> int:
    """The flow's clock: receive time for market data, execution time for fills."""
    return event.ts if isinstance(event, Fill) else event.ts_recv


def merge_arrival(streams: Sequence[Sequence[InputEvent]]) -> list[InputEvent]:
    """Interleave streams by receive time; ties keep stream order (quotes, trades, fills).

    This is the ordering rule of the whole product: a replay sees events exactly in the order
    a live flow would have consumed them had they arrived on one partition.
    """
    merged = [e for stream in streams for e in stream]
    merged.sort(key=arrival_key)
    return merged


def read_journal(path: str | Path) -> list[tuple[Fill | Control, int]]:
    """Fills and controls as a live flow took them, each with the count of its market's events
    before it."""
    df = pl.read_parquet(path)
    items = _to_events(_normalise(df.drop("after_events"), Path(path).name))
    return list(zip(items, df.get_column("after_events").to_list(), strict=True))  # type: ignore[arg-type]


def merge_journal(
    market_events: Sequence[InputEvent], journal: Sequence[tuple[Fill | Control, int]]
) -> list[InputEvent]:
    """Put each journalled input back after exactly the market events the live flow had seen."""
    pending: dict[str, list[tuple[int, Fill | Control]]] = {}
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
