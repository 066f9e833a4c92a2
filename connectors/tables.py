"""A run's outputs as files: the Parquet schemas, the row mappers, and writing a run's folder.

One definition each: the replay, ``mmflow record`` and the report all read and write through
here. Money columns are ``Decimal(38, 18)`` and a value that column would round is refused, so
what is written is exactly what was decided.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from mmflow.markouts import Markout, horizon_label
from mmflow.models import DeadLetter, Fill, Intent, OrderUpdate
from mmflow.money import CONTEXT
from mmflow.outputs import Outputs
from mmflow.view import TIMELINE_FIELDS, MarketView, timeline_row

DEC = pl.Decimal(38, 18)
_Q = Decimal(1).scaleb(-18)


def exact(value: Decimal | None) -> Decimal | None:
    """Refuse to write a decimal that Decimal(38, 18) would round: exactness is not optional."""
    if value is None:
        return None
    if value.quantize(_Q, context=CONTEXT) != value:
        raise ValueError(f"{value} has more than 18 decimals")
    return value


def frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    """Rows as a frame of exactly ``schema`` (column order and types), decimals checked exact."""
    cols = {
        name: pl.Series(name, [exact(r[name]) if dtype == DEC else r[name] for r in rows], dtype=dtype)
        for name, dtype in schema.items()
    }
    return pl.DataFrame(cols, schema=schema)


INTENT_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "seq": pl.Int64,
    "intent_id": pl.Utf8,
    "kind": pl.Utf8,
    "bid_px": DEC,
    "bid_qty": DEC,
    "ask_px": DEC,
    "ask_qty": DEC,
    "side": pl.Utf8,
    "qty": DEC,
    "limit_px": DEC,
    "best_bid": DEC,
    "best_ask": DEC,
    "inventory": DEC,
    "reasons": pl.List(pl.Utf8),
}
FILL_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "fill_id": pl.Utf8,
    "intent_id": pl.Utf8,
    "side": pl.Utf8,
    "price": DEC,
    "qty": DEC,
    "fee": DEC,
    "liquidity": pl.Utf8,
    "source": pl.Utf8,
    "cause": pl.Utf8,
}
#: Each order's life as the venue reported it, one row per step.
ORDER_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "intent_id": pl.Utf8,
    "side": pl.Utf8,
    "kind": pl.Utf8,
    "status": pl.Utf8,
    "price": DEC,
    "qty": DEC,
    "filled_qty": DEC,
    "reason": pl.Utf8,
}


def _column_type(annotation: str) -> Any:
    """The Parquet type of a ``MarketView`` field, from its annotation: decimals stay exact,
    flags are 0/1 bytes."""
    if "Decimal" in annotation:
        return DEC
    return {"float": pl.Float64, "bool": pl.Int8, "str": pl.Utf8, "int": pl.Int64}[annotation]


#: The timeline's columns are ``mmflow.view.TIMELINE_FIELDS``, typed from ``MarketView``.
TIMELINE_SCHEMA: dict[str, Any] = {
    name: pl.Int8 if name == "regime" else _column_type(MarketView.__annotations__[name])
    for name in TIMELINE_FIELDS
}
DEAD_LETTER_SCHEMA: dict[str, Any] = {
    "source": pl.Utf8,
    "market": pl.Utf8,
    "reason": pl.Utf8,  # the code (mmflow.dead_reasons.DeadReason)
    "detail": pl.Utf8,
    "raw": pl.Utf8,
}


#: markouts.parquet: one row per fill booked; then, per horizon, the mid at t + h and the mark-out
#: in bps (null: not resolved by the end of data). ``markout_schema`` adds the horizons' columns.
MARKOUT_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "fill_id": pl.Utf8,
    "intent_id": pl.Utf8,
    "side": pl.Utf8,
    "price": DEC,
    "qty": DEC,
    "fee": DEC,
    "cause": pl.Utf8,
    "liquidity": pl.Utf8,
    "source": pl.Utf8,
    "mid_at_fill": DEC,
}


def markout_schema(horizons_s: Iterable[Decimal]) -> dict[str, Any]:
    labels = [horizon_label(h) for h in horizons_s]
    return {
        **MARKOUT_SCHEMA,
        **{f"mid_{lab}s": DEC for lab in labels},
        **{f"markout_{lab}s_bps": DEC for lab in labels},
    }


def markout_row(m: Markout, labels: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts": m.ts,
        "market": m.market,
        "fill_id": m.fill_id,
        "intent_id": m.intent_id,
        "side": m.side,
        "price": m.px,
        "qty": m.qty,
        "fee": m.fee,
        "cause": m.cause,
        "liquidity": m.liquidity,
        "source": m.source,
        "mid_at_fill": m.mid_at_fill,
    }
    for lab, mid, bps in zip(labels, m.mids, m.bps, strict=True):
        row[f"mid_{lab}s"] = mid
        row[f"markout_{lab}s_bps"] = bps
    return row


def intent_row(i: Intent) -> dict[str, Any]:
    g = getattr
    return {
        "ts": i.ts,
        "market": i.market,
        "seq": int(i.intent_id.rsplit("-", 1)[1]),
        "intent_id": i.intent_id,
        "kind": i.type,
        "bid_px": g(i, "bid_px", None),
        "bid_qty": g(i, "bid_qty", None),
        "ask_px": g(i, "ask_px", None),
        "ask_qty": g(i, "ask_qty", None),
        "side": g(i, "side", None),
        "qty": g(i, "qty", None),
        "limit_px": g(i, "limit_px", None),
        "best_bid": i.best_bid,
        "best_ask": i.best_ask,
        "inventory": i.inventory,
        "reasons": list(i.reasons),
    }


#: Table columns named otherwise than the record's field.
_FIELD_OF = {"price": "px"}


def _record_row(record: Fill | OrderUpdate, schema: dict[str, Any]) -> dict[str, Any]:
    """A record's row: each column of ``schema`` from the field of that name (``price``: ``px``)."""
    return {col: getattr(record, _FIELD_OF.get(col, col)) for col in schema}


def fill_row(f: Fill) -> dict[str, Any]:
    return _record_row(f, FILL_SCHEMA)


def order_row(u: OrderUpdate) -> dict[str, Any]:
    return _record_row(u, ORDER_SCHEMA)


def dead_letter_row(d: DeadLetter) -> dict[str, Any]:
    return {
        "source": d.source,
        "market": d.market,
        "reason": str(d.reason),
        "detail": d.detail,
        "raw": d.raw.decode("utf-8", "replace"),
    }


def intents_frame(intents: Iterable[Intent]) -> pl.DataFrame:
    return frame([intent_row(i) for i in intents], INTENT_SCHEMA)


def fills_frame(fills: Iterable[Fill]) -> pl.DataFrame:
    return frame([fill_row(f) for f in fills], FILL_SCHEMA)


def orders_frame(updates: Iterable[OrderUpdate]) -> pl.DataFrame:
    return frame([order_row(u) for u in updates], ORDER_SCHEMA)


def timeline_frame(views: Iterable[MarketView]) -> pl.DataFrame:
    return frame([timeline_row(v) for v in views], TIMELINE_SCHEMA)


def dead_letters_frame(dead: Iterable[DeadLetter]) -> pl.DataFrame:
    return frame([dead_letter_row(d) for d in dead], DEAD_LETTER_SCHEMA)


def markouts_frame(marks: Iterable[Markout], horizons_s: Iterable[Decimal]) -> pl.DataFrame:
    horizons_s = tuple(horizons_s)
    labels = [horizon_label(h) for h in horizons_s]
    return frame([markout_row(m, labels) for m in marks], markout_schema(horizons_s))


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A fresh folder beside ``out_dir`` to write a run into, moved into place only when the block
    succeeds: a failed run leaves the earlier folder as it was, and a successful one leaves no
    stale file of an earlier run beside its own (``--out`` is the run's, whole)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        out_dir.rename(old / out_dir.name)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_run(
    out_dir: Path, outputs: Outputs, summary: dict[str, Any], horizons_s: Iterable[Decimal] = ()
) -> None:
    """A run's folder: intents, fills, order updates, timeline, dead letters and mark-outs (at
    ``horizons_s``, the run's ``replay.markout_horizons_s``) as Parquet, and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    intents_frame(outputs.intents).write_parquet(out_dir / "intents.parquet")
    fills_frame(outputs.fills).write_parquet(out_dir / "fills.parquet")
    orders_frame(outputs.orders).write_parquet(out_dir / "orders.parquet")
    timeline_frame(outputs.timeline).write_parquet(out_dir / "timeline.parquet")
    dead_letters_frame(outputs.dead).write_parquet(out_dir / "dead_letters.parquet")
    markouts_frame(outputs.marks, horizons_s).write_parquet(out_dir / "markouts.parquet")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
