"""Ids that mean one thing forever (mmflow/ids.py) and the exact de-duplication they allow."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmflow.ids import HighWater, incarnation_of, make_id, split_id
from mmflow.strategy.dedup import RecentIds


def test_incarnations_differ_and_sort_by_start() -> None:
    a, b = incarnation_of(1_764_576_000_000_000), incarnation_of(1_764_576_000_000_001)
    assert a != b and len(a) == len(b) and a < b


def test_ids_split_into_stream_and_sequence() -> None:
    iid = make_id("binance-futures:BTCUSDT-19ad1b2c3d4e5", 42)
    assert iid == "binance-futures:BTCUSDT-19ad1b2c3d4e5-000000042"
    assert split_id(iid) == ("binance-futures:BTCUSDT-19ad1b2c3d4e5", 42)
    assert split_id("5266583935") == ("", 5266583935)  # an exchange's trade id
    for odd in ("", "abc", "x-", "-", "x-1a", "x-١٢"):
        assert split_id(odd) is None, odd


def test_a_repeat_after_many_others_is_still_a_duplicate() -> None:
    """The old 256-id window booked a fill twice when it came back after 256 others."""
    window, marks = RecentIds(256), HighWater(window=256)
    ids = [make_id("M-F1", n) for n in range(1, 302)]
    for i in ids:
        assert not window.seen(i) and not marks.seen(i)
    assert window.seen(ids[0]) is False  # the window forgot it: a double booking
    assert marks.seen(ids[0]) is True  # the high-water mark does not


def test_a_new_incarnation_is_a_new_stream() -> None:
    marks = HighWater()
    assert not marks.seen("M-a-000000005")
    assert marks.seen("M-a-000000005") and marks.seen("M-a-000000004")
    assert not marks.seen("M-b-000000001")  # a restarted producer numbers from 1 again
    assert not marks.seen("M-a-000000006")


@given(st.lists(st.integers(1, 50), max_size=60))
def test_high_water_matches_a_set_on_monotone_streams(seqs: list[int]) -> None:
    """On a stream delivered in order (one Kafka partition), the mark refuses exactly what a set
    of every id ever seen would refuse: a repeat, or an id older than one already seen."""
    marks, seen, top = HighWater(), set(), 0
    for seq in seqs:
        iid = make_id("M-x", seq)
        expected = iid in seen or seq <= top
        assert marks.seen(iid) is expected
        if not expected:
            seen.add(iid)
            top = seq


def test_ids_that_are_not_streams_are_remembered_whole() -> None:
    marks = HighWater(window=2)
    assert not marks.seen("ext-a") and marks.seen("ext-a")
    assert not marks.seen("ext-b") and not marks.seen("ext-c")
    assert not marks.seen("ext-a")  # past the window of foreign ids
