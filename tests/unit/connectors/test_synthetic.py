"""The synthetic market is the default data source, so its guarantees are tested directly:
determinism, valid grids and books, and that it really contains the regimes the strategy is
meant to survive (calm, volatile, downtrend)."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest

from mmflow.connectors.synthetic import describe, generate
from mmflow.models import BookTick, Trade

TICK = Decimal("0.01")
LOT = Decimal("0.001")


@pytest.fixture(scope="module")
def events() -> list[BookTick | Trade]:
    return generate(seconds=1800.0)


def _mids_per_second(events: list[BookTick | Trade]) -> list[float]:
    """The mid of the last book received at or before each whole second of the run."""
    books = [e for e in events if isinstance(e, BookTick)]
    start, end = events[0].ts_recv, events[-1].ts_recv
    mids: list[float] = []
    i = 0
    cur = books[0]
    for t in range(start + 1_000_000, end + 1, 1_000_000):
        while i < len(books) and books[i].ts_recv <= t:
            cur = books[i]
            i += 1
        mids.append(float(cur.bid_px + cur.ask_px) / 2)
    return mids


def test_deterministic_and_seed_sensitive(events: list[BookTick | Trade]) -> None:
    assert generate(seconds=1800.0) == events
    assert [repr(e) for e in generate(seconds=120.0)] == [repr(e) for e in generate(seconds=120.0)]
    assert generate(seconds=120.0, seed=8) != generate(seconds=120.0)


def test_event_count_and_ordering(events: list[BookTick | Trade]) -> None:
    assert 10_000 <= len(events) <= 60_000
    recv = [e.ts_recv for e in events]
    assert recv == sorted(recv)
    for e in events:
        assert 1_000 <= e.ts_recv - e.ts_exchange <= 30_000
        assert e.market == "synthetic:SYNTH-SOL"
    assert events[0].ts_exchange >= 1_767_225_600_000_000


def test_prices_and_sizes_on_grid(events: list[BookTick | Trade]) -> None:
    for e in events:
        if isinstance(e, BookTick):
            prices, sizes = (e.bid_px, e.ask_px), (e.bid_qty, e.ask_qty)
            assert e.bid_px < e.ask_px
            assert e.ask_px - e.bid_px <= 3 * TICK
        else:
            prices, sizes = (e.px,), (e.qty,)
        for p in prices:
            assert p > 0 and p % TICK == 0, e
        for q in sizes:
            assert q > 0 and q % LOT == 0, e


def test_other_grids() -> None:
    tick, lot = Decimal("0.001"), Decimal("0.01")
    evs = generate(market="X", seconds=120.0, seed=3, start_px=Decimal("2.500"), tick=tick, lot=lot)
    assert evs
    for e in evs:
        prices = (e.bid_px, e.ask_px) if isinstance(e, BookTick) else (e.px,)
        sizes = (e.bid_qty, e.ask_qty) if isinstance(e, BookTick) else (e.qty,)
        assert all(p > 0 and p % tick == 0 for p in prices)
        assert all(q > 0 and q % lot == 0 for q in sizes)


def test_trades(events: list[BookTick | Trade]) -> None:
    trades = [e for e in events if isinstance(e, Trade)]
    assert {t.side for t in trades} == {"buy", "sell"}
    ids = [t.trade_id for t in trades]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("synthetic:SYNTH-SOL-") for i in ids)
    qty = sorted(t.qty for t in trades)
    assert qty[len(qty) // 2] <= 2  # most trades are small ...
    assert qty[-1] >= 5  # ... but the tail is heavy


def test_regimes_present(events: list[BookTick | Trade]) -> None:
    mids = _mids_per_second(events)
    assert len(mids) >= 1790
    rets = [math.log(b / a) * 1e4 for a, b in zip(mids, mids[1:], strict=False)]
    vols = [statistics.stdev(rets[i : i + 60]) for i in range(len(rets) - 60)]
    assert min(vols) < 3.0, "no calm 60 s window"
    assert max(vols) > 6.0, "no volatile 60 s window"
    drops = [(mids[i + 30] / mids[i] - 1) * 1e4 for i in range(len(mids) - 30)]
    assert min(drops) <= -10.0, "no 30 s downtrend"


def test_describe(events: list[BookTick | Trade]) -> None:
    d = describe(events)
    assert d["books"] + d["trades"] == d["events"] == len(events)
    assert d["buys"] + d["sells"] == d["trades"]
    assert 1790 <= d["seconds"] <= 1801
    assert Decimal(d["min_px"]) < Decimal("150.00") < Decimal(d["max_px"])
    assert describe([])["min_px"] is None
