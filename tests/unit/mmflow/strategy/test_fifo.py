"""FifoBook: hand-worked FIFO cases and a brute-force unit-lot reference (property test).

Every expected number below is worked out by hand in the comments; nothing is computed by the
code under test except the value being checked.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.strategy.fifo import FifoBook


def lots(book: FifoBook) -> list[tuple[D, D]]:
    return [(q, p) for q, p in book.lots]


# -- hand-worked cases ---------------------------------------------------------------------------


def test_empty_book():
    b = FifoBook()
    assert b.position == D(0)
    assert b.realized == D(0)
    assert b.unrealized(D("123.45")) == D(0)
    assert b.avg_entry() is None
    assert lots(b) == []


def test_open_long_only_fee_is_realized_loss():
    b = FifoBook()
    ret = b.apply("buy", D("100.00"), D("0.003"), D("0.01"))
    # Nothing closed: realized is just minus the fee.
    assert ret == D("-0.01")
    assert b.realized == D("-0.01")
    assert b.gross_realized == D(0)
    assert b.fees == D("0.01")
    assert b.position == D("0.003")
    assert lots(b) == [(D("0.003"), D("100.00"))]


def test_partial_close_long():
    b = FifoBook()
    b.apply("buy", D("100.00"), D("0.003"), D("0.01"))
    ret = b.apply("sell", D("110.00"), D("0.001"), D("0.02"))
    # Closed 0.001 at +10 -> +0.010 gross, minus this fill's fee 0.02 -> -0.010.
    assert ret == D("-0.010")
    assert b.gross_realized == D("0.010")
    assert b.fees == D("0.03")
    # 0.010 - 0.03 = -0.020
    assert b.realized == D("-0.020")
    assert b.position == D("0.002")
    assert lots(b) == [(D("0.002"), D("100.00"))]
    # 0.002 * (105 - 100) = 0.010
    assert b.unrealized(D("105.00")) == D("0.010")
    assert b.avg_entry() == D("100.00")


def test_partial_close_short():
    b = FifoBook()
    b.apply("sell", D("50.00"), D("0.005"))
    ret = b.apply("buy", D("49.50"), D("0.002"))
    # Short closed 0.002 at 0.50 better -> +0.001
    assert ret == D("0.001")
    assert b.realized == D("0.001")
    assert b.position == D("-0.003")
    assert lots(b) == [(D("-0.003"), D("50.00"))]
    # Short at 50, mark 51 -> -0.003 * 1 = -0.003
    assert b.unrealized(D("51.00")) == D("-0.003")
    assert b.avg_entry() == D("50.00")


def test_multiple_lots_closed_oldest_first():
    b = FifoBook()
    b.apply("buy", D("100.00"), D("0.002"))
    b.apply("buy", D("102.00"), D("0.003"))
    # avg entry: (0.2 + 0.306) / 0.005 = 0.506 / 0.005 = 101.2
    assert b.avg_entry() == D("101.2")
    ret = b.apply("sell", D("105.00"), D("0.004"))
    # 0.002 @100 -> +0.010 ; 0.002 @102 -> +0.006 ; total +0.016
    assert ret == D("0.016")
    assert b.realized == D("0.016")
    assert b.position == D("0.001")
    assert lots(b) == [(D("0.001"), D("102.00"))]
    assert b.avg_entry() == D("102.00")
    # 0.001 * (101 - 102) = -0.001
    assert b.unrealized(D("101.00")) == D("-0.001")


def test_lifo_would_differ_from_fifo():
    # Buy low then high, sell part: FIFO closes the low lot (LIFO would close the high one).
    b = FifoBook()
    b.apply("buy", D("10.00"), D("0.001"))
    b.apply("buy", D("20.00"), D("0.001"))
    b.apply("sell", D("15.00"), D("0.001"))
    # FIFO: 0.001 * (15 - 10) = +0.005 (LIFO would be -0.005)
    assert b.realized == D("0.005")
    assert lots(b) == [(D("0.001"), D("20.00"))]


def test_flip_long_to_short():
    b = FifoBook()
    b.apply("buy", D("100.00"), D("0.002"), D("0.001"))
    ret = b.apply("sell", D("99.00"), D("0.005"), D("0.002"))
    # Close 0.002 at -1 -> -0.002 ; fee 0.002 -> -0.004 for this fill
    assert ret == D("-0.004")
    # Total: -0.002 - (0.001 + 0.002) = -0.005
    assert b.realized == D("-0.005")
    assert b.position == D("-0.003")
    assert lots(b) == [(D("-0.003"), D("99.00"))]
    # Short 0.003 at 99, mark 98 -> +0.003
    assert b.unrealized(D("98.00")) == D("0.003")
    assert b.avg_entry() == D("99.00")


def test_flip_short_to_long_through_several_lots():
    b = FifoBook()
    b.apply("sell", D("50.00"), D("0.002"))
    b.apply("sell", D("51.00"), D("0.002"))
    b.apply("buy", D("49.00"), D("0.001"))  # closes 0.001 of the 50 lot: +0.001
    ret = b.apply("buy", D("48.00"), D("0.005"))
    # closes 0.001 @50 (+0.002) and 0.002 @51 (+0.006) = +0.008, opens long 0.002 @48
    assert ret == D("0.008")
    assert b.realized == D("0.009")
    assert b.position == D("0.002")
    assert lots(b) == [(D("0.002"), D("48.00"))]
    assert b.avg_entry() == D("48.00")
    assert b.unrealized(D("48.50")) == D("0.001")


def test_exact_flat_then_reopen():
    b = FifoBook()
    b.apply("buy", D("10.00"), D("0.004"))
    b.apply("sell", D("10.50"), D("0.004"))
    # 0.004 * 0.5 = 0.002
    assert b.realized == D("0.002")
    assert b.position == D(0)
    assert lots(b) == []
    assert b.avg_entry() is None
    assert b.unrealized(D("999")) == D(0)
    b.apply("sell", D("11.00"), D("0.001"))
    assert lots(b) == [(D("-0.001"), D("11.00"))]
    assert b.avg_entry() == D("11.00")


def test_negative_fee_rebates_are_realized_gains():
    b = FifoBook()
    r1 = b.apply("buy", D("150.00"), D("0.010"), D("-0.0003"))
    r2 = b.apply("sell", D("150.00"), D("0.010"), D("-0.0003"))
    # Flat round trip at the same price: only the two rebates remain -> +0.0006
    assert r1 == D("0.0003")
    assert r2 == D("0.0003")
    assert b.realized == D("0.0006")
    assert b.fees == D("-0.0006")
    assert b.position == D(0)


def test_mixed_fees_and_rebates():
    b = FifoBook()
    b.apply("sell", D("200.00"), D("0.003"), D("-0.00012"))  # maker rebate
    b.apply("buy", D("199.90"), D("0.003"), D("0.0003"))  # taker fee
    # gross: 0.003 * 0.10 = 0.0003 ; fees: -0.00012 + 0.0003 = 0.00018 ; net 0.00012
    assert b.gross_realized == D("0.0003")
    assert b.fees == D("0.00018")
    assert b.realized == D("0.00012")


def test_unrealized_and_avg_entry_multiple_short_lots():
    b = FifoBook()
    b.apply("sell", D("100.00"), D("0.001"))
    b.apply("sell", D("104.00"), D("0.003"))
    # avg = (-0.1 - 0.312) / -0.004 = 103
    assert b.avg_entry() == D("103")
    # mark 101: -0.001*(1) + -0.003*(-3) = -0.001 + 0.009 = 0.008
    assert b.unrealized(D("101.00")) == D("0.008")


# -- property test against a brute-force unit-lot reference -------------------------------------

UNIT = D("0.001")
TICK = D("0.01")


class UnitLotReference:
    """Independent FIFO: every fill is expanded into 0.001 units matched one by one."""

    def __init__(self) -> None:
        self.units: deque[tuple[int, D]] = deque()  # (sign, px) per 0.001 unit
        self.gross = D(0)
        self.fees = D(0)

    def apply(self, side: str, px: D, n_units: int, fee: D) -> None:
        sign = 1 if side == "buy" else -1
        self.fees += fee
        for _ in range(n_units):
            if self.units and self.units[0][0] != sign:
                open_sign, open_px = self.units.popleft()
                if open_sign == 1:  # long unit closed by a sell
                    self.gross += (px - open_px) * UNIT
                else:  # short unit closed by a buy
                    self.gross += (open_px - px) * UNIT
            else:
                self.units.append((sign, px))

    @property
    def realized(self) -> D:
        return self.gross - self.fees

    @property
    def position(self) -> D:
        return sum((s * UNIT for s, _ in self.units), D(0))


fill_st = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(min_value=1, max_value=40),  # lots of 0.001
    st.integers(min_value=9_000, max_value=11_000),  # price in ticks of 0.01
    st.integers(min_value=-500, max_value=2_000),  # fee in 1e-6 quote, negative = rebate
)


@settings(max_examples=300, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=40), st.integers(min_value=9_000, max_value=11_000))
def test_fifo_matches_unit_lot_reference(fills, mark_ticks):
    book = FifoBook()
    ref = UnitLotReference()
    signed_sum = D(0)
    for side, n, px_ticks, fee_micro in fills:
        px = px_ticks * TICK
        qty = n * UNIT
        fee = D(fee_micro) / D(1_000_000)
        ret_before = book.realized
        ret = book.apply(side, px, qty, fee)
        assert ret == book.realized - ret_before
        ref.apply(side, px, n, fee)
        signed_sum += qty if side == "buy" else -qty

        assert book.realized == ref.realized
        assert book.gross_realized == ref.gross
        assert book.position == ref.position
        assert book.position == signed_sum
        open_qty = sum((q for q, _ in book.lots), D(0))
        assert open_qty == book.position
        # All open lots sit on the same side of zero as the position.
        assert all((q > 0) == (book.position > 0) and q != 0 for q, _ in book.lots)
        # Expanding the open lots unit by unit gives exactly the reference's queue.
        expanded = []
        for q, p in book.lots:
            n_units = abs(q) / UNIT
            assert n_units == n_units.to_integral_value()
            expanded.extend([(1 if q > 0 else -1, p)] * int(n_units))
        assert expanded == list(ref.units)

    mark = mark_ticks * TICK
    ref_unreal = sum((s * UNIT * (mark - p) for s, p in ref.units), D(0))
    assert book.unrealized(mark) == ref_unreal
    if ref.units:
        ref_avg = sum((s * UNIT * p for s, p in ref.units), D(0)) / ref.position
        assert book.avg_entry() == ref_avg
    else:
        assert book.avg_entry() is None
