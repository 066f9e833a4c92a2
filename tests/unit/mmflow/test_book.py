"""The L2 order book: snapshots replace, size 0 deletes, the cached best prices never go stale
(a property test against a naive sorted model), and the state round-trips exactly."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmflow.book import OrderBook
from mmflow.models import Depth

D = Decimal
HYP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def depth(
    bids: Sequence[tuple[str, str]] = (), asks: Sequence[tuple[str, str]] = (), snapshot: bool = False
) -> Depth:
    return Depth(
        market="binance-futures:BTCUSDT",
        ts_exchange=1,
        ts_recv=1,
        bids=tuple((D(p), D(s)) for p, s in bids),
        asks=tuple((D(p), D(s)) for p, s in asks),
        snapshot=snapshot,
    )


def test_snapshot_then_diffs() -> None:
    book = OrderBook()
    book.apply(depth([("100.0", "1"), ("99.9", "2")], [("100.1", "3"), ("100.2", "4")], snapshot=True))
    assert (book.best_bid(), book.best_ask(), len(book)) == (D("100.0"), D("100.1"), 4)
    book.apply(depth([("100.0", "0"), ("99.8", "5")], [("100.1", "0.000"), ("100.05", "1")]))
    assert (book.best_bid(), book.best_ask()) == (D("99.9"), D("100.05"))
    assert book.size("buy", D("99.8")) == D(5) and book.size("buy", D("100.0")) == 0
    assert book.size("sell", D("100.05")) == 1 and book.size("sell", D("99.8")) == 0
    book.apply(depth([("1", "1")], [], snapshot=True))
    assert (book.best_bid(), book.best_ask(), len(book)) == (D(1), None, 1)


def test_removing_an_absent_level_is_normal() -> None:
    book = OrderBook()
    book.apply(depth([("5", "0")], [("6", "0")]))
    assert (book.best_bid(), book.best_ask(), len(book)) == (None, None, 0)


def test_depth_at_or_better_counts_what_a_taker_reaches_first() -> None:
    book = OrderBook()
    book.apply(depth([("10", "1"), ("9", "2"), ("8", "4")], [("11", "1"), ("12", "2"), ("13", "4")], True))
    assert book.depth_at_or_better("buy", D(9)) == 3  # bids at 10 and 9
    assert book.depth_at_or_better("sell", D(12)) == 3  # asks at 11 and 12
    assert book.depth_at_or_better("buy", D(11)) == 0 and book.depth_at_or_better("sell", D(14)) == 7


def test_state_is_json_text_best_first_and_round_trips() -> None:
    book = OrderBook()
    book.apply(depth([("9.5", "1.10"), ("10", "2")], [("12", "1"), ("11", "3")], True))
    state = book.to_state()
    assert state == {"bids": [["10", "2"], ["9.5", "1.10"]], "asks": [["11", "3"], ["12", "1"]]}
    again = OrderBook.from_state(orjson.loads(orjson.dumps(state)))
    assert again == book and again.best_bid() == D(10) and again.best_ask() == D(11)


# -- the property: the book equals a naive model after any sequence of changes ---------------------

prices = st.integers(min_value=1, max_value=40).map(lambda n: D(n) / 4)
sizes = st.sampled_from([D(0), D("0.000"), D("0.5"), D(1), D("2.25")])
levels = st.lists(st.tuples(prices, sizes), max_size=8)
changes = st.lists(st.tuples(levels, levels, st.booleans()), min_size=1, max_size=30)


def _naive(model: dict[str, dict[Decimal, Decimal]], bids: list, asks: list, snapshot: bool) -> None:  # type: ignore[type-arg]
    if snapshot:
        model["bids"], model["asks"] = {}, {}
    for side, lv in (("bids", bids), ("asks", asks)):
        for p, s in lv:
            if s:
                model[side][p] = s
            else:
                model[side].pop(p, None)


@HYP
@given(changes)
def test_book_matches_a_naive_model(seq: list) -> None:  # type: ignore[type-arg]
    book, model = OrderBook(), {"bids": {}, "asks": {}}
    for bids, asks, snapshot in seq:
        book.apply(
            Depth(
                market="m:X", ts_exchange=0, ts_recv=0, bids=tuple(bids), asks=tuple(asks), snapshot=snapshot
            )
        )
        _naive(model, bids, asks, snapshot)
        b, a = model["bids"], model["asks"]
        assert book.best_bid() == (max(b) if b else None)
        assert book.best_ask() == (min(a) if a else None)
        assert len(book) == len(b) + len(a)
        for px in {p for p, _ in bids + asks}:
            assert book.size("buy", px) == b.get(px, 0) and book.size("sell", px) == a.get(px, 0)
            assert book.depth_at_or_better("buy", px) == sum(s for p, s in b.items() if p >= px)
            assert book.depth_at_or_better("sell", px) == sum(s for p, s in a.items() if p <= px)
    assert OrderBook.from_state(book.to_state()) == book
