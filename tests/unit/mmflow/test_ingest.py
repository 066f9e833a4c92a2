"""The pure parts of ``mmflow ingest``: reconnect schedule, dedupe across reconnects, clock offset."""

from __future__ import annotations

import pytest

from mmflow.ingest import ClockSample, SequenceCheck, backoff_delay, clock_offset, jittered


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, base=0.5, cap=10.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert backoff_delay(10_000, base=0.5, cap=30.0) == 30.0  # no overflow far out
    with pytest.raises(ValueError):
        backoff_delay(0)


def test_jitter_stays_within_the_schedule_and_its_spread() -> None:
    assert jittered(8.0, 0.0) == 8.0
    assert jittered(8.0, 0.5) == 6.0
    assert 4.0 < jittered(8.0, 0.999999) <= 8.0
    with pytest.raises(ValueError):
        jittered(1.0, 1.0)


def test_a_reconnects_overlap_is_dropped_and_a_skipped_trade_id_counted() -> None:
    trades = SequenceCheck(contiguous=True)
    assert [trades.check(i) for i in (10, 11, 12)] == ["new"] * 3
    assert [trades.check(i) for i in (11, 12)] == ["duplicate", "duplicate"]  # replayed after reconnect
    assert trades.check(13) == "new"
    assert trades.check(17) == "gap" and (trades.gaps, trades.missing) == (1, 3)
    assert trades.check(16) == "duplicate" and trades.duplicates == 3
    # Update ids (book ticker, depth u) only increase: no gap is implied by a jump.
    books = SequenceCheck()
    assert [books.check(i) for i in (100, 250, 250, 249, 900)] == [
        "new",
        "new",
        "duplicate",
        "duplicate",
        "new",
    ]
    assert books.gaps == 0


def test_the_clock_offset_is_taken_from_the_shortest_round_trip() -> None:
    samples = [
        ClockSample(sent=1_000, server=2_000_600, received=3_000),  # rtt 2000: offset 1_998_600
        ClockSample(sent=10_000, server=2_010_250, received=10_400),  # rtt 400: offset 2_000_050
        ClockSample(sent=20_000, server=2_020_000, received=21_000),
    ]
    assert clock_offset(samples) == (2_000_050.0, 400)
    assert clock_offset([ClockSample(0, -500, 0)]) == (-500.0, 0)  # the exchange behind us
    with pytest.raises(ValueError):
        clock_offset([])
    with pytest.raises(ValueError):
        clock_offset([ClockSample(sent=5, server=0, received=4)])
