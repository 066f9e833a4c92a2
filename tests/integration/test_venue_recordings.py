"""The paper venue's rules hold on every real recording in ../shared/data (issue 12, done when):
no maker fill of an order that crossed on arrival, no touch consumed twice, every fill inside its
order's live time, and with the hedge cooldown at 0 the position inside the hard limit.

The checks are independent of the venue's code: they rebuild what an order met from the input
and from the venue's own order reports (orders.parquet).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from mmflow.config import load_settings
from mmflow.connectors.files import load_inputs
from mmflow.flows.replay import replay
from mmflow.models import BookTick
from tests.conftest import BTC_QUOTES, BTC_TRADES, DATA, SOL_QUOTES, SOL_TRADES

RAW_BTC = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"
RAW_ETH = DATA / "raw" / "binance_ETHUSDT_2024-08-09.txt.gz"
# Tight spreads, so the quiet recordings trade enough to test anything.
TIGHT = ["strategy.spreads.min_bps=2", "strategy.spreads.max_bps=4"]

RECORDINGS = {
    "btc-csv": dict(quotes=[BTC_QUOTES], trades=[BTC_TRADES]),
    "btc-frames": dict(frames=[RAW_BTC]),
    "eth-spot-frames": dict(frames=[RAW_ETH]),
    "bybit-sol-csv": dict(quotes=[SOL_QUOTES], trades=[SOL_TRADES]),
}
VARIANTS = {
    "front": ["venue.queue.model=front"],
    "back": [],
    "spiky-probabilistic": ["venue.queue.model=probabilistic", "venue.latency.model=spiky"],
    "no-hedge-cooldown": ["strategy.hedger.cooldown_s=0", "venue.latency.order_ms=250"],
}


def _events(name: str):
    files = RECORDINGS[name]
    events, dead = load_inputs(
        files.get("quotes", []),
        files.get("trades", []),
        [],
        load_settings().markets,
        frames=files.get("frames", []),
    )
    return events


@pytest.fixture(scope="module", params=sorted(RECORDINGS))
def recording(request, data_dir):
    return request.param, _events(request.param)


def _books(events) -> dict[str, tuple[list[int], list[BookTick]]]:
    by_market: dict[str, list[BookTick]] = defaultdict(list)
    for e in events:
        if type(e) is BookTick:
            by_market[e.market].append(e)
    return {m: ([b.ts_recv for b in ticks], ticks) for m, ticks in by_market.items()}


def _check_orders(orders: pl.DataFrame, fills: pl.DataFrame, books) -> int:
    """Every accepted quote met an uncrossed book; every maker fill lies inside its order's life.
    Returns the number of accepted orders checked."""
    quotes = orders.filter(pl.col("kind") == "quote")
    accepted = {}
    ended = {}
    for ts, market, iid, side, status, px in quotes.select(
        "ts", "market", "intent_id", "side", "status", "price"
    ).iter_rows():
        key = (iid, side)
        if status == "accepted":
            accepted[key] = (ts, market, px)
        elif status in ("cancelled", "filled", "rejected", "expired"):
            ended.setdefault(key, ts)
    for (iid, side), (ts, market, px) in accepted.items():
        times, ticks = books[market]
        i = bisect_left(times, ts) - 1  # the book prevailing when it arrived
        if i < 0:
            continue
        book = ticks[i]
        crossed = px >= book.ask_px if side == "buy" else px <= book.bid_px
        assert not crossed, f"{iid} {side} at {px} went live against {book.bid_px}/{book.ask_px}"
    for ts, iid, side in (
        fills.filter(pl.col("source") == "maker").select("ts", "intent_id", "side").iter_rows()
    ):
        live = accepted.get((iid, side))
        assert live is not None, f"a fill of {iid} {side}, never accepted"
        assert live[0] <= ts, f"{iid} {side} filled at {ts} before it went live at {live[0]}"
        end = ended.get((iid, side))
        assert end is None or ts <= end, f"{iid} {side} filled at {ts} after it ended at {end}"
    return len(accepted)


def _check_touch(fills: pl.DataFrame, books) -> None:
    """Touch fills never take more from one level than it showed while its price held."""
    touch = fills.filter(pl.col("cause") == "touch")
    for market, (times, ticks) in books.items():
        for side in ("buy", "sell"):
            ours = touch.filter((pl.col("market") == market) & (pl.col("side") == side))
            if ours.height == 0:
                continue
            run_of: list[int] = []
            run = 0
            for i, tick in enumerate(ticks):
                px = tick.ask_px if side == "buy" else tick.bid_px
                if i and px != (ticks[i - 1].ask_px if side == "buy" else ticks[i - 1].bid_px):
                    run += 1
                run_of.append(run)
            shown: dict[int, Decimal] = defaultdict(Decimal)
            taken: dict[int, Decimal] = defaultdict(Decimal)
            for i, tick in enumerate(ticks):
                qty = tick.ask_qty if side == "buy" else tick.bid_qty
                shown[run_of[i]] = max(shown[run_of[i]], qty)
            for ts, px, qty in ours.select("ts", "price", "qty").iter_rows():
                i = bisect_left(times, ts)
                while ticks[i].ts_recv == ts and not (
                    ticks[i].ask_px <= px if side == "buy" else ticks[i].bid_px >= px
                ):
                    i += 1
                taken[run_of[i]] += qty
            for r, qty in taken.items():
                assert qty <= shown[r], f"{market} {side}: took {qty} from a level that showed {shown[r]}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_venue_rules_hold_on_a_real_recording(recording, variant: str, tmp_path: Path) -> None:
    name, events = recording
    settings = load_settings("phase2", overrides=[*TIGHT, *VARIANTS[variant]])
    result = replay(events, settings, tmp_path, report=False)
    orders = pl.read_parquet(tmp_path / "orders.parquet")
    fills = pl.read_parquet(tmp_path / "fills.parquet")
    books = _books(events)
    assert _check_orders(orders, fills, books) > 0
    _check_touch(fills, books)
    for market, summary in result.summary["markets"].items():
        limit = settings.strategy_for(market).safety.max_position_base
        assert Decimal(summary["max_abs_inventory_base"]) <= limit, (
            market,
            summary["max_abs_inventory_base"],
        )


MODELS = {
    "front-constant": ["venue.queue.model=front"],
    "probabilistic-spiky-tiered": [
        "venue.queue.model=probabilistic",
        "venue.latency.model=spiky",
        "venue.latency.report_ms=20",
        "venue.fees.model=tiered",
        'venue.fees.tiers=[{"min_volume_quote": "0", "maker_rate": "0.0002", "taker_rate": "0.0005"},'
        ' {"min_volume_quote": "5000", "maker_rate": "-0.00005", "taker_rate": "0.0004"}]',
    ],
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_venue_model_replays_byte_identical_across_batches_and_workers(
    model: str, tmp_path: Path, data_dir
) -> None:
    events = _events("btc-frames")
    settings = load_settings("phase2", overrides=[*TIGHT, *MODELS[model]])
    names = ("intents.parquet", "fills.parquet", "orders.parquet", "timeline.parquet", "markouts.parquet")
    runs = {}
    for batch, workers in ((1024, 1), (333, 2), (50_000, 1)):
        out = tmp_path / f"b{batch}w{workers}"
        replay(events, settings, out, report=False, batch_size=batch, workers=workers)
        runs[(batch, workers)] = {n: (out / n).read_bytes() for n in names}
    first = runs[(1024, 1)]
    assert pl.read_parquet(tmp_path / "b1024w1" / "fills.parquet").height > 20
    for key, files in runs.items():
        for n in names:
            assert files[n] == first[n], (model, key, n)
