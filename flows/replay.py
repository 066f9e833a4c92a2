"""Replay recorded (or synthetic) market data through the dataflow and write the results.

Outputs in ``out_dir``: intents.parquet, fills.parquet, timeline.parquet, dead_letters.parquet,
summary.json and report.html (+ PNGs). Row order is per market in decision order, markets sorted
by name, so the files are byte-identical across runs, batch sizes and worker counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from bytewax.run import cli_main
from bytewax.testing import run_main
from mmflow.connectors.files import (
    dead_letters_frame,
    merge_arrival,
    merge_journal,
    read_events,
    read_journal,
)
from mmflow.connectors.metrics import Metrics
from mmflow.connectors.sinks import KindSink
from mmflow.connectors.sources import EventListSource
from mmflow.flows.engine import build_flow, tune_gc
from tqdm import tqdm

from mmflow.config import Settings
from mmflow.models import DeadLetter, Fill, InputEvent, Intent

DEC = pl.Decimal(38, 18)
_Q = Decimal(1).scaleb(-18)


def _exact(value: Decimal | None) -> Decimal | None:
    """Refuse to write a decimal that Decimal(38, 18) would round: exactness is not optional."""
    if value is None:
        return None
    if value.quantize(_Q) != value:
        raise ValueError(f"{value} has more than 18 decimals")
    return value


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    cols = {
        name: pl.Series(name, [_exact(r[name]) if dtype == DEC else r[name] for r in rows], dtype=dtype)
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
}
TIMELINE_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "mid": DEC,
    "best_bid": DEC,
    "best_ask": DEC,
    "bid_px": DEC,
    "ask_px": DEC,
    "volatility_bps": pl.Float64,
    "regime": pl.Int8,
    "trend_guard": pl.Int8,
    "pnl_guard": pl.Int8,
    "inventory": DEC,
    "realized_pnl": DEC,
    "spread_bps": pl.Float64,
    "stale_guard": pl.Int8,
    "operator_halt": pl.Int8,
    "loss_halt": pl.Int8,
}


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


def fill_row(f: Fill) -> dict[str, Any]:
    return {
        "ts": f.ts,
        "market": f.market,
        "fill_id": f.fill_id,
        "intent_id": f.intent_id,
        "side": f.side,
        "price": f.px,
        "qty": f.qty,
        "fee": f.fee,
        "liquidity": f.liquidity,
        "source": f.source,
    }


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    by_kind: dict[str, list[Any]]
    out_dir: Path | None


def load_inputs(
    quotes: Sequence[str | Path],
    trades: Sequence[str | Path],
    fills: Sequence[str | Path],
    settings: Settings,
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Read every file, validate in bulk, merge by arrival time (see files.merge_arrival).

    A fills file recorded from a live flow's journal (``after_events`` column) is merged by
    position instead, which reproduces the live flow's order exactly.
    """
    streams, dead, journal = [], [], []
    for path in [*quotes, *trades, *fills]:
        if str(path).endswith(".parquet") and "after_events" in pl.read_parquet_schema(path):
            journal.extend(read_journal(path))
            continue
        events, bad = read_events(path, settings.markets)
        streams.append(events)
        dead.extend(bad)
    merged = merge_arrival(streams)
    return (merge_journal(merged, journal) if journal else merged), dead


class _Progress(EventListSource):
    """The list source, ticking a progress bar as batches leave it."""

    def __init__(self, items: Sequence[Any], batch_size: int, bar: tqdm | None) -> None:
        super().__init__(items, batch_size)
        self._bar = bar

    def build_part(self, step_id: str, for_part: str, resume_state: int | None):  # type: ignore[override]
        part = super().build_part(step_id, for_part, resume_state)
        bar, inner = self._bar, part.next_batch

        def next_batch() -> list[Any]:
            batch = inner()
            if bar is not None:
                bar.update(len(batch))
            return batch

        part.next_batch = next_batch  # type: ignore[method-assign]
        return part


def _market_of(item: Any) -> str:
    market = item.get("market") if isinstance(item, dict) else getattr(item, "market", None)
    return market or ""


def run_events(
    events: Sequence[Any],
    settings: Settings,
    paper: bool = True,
    metrics: Metrics | None = None,
    progress: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
) -> tuple[dict[str, list[Any]], float]:
    """Run the dataflow over ``events``; return outputs by kind and the wall time."""
    metrics = metrics or Metrics()
    sink = KindSink()
    bar = (
        tqdm(total=len(events), unit="ev", unit_scale=True, desc="replay", leave=False) if progress else None
    )
    source = _Progress(events, batch_size or settings.replay.batch_size, bar)
    flow = build_flow(source, sink, settings, metrics, paper=paper)
    tune_gc()
    n_workers = workers or settings.replay.workers
    start = time.perf_counter()
    if n_workers == 1:
        run_main(flow)
    else:
        cli_main(flow, workers_per_process=n_workers)
    wall = time.perf_counter() - start
    if bar is not None:
        bar.close()
    # Stable sort by market: each market's rows keep their decision order.
    by_kind = {k: sorted(v, key=_market_of) for k, v in sink.by_kind.items()}
    return by_kind, wall


def write_outputs(out_dir: Path, by_kind: dict[str, list[Any]], summary: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _frame([intent_row(i) for i in by_kind.get("intent", [])], INTENT_SCHEMA).write_parquet(
        out_dir / "intents.parquet"
    )
    _frame([fill_row(f) for f in by_kind.get("fill", [])], FILL_SCHEMA).write_parquet(
        out_dir / "fills.parquet"
    )
    _frame(by_kind.get("timeline", []), TIMELINE_SCHEMA).write_parquet(out_dir / "timeline.parquet")
    dead_letters_frame(by_kind.get("dead", [])).write_parquet(out_dir / "dead_letters.parquet")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def replay(
    events: Sequence[Any],
    settings: Settings,
    out_dir: Path | None = None,
    paper: bool = True,
    progress: bool = False,
    metrics: Metrics | None = None,
    report: bool = True,
    batch_size: int | None = None,
    workers: int | None = None,
) -> ReplayResult:
    """Replay ``events`` (typed events and dead letters, in arrival order) and write the outputs."""
    by_kind, wall = run_events(events, settings, paper, metrics, progress, batch_size, workers)
    n = sum(1 for e in events if not isinstance(e, DeadLetter))
    summary = {
        "preset": settings.preset,
        "mode": "paper" if paper else "faithful",
        "events": n,
        "dead_letters": len(by_kind.get("dead", [])),
        "wall_seconds": round(wall, 6),
        "events_per_second": round(n / wall, 1) if wall > 0 else None,
        "markets": {s.pop("market"): s for s in (dict(x) for x in by_kind.get("summary", []))},
    }
    if out_dir is not None:
        write_outputs(out_dir, by_kind, summary)
        if report:
            from mmflow.connectors.report import write_report

            write_report(out_dir)
    return ReplayResult(summary, by_kind, out_dir)
