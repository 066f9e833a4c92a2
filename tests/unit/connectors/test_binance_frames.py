"""The raw-frames reader on small hand-written files: Binance's sequencing rules one by one (spot
and USD-M), the time stamps of a sync, and malformed lines as dead letters with row numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmflow.connectors.binance_frames import read_frames
from mmflow.connectors.files import InputError
from mmflow.models import BookTick, Depth, Trade


def diff(first: int, last: int, prev: int | None = None, bids: Any = (), asks: Any = ()) -> dict[str, Any]:
    data: dict[str, Any] = {"e": "depthUpdate", "E": last, "s": "BTCUSDT", "U": first, "u": last}
    if prev is not None:
        data["pu"] = prev
    return {"stream": "btcusdt@depth@100ms", "data": data | {"b": list(bids), "a": list(asks)}}


def snap(last_update_id: int) -> dict[str, Any]:
    return {"lastUpdateId": last_update_id, "bids": [["10", "1"]], "asks": [["11", "1"]]}


def write(tmp_path: Path, name: str, lines: list[Any]) -> Path:
    """One line per item: dicts as JSON, stamped 1000 ns apart; bytes as they are."""
    path = tmp_path / name
    body = [
        x if isinstance(x, bytes) else f"{(n + 1) * 1000} {json.dumps(x)}".encode()
        for n, x in enumerate(lines)
    ]
    path.write_bytes(b"\n".join(body) + b"\n")
    return path


def depth_of(events: list[Any]) -> list[Depth]:
    return [e for e in events if type(e) is Depth]


def test_spot_rules_drop_stale_sync_then_require_consecutive_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "binance_BTCUSDT_x.txt",
        [
            diff(1, 5),
            diff(6, 9),
            snap(7),
            diff(10, 12),
            diff(11, 12),
            diff(13, 14),
            diff(16, 17),
            diff(18, 19),
        ],
    )
    events, dead = read_frames(path)
    depth = depth_of(events)
    # 1-5 is in the snapshot; 6-9 spans 7+1 and starts the book; 11-12 is already in it (ignored);
    # 16-17 skips 15: a gap, and nothing after it
    assert [d.snapshot for d in depth] == [True, False, False, False]
    assert [d.ts_exchange for d in depth[1:]] == [9000, 12000, 14000]
    assert [d.detail for d in dead] == [
        "depth gap: U 16 > previous u 14 + 1; no depth until a later snapshot (row 7)"
    ]
    # the snapshot and the buffered diff 6-9 are stamped when the snapshot arrived (row 3)
    assert [d.ts_recv for d in depth] == [3, 3, 4, 6]
    assert all(d.market == "binance:BTCUSDT" for d in depth)


def test_futures_rules_use_pu_and_resync_from_a_later_snapshot(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "binance-futures_BTCUSDT_x.txt.gz",
        [
            snap(7),
            diff(3, 6, 2),
            diff(7, 9, 6),
            diff(10, 12, 9),
            diff(14, 15, 13),
            snap(16),
            diff(16, 18, 15),
        ],
    )
    events, dead = read_frames(path)
    depth = depth_of(events)
    # 3-6 < 7 dropped; 7-9 covers 7; 14-15 has pu 13 != 12: a gap; the snapshot at 16 re-syncs on 16-18
    assert [(d.snapshot, d.ts_exchange) for d in depth] == [
        (True, 1),  # no E in the snapshot: its receive time
        (False, 9000),
        (False, 12000),
        (True, 6),
        (False, 18000),
    ]
    assert [d.detail for d in dead] == [
        "depth gap: pu 13 != previous u 12; no depth until a later snapshot (row 5)"
    ]


def test_a_snapshot_older_than_the_buffered_diffs_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "binance-futures_BTCUSDT_x.txt", [diff(10, 12, 9), snap(5), diff(13, 14, 12)])
    events, dead = read_frames(path)
    assert depth_of(events) == []
    assert [d.detail for d in dead] == [
        "depth snapshot too old: lastUpdateId 5, the next diff starts at U 10 (row 2)",
        "depth not synced: no REST depth snapshot matched the 2 depth diffs of binance-futures:BTCUSDT "
        "in the file, so it has no depth events",
    ]


def test_malformed_lines_are_dead_letters_and_the_rest_is_read(tmp_path: Path) -> None:
    tick = {
        "stream": "btcusdt@bookTicker",
        "data": {"u": 1, "s": "BTCUSDT", "b": "10", "B": "1", "a": "11", "A": "2"},
    }
    trade = {
        "stream": "btcusdt@trade",
        "data": {"E": 5, "T": 4, "s": "BTCUSDT", "t": 77, "p": "10", "q": "1", "m": True},
    }
    lines = [
        b"no-time {}",
        b"12 {not json",
        {"stream": "btcusdt@kline_1m", "data": {}},
        {"stream": "btcusdt@bookTicker", "data": {"s": "BTCUSDT", "b": 10.5, "B": "1", "a": "11", "A": "2"}},
        {"stream": "btcusdt@trade", "data": {"s": "BTCUSDT", "t": 1, "p": "1", "q": "1", "m": "yes"}},
        {"stream": "btcusdt@depth", "data": {"s": "BTCUSDT", "U": "1", "u": 2, "b": [], "a": []}},
        [1, 2],
        tick,
        trade,
    ]
    events, dead = read_frames(write(tmp_path, "binance_BTCUSDT_x.txt", lines))
    assert [d.extra["row"] for d in dead[:7]] == ["1", "2", "3", "4", "5", "6", "7"]
    reasons = [d.detail for d in dead]
    assert reasons[0].startswith("malformed frame") and reasons[1].startswith("malformed json")
    assert reasons[2] == "unsupported stream 'btcusdt@kline_1m' (row 3)"
    assert reasons[3] == "invalid: bid_px: expected a decimal (a JSON string), got float (row 4)"
    assert reasons[4].startswith("invalid: m: expected a boolean") and reasons[5].startswith("invalid: U:")
    assert events == [
        BookTick(
            market="binance:BTCUSDT", ts_exchange=8, ts_recv=8, bid_px=10, bid_qty=1, ask_px=11, ask_qty=2
        ),  # type: ignore[arg-type]
        Trade(
            market="binance:BTCUSDT", ts_exchange=4000, ts_recv=9, trade_id="77", side="sell", px=10, qty=1
        ),  # type: ignore[arg-type]
    ]


def test_the_file_name_must_name_a_binance_venue(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^bybit_SOLUSDT\.txt: cannot tell the Binance venue"):
        read_frames(write(tmp_path, "bybit_SOLUSDT.txt", [snap(1)]))
    with pytest.raises(InputError, match=r"no instrument spec for 'binance:DOGEUSDT'"):
        tick = {
            "stream": "dogeusdt@bookTicker",
            "data": {"s": "DOGEUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
        }
        read_frames(write(tmp_path, "binance_DOGEUSDT.txt", [tick]), ["binance:BTCUSDT"])
