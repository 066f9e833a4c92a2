"""The live flow's wall-clock timer (the stale-data guard of a silent market), on a clock of our own.

The market's step (``MarketLogic``) is driven by hand as Bytewax drives it: ``on_batch`` with a
market's chunks, ``notify_at`` asked after each call, ``on_notify`` when that instant has come.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mmflow.connectors.files import merge_journal
from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import Chunk, MarketLogic
from mmflow.flows.replay import run_events
from mmflow.models import InputEvent, Position, Timer
from mmflow.outputs import Outputs
from tests.builders import SOL, T0, S, settings, tick

SETTINGS = settings()
WALL0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = WALL0

    def __call__(self) -> datetime:
        return self.now


def chunk(*events: InputEvent) -> Chunk:
    out = Chunk()
    for event in events:
        out.append(event)
        out.origins.append(None)
    return out


def live_logic(clock: Clock) -> MarketLogic:
    return MarketLogic(
        SETTINGS, FlowMetrics(), None, False, None, live_clock=True, incarnation="1a", wall=clock
    )


TICKS = [tick(T0 + i * S) for i in range(7)]


def test_position_reports_do_not_hold_off_the_stale_timer() -> None:
    """The venue reports positions every 2 s: each report's batch restarted the silence clock, so
    while the venue ran the timer never fired on a market whose data had stopped."""
    clock = Clock()
    logic = live_logic(clock)
    logic.on_batch([chunk(*TICKS)])
    due = logic.notify_at()
    assert due == WALL0 + timedelta(seconds=5)
    for n in range(1, 4):
        clock.now = WALL0 + timedelta(seconds=2 * n)
        position = Position(market=SOL, ts=TICKS[-1].ts_recv, position=Decimal(0), fills=0)
        logic.on_batch([chunk(position)])
        assert logic.notify_at() == due


def live_session(clock: Clock) -> tuple[Outputs, list[InputEvent]]:
    """Ticks, then silence until the timer fires; the live outputs and the market data fed."""
    logic = live_logic(clock)
    live = Outputs()
    for out in logic.on_batch([chunk(*TICKS)])[0]:
        live.extend(out)
    clock.now = WALL0 + timedelta(seconds=6)
    for out in logic.on_notify()[0]:
        live.extend(out)
    assert logic.notify_at() is None  # latched: nothing more to time
    return live, list(TICKS)


def test_the_timer_decision_is_journalled() -> None:
    live, _ = live_session(Clock())
    stale = [i for i in live.intents if i.reasons == ("stale_data",)]
    assert len(stale) == 1 and stale[0].type == "cancel_all"
    # Stamped when the data went stale; the timer itself at the market time it fired (6 s later).
    assert stale[0].ts == TICKS[-1].ts_recv + 5 * S
    timers = [j for j in live.journal if type(j.event) is Timer]
    assert [(t.event.ts, t.after_events) for t in timers] == [(TICKS[-1].ts_recv + 6 * S, len(TICKS))]


def test_the_timer_fires_once_even_when_woken_on_the_very_microsecond() -> None:
    clock = Clock()
    logic = live_logic(clock)
    logic.on_batch([chunk(*TICKS)])
    clock.now = logic.notify_at()  # type: ignore[assignment]
    outs = logic.on_notify()[0]
    assert [i.reasons for o in outs for i in o.intents] == [("stale_data",)]
    assert logic.notify_at() is None


def test_a_replay_of_the_journal_reproduces_the_timer_decision() -> None:
    """The replay has no event after the silence: only the journalled timer can fire the cancel."""
    live, market_data = live_session(Clock())
    journal = [(j.event, j.after_events) for j in live.journal]
    replayed, _ = run_events(merge_journal(market_data, journal), SETTINGS, venue=None)
    assert replayed.intents == live.intents
    assert replayed.intents[-1].reasons == ("stale_data",)
    without, _ = run_events(market_data, SETTINGS, venue=None)  # a plain file: no timer, no cancel
    assert ("stale_data",) not in [i.reasons for i in without.intents]
