"""How the asyncio commands (ingest, execute) end: cleanly, on a signal or after ``--seconds``."""

from __future__ import annotations

import asyncio
import signal


def stop_event(seconds: float | None) -> asyncio.Event:
    """An event SIGINT or SIGTERM sets, or ``seconds`` after now; call it inside the running
    loop. The command's run loop watches it and winds down (orders cancelled, producer flushed)
    instead of dying in the middle of a request."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    return stop
