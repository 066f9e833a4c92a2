"""Bytewax sinks for replays: collect outputs in memory, to be written once the run ends."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition


class KindSink(DynamicSink[tuple[str, Any]]):
    """Collects ``(kind, payload)`` outputs into one list per kind."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KindPartition:
        return _KindPartition(self.by_kind, self._lock)


class _KindPartition(StatelessSinkPartition[tuple[str, Any]]):
    def __init__(self, target: dict[str, list[Any]], lock: threading.Lock) -> None:
        self._target = target
        self._lock = lock

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        with self._lock:
            for kind, payload in items:
                self._target[kind].append(payload)
