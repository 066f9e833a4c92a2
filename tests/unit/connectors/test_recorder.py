"""What ``mmflow record`` writes from a topic's records, without a broker: the journal's every
row kind read back exact by ``mmflow replay --fills``, and one intent row per id."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from mmflow.connectors.files import load_inputs, write_recording
from mmflow.connectors.kafka_io import journal_message
from mmflow.connectors.recorder import _journal_frame, unique_intents
from mmflow.models import Control, Incarnation, OrderUpdate, Position, Timer
from mmflow.outputs import Journaled
from mmflow.wire import encode
from tests.builders import SOL, T0, S, control, fill, quote, settings, tick

SETTINGS = settings()


def journal_values(entries: list[Journaled]) -> list[bytes]:
    """The journal topic's values, as the live flow writes them."""
    return [journal_message(SETTINGS.kafka, e).value for e in entries]  # type: ignore[misc]


def test_a_journal_with_every_row_kind_replays_exactly(tmp_path: Path) -> None:
    """Control rows (the kill switch) first, as in a session halted before its first fill (issue
    15 reported a replay crashing on a journal's control rows), then every other kind, each read
    back at its position and to the byte."""
    ticks = [tick(T0 + i * S) for i in range(4)]
    order = OrderUpdate(
        market=SOL, ts=T0 + S, intent_id=f"{SOL}-1a-000000002", side="buy", kind="quote",
        status="accepted", px=D("150.00"), qty=D("0.5"),
    )  # fmt: skip
    entries = [
        Journaled(Incarnation(market=SOL, ts=T0, incarnation="1a"), 0),
        Journaled(control(T0 + S, "halt"), 1),
        Journaled(Control(market=SOL, ts=T0 + S, command_id="c2", action="resume", clear_loss_limit=True), 1),
        Journaled(order, 2),
        Journaled(fill(T0 + 2 * S, "f1", "buy", "150.00", "0.5", fee="0.0150"), 2),
        Journaled(Position(market=SOL, ts=T0 + 2 * S, position=D("0.5"), fills=1, source="venue"), 3),
        Journaled(Timer(market=SOL, ts=T0 + 9 * S), 4),
    ]
    path = tmp_path / "journal.parquet"
    _journal_frame(journal_values(entries)).write_parquet(path)
    market = tmp_path / "marketdata.parquet"
    write_recording(ticks, market)
    events, dead = load_inputs([market], [], [path], SETTINGS.markets)
    assert not dead
    by_position = [
        entries[0].event, ticks[0], entries[1].event, entries[2].event, ticks[1],
        order, entries[4].event, ticks[2], entries[5].event, ticks[3], entries[6].event,
    ]  # fmt: skip
    assert events == by_position
    assert [encode(e) for e in events] == [encode(e) for e in by_position]  # to the byte


def test_an_intent_on_the_topic_twice_is_recorded_once() -> None:
    """164 rows for 157 ids in one recovered session: each id once, the first copy, in order."""
    a = quote(T0, f"{SOL}-1a-000000001", bid="150.00", bid_qty="0.5")
    b = quote(T0 + S, f"{SOL}-1a-000000002", ask="150.02", ask_qty="0.5")
    c = quote(T0 + 2 * S, f"{SOL}-1a-000000003", bid="149.99", bid_qty="0.4")
    values = [encode(a), encode(b), encode(b), encode(c), encode(a)]
    assert unique_intents(values) == [a, b, c]
