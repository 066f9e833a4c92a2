"""Bytewax sources that are not Kafka: an in-memory event list (files, synthetic data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class _ListPartition(StatefulSourcePartition[Any, int]):
    def __init__(self, items: Sequence[Any], batch_size: int, start: int) -> None:
        self._items = items
        self._batch = batch_size
        self._pos = start

    def next_batch(self) -> list[Any]:
        if self._pos >= len(self._items):
            raise StopIteration
        batch = list(self._items[self._pos : self._pos + self._batch])
        self._pos += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._pos


class EventListSource(FixedPartitionedSource[Any, int]):
    """Replays a list in order, ``batch_size`` items at a time, resumable by offset.

    One partition, so the order of the list is the order the flow sees, whatever the number of
    workers; outputs do not depend on ``batch_size`` (a test proves it).
    """

    def __init__(self, items: Sequence[Any], batch_size: int = 1024) -> None:
        self._items = items
        self._batch = batch_size

    def list_parts(self) -> list[str]:
        return ["events"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ListPartition:
        return _ListPartition(self._items, self._batch, resume_state or 0)
