"""The whole trading loop, timed: tick-to-order latency and the order rate against the budget.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m benchmarks.trading_loop_bench [--speed 1]

The harness of the end-to-end test (``tests/integration/trading_loop.py``): ``mmflow
exchange-sim`` (in this process, ``--restamp``) serves the raw BTCUSDT futures frames at
``--speed`` x their pace, ``mmflow ingest`` writes them to Kafka, ``mmflow run`` quotes and
hedges, ``mmflow execute`` places the orders on the simulator and brings the fills back; each
a process of its own on one local broker.

Figures:
- tick to order: the intent's time (the tick's receive time in the ingest) to the exchange's
  answer to the order, from ``mmflow_exec_tick_to_order_seconds`` (p50/p99 as Prometheus'
  ``histogram_quantile`` reads them, linear within ms-wide buckets);
- the REST round trip, every endpoint (``mmflow_exec_request_latency_seconds``);
- orders per minute over the replay and the busiest 10 s, against exchangeInfo's ORDERS limits;
- fills, and whether the three books agree (flow inventory = positionRisk, realized = a FIFO
  over the fills topic).
At ``--speed 1`` the recording runs its 5.7 minutes at its own pace: the latency a live session
on this machine would see.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

from mmflow.models import OrderUpdate
from tests.integration.test_kafka_recovery import independent_fifo_from
from tests.integration.trading_loop import LoopResult, histogram_quantile, run_loop, total

#: Statuses that answer one order request (a placement accepted or refused).
_ANSWERS = {"accepted", "rejected"}


def busiest_10s(updates: list[OrderUpdate]) -> int:
    """The most orders answered in any 10 s window (the exchange's short ORDERS interval)."""
    times = sorted(u.ts for u in updates if u.status in _ANSWERS)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 10_000_000:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _limit(result: LoopResult, interval: str, num: int) -> int | None:
    for r in result.order_limits:
        if r.get("interval") == interval and int(r.get("intervalNum", 1)) == num:
            return int(r["limit"])
    return None


def report(result: LoopResult, speed: float) -> list[str]:
    ex = result.exec_metrics
    name = "mmflow_exec_tick_to_order_seconds"
    p50, p99 = (histogram_quantile(ex, name, q) * 1e3 for q in (0.5, 0.99))
    rest = "mmflow_exec_request_latency_seconds"
    r50, r99 = (histogram_quantile(ex, rest, q) * 1e3 for q in (0.5, 0.99))
    sent = total(ex, "mmflow_exec_orders_sent_total")
    minutes = result.replay_s / 60
    per_min, per_10s = _limit(result, "MINUTE", 1), _limit(result, "SECOND", 10)
    realized, position = independent_fifo_from(result.fills)
    agree = (
        Decimal(result.state["final_inventory_base"]) == position == result.position_risk
        and Decimal(result.state["realized_pnl_quote"]) == realized
    )
    makers = sum(f.liquidity == "maker" for f in result.fills)
    return [
        f"trading loop on the BTCUSDT frames at {speed:g}x: replay {result.replay_s:.1f} s",
        f"  tick to order              p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
        f"   ({total(ex, name + '_count'):.0f} orders)",
        f"  REST round trip (all)      p50 {r50:6.1f} ms   p99 {r99:6.1f} ms",
        f"  orders                     {sent:.0f} sent, {sent / minutes:.0f}/min"
        f" (budget {per_min or '?'}/min), busiest 10 s {busiest_10s(result.updates)}"
        f" (budget {per_10s or '?'}/10 s)",
        f"  fills                      {len(result.fills)} ({makers} maker, {len(result.fills) - makers} taker)",
        f"  books                      flow {result.state['final_inventory_base']} / positionRisk"
        f" {result.position_risk} / FIFO {position}; realized {realized}: {'agree' if agree else 'DISAGREE'}",
        f"  left on the exchange       {result.open_orders} open orders",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", type=float, default=1.0, help="x the recorded pace (default 1)")
    args = ap.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    with tempfile.TemporaryDirectory(prefix="mmflow-loop-") as tmp:
        result = run_loop(bootstrap, f"bench-loop-{uuid.uuid4().hex[:8]}", Path(tmp), args.speed)
    print("\n".join(report(result, args.speed)))


if __name__ == "__main__":
    main()
