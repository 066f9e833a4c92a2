"""`make bench`: throughput of the strategy core and of the full Bytewax replay on real data.

Each figure is the median of several runs; results are printed and written to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from flows.replay import load_inputs, run_events
from flows.runtime import MarketRuntime
from mmflow.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
QUOTES = DATA / "binance-futures_quotes_2024-08-08_BTCUSDT.csv.gz"
TRADES = DATA / "binance-futures_trades_2024-08-08_BTCUSDT.csv.gz"


def median_rate(n: int, fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def core_loop(events: list, settings: Settings) -> None:
    rt = MarketRuntime("BTCUSDT", settings)
    out: list = []
    for e in events:
        rt.process(e, out)
    rt.finish(out)


def trivial_loop(events: list, settings: Settings) -> None:
    """The floor of a Python loop over the same events: touch each one, decide nothing."""
    count = 0
    last = None
    for e in events:
        if e.type == "book":
            last = e.bid_px
        count += 1
    assert count and last is not None


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    args = ap.parse_args()
    settings = load_settings("phase2", REPO / "infra" / "config" / "btcusdt-tight.yaml")
    events, _ = load_inputs([QUOTES], [TRADES], [], settings)
    n = len(events)
    rows = [
        (
            "strategy core, plain loop (events/s)",
            median_rate(n, lambda: core_loop(events, settings), args.runs),
        ),
        ("trivial loop floor (events/s)", median_rate(n, lambda: trivial_loop(events, settings), args.runs)),
        (
            "full replay through Bytewax, 1 worker (events/s)",
            median_rate(n, lambda: run_events(events, settings), args.runs),
        ),
    ]
    ratio = rows[0][1] / rows[2][1]
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}. Data: real Binance BTCUSDT recording, {n:,} events "
        f"(quotes + trades), preset phase2 with infra/config/btcusdt-tight.yaml. Median of {args.runs} runs.",
        "",
        "| figure | value |",
        "| --- | --- |",
        *[f"| {name} | {value:,.0f} |" for name, value in rows],
        f"| plain loop / Bytewax replay | {ratio:.2f}x |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
