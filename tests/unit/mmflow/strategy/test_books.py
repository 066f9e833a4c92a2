"""The books stay exact: fill refusals, restarts, reconciliation, poison records (issue "books")."""

from __future__ import annotations

import pickle
from decimal import Decimal as D

from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import make_decoder
from mmflow.flows.runtime import MarketRuntime
from mmflow.models import CancelAllIntent, Incarnation, Position, QuoteIntent
from mmflow.outputs import Outputs
from mmflow.wire import encode
from tests.builders import SOL, T0, S, control, fill, maker, paper_runtime, settings, tick, warm

WARM_TS = T0 + 5 * S


def warmed():
    mm = maker()
    (quote,) = warm(mm)
    assert isinstance(quote, QuoteIntent)
    return mm, quote


def position(ts: int, qty: str, fills: int = 0) -> Position:
    return Position(market=SOL, ts=ts, position=D(qty), fills=fills, source="venue")


# -- fills the books must refuse -------------------------------------------------------------------


def test_a_fill_beyond_the_hard_limit_is_refused_not_booked() -> None:
    """A fill of qty 999999999999.999 used to be booked, survive recovery, and the flow quoted on."""
    mm, quote = warmed()
    huge = fill(WARM_TS + 1, "f-huge", "buy", "150.00", "0.11", intent_id=quote.intent_id)
    assert mm.fill_refusal(huge) == "fill of 0.11 is larger than the hard position limit 0.10"
    assert mm.book(huge) is not None and mm.inventory == 0


def test_a_fill_for_an_intent_never_sent_is_refused() -> None:
    mm, quote = warmed()
    stream = quote.intent_id.rsplit("-", 1)[0]
    ahead = fill(WARM_TS + 1, "f1", "buy", "149.95", "0.01", intent_id=f"{stream}-000000099")
    other = fill(WARM_TS + 1, "f2", "buy", "149.95", "0.01", intent_id="binance-futures:BTCUSDT-0-000000001")
    junk = fill(WARM_TS + 1, "f3", "buy", "149.95", "0.01", intent_id="")
    assert "not sent yet" in (mm.fill_refusal(ahead) or "")
    assert "never sent" in (mm.fill_refusal(other) or "")
    assert "never sent" in (mm.fill_refusal(junk) or "")
    ok = fill(WARM_TS + 1, "f4", "buy", "149.95", "0.01", intent_id=quote.intent_id)
    assert mm.fill_refusal(ok) is None and mm.book_fill(ok) and mm.inventory == D("0.01")
    assert mm.fill_refusal(ok) == "duplicate fill id 'f4'"


def test_a_refused_fill_is_a_dead_letter_and_changes_nothing() -> None:
    rt = paper_runtime(SOL, settings())
    out = Outputs()
    for i in range(6):
        rt.process(tick(T0 + i * S), out)
    before = pickle.dumps(rt)
    bad = fill(WARM_TS + 1, "f-huge", "buy", "150.00", "5", intent_id=out.intents[0].intent_id)
    refused = Outputs()
    rt.process(bad, refused)
    assert [d.detail for d in refused.dead] == ["fill of 5 is larger than the hard position limit 0.10"]
    assert refused == Outputs(dead=refused.dead) and rt.maker.inventory == 0
    # It was received (the venue counts it; reconciliation must too), once: again, it is a duplicate.
    assert rt.maker.fills_received == 1 and pickle.dumps(rt) != before
    again = Outputs()
    rt.process(bad, again)
    assert [d.detail for d in again.dead] == ["duplicate fill id 'f-huge'"] and rt.maker.fills_received == 1


# -- restarts: ids of one incarnation, a cancel before anything else -----------------------------------


def test_a_new_incarnation_cancels_first_and_numbers_its_own_ids() -> None:
    mm, quote = warmed()
    assert quote.intent_id == f"{SOL}-0-000000001"
    out = mm.restart("19ad1b2c3d4e5", WARM_TS + S)
    assert [type(i) for i in out] == [CancelAllIntent] and out[0].reasons == ("restart",)
    assert out[0].intent_id == f"{SOL}-19ad1b2c3d4e5-000000002"
    nxt = mm.on_book(tick(WARM_TS + 2 * S, "150.10", "150.11"))
    assert nxt and all(i.intent_id.startswith(f"{SOL}-19ad1b2c3d4e5-") for i in nxt)


def test_runtime_take_over_is_journalled_once() -> None:
    rt = MarketRuntime(SOL, settings())
    out = Outputs()
    rt.take_over("abc", T0, out)
    rt.take_over("abc", T0, out)  # the same process again: nothing
    assert [type(e.event) for e in out.journal] == [Incarnation]
    assert [i.reasons for i in out.intents] == [("restart",)]
    assert rt.maker.incarnation == "abc"


def test_an_incarnation_record_from_an_input_topic_is_refused() -> None:
    decode = make_decoder(settings(), FlowMetrics())
    (out,) = decode([encode(Incarnation(market=SOL, ts=T0, incarnation="evil"))])
    assert out.chunks == [] and "internal record" in out.dead[0].detail


# -- reconciliation --------------------------------------------------------------------------------------


def test_a_fill_in_flight_is_not_a_mismatch() -> None:
    """The venue counted a fill the flow has not received yet: nothing to compare, however long
    the reports keep coming (a backlog after a restart is the same case)."""
    mm, quote = warmed()
    for k in range(6):
        assert mm.on_position(position(WARM_TS + k * S, "0.01", fills=1)) == []
    assert mm.book_fill(fill(WARM_TS + 6 * S, "f1", "buy", "149.95", "0.01", intent_id=quote.intent_id))
    assert mm.on_position(position(WARM_TS + 7 * S, "0.01", fills=1)) == []
    assert (
        mm.on_position(position(WARM_TS + 12 * S, "0.01", fills=1)) == [] and not mm.safety.reconcile_halted
    )


def test_a_mismatch_past_the_window_halts_until_resumed() -> None:
    """The same fills on both sides, and still the venue holds 0.043 where the books hold 0."""
    mm, _ = warmed()
    assert mm.on_position(position(WARM_TS, "0.043")) == []
    assert mm.on_position(position(WARM_TS + 2 * S, "0.043")) == []  # inside the 3 s window
    (halt,) = mm.on_position(position(WARM_TS + 3 * S, "0.043"))
    assert isinstance(halt, CancelAllIntent)
    assert halt.reasons == ("reconcile_mismatch", "venue=0.043", "books=0")
    assert mm.safety.reconcile_halted and mm.view().position_mismatch == D("0.043")
    assert mm.on_book(tick(WARM_TS + 4 * S, "150.10", "150.11")) == []  # halted: nothing sent
    assert mm.on_position(position(WARM_TS + 9 * S, "0.043")) == []  # one halt, not one per report
    resumed = mm.on_control(control(WARM_TS + 10 * S, "resume"))
    assert not mm.safety.reconcile_halted and resumed


def test_a_fill_the_books_refused_is_a_mismatch() -> None:
    """The venue made a fill the flow refused (larger than the hard limit): same count, other
    positions; past the window the market halts."""
    mm, quote = warmed()
    assert mm.book(fill(WARM_TS + 1, "f-huge", "buy", "150.00", "0.2", intent_id=quote.intent_id))
    assert mm.on_position(position(WARM_TS + S, "0.2", fills=1)) == []
    (halt,) = mm.on_position(position(WARM_TS + 4 * S, "0.2", fills=1))
    assert halt.reasons == ("reconcile_mismatch", "venue=0.2", "books=0")


def test_one_lot_of_difference_is_tolerated() -> None:
    mm, _ = warmed()
    for k in range(5):
        assert mm.on_position(position(WARM_TS + k * S, "0.001")) == []
    assert not mm.safety.reconcile_halted


def test_reconciliation_can_be_switched_off() -> None:
    mm = maker("strategy.safety.reconcile_enabled=false")
    warm(mm)
    for k in range(5):
        assert mm.on_position(position(WARM_TS + k * S, "1")) == []


# -- records from the future -------------------------------------------------------------------------------


def test_a_record_from_the_future_is_refused_without_moving_the_clock() -> None:
    """One book stamped 99999999999999999 used to pass; every valid tick after it was then
    refused as out of order, even after a recovery restart."""
    now = T0 + 100 * S
    decode = make_decoder(settings(), FlowMetrics(), clock=lambda: now)
    bad = tick(99_999_999_999_999_999)
    ahead = tick(now + 6 * S)  # 6 s ahead: more than the 5 s tolerance
    (out,) = decode([encode(tick(now - S)), encode(bad), encode(ahead), encode(tick(now))])
    assert [e.ts_recv for _, chunk in out.chunks for e in chunk] == [now - S, now]
    assert [d.detail.split(":")[0] for d in out.dead] == ["ahead of the wall clock"] * 2
    old = tick(T0)  # recorded data, long before the wall clock, passes
    (out,) = decode([encode(old)])
    assert out.dead == []


def test_every_control_command_is_counted() -> None:
    rt = MarketRuntime(SOL, settings())
    out = Outputs()
    for i in range(6):
        rt.process(tick(T0 + i * S), out)
    rt.process(control(WARM_TS + S, "halt", "c1"), out)
    rt.process(control(WARM_TS + 2 * S, "resume", "c2"), out)
    rt.process(control(WARM_TS + 3 * S, "resume", "c3", clear_loss_limit=True), out)
    metrics = FlowMetrics()
    metrics.observe(rt.view(), rt.stats, 9, 0.0, out)
    count = metrics.registry.get_sample_value
    assert count("maker_control_commands_total", {"market": SOL, "action": "halt"}) == 1
    assert count("maker_control_commands_total", {"market": SOL, "action": "resume"}) == 2
