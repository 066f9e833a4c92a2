"""mmflow.markouts: mark-outs of fills at horizons, and the PnL attribution that sums to the total."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.markouts import MarkoutTracker, to_bps
from mmflow.models import Fill
from mmflow.money import product
from mmflow.strategy.fifo import FifoBook
from tests.builders import SOL, T0, S
from tests.builders import fill as make_fill

H = (D(1), D(5))


def fill(ts: int, fid: str, side: str, px: str, qty: str, fee: str = "0", cause: str = "touch", **kw) -> Fill:
    return replace(make_fill(ts, fid, side, px, qty, fee, **kw), cause=cause)


def test_hand_example_exact_numbers_boundary_and_unresolved() -> None:
    mt = MarkoutTracker(SOL, H, D(1))
    assert mt.on_mid(T0, D("100.00")) is None
    mt.on_fill(fill(T0 + S, "f1", "buy", "99.98", "2", cause="trade_through"), D("100.00"))
    mt.on_fill(fill(T0 + S, "f2", "sell", "100.02", "1", cause="trade_at_price"), D("100.00"))
    assert mt.on_mid(T0 + S + S // 2, D("100.02")) is None
    # Exactly at t + 1 s: this mid is the one prevailing at t + 1 s.
    assert mt.on_mid(T0 + 2 * S, D("99.96")) is None
    assert mt.on_mid(T0 + 2 * S + 1, D("100.10")) is None  # resolves 1 s; 5 s still pending
    # 5 s: mid(t + 5 s) = 100.10 (set at T0 + 2 s + 1 us); the clock passes T0 + 6 s here.
    done = mt.on_mid(T0 + 6 * S + 1, D("100.50"))
    assert [r.fill_id for r in done] == ["f1", "f2"]
    f1, f2 = done
    assert f1.mids == [D("99.96"), D("100.10")]
    # buy: (99.96 - 99.98) / 99.98 = -2.0004 bps; (100.10 - 99.98) / 99.98 = 12.0024 bps
    assert f1.bps == [D("-2.00"), D("12.00")]
    # sell: -(99.96 - 100.02) / 100.02 = 5.9988 bps; -(100.10 - 100.02) / 100.02 = -7.9984 bps
    assert f2.bps == [D("6.00"), D("-8.00")]
    # Mean weighted by notional: 10_000 * (2 * -0.02 + 1 * 0.06) / (199.96 + 100.02) over the makers.
    agg = mt.aggregates()
    assert agg["maker"]["markout_bps"] == {"1": str(to_bps(D("0.02"), D("299.98"))), "5": "5.33"}
    assert agg["maker"]["markout_bps"]["1"] == "0.67"
    assert agg["by_cause"]["trade_through"]["markout_quote"] == {"1": "-0.04", "5": "0.24"}
    assert agg["by_cause"]["trade_at_price"]["volume_quote"] == "100.02"

    # A fill 3 s before the end: 1 s resolves at the end, 5 s never does (None, not 0).
    mt.on_fill(fill(T0 + 7 * S, "f3", "buy", "100.40", "1", cause="touch"), D("100.50"))
    (f3,) = mt.finish(T0 + 10 * S)
    assert f3.mids == [D("100.50"), None] and f3.bps[1] is None
    assert f3.bps[0] == D("9.96")  # 0.10 / 100.40 = 9.9602 bps
    touch = mt.aggregates()["by_cause"]["touch"]
    assert touch["unresolved"] == {"1": 0, "5": 1}
    assert touch["markout_bps"] == {"1": "9.96", "5": None}


def test_a_mid_one_microsecond_after_the_horizon_does_not_count() -> None:
    mt = MarkoutTracker(SOL, (D(1),), D(1))
    mt.on_mid(T0, D("100"))
    mt.on_fill(fill(T0, "f", "buy", "100", "1"), D("100"))
    assert mt.on_mid(T0 + S + 1, D("101")) is not None  # resolved at the previous mid
    assert mt.aggregates()["maker"]["markout_bps"] == {"1": "0.00"}


def test_nothing_due_costs_no_work_and_order_is_kept() -> None:
    mt = MarkoutTracker(SOL, H, D(5))
    for i in range(3):
        mt.on_fill(fill(T0 + i, f"f{i}", "buy", "100", "1"), None)
    assert mt.on_mid(T0 + 5, D("100")) is None  # nothing due yet
    done = mt.finish(T0 + 10 * S)
    assert [r.fill_id for r in done] == ["f0", "f1", "f2"]
    assert all(r.mid_at_fill is None for r in done)


def test_horizons_are_checked() -> None:
    with pytest.raises(ValueError):
        MarkoutTracker(SOL, (D(5), D(1)), D(1))
    with pytest.raises(ValueError):
        MarkoutTracker(SOL, H, D(30))


def total_pnl(book: FifoBook, mid: D) -> D:
    return book.realized + book.unrealized(mid)


def test_attribution_hand_example_sums_exactly() -> None:
    mt, book = MarkoutTracker(SOL, H, D(1)), FifoBook()
    fills = [
        # maker buy 2 @ 99.98 under a 100.00 mid, fee 0.04; the mid goes to 99.95 at +1 s
        (T0, fill(T0, "a", "buy", "99.98", "2", "0.04"), D("100.00")),
        # hedge sell 2 @ 99.94 under a 99.95 mid (pays 0.01 each), fee 0.08
        (T0 + 2 * S, fill(T0 + 2 * S, "h", "sell", "99.94", "2", "0.08", source="hedge", cause="ioc"), None),
    ]
    mt.on_mid(T0 - 1, D("100.00"))
    mt.on_fill(fills[0][1], D("100.00"))
    book.apply("buy", D("99.98"), D("2"), D("0.04"))
    mt.on_mid(T0 + S, D("99.95"))
    mt.on_fill(fills[1][1], D("99.95"))
    book.apply("sell", D("99.94"), D("2"), D("0.08"))
    mt.on_mid(T0 + 3 * S, D("99.90"))
    mt.finish(T0 + 3 * S)
    total = total_pnl(book, D("99.90"))
    assert total == D("-0.20")  # (99.94 - 99.98) * 2 - 0.12
    a = mt.attribution(total)
    assert a["spread_quote"] == "0.04"  # (100.00 - 99.98) * 2
    assert a["adverse_selection_quote"] == "-0.10"  # (99.95 - 100.00) * 2
    assert a["fees_quote"] == "-0.12"
    assert a["hedging_quote"] == "-0.02"  # -(99.95 - 99.94) * 2
    assert a["inventory_quote"] == "0.00"  # flat from the hedge on: nothing carried
    parts = ("spread_quote", "adverse_selection_quote", "fees_quote", "hedging_quote", "inventory_quote")
    assert sum(D(a[k]) for k in parts) == D(a["total_quote"]) == total


step = st.one_of(
    st.tuples(st.just("mid"), st.integers(0, 3 * S), st.integers(-300, 300)),
    st.tuples(
        st.just("fill"),
        st.integers(0, 3 * S),
        st.integers(-300, 300),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 50),
        st.sampled_from(["maker", "hedge"]),
        st.sampled_from(["0.0002", "-0.0001", "0"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(first=st.integers(-300, 300), steps=st.lists(step, max_size=40), tail=st.integers(0, 10 * S))
def test_attribution_parts_sum_to_the_total_and_marks_match_a_brute_force(first, steps, tail) -> None:
    horizons = (D("0.5"), D(1), D(5))
    mt, book = MarkoutTracker(SOL, horizons, D(1)), FifoBook()
    now = T0
    mid = D(100) + D(first) / 100
    history = [(now, mid)]
    mt.on_mid(now, mid)
    seen: list[tuple[Fill, D]] = []
    records = []
    for n, s in enumerate(steps):
        now += s[1]
        if s[0] == "mid":
            mid = D(100) + D(s[2]) / 100
            history.append((now, mid))
            records += mt.on_mid(now, mid) or []
        else:
            _, _, k, side, lots, source, rate = s
            px, qty = D(100) + D(k) / 100, D(lots) / 1000
            f = fill(now, f"f{n}", side, str(px), str(qty), str(product(px, qty, D(rate))), source=source)
            mt.on_fill(f, mid)
            book.apply(side, px, qty, f.fee)
            seen.append((f, mid))
    end = now + tail
    records += mt.finish(end)
    assert [r.fill_id for r in records] == [f.fill_id for f, _ in seen]

    def mid_at(t: int) -> D:
        return [m for ts, m in history if ts <= t][-1]

    # Every mark-out as the definition says, None past the end of data.
    for rec, (f, _) in zip(records, seen, strict=True):
        for k, h in enumerate(horizons):
            due = f.ts + int(h * 1_000_000)
            want = None if due > end else mid_at(due)
            assert rec.mids[k] == want
            if want is not None:
                sign = 1 if f.side == "buy" else -1
                assert rec.bps[k] == to_bps(sign * (want - f.px) * f.qty, f.px * f.qty)

    total = total_pnl(book, mid)
    a = {k: D(v) for k, v in mt.attribution(total).items() if k != "horizon_s"}
    parts = ("spread_quote", "adverse_selection_quote", "fees_quote", "hedging_quote", "inventory_quote")
    assert sum(a[k] for k in parts) == total == a["total_quote"]
    # And each part is what it says: inventory is the carry from each fill's reference mid to the end.
    spread = adverse = hedging = carry = D(0)
    for rec, (f, m0) in zip(records, seen, strict=True):
        sign = 1 if f.side == "buy" else -1
        if f.liquidity == "maker":
            ref = rec.mids[1] if rec.mids[1] is not None else mid
            spread += sign * (m0 - f.px) * f.qty
            adverse += sign * (ref - m0) * f.qty
        else:
            ref = m0
            hedging += sign * (m0 - f.px) * f.qty
        carry += sign * (mid - ref) * f.qty
    assert (a["spread_quote"], a["adverse_selection_quote"], a["hedging_quote"]) == (spread, adverse, hedging)
    assert a["fees_quote"] == -sum((f.fee for f, _ in seen), D(0))
    assert a["inventory_quote"] == carry
