"""Memory: resident size with 1, 100 and 1,000 markets of state, and state size per market."""

from __future__ import annotations

import gc
import pickle
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mmflow.config import InstrumentSpec, Settings, load_settings
from mmflow.connectors.paper_venue import paper_venues
from mmflow.flows.runtime import MarketRuntime
from mmflow.outputs import Outputs


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settings_for(n: int) -> Settings:
    spec = InstrumentSpec(tick_size="0.1", lot_size="0.001", min_qty="0.001")
    base = load_settings("phase2")
    return base.model_copy(update={"markets": {f"M{i:04d}": spec for i in range(n)}})


def markets_state(events: Sequence[Any], n: int, per_market: int) -> dict[str, float]:
    """Feed ``per_market`` real events to each of ``n`` markets (paper venue included)."""
    settings = settings_for(n)
    runtimes = []
    for i in range(n):
        market = f"M{i:04d}"
        rt = MarketRuntime(market, settings, paper_venues(settings)(market))
        out = Outputs()
        for e in events[:per_market]:
            rt.process(replace(e, market=market), out)
        runtimes.append(rt)
    gc.collect()
    # RSS with the runtimes alive; the caller compares N = 1, 100, 1,000 for the growth per market.
    rss = rss_bytes()
    sizes = [len(pickle.dumps(rt)) for rt in runtimes[: min(n, 50)]]
    return {"markets": n, "rss_mb": rss / 2**20, "state_kb": sum(sizes) / len(sizes) / 1024}


def state_over_time(
    events: Sequence[Any], checkpoints: Sequence[int], settings: Settings | None = None
) -> list[tuple[int, float]]:
    """Pickled state of one market after more and more events: it must stay flat."""
    settings = settings or load_settings("phase2")
    rt = MarketRuntime(events[0].market, settings, paper_venues(settings)(events[0].market))
    out = Outputs()
    result = []
    done = 0
    for mark in checkpoints:
        for e in events[done:mark]:
            rt.process(e, out)
        done = mark
        out = Outputs()
        result.append((mark, len(pickle.dumps(rt)) / 1024))
    return result
