"""Bytewax sinks for replays: collect a stream in memory, to be written once the run ends."""

from __future__ import annotations

import threading
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition


class ListSink(DynamicSink[Any]):
    """Appends every item of a stream to ``target`` (one list shared by all workers)."""

    def __init__(self, target: list[Any]) -> None:
        self._target = target
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ListPartition:
        return _ListPartition(self._target, self._lock)


class _ListPartition(StatelessSinkPartition[Any]):
    def __init__(self, target: list[Any], lock: threading.Lock) -> None:
        self._target = target
        self._lock = lock

    def write_batch(self, items: list[Any]) -> None:
        with self._lock:
            self._target.extend(items)
