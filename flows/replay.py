"""Replay recorded (or synthetic) market data through the dataflow; ``connectors.tables`` writes
the results.

Outputs in ``out_dir``: intents.parquet, fills.parquet, timeline.parquet, dead_letters.parquet,
markouts.parquet, summary.json and report.html (+ PNGs). Row order is per market in decision
order, markets sorted by name, so the files are byte-identical across runs, batch sizes and
worker counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import run_main
from tqdm import tqdm

from mmflow.config import Settings
from mmflow.connectors.metrics import FlowMetrics
from mmflow.connectors.paper_venue import paper_venues
from mmflow.connectors.report import write_report
from mmflow.connectors.sinks import ListSink
from mmflow.connectors.sources import EventListSource
from mmflow.connectors.tables import staged, write_run
from mmflow.execution import VenueFactory
from mmflow.flows.engine import build_flow, tune_gc
from mmflow.models import DeadLetter, OrderUpdate
from mmflow.outputs import Journaled, Outputs


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    outputs: Outputs
    out_dir: Path | None


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
    """The market an output belongs to, for the stable per-market order of a run's files."""
    if isinstance(item, dict):
        return item.get("market") or ""
    if isinstance(item, Journaled):
        return item.event.market
    return getattr(item, "market", None) or ""


#: ``venue`` of a replay: "paper" (each market's paper venue, from the run's settings), any
#: factory of ``ExecutionVenue``, or None (faithful: the fills come from the input).
VenueChoice = VenueFactory | Literal["paper"] | None


def _venue(choice: VenueChoice, settings: Settings) -> VenueFactory | None:
    return paper_venues(settings) if choice == "paper" else choice  # type: ignore[return-value]


def run_events(
    events: Sequence[Any],
    settings: Settings,
    venue: VenueChoice = "paper",
    metrics: FlowMetrics | None = None,
    progress: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
) -> tuple[Outputs, float]:
    """Run the dataflow over ``events``; return its outputs (per market, in decision order, markets
    sorted by name) and the wall time."""
    metrics = metrics or FlowMetrics()
    bar = (
        tqdm(total=len(events), unit="ev", unit_scale=True, desc="replay", leave=False) if progress else None
    )
    source = _Progress(events, batch_size or settings.replay.batch_size, bar)
    flow = Dataflow("mmflow")
    # Recorded order updates (a live journal) reach the maker as they did live.
    reports = any(type(e) is OrderUpdate for e in events)
    streams = build_flow(flow, source, settings, metrics, _venue(venue, settings), order_reports=reports)
    collected = Outputs()
    for name in Outputs.__slots__:
        op.output(f"collect_{name}", getattr(streams, name), ListSink(getattr(collected, name)))
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
    for name in Outputs.__slots__:  # stable: each market's rows keep their decision order
        getattr(collected, name).sort(key=_market_of)
    return collected, wall


def replay(
    events: Sequence[Any],
    settings: Settings,
    out_dir: Path | None = None,
    venue: VenueChoice = "paper",
    progress: bool = False,
    metrics: FlowMetrics | None = None,
    report: bool = True,
    batch_size: int | None = None,
    workers: int | None = None,
) -> ReplayResult:
    """Replay ``events`` (typed events and dead letters, in arrival order) and write the outputs."""
    outputs, wall = run_events(events, settings, venue, metrics, progress, batch_size, workers)
    n = sum(1 for e in events if not isinstance(e, DeadLetter))
    summary = {
        "preset": settings.preset,
        "mode": "faithful" if venue is None else "paper" if venue == "paper" else "venue",
        "events": n,
        "dead_letters": len(outputs.dead),
        "wall_seconds": round(wall, 6),
        "events_per_second": round(n / wall, 1) if wall > 0 else None,
        "markets": {s.pop("market"): s for s in (dict(x) for x in outputs.summaries)},
    }
    if out_dir is not None:
        with staged(Path(out_dir)) as folder:
            write_run(folder, outputs, summary, settings.replay.markout_horizons_s)
            if report:
                write_report(folder)
    return ReplayResult(summary, outputs, out_dir)
