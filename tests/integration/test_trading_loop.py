"""The whole loop trades the raw BTCUSDT recording: ``mmflow ingest`` reads it from ``mmflow
exchange-sim``, ``mmflow run`` quotes and hedges on it, ``mmflow execute`` sends the orders to the
simulator and brings its executions back (the harness: ``trading_loop.py``).

At the end the books of the three sides agree: the flow's inventory is the simulator's
``positionRisk``, its realized PnL and open lots are a FIFO of our own over the fills topic, the
positions the connector published never put the flow in a reconciliation halt, and no order of
the bot is left on the exchange.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.test_fault_matrix import open_lots
from tests.integration.test_kafka_recovery import independent_fifo_from
from tests.integration.trading_loop import (
    BTC,
    BTC_FRAMES,
    EXCHANGE_INFO,
    histogram_quantile,
    metric,
    run_loop,
    total,
)

pytestmark = pytest.mark.kafka
#: x the recorded pace: the 5.7 recorded minutes in about 35 s, which the ingest, the flow and
#: execute keep up with on two CPUs.
SPEED = 10.0


def test_the_whole_loop_trades_the_btcusdt_recording_and_the_books_agree(
    kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    if not BTC_FRAMES.exists() or not EXCHANGE_INFO.exists():
        pytest.fail("the BTCUSDT frames or the recorded exchangeInfo are not under ../shared/data")
    result = run_loop(kafka_bootstrap, unique_topic_prefix, tmp_path, SPEED)
    fills, state = result.fills, result.state

    # Fills arrived: quotes filled as makers and hedges as takers, each trade once.
    assert len({f.fill_id for f in fills}) == len(fills)
    assert any(f.liquidity == "maker" for f in fills), [f.fill_id for f in fills]
    assert all(f.fill_id.startswith(f"{BTC}-T") for f in fills)
    assert total(result.flow_metrics, "maker_fills_total") == len(fills)
    # The flow's inventory is the exchange's position; its PnL a FIFO over the fills.
    realized, position = independent_fifo_from(fills)
    assert Decimal(state["final_inventory_base"]) == position == result.position_risk
    assert Decimal(state["realized_pnl_quote"]) == realized
    assert state["open_lots"] == open_lots(fills)
    # The reconciliation never found a mismatch, and nothing of the bot rests on the exchange.
    assert metric(result.flow_metrics, "maker_reconcile_halt", market=BTC) == 0
    assert metric(result.flow_metrics, "maker_position_mismatch_base", market=BTC) == 0
    assert result.open_orders == 0
    # Every order the flow asked for reached the exchange and was answered.
    sent = total(result.exec_metrics, "mmflow_exec_orders_sent_total")
    assert sent > 0 and metric(result.exec_metrics, "mmflow_exec_tick_to_order_seconds_count", market=BTC) > 0
    assert any(u.status == "filled" for u in result.updates)
    p50 = histogram_quantile(result.exec_metrics, "mmflow_exec_tick_to_order_seconds", 0.5)
    p99 = histogram_quantile(result.exec_metrics, "mmflow_exec_tick_to_order_seconds", 0.99)
    print(
        f"\nloop: {len(fills)} fills ({sum(f.liquidity == 'maker' for f in fills)} maker), {sent:.0f} orders "
        f"in {result.replay_s:.1f} s, inventory {position} = positionRisk {result.position_risk}, "
        f"realized {realized}, tick-to-order p50 {p50 * 1e3:.1f} ms p99 {p99 * 1e3:.1f} ms"
    )
