"""Ids that mean one thing forever: ``<stream>-<seq>``, the stream naming who made them.

Every id the product makes (intent, fill, order) is ``<market>-<incarnation>-<seq>``, or for the
paper venue's fills ``<market>-F<incarnation>-<seq>``: the incarnation is the process that made
it (``incarnation_of`` a start time, so a restarted process never reuses a predecessor's ids,
with or without recovery) and ``seq`` counts up within it. De-duplication is then exact: per
stream, the highest ``seq`` seen (``HighWater``), with no window an old repeat can slip past.

A replay runs as incarnation ``REPLAY`` so its ids, like the rest of its outputs, are the same on
every run; a replay of a recorded live session takes the live incarnations from its journal.
"""

from __future__ import annotations

from collections import OrderedDict

#: The incarnation of a replay: fixed, so replays stay byte-identical.
REPLAY = "0"


def incarnation_of(start_us: int) -> str:
    """A process' incarnation from its start time (µs since the epoch), as lowercase hex: two
    processes started a microsecond apart get different ones, and later starts sort later."""
    return f"{start_us:x}"


def make_id(stream: str, seq: int) -> str:
    return f"{stream}-{seq:09d}"


def split_id(value: str) -> tuple[str, int] | None:
    """``(stream, seq)`` of an id ``<stream>-<digits>`` (or plain ``<digits>``, as an exchange's
    trade ids are), else None."""
    stream, sep, seq = value.rpartition("-")
    if not seq.isdigit() or not seq.isascii() or (sep and not stream):
        return None
    return stream, int(seq)


class HighWater:
    """The highest sequence number seen per stream: ``seen`` is True for an id at or below it.

    Streams are this market's producers over time (one per incarnation), so there are few; the
    oldest are forgotten past ``streams`` (a process that old can no longer send anything).
    Ids that are not ``<stream>-<seq>`` are remembered whole, the last ``window`` of them.
    """

    __slots__ = ("marks", "streams", "others", "window")

    def __init__(self, streams: int = 64, window: int = 256) -> None:
        self.marks: OrderedDict[str, int] = OrderedDict()
        self.streams = streams
        self.others: OrderedDict[str, None] = OrderedDict()
        self.window = window

    def __contains__(self, value: str) -> bool:
        parts = split_id(value)
        if parts is None:
            return value in self.others
        mark = self.marks.get(parts[0])
        return mark is not None and parts[1] <= mark

    def seen(self, value: str) -> bool:
        """Record ``value``; True when it was seen already (a duplicate)."""
        if value in self:
            return True
        parts = split_id(value)
        if parts is None:
            self.others[value] = None
            if len(self.others) > self.window:
                self.others.popitem(last=False)
            return False
        stream, seq = parts
        self.marks[stream] = seq
        self.marks.move_to_end(stream)
        if len(self.marks) > self.streams:
            self.marks.popitem(last=False)
        return False
