"""Depth data from the real recordings in ../shared/data: the raw Binance frames give exactly the
book ticks and trades of the Tardis CSVs flattened from them, their depth diffs sequence without a
gap and build a book whose top equals the book ticker's, a dropped diff is one gap and a later
snapshot re-syncs, and the Tardis incremental_book_L2 reader rebuilds the same books.

Book vs ticker is matched by update id, not by time: ``depth@0ms`` and ``bookTicker`` are separate
streams whose frames arrive out of step (a ticker may be received before or after the diff that
holds the same update), but a ticker whose ``u`` equals a diff's final ``u`` shows the book at
exactly that update, so there the best prices and sizes must be equal, with no tolerance.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mmflow.book import OrderBook
from mmflow.connectors.binance_frames import read_frames
from mmflow.connectors.files import InputError, load_inputs, read_depth, read_events
from mmflow.models import BookTick, Depth, InputEvent, Trade
from tests.conftest import BTC_QUOTES, BTC_TRADES, DATA

FUTURES = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"
SPOT = DATA / "raw" / "binance_ETHUSDT_2024-08-09.txt.gz"


@pytest.fixture(scope="module")
def futures() -> tuple[list[InputEvent], list[Any]]:
    return read_frames(FUTURES)


def frames(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(receive ns, JSON) of every line of a raw file, read independently of the reader."""
    with gzip.open(path, "rt") as fh:
        for line in fh:
            stamp, body = line.split(" ", 1)
            yield int(stamp), json.loads(body)


def of(events: Iterable[InputEvent], cls: type) -> list[Any]:
    return [e for e in events if type(e) is cls]


def tickers_by_u(path: Path) -> dict[int, tuple[Decimal, ...]]:
    return {
        o["data"]["u"]: tuple(Decimal(o["data"][k]) for k in "bBaA")
        for _, o in frames(path)
        if o.get("stream", "").endswith("@bookTicker")
    }


def check_top_against_tickers(
    depth: list[Depth], diff_u: list[int], tickers: dict[int, Any], warmup: int = 0
) -> int:
    """Apply ``depth`` (a snapshot, then the diffs whose final ids are ``diff_u``); wherever a
    ticker carries the same update id (after the first ``warmup`` diffs), the book's top must
    equal it exactly. Returns how many tickers were compared."""
    book, matched = OrderBook(), 0
    book.apply(depth[0])
    for n, (event, u) in enumerate(zip(depth[1:], diff_u, strict=True)):
        book.apply(event)
        ticker = tickers.get(u) if n >= warmup else None
        if ticker is not None:
            bid, ask = book.best_bid(), book.best_ask()
            assert (bid, book.size("buy", bid), ask, book.size("sell", ask)) == ticker, u  # type: ignore[arg-type]
            matched += 1
    return matched


# -- book ticks and trades: the raw frames and the Tardis CSVs agree exactly ----------------------


def test_frames_give_the_csv_book_ticks_and_trades(futures: tuple[list[InputEvent], list[Any]]) -> None:
    events, dead = futures
    quotes, bad_q = read_events(BTC_QUOTES, expect="book")
    trades, bad_t = read_events(BTC_TRADES, expect="trade")
    assert dead == [] and bad_q == [] and bad_t == []
    assert of(events, BookTick) == quotes  # every field: times, prices, sizes, market
    assert of(events, Trade) == trades  # trade ids, taker sides from m
    assert len(quotes) == 66_089 and len(trades) == 21_313


# -- depth sequencing on the clean recordings -------------------------------------------------------


def test_futures_depth_applies_every_diff_after_the_snapshot_without_a_gap(
    futures: tuple[list[InputEvent], list[Any]],
) -> None:
    events, dead = futures
    depth = of(events, Depth)
    assert dead == []
    assert depth[0].snapshot and not any(d.snapshot for d in depth[1:])
    assert len(depth[0].bids) == len(depth[0].asks) == 1000
    snapshot = next(o for _, o in frames(FUTURES) if "stream" not in o)
    diffs = [o["data"] for _, o in frames(FUTURES) if "@depth" in o.get("stream", "")]
    applied = [d["u"] for d in diffs if d["u"] >= snapshot["lastUpdateId"]]
    assert (len(diffs), len(applied), len(depth) - 1) == (6551, 6547, 6547)
    assert check_top_against_tickers(depth, applied, tickers_by_u(FUTURES)) == 629


def test_spot_recording_has_no_snapshot_so_no_depth(tmp_path: Path) -> None:
    events, dead = read_frames(SPOT)
    assert of(events, Depth) == []
    assert [d.detail for d in dead] == [
        "depth not synced: no REST depth snapshot matched the 3036 depth diffs of binance:ETHUSDT "
        "in the file, so it has no depth events"
    ]
    ticks, trades = of(events, BookTick), of(events, Trade)
    assert (len(ticks), len(trades)) == (34_681, 8_409)
    assert all(t.ts_exchange == t.ts_recv for t in ticks)  # spot bookTicker has no exchange time
    assert {e.market for e in events} == {"binance:ETHUSDT"}


def test_spot_diffs_chain_under_the_spot_rule(tmp_path: Path) -> None:
    """The spot recording has no snapshot, so one is put in front of a copy: an empty book at
    the update before the first diff. Every diff then applies under U == previous u + 1, and
    the book's top equals every same-id ticker once the first 50 diffs have filled it in (an
    empty start lacks the levels no diff touched yet)."""
    lines = gzip.decompress(SPOT.read_bytes()).splitlines(keepends=True)
    diffs = [o["data"] for _, o in frames(SPOT) if "@depth" in o.get("stream", "")]
    first_ns = lines[0].split(b" ", 1)[0]
    snap = json.dumps({"lastUpdateId": diffs[0]["U"] - 1, "bids": [], "asks": []})
    copy = tmp_path / "binance_ETHUSDT_2024-08-09.txt"
    copy.write_bytes(first_ns + b" " + snap.encode() + b"\n" + b"".join(lines))
    events, dead = read_frames(copy)
    depth = of(events, Depth)
    assert dead == [] and len(depth) == 1 + 3036
    applied = check_top_against_tickers(depth, [d["u"] for d in diffs], tickers_by_u(SPOT), warmup=50)
    assert applied == 471


# -- a gap, and a re-sync from a later snapshot ----------------------------------------------------


def _depth_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if b"@depth" in line[:80]]


def test_a_dropped_diff_is_one_gap_and_no_depth_until_a_snapshot(
    tmp_path: Path, futures: tuple[list[InputEvent], list[Any]]
) -> None:
    lines = gzip.decompress(FUTURES.read_bytes()).splitlines(keepends=True)
    at = _depth_lines(lines)
    drop = at[200]
    before, after = (json.loads(lines[i].split(b" ", 1)[1])["data"] for i in (at[199], at[201]))
    copy = tmp_path / FUTURES.name
    copy.write_bytes(gzip.compress(b"".join(lines[:drop] + lines[drop + 1 :])))
    events, dead = read_frames(copy)
    assert [d.detail for d in dead] == [
        f"depth gap: pu {after['pu']} != previous u {before['u']}; no depth until a later snapshot "
        f"(row {drop + 1})"
    ]
    clean = of(futures[0], Depth)
    depth = of(events, Depth)
    # the snapshot and the diffs before the gap, nothing after it; ticks and trades keep flowing
    assert depth == clean[: len(depth)] and depth[-1].ts_exchange == before["E"] * 1000
    assert len(depth) == 1 + 200 - 4  # 4 diffs before the snapshot were already in it
    assert of(events, BookTick) == of(futures[0], BookTick) and len(of(events, Trade)) == 21_313


def test_a_later_snapshot_resyncs_the_book(
    tmp_path: Path, futures: tuple[list[InputEvent], list[Any]]
) -> None:
    """After the gap, a snapshot taken at diff k (the book the clean read has after it, with
    ``lastUpdateId`` = that diff's u) is put before diff k: the book syncs from k on and equals
    the clean read's from there to the end."""
    lines = gzip.decompress(FUTURES.read_bytes()).splitlines(keepends=True)
    at = _depth_lines(lines)
    k = 500
    diff_k = json.loads(lines[at[k]].split(b" ", 1)[1])["data"]
    clean = of(futures[0], Depth)
    index_k = 1 + k - 4  # in the clean read: the snapshot, then the diffs from the 5th on
    assert clean[index_k].ts_exchange == diff_k["E"] * 1000
    book = OrderBook()
    for event in clean[: index_k + 1]:
        book.apply(event)
    state = book.to_state()
    snap = {"lastUpdateId": diff_k["u"], "E": diff_k["E"], "bids": state["bids"], "asks": state["asks"]}
    snap_line = lines[at[k]].split(b" ", 1)[0] + b" " + json.dumps(snap).encode() + b"\n"
    kept = lines[: at[200]] + lines[at[200] + 1 : at[k]] + [snap_line] + lines[at[k] :]
    copy = tmp_path / FUTURES.name
    copy.write_bytes(b"".join(kept))
    events, dead = read_frames(copy)
    assert [d.detail.split(";")[0] for d in dead] == [dead[0].detail.split(";")[0]]
    assert dead[0].detail.startswith("depth gap: pu ")
    depth = of(events, Depth)
    resynced = next(i for i, d in enumerate(depth) if d.snapshot and i > 0)
    assert resynced == 1 + 200 - 4  # nothing between the gap and the new snapshot
    again = OrderBook()
    for event in depth[resynced:]:
        again.apply(event)
    replayed = OrderBook()
    for event in clean:
        replayed.apply(event)
    assert again == replayed
    assert [(d.ts_exchange, d.bids, d.asks) for d in depth[resynced + 1 :]] == [
        (d.ts_exchange, d.bids, d.asks) for d in clean[index_k:]
    ]


# -- the Tardis incremental_book_L2 reader ----------------------------------------------------------

L2_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"]


def l2_rows(events: Iterable[Depth]) -> Iterator[list[str]]:
    for e in events:
        exchange, symbol = e.market.split(":")
        for side, levels in (("bid", e.bids), ("ask", e.asks)):
            for px, size in levels:
                flag = "true" if e.snapshot else "false"
                yield [exchange, symbol, str(e.ts_exchange), str(e.ts_recv), flag, side, str(px), str(size)]


def write_l2(path: Path, rows: Iterable[list[str]]) -> Path:
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(L2_HEADER)
        writer.writerows(rows)
    return path


def books_by_receive_time(events: Iterable[Depth]) -> Iterator[tuple[int, OrderBook]]:
    """The book after the last event of each receive time (a CSV cannot tell apart two Depth
    events with one receive time and one snapshot flag)."""
    book, last = OrderBook(), None
    for e in events:
        if last is not None and e.ts_recv != last:
            yield last, book
        book.apply(e)
        last = e.ts_recv
    if last is not None:
        yield last, book


def test_l2_csv_of_the_raw_depth_rebuilds_the_same_books(
    tmp_path: Path, futures: tuple[list[InputEvent], list[Any]]
) -> None:
    raw_depth = of(futures[0], Depth)
    path = write_l2(
        tmp_path / "binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz", l2_rows(raw_depth)
    )
    events, dead = read_depth(path, ["binance-futures:BTCUSDT"])
    assert dead == [] and all(type(e) is Depth for e in events)
    assert events[0].snapshot and sum(e.snapshot for e in events) == 1  # type: ignore[union-attr]
    checked = 0
    for n, ((t_raw, b_raw), (t_csv, b_csv)) in enumerate(
        zip(books_by_receive_time(raw_depth), books_by_receive_time(events), strict=True)  # type: ignore[arg-type]
    ):
        assert (
            t_raw == t_csv and b_raw.best_bid() == b_csv.best_bid() and b_raw.best_ask() == b_csv.best_ask()
        )
        if n % 250 == 0:
            assert b_raw == b_csv
            checked += 1
    assert b_raw == b_csv and checked > 20


def test_l2_bad_rows_are_dead_letters_and_a_new_snapshot_restarts_the_book(tmp_path: Path) -> None:
    row = ["binance-futures", "BTCUSDT", "1000", "2000"]
    rows = [
        [*row, "true", "bid", "100.0", "1"],
        [*row, "true", "ask", "100.5", "2"],
        [*row[:3], "3000", "false", "bid", "100.1", "3"],
        [*row[:3], "3000", "false", "mid", "100.2", "3"],  # row 5: a bad side
        [*row[:3], "3000", "false", "ask", "abc", "1"],  # row 6: not a decimal
        [*row[:3], "3000", "false", "ask", "100.4", "-1"],  # row 7: a negative size
        [*row[:3], "4000", "true", "bid", "99", "5"],  # a new snapshot
        [*row[:3], "4000", "true", "ask", "101", "6"],
    ]
    path = write_l2(tmp_path / "l2.csv.gz", rows)
    with gzip.open(path, "at") as fh:
        fh.write("binance-futures,BTCUSDT,1000\n")  # row 10: ragged
    events, dead = read_depth(path)
    assert [d.extra["row"] for d in dead] == ["5", "6", "7", "10"]
    assert dead[0].detail == "invalid: side: expected bid or ask, got 'mid' (row 5)"
    assert all(d.detail.startswith(("invalid", "ragged")) for d in dead)
    assert [(e.ts_recv, e.snapshot, len(e.bids), len(e.asks)) for e in events] == [  # type: ignore[union-attr]
        (2000, True, 1, 1),
        (3000, False, 1, 0),
        (4000, True, 1, 1),
    ]
    book = OrderBook()
    for e in events:
        book.apply(e)  # type: ignore[arg-type]
    assert book.to_state() == {"bids": [["99", "5"]], "asks": [["101", "6"]]}


def test_l2_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "l2.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,side,price,amount\nx,y,1,1,bid,1,1\n")
    with pytest.raises(InputError, match=r"^l2\.csv: missing column\(s\) is_snapshot"):
        read_depth(path)


def test_load_inputs_merges_frames_by_arrival_time(futures: tuple[list[InputEvent], list[Any]]) -> None:
    events, dead = load_inputs([], [], [], ["binance-futures:BTCUSDT"], frames=[FUTURES])
    assert dead == [] and len(events) == len(futures[0])
    assert all(a.ts_recv <= b.ts_recv for a, b in zip(events, events[1:], strict=False))  # type: ignore[union-attr]


# -- the command line -----------------------------------------------------------------------------


def test_replay_of_raw_frames_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmflow.cli",
            "replay",
            "--frames",
            str(FUTURES),
            "--out",
            str(out),
            "--quiet",
            "--no-report",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "intents.parquet").is_file() and "0 dead letters" in proc.stdout
