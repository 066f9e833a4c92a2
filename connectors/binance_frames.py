"""Raw Binance websocket frames on disk: book ticks, trades and the order book they describe.

A frames file holds one line per message as it arrived, ``<receive time, ns> <JSON>``: combined-
stream frames ``{"stream": ..., "data": ...}`` of ``@bookTicker``, ``@trade`` and ``@depth`` (diffs),
and, without ``stream``, the REST depth snapshot (``lastUpdateId``, ``bids``, ``asks``). These are
the bytes a live connector receives, so reading them is reading what a live run would see.

The venue and the snapshot's symbol come from the file name, Tardis style
(``binance-futures_BTCUSDT_...`` is USD-M, ``binance_ETHUSDT_...`` spot); a frame's market comes
from its own symbol (``s``). Every event goes through the wire decoder (``mmflow.wire``), so a
frame gets the verdict the same record would get on Kafka. Timestamps are integer microseconds:
the receive time is ``ns // 1000``; the exchange time is the one the Tardis CSV of the same
recording uses (checked field by field on ../shared/data): ``E`` (event time) for book tickers,
``T`` (trade time) for trades, ``E`` for depth. Spot book tickers carry no exchange time, so
theirs is the receive time, as is a spot snapshot's.

Depth diffs are applied as Binance documents it:

- USD-M (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly):
  buffer diffs, take the snapshot, drop diffs with ``u < lastUpdateId``; the first applied has
  ``U <= lastUpdateId <= u``; each later diff's ``pu`` must equal the previous diff's ``u``.
- Spot (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly):
  drop ``u <= lastUpdateId``; the first applied has ``U <= lastUpdateId + 1 <= u``; afterwards a
  diff with ``u <=`` the book's update id is ignored and one with ``U >`` the book's id + 1 is a
  gap (on a clean stream: ``U == previous u + 1``).

A gap is one dead letter (``depth gap: ...``); no Depth follows until a later snapshot in the file
re-syncs the book, while book ticks and trades keep flowing. A snapshot too old for the buffered
diffs is a dead letter too, and a market whose depth never synced (the spot recording has no
snapshot) gets one ``depth not synced`` dead letter at the end. The snapshot becomes a
``Depth(snapshot=True)`` when the book syncs, stamped at the receive time of the line that
completed the sync (the first applicable diff, or the snapshot when diffs were buffered before
it); buffered diffs applied then carry that receive time too: that is when a live connector could
apply them, and the replay's order by arrival time keeps them after the snapshot they build on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from mmflow.connectors.reading import InputError, dead_row, raw_bytes
from mmflow.models import SCHEMA_VERSION, DeadLetter, Depth, InputEvent
from mmflow.wire import WireError, decode_object, inconsistency

#: The Tardis exchange names of the Binance venues, from a file name's first part.
VENUES = {"binance-futures": False, "binance": True}  # venue -> spot


@dataclass(slots=True)
class Diff:
    """A depth diff decoded but not yet sequenced: its line, ids and the event it becomes."""

    row: int
    raw: bytes
    first: int  # U
    last: int  # u
    prev: int | None  # pu (USD-M only)
    depth: Depth


@dataclass(slots=True)
class Snapshot:
    """A REST depth snapshot decoded: its ``lastUpdateId`` and the event it becomes."""

    row: int
    raw: bytes
    last_update_id: int
    depth: Depth


#: A sequencer's outputs: an event in order, or a refusal (row, raw, reason, market).
Emit = Callable[[InputEvent], None]
Refuse = Callable[[int, bytes, str, str], None]


class DepthBook:
    """One market's depth sequencing, Binance's documented steps (module docstring): the update
    id of the book (None: not in sync), the snapshot waiting for diffs and the diffs waiting for
    a snapshot. What it applies goes to ``emit`` in order; gaps and unusable snapshots to
    ``refuse``. Shared by the file reader and the live ingest (``connectors/binance_ws.py``),
    which asks for a new snapshot whenever ``wants_snapshot``."""

    __slots__ = ("spot", "emit", "refuse", "book_id", "snapshot", "buffer", "synced_once", "diffs", "gaps")

    def __init__(self, spot: bool, emit: Emit, refuse: Refuse) -> None:
        self.spot, self.emit, self.refuse = spot, emit, refuse
        self.book_id: int | None = None
        self.snapshot: Snapshot | None = None
        self.buffer: list[Diff] = []
        self.synced_once = False
        self.diffs = 0
        self.gaps = 0

    @property
    def wants_snapshot(self) -> bool:
        return self.book_id is None and self.snapshot is None

    def on_snapshot(self, snap: Snapshot, now: int) -> None:
        if self.book_id is not None:
            reason = f"depth snapshot not needed: the book is in sync at u {self.book_id}"
            return self.refuse(snap.row, snap.raw, reason, snap.depth.market)
        self.snapshot = snap
        self._try_sync(now)

    def on_diff(self, diff: Diff) -> None:
        self.diffs += 1
        if self.book_id is None:
            self.buffer.append(diff)
            return self._try_sync(diff.depth.ts_recv)
        self._apply(diff, diff.depth.ts_recv)

    def _try_sync(self, now: int) -> None:
        """Binance's steps 4-5: drop what the snapshot already holds, then start from the first
        diff that spans the snapshot's update id (or say the snapshot is too old)."""
        snap = self.snapshot
        if snap is None:
            return
        start = snap.last_update_id + 1 if self.spot else snap.last_update_id
        self.buffer = [d for d in self.buffer if d.last >= start]
        if not self.buffer:
            return
        first = self.buffer[0]
        if first.first > start:
            reason = (
                f"depth snapshot too old: lastUpdateId {snap.last_update_id}, "
                f"the next diff starts at U {first.first}"
            )
            self.snapshot = None
            return self.refuse(snap.row, snap.raw, reason, snap.depth.market)
        self.snapshot, self.synced_once = None, True
        self.emit(replace(snap.depth, ts_recv=max(now, snap.depth.ts_recv)))
        self.book_id = first.last
        pending, self.buffer = self.buffer, []
        self.emit(replace(first.depth, ts_recv=now))
        for diff in pending[1:]:
            self._apply(diff, now)

    def _apply(self, diff: Diff, now: int) -> None:
        """One diff on a book in sync: applied, ignored (spot: already in the book) or a gap."""
        if self.book_id is None:  # a gap earlier in this batch of buffered diffs
            self.buffer.append(diff)
            return
        gap = _gap(self.spot, self.book_id, diff)
        if gap == "":
            return
        if gap is not None:
            self.book_id, self.buffer = None, [diff]
            self.gaps += 1
            return self.refuse(diff.row, diff.raw, gap, diff.depth.market)
        self.book_id = diff.last
        depth = diff.depth
        self.emit(depth if depth.ts_recv >= now else replace(depth, ts_recv=now))


class _Reader:
    """Turns the lines of one file into events and dead letters, in file order."""

    def __init__(self, path: Path, venue: str, symbol: str) -> None:
        self.path, self.venue, self.symbol = path, venue, symbol
        self.spot = VENUES[venue]
        self.events: list[InputEvent] = []
        self.dead: list[DeadLetter] = []
        self.books: dict[str, DepthBook] = {}

    # -- lines ----------------------------------------------------------------------------------
    def line(self, row: int, raw: bytes) -> None:
        stamp, _, body = raw.partition(b" ")
        if not (stamp.isdigit() and body):
            return self._refuse(row, raw, "malformed frame: expected '<receive time ns> <JSON>'")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            return self._refuse(row, raw, f"malformed json: {err}")
        recv = int(stamp) // 1000
        if isinstance(obj, dict) and "stream" in obj and isinstance(obj.get("data"), dict):
            return self._frame(row, raw, recv, obj["stream"], obj["data"])
        if isinstance(obj, dict) and "lastUpdateId" in obj:
            return self._snapshot(row, raw, recv, obj)
        return self._refuse(row, raw, "not a combined-stream frame or a depth snapshot")

    def _frame(self, row: int, raw: bytes, recv: int, stream: Any, data: dict[str, Any]) -> None:
        try:
            item = parse_frame(self.venue, self.spot, row, raw, recv, stream, data)
        except FrameError as err:
            return self._refuse(row, raw, str(err), err.market)
        if isinstance(item, Diff):
            return self._book(item.depth.market).on_diff(item)
        self.events.append(item)

    def _snapshot(self, row: int, raw: bytes, recv: int, obj: dict[str, Any]) -> None:
        market = f"{self.venue}:{self.symbol}"
        try:
            snap = parse_snapshot(row, raw, market, recv, obj)
        except WireError as err:
            return self._refuse(row, raw, str(err), market)
        self._book(market).on_snapshot(snap, recv)

    # -- sequencing -----------------------------------------------------------------------------
    def _book(self, market: str) -> DepthBook:
        book = self.books.get(market)
        if book is None:
            book = self.books[market] = DepthBook(self.spot, self.events.append, self._refuse)
        return book

    def finish(self) -> None:
        """The end of the file: a market whose depth never synced is said so, once."""
        for market, book in self.books.items():
            if not book.synced_once:
                reason = (
                    f"depth not synced: no REST depth snapshot matched the {book.diffs} depth diffs "
                    f"of {market} in the file, so it has no depth events"
                )
                self.dead.append(DeadLetter.of(self.path.name, reason, b"", market))

    def _refuse(self, row: int, raw: bytes, reason: str, market: str | None = None) -> None:
        self.dead.append(dead_row(self.path, raw, reason, row, market))


class FrameError(WireError):
    """A combined-stream frame refused, with the market it names (None when it names none)."""

    def __init__(self, reason: str, market: str | None) -> None:
        super().__init__(reason)
        self.market = market


def stream_kind(stream: Any) -> str:
    """``bookTicker``, ``trade``, ``depth`` (diffs, any speed) or the stream's own suffix."""
    kind = str(stream).partition("@")[2]
    return "depth" if kind == "depth" or kind.startswith("depth@") else kind


def parse_frame(
    venue: str, spot: bool, row: int, raw: bytes, recv: int, stream: Any, data: dict[str, Any]
) -> InputEvent | Diff:
    """One combined-stream frame's payload as an event (book tick, trade) or a depth diff still
    to be sequenced (``DepthBook``); FrameError says why not. ``venue`` is the market prefix
    (``binance-futures``, ``binance``); ``recv`` the receive time in microseconds."""
    name = str(stream).partition("@")[0]
    market = f"{venue}:{str(data.get('s') or name).upper()}"
    kind = stream_kind(stream)
    try:
        if kind == "bookTicker":
            event = _book(market, recv, data)
        elif kind == "trade":
            event = _trade(market, recv, data)
        elif kind == "depth":  # diffs (depth5@... is a partial book)
            return _diff(row, raw, market, recv, data, spot)
        else:
            raise FrameError(f"unsupported stream {stream!r}", market)
    except FrameError:
        raise
    except WireError as err:
        raise FrameError(str(err), market) from None
    problem = inconsistency(event)
    if problem is not None:
        raise FrameError(problem, market)
    return event


def _gap(spot: bool, book_id: int, diff: Diff) -> str | None:
    """The gap reason for ``diff`` on a book at ``book_id``, "" to ignore it, None to apply it."""
    if not spot:
        if diff.prev != book_id:
            return f"depth gap: pu {diff.prev} != previous u {book_id}; no depth until a later snapshot"
        return None
    if diff.last <= book_id:
        return ""
    if diff.first > book_id + 1:
        return f"depth gap: U {diff.first} > previous u {book_id} + 1; no depth until a later snapshot"
    return None


# -- frames to events -----------------------------------------------------------------------------


def _ms(data: dict[str, Any], key: str, default: int) -> Any:
    """A millisecond field as microseconds; anything but an integer is passed on for the
    decoder to refuse with its reason."""
    value = data.get(key)
    if value is None:
        return default
    return value * 1000 if type(value) is int else value


def _decode(obj: dict[str, Any]) -> InputEvent:
    return decode_object(obj | {"v": SCHEMA_VERSION})


def _book(market: str, recv: int, d: dict[str, Any]) -> InputEvent:
    return _decode(
        {
            "type": "book",
            "market": market,
            "ts_exchange": _ms(d, "E", recv),
            "ts_recv": recv,
            "bid_px": d.get("b"),
            "bid_qty": d.get("B"),
            "ask_px": d.get("a"),
            "ask_qty": d.get("A"),
        }
    )


def _trade(market: str, recv: int, d: dict[str, Any]) -> InputEvent:
    maker = d.get("m")
    if type(maker) is not bool:
        raise WireError(f"invalid: m: expected a boolean (buyer is maker), got {type(maker).__name__}")
    return _decode(
        {
            "type": "trade",
            "market": market,
            "ts_exchange": _ms(d, "T", recv),
            "ts_recv": recv,
            "trade_id": str(d["t"]) if type(d.get("t")) is int else d.get("t"),
            "side": "sell" if maker else "buy",  # the buyer was the maker: the taker sold
            "px": d.get("p"),
            "qty": d.get("q"),
        }
    )


def _ids(d: dict[str, Any], keys: Iterable[str]) -> list[int]:
    values = [d.get(k) for k in keys]
    for key, value in zip(keys, values, strict=True):
        if type(value) is not int:
            raise WireError(f"invalid: {key}: expected an integer update id, got {type(value).__name__}")
    return values  # type: ignore[return-value]


def _depth(market: str, ts: Any, recv: int, bids: Any, asks: Any, snapshot: bool) -> Depth:
    obj = {"type": "depth", "market": market, "ts_exchange": ts, "ts_recv": recv}
    event = _decode(obj | {"bids": bids, "asks": asks, "snapshot": snapshot})
    assert type(event) is Depth
    return event


def _diff(row: int, raw: bytes, market: str, recv: int, d: dict[str, Any], spot: bool) -> Diff:
    first, last, *prev = _ids(d, ("U", "u") if spot else ("U", "u", "pu"))
    depth = _depth(market, _ms(d, "E", recv), recv, d.get("b"), d.get("a"), False)
    return Diff(row, raw, first, last, prev[0] if prev else None, depth)


def parse_snapshot(row: int, raw: bytes, market: str, recv: int, obj: dict[str, Any]) -> Snapshot:
    """A REST depth snapshot (``lastUpdateId``, ``bids``, ``asks``); WireError says why not."""
    (last,) = _ids(obj, ("lastUpdateId",))
    depth = _depth(market, _ms(obj, "E", recv), recv, obj.get("bids"), obj.get("asks"), True)
    return Snapshot(row, raw, last, depth)


# -- the file --------------------------------------------------------------------------------------


def venue_and_symbol(path: Path) -> tuple[str, str]:
    """``(venue, symbol)`` from a Tardis-style file name, or InputError naming the file."""
    venue, _, rest = path.name.partition("_")
    symbol = rest.partition("_")[0].partition(".")[0]
    if venue not in VENUES or not symbol:
        raise InputError(
            f"{path.name}: cannot tell the Binance venue and symbol from the file name "
            "(expected binance-futures_<SYMBOL>_... or binance_<SYMBOL>_...)"
        )
    return venue, symbol.upper()


def frame_lines(path: str | Path) -> Iterator[tuple[int, bytes, list[InputEvent]]]:
    """Each frame line of a file as ``(receive time µs, JSON body, the events it completes)``, in
    file order: what an exchange replay sends (the body, byte for byte) beside what the paper
    venue and the public REST answers are built from. Refused lines come with no events."""
    path = Path(path)
    venue, symbol = venue_and_symbol(path)
    reader = _Reader(path, venue, symbol)
    for row, line in enumerate(raw_bytes(path).splitlines(), start=1):
        if not line.strip():
            continue
        before = len(reader.events)
        reader.line(row, line)
        stamp, _, body = line.partition(b" ")
        recv = int(stamp) // 1000 if stamp.isdigit() else 0
        yield recv, body, reader.events[before:]
        del reader.events[before:]


def read_frames(
    path: str | Path, markets: Iterable[str] | None = None
) -> tuple[list[InputEvent], list[DeadLetter]]:
    """Book ticks, trades and depth of one raw frames file (gzipped or not), in file order,
    and the dead letters. With ``markets``, a market the settings have no spec for stops the
    read, as in ``files.read_events``."""
    path = Path(path)
    venue, symbol = venue_and_symbol(path)
    reader = _Reader(path, venue, symbol)
    for row, line in enumerate(raw_bytes(path).splitlines(), start=1):
        if line.strip():
            reader.line(row, line)
    reader.finish()
    if markets is not None:
        unknown = sorted({e.market for e in reader.events} - set(markets))
        if unknown:
            raise InputError(
                f"{path.name}: no instrument spec for {', '.join(map(repr, unknown))} "
                "(add it under markets in the config)"
            )
    return reader.events, reader.dead
