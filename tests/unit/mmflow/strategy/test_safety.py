"""Trading safety (mmflow/strategy/safety.py) seen through MarketMaker, MarketRuntime and the flow.

Every protection is tested twice: once doing its job, and once with it switched off in config
(or, where there is no switch, without its trigger) showing that the outcome is different, so
removing a protection fails this file.

Book is SOLUSDT 150.00 / 150.01 (mid 150.005, tick 0.01, lot 0.001) unless a test moves it. After
warm-up (six ticks one second apart) the volatility is 0 bps and the first quote is
149.95 / 150.06, 0.011 each side (see tests/unit/mmflow/strategy/test_market.py for the arithmetic).
Defaults used here: stale_after_s=5, max_position_base=0.10, loss_limit_quote=-5.0.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from decimal import Decimal as D

import pytest

from mmflow.connectors.metrics import FlowMetrics
from mmflow.flows.engine import make_decoder
from mmflow.flows.runtime import MarketRuntime
from mmflow.models import (
    CancelAllIntent,
    DeadLetter,
    HedgeIntent,
    QuoteIntent,
)
from mmflow.outputs import Outputs
from mmflow.strategy.market import MarketMaker
from mmflow.wire import encode
from tests.builders import SOL, T0, S, control, fill, paper_runtime, settings, tick, trade, warm

MKT = SOL
WARM_TS = T0 + 5 * S  # the first quote
STALE_US = 5 * S

OFF = {
    "stale": "strategy.safety.stale_enabled=false",
    "position": "strategy.safety.position_limit_enabled=false",
    "loss": "strategy.safety.loss_limit_enabled=false",
}
NO_HEDGER = "strategy.hedger.enabled=false"


# -- helpers (events and warm-up: tests/builders.py) ----------------------------------------------


def make(*overrides: str, preset: str | None = None) -> MarketMaker:
    s = settings(*overrides, preset=preset)
    return MarketMaker(MKT, s.markets[MKT], s.strategy)


def warm_quoted(mm: MarketMaker) -> QuoteIntent:
    out = warm(mm)
    assert len(out) == 1 and isinstance(out[0], QuoteIntent)
    q = out[0]
    assert (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) == (D("149.95"), D("0.011"), D("150.06"), D("0.011"))
    return q


def warm_runtime(rt: MarketRuntime) -> Outputs:
    out = Outputs()
    for i in range(6):
        rt.process(tick(T0 + i * S), out)
    assert [p for p in out.intents if isinstance(p, QuoteIntent)], "no quote after warm-up"
    return out


def kinds(intents: list) -> list[type]:
    return [type(i) for i in intents]


def cancels(intents: list) -> list[CancelAllIntent]:
    return [i for i in intents if isinstance(i, CancelAllIntent)]


def intents_of(out: Outputs) -> list:
    return out.intents


# == 1. stale-data guard =========================================================================


def test_stale_gap_cancels_at_previous_plus_limit_then_fresh_event_requotes():
    mm = make()
    warm_quoted(mm)
    assert mm.safety.stale_engagements == 0
    out = mm.on_book(tick(WARM_TS + 6 * S))
    assert kinds(out) == [CancelAllIntent, QuoteIntent]
    cancel, quote = out
    assert cancel.reasons == ("stale_data",)
    assert cancel.ts == WARM_TS + STALE_US  # stamped when the data went stale, not on arrival
    assert cancel.market == MKT
    assert cancel.intent_id == "binance-futures:SOLUSDT-0-000000002"
    assert mm.safety.stale_engagements == 1
    # the same (fresh) event lifted the guard and a new quote followed, at the event's time
    assert not mm.safety.stale and not mm.safety.blocked
    assert quote.ts == WARM_TS + 6 * S
    assert (quote.bid_px, quote.ask_px) == (D("149.95"), D("150.06"))
    assert quote.intent_id == "binance-futures:SOLUSDT-0-000000003"
    assert mm.last_quote == quote


def test_stale_gap_of_exactly_the_limit_is_not_stale():
    mm = make()
    warm_quoted(mm)
    assert mm.on_book(tick(WARM_TS + STALE_US)) == []
    assert mm.safety.stale_engagements == 0
    assert mm.on_book(tick(WARM_TS + 2 * STALE_US + 1)) != []  # one microsecond past: stale
    assert mm.safety.stale_engagements == 1


def test_stale_gap_ignored_when_guard_disabled():
    mm = make(OFF["stale"])
    warm_quoted(mm)
    out = mm.on_book(tick(WARM_TS + 6 * S))
    assert out == []  # nothing cancelled, the resting quote is simply kept
    assert mm.safety.stale_engagements == 0
    assert mm.check_stale(WARM_TS + 60 * S) == []


def test_check_stale_timer_cancels_once_and_blocks_decisions():
    mm = make()
    warm_quoted(mm)
    assert mm.check_stale(WARM_TS + STALE_US) == []  # not yet
    out = mm.check_stale(WARM_TS + STALE_US + 1)
    assert kinds(out) == [CancelAllIntent]
    assert out[0].reasons == ("stale_data",) and out[0].ts == WARM_TS + STALE_US
    assert mm.safety.stale and mm.safety.stale_engagements == 1
    # latched: the timer firing again does nothing more
    assert mm.check_stale(WARM_TS + STALE_US + 2) == []
    assert mm.check_stale(WARM_TS + 30 * S) == []
    assert mm.safety.stale_engagements == 1
    # a fill that would hedge (0.011 > 0.010 trigger) while stale: booked, but no hedge, no quote
    f = fill(WARM_TS + 7 * S, "f1", "buy", "149.95", "0.011")
    assert mm.on_fill(f) == []
    assert mm.inventory == D("0.011")
    assert mm.decide(WARM_TS + 8 * S) == []
    # fresh data lifts it: hedge and quote come back
    out = mm.on_book(tick(WARM_TS + 9 * S))
    assert kinds(out) == [HedgeIntent, QuoteIntent]
    assert out[0].side == "sell" and out[0].qty == D("0.010")
    assert mm.safety.stale_engagements == 1


def test_check_stale_timer_does_nothing_when_guard_disabled():
    mm = make(OFF["stale"])
    warm_quoted(mm)
    assert mm.check_stale(WARM_TS + STALE_US + 1) == []
    assert mm.check_stale(WARM_TS + 60 * S) == []
    assert not mm.safety.stale
    out = mm.on_fill(fill(WARM_TS + 7 * S, "f1", "buy", "149.95", "0.011"))
    assert kinds(out) == [HedgeIntent, QuoteIntent]


def test_check_stale_before_any_data_is_a_no_op():
    mm = make()
    assert mm.check_stale(T0) == []
    assert mm.check_stale(T0 + 3600 * S) == []
    assert mm.safety.stale_engagements == 0


# received 6 s after the exchange stamped it; the book moved enough that a quote would be re-sent
LATE = dict(ts=WARM_TS + S, bid="150.05", ask="150.06", ts_exchange=WARM_TS + S - STALE_US - 1)


def test_late_received_event_latches_guard_with_cancel_and_no_quote():
    mm = make()
    warm_quoted(mm)
    out = mm.on_book(tick(**LATE))
    assert kinds(out) == [CancelAllIntent]
    assert out[0].reasons == ("stale_data",)
    assert out[0].ts == WARM_TS + S  # stamped on receipt
    assert mm.safety.stale and mm.safety.stale_engagements == 1
    assert mm.last_quote is None
    # another late event: still latched, counted once, still nothing
    assert mm.on_book(tick(WARM_TS + 2 * S, "150.10", "150.11", ts_exchange=T0)) == []
    assert mm.safety.stale_engagements == 1
    # a timely event lifts the guard and quotes on the newest book
    out = mm.on_book(tick(WARM_TS + 3 * S, "150.05", "150.06"))
    assert kinds(out) == [QuoteIntent]
    assert not mm.safety.stale


def test_late_received_event_quoted_on_when_guard_disabled():
    mm = make(OFF["stale"])
    warm_quoted(mm)
    out = mm.on_book(tick(**LATE))
    assert kinds(out) == [QuoteIntent]
    assert (out[0].bid_px, out[0].ask_px) == (D("150.00"), D("150.11"))
    assert mm.safety.stale_engagements == 0


GAP_END_TS = WARM_TS + 7 * S  # 7 s of silence after the first quote


@pytest.mark.parametrize(
    "gap_end",
    [
        # a public sell printing through our 149.95 bid
        trade(GAP_END_TS, "t-gap", side="sell", px="149.90", qty="1"),
        # the best ask moving through our 149.95 bid
        tick(GAP_END_TS, "149.89", "149.90"),
    ],
    ids=["trade", "book"],
)
@pytest.mark.parametrize("enabled", [True, False], ids=["guard_on", "guard_off"])
def test_runtime_pulls_quotes_before_venue_matches_gap_ending_event(gap_end, enabled):
    rt = paper_runtime(MKT, settings() if enabled else settings(OFF["stale"]))
    warm_runtime(rt)
    assert rt.venue is not None and {o.side for o in rt.venue.orders} == {"buy", "sell"}
    out = Outputs()
    rt.process(gap_end, out)
    fills = out.fills
    if enabled:
        assert fills == []
        assert rt.maker.inventory == 0
        first = out.intents[0]  # no fill at all, so the cancel is the first output
        assert isinstance(first, CancelAllIntent)
        assert first.reasons == ("stale_data",) and first.ts == WARM_TS + STALE_US
        assert rt.maker.safety.stale_engagements == 1
        # the gap-ending event itself is fresh: the maker quotes again right away
        assert isinstance(intents_of(out)[-1], QuoteIntent)
        assert not rt.maker.safety.stale
    else:
        # without the guard the quote from 7 s ago is still resting and gets filled
        assert len(fills) == 1
        assert (fills[0].side, fills[0].px, fills[0].qty) == ("buy", D("149.95"), D("0.011"))
        assert rt.maker.inventory == D("0.011")
        assert cancels(intents_of(out)) == []


def test_runtime_check_stale_timer_emits_cancel_once():
    rt = paper_runtime(MKT, settings())
    warm_runtime(rt)
    out = Outputs()
    rt.check_stale(WARM_TS + STALE_US, out)
    assert out == Outputs()
    rt.check_stale(WARM_TS + STALE_US + 1, out)
    assert [type(p) for p in out.intents] == [CancelAllIntent] and out == Outputs(intents=out.intents)
    rt.check_stale(WARM_TS + 20 * S, out)
    assert len(out.intents) == 1
    # the venue holds no live order once the cancel's latency has passed
    assert rt.venue is not None
    cancel_done = WARM_TS + STALE_US + int(rt.venue.cfg.latency.cancel_ms * 1000)
    live = [o for o in rt.venue.orders if o.live_from <= cancel_done < o.cancel_at and o.remaining > 0]
    assert live == []


# == 2. hard position limit ======================================================================

# phase1 (no asymmetric quoting to hide the effect), hedger off (inventory is kept)
PHASE1 = dict(preset="phase1")


def limited_maker(*extra: str) -> MarketMaker:
    mm = make(NO_HEDGER, *extra, **PHASE1)
    warm_quoted(mm)
    return mm


def quote_at_inventory(mm: MarketMaker, side: str, qty: str) -> list:
    """Book ``qty`` in fills of at most 0.05 (one fill larger than the 0.10 hard limit is refused)."""
    left, n = D(qty), 0
    while left > 0:
        part = min(left, D("0.05"))
        n += 1
        assert mm.book_fill(fill(WARM_TS + S // 10 + n, f"f-pos-{n}", side, "150.00", str(part)))
        left -= part
    return mm.decide(WARM_TS + S // 5)


@pytest.mark.parametrize("qty", ["0.10", "0.15"])
def test_long_at_or_past_limit_quotes_no_bid(qty):
    mm = limited_maker()
    out = quote_at_inventory(mm, "buy", qty)
    assert mm.inventory == D(qty)
    assert kinds(out) == [QuoteIntent]  # no hedge: hedger disabled
    q = out[0]
    assert q.bid_px is None and q.bid_qty is None
    assert (q.ask_px, q.ask_qty) == (D("150.06"), D("0.011"))
    assert "position_limit" in q.reasons
    assert q.reasons == ("soft_cap", "position_limit")


@pytest.mark.parametrize("qty", ["0.10", "0.15"])
def test_short_at_or_past_limit_quotes_no_ask(qty):
    mm = limited_maker()
    out = quote_at_inventory(mm, "sell", qty)
    assert mm.inventory == -D(qty)
    assert kinds(out) == [QuoteIntent]
    q = out[0]
    assert q.ask_px is None and q.ask_qty is None
    assert (q.bid_px, q.bid_qty) == (D("149.95"), D("0.011"))
    assert q.reasons == ("soft_cap", "position_limit")


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_just_below_limit_the_adding_side_is_cut_to_the_room_left(side):
    """At 0.099 of a 0.10 limit a full-size bid could take the position to 0.110: the adding side
    is cut to the 0.001 left (the worst case stays inside the limit), the other side is whole."""
    mm = limited_maker()
    out = quote_at_inventory(mm, side, "0.099")
    q = out[0]
    assert q.bid_px == D("149.95") and q.ask_px == D("150.06")
    adding, reducing = (q.bid_qty, q.ask_qty) if side == "buy" else (q.ask_qty, q.bid_qty)
    assert adding == D("0.001")
    assert reducing == D("0.011")
    assert "position_limit" in q.reasons


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_position_limit_disabled_quotes_both_sides_at_limit(side):
    mm = limited_maker(OFF["position"])
    out = quote_at_inventory(mm, side, "0.15")
    q = out[0]
    assert q.bid_px == D("149.95") and q.ask_px == D("150.06")
    assert q.bid_qty and q.ask_qty  # the adding side is only halved by the soft cap
    assert "position_limit" not in q.reasons
    assert q.reasons == ("soft_cap",)


def test_position_limit_keeps_adding_side_off_on_every_later_quote():
    mm = limited_maker()
    quote_at_inventory(mm, "buy", "0.10")
    for i, (bid, ask) in enumerate([("150.50", "150.51"), ("149.50", "149.51"), ("151.00", "151.01")]):
        out = mm.on_book(tick(WARM_TS + (i + 1) * S, bid, ask))
        for q in out:
            assert isinstance(q, QuoteIntent)
            assert q.bid_px is None and q.ask_px is not None


# == 3. loss limit ===============================================================================

LOSS_FILL_TS = WARM_TS + S // 10
# long 0.05 bought at 250: at mid 150.005 unrealized = 0.05 x -99.995 = -4.99975 (> -5.0)
LOSING_LONG = fill(LOSS_FILL_TS, "f-loss", "buy", "250", "0.05")
# mid 149.905: unrealized 0.05 x -100.095 = -5.00475 <= -5.0
MARKED_DOWN = ("149.90", "149.91")


def test_unrealized_loss_alone_triggers_loss_limit_and_latches():
    mm = make()
    warm_quoted(mm)
    out = mm.on_fill(LOSING_LONG)
    assert kinds(out) == [HedgeIntent, QuoteIntent]  # above the floor: business as usual
    assert not mm.safety.loss_halted
    out = mm.on_book(tick(WARM_TS + S, *MARKED_DOWN))
    assert mm.realized == 0  # unrealized alone
    assert mm.fifo.unrealized(mm.mid) == D("-5.00475")
    assert kinds(out) == [CancelAllIntent]
    assert out[0].reasons == ("loss_limit",) and out[0].ts == WARM_TS + S
    assert mm.safety.loss_halted and mm.safety.loss_halts == 1
    # nothing on fresh data, past the hedger's cooldown, even once the market recovers
    for i, (bid, ask) in enumerate([MARKED_DOWN, ("149.50", "149.51"), ("300.00", "300.01")]):
        assert mm.on_book(tick(WARM_TS + (i + 2) * S, bid, ask)) == []
    assert mm.on_fill(fill(WARM_TS + 6 * S, "f-more", "buy", "300.00", "0.01")) == []
    assert mm.decide(WARM_TS + 7 * S) == []
    assert mm.safety.loss_halts == 1
    assert not mm.safety.stale and not mm.safety.operator_halted
    # a plain resume does not lift a loss-limit halt: that takes --clear-loss-limit
    assert mm.on_control(control(WARM_TS + 8 * S, "resume")) == []
    assert mm.safety.loss_halted
    # only an explicit resume lifts it (PnL now positive): hedge and quote come back
    out = mm.on_control(control(WARM_TS + 8 * S, "resume", clear_loss_limit=True))
    assert kinds(out) == [HedgeIntent, QuoteIntent]
    assert not mm.safety.loss_halted
    assert mm.on_book(tick(WARM_TS + 9 * S, "300.50", "300.51")) != []


def test_loss_limit_disabled_keeps_quoting_and_hedging():
    mm = make(OFF["loss"])
    warm_quoted(mm)
    mm.on_fill(LOSING_LONG)
    out = mm.on_book(tick(WARM_TS + S, *MARKED_DOWN))
    assert cancels(out) == []
    assert QuoteIntent in kinds(out)
    later = []
    for i in range(2, 6):
        later += mm.on_book(
            tick(WARM_TS + i * S, "149.50" if i % 2 else "149.90", "149.51" if i % 2 else "149.91")
        )
    assert HedgeIntent in kinds(later) and QuoteIntent in kinds(later)  # hedger past its cooldown
    assert not mm.safety.loss_halted and mm.safety.loss_halts == 0


@pytest.mark.parametrize(
    ("px", "halted"),
    [("250.005", True), ("250.004", False)],  # 0.05 x (150.005 - px) = -5.00000 / -4.99995
)
def test_loss_limit_boundary_is_inclusive(px, halted):
    mm = make(NO_HEDGER)
    warm_quoted(mm)
    out = mm.on_fill(fill(LOSS_FILL_TS, "f1", "buy", px, "0.05"))
    assert mm.safety.loss_halted is halted
    assert (kinds(out) == [CancelAllIntent]) is halted


def test_realized_loss_triggers_loss_limit():
    mm = make()
    warm_quoted(mm)
    mm.book_fill(fill(LOSS_FILL_TS, "f1", "buy", "200", "0.1"))
    out = mm.on_fill(fill(LOSS_FILL_TS + 1, "f2", "sell", "149.95", "0.1"))
    assert mm.realized == D("-5.005") and mm.inventory == 0
    assert kinds(out) == [CancelAllIntent] and out[0].reasons == ("loss_limit",)
    assert mm.on_book(tick(WARM_TS + S, "150.50", "150.51")) == []


def test_realized_loss_ignored_when_loss_limit_disabled():
    mm = make(OFF["loss"])
    warm_quoted(mm)
    mm.book_fill(fill(LOSS_FILL_TS, "f1", "buy", "200", "0.1"))
    out = mm.on_fill(fill(LOSS_FILL_TS + 1, "f2", "sell", "149.95", "0.1"))
    assert kinds(out) == [QuoteIntent]


def test_resume_while_still_below_floor_halts_again():
    mm = make()
    warm_quoted(mm)
    mm.on_fill(LOSING_LONG)
    mm.on_book(tick(WARM_TS + S, *MARKED_DOWN))
    assert mm.safety.loss_halted
    out = mm.on_control(control(WARM_TS + 2 * S, "resume", clear_loss_limit=True))
    assert kinds(out) == [CancelAllIntent] and out[0].reasons == ("loss_limit",)
    assert mm.safety.loss_halted and mm.safety.loss_halts == 2


# == 4. kill switch ==============================================================================


def halt_scenario(with_halt: bool) -> tuple[MarketMaker, list[list]]:
    """Warm up, (halt), fresh books, a fill that would hedge, a second halt, then resume."""
    mm = make()
    warm_quoted(mm)
    steps: list[list] = []
    if with_halt:
        steps.append(mm.on_control(control(WARM_TS + S, "halt", "c1")))
    steps.append(mm.on_book(tick(WARM_TS + 2 * S, "150.05", "150.06")))
    steps.append(mm.on_fill(fill(WARM_TS + 3 * S, "f1", "buy", "150.00", "0.02")))
    steps.append(mm.on_book(tick(WARM_TS + 6 * S, "149.50", "149.51")))
    if with_halt:
        steps.append(mm.on_control(control(WARM_TS + 7 * S, "halt", "c2")))
    return mm, steps


def test_operator_halt_cancels_and_blocks_until_resume():
    mm, steps = halt_scenario(with_halt=True)
    first, *middle, second = steps
    assert kinds(first) == [CancelAllIntent]
    # Commands act at the market's clock (its last event), not at their own wall-clock stamp.
    assert first[0].reasons == ("operator_halt",) and first[0].ts == WARM_TS
    assert middle == [[], [], []]  # no quote, no hedge while halted
    assert second == []  # a second halt is a no-op
    assert mm.safety.operator_halted and mm.safety.operator_halts == 1
    assert mm.inventory == D("0.02")  # the fill is still booked
    out = mm.on_control(control(WARM_TS + 8 * S, "resume", "c3"))
    assert kinds(out) == [HedgeIntent, QuoteIntent]
    assert all(i.ts == WARM_TS + 6 * S for i in out)  # the last book's time
    assert not mm.safety.operator_halted and mm.safety.operator_halts == 1
    # resume when not halted does nothing
    assert mm.on_control(control(WARM_TS + 9 * S, "resume", "c4")) == []


def test_without_halt_the_same_events_quote_and_hedge():
    # the kill switch has no config switch: the twin is the same event sequence without it
    mm, steps = halt_scenario(with_halt=False)
    assert all(cancels(s) == [] for s in steps)
    flat = [i for s in steps for i in s]
    assert QuoteIntent in kinds(flat) and HedgeIntent in kinds(flat)
    assert mm.safety.operator_halts == 0


def test_halt_before_warm_up_still_cancels_and_blocks_first_quote():
    mm = make()
    out = mm.on_control(control(T0, "halt"))
    assert kinds(out) == [CancelAllIntent] and out[0].reasons == ("operator_halt",)
    for i in range(8):
        assert mm.on_book(tick(T0 + i * S)) == []
    assert kinds(mm.on_control(control(T0 + 8 * S, "resume"))) == [QuoteIntent]


def test_decoder_fans_star_control_out_to_every_market():
    s = settings()
    metrics = FlowMetrics()
    decode = make_decoder(s, metrics)
    ctrl = control(WARM_TS, "halt", "c-all", market="*")
    (out,) = decode([encode(ctrl)])
    assert out.dead == []
    chunks = dict(out.chunks)
    assert set(chunks) == set(s.markets) and len(chunks) == len(s.markets) >= 2
    for m, chunk in chunks.items():
        assert chunk == [replace(ctrl, market=m)]
    # each market's runtime halts on its copy
    for m, chunk in chunks.items():
        rt = paper_runtime(m, s)
        res = Outputs()
        for ev in chunk:
            rt.process(ev, res)
        assert [(type(i), i.market, i.reasons) for i in intents_of(res)] == [
            (CancelAllIntent, m, ("operator_halt",))
        ]
        assert rt.maker.safety.operator_halted


def test_decoder_sends_single_market_control_to_that_market_only():
    s = settings()
    decode = make_decoder(s, FlowMetrics())
    ctrl = control(WARM_TS, "halt", "c-one", market=MKT)
    (out,) = decode([encode(ctrl)])
    assert out.chunks == [(MKT, [ctrl])] and out.dead == []


def test_decoder_dead_letters_control_for_unknown_market():
    s = settings()
    metrics = FlowMetrics()
    decode = make_decoder(s, metrics)
    ctrl = control(WARM_TS, "halt", "c-x", market="NOPEUSDT")
    raw = encode(ctrl)
    (out,) = decode([raw])
    assert out.chunks == [] and len(out.dead) == 1
    dead = out.dead[0]
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "unknown_market" and "NOPEUSDT" in dead.detail
    assert dead.market == "NOPEUSDT" and dead.raw == raw
    assert (
        metrics.registry.get_sample_value(
            "maker_dead_letters_total", {"source": dead.source, "reason": "unknown_market"}
        )
        == 1.0
    )


# == 5. input refusals in MarketRuntime.process ==================================================

REFUSAL_HISTORY_END = WARM_TS + S // 2


def refusal_runtime() -> MarketRuntime:
    rt = paper_runtime(MKT, settings())
    warm_runtime(rt)
    out = Outputs()
    rt.process(trade(WARM_TS + S // 4, "t1", side="buy", px="150.01", qty="0.5"), out)
    rt.process(fill(WARM_TS + S // 3, "f1", "buy", "149.95", "0.002"), out)
    rt.process(tick(REFUSAL_HISTORY_END), out)
    assert not out.dead
    return rt


REFUSED = {
    "out_of_order_book": (tick(REFUSAL_HISTORY_END - 1, "150.05", "150.06"), "out of order"),
    "out_of_order_trade": (trade(REFUSAL_HISTORY_END - 1, "t-new"), "out of order"),
    "duplicate_trade": (trade(REFUSAL_HISTORY_END + S, "t1", side="sell", px="149.00"), "duplicate trade"),
    "duplicate_fill": (fill(REFUSAL_HISTORY_END + S, "f1", "sell", "151.00", "0.005"), "duplicate fill"),
}
# the same events made acceptable: a later timestamp, a fresh id
ACCEPTED = {
    "out_of_order_book": tick(REFUSAL_HISTORY_END + 1, "150.05", "150.06"),
    "out_of_order_trade": trade(REFUSAL_HISTORY_END + 1, "t-new"),
    "duplicate_trade": trade(REFUSAL_HISTORY_END + S, "t2", side="sell", px="149.00"),
    "duplicate_fill": fill(REFUSAL_HISTORY_END + S, "f2", "sell", "151.00", "0.005"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_event_is_one_dead_letter_and_changes_nothing(case):
    event, needle = REFUSED[case]
    rt = refusal_runtime()
    before = pickle.dumps(rt)
    out = Outputs()
    rt.process(event, out)
    assert len(out.dead) == 1 and out == Outputs(dead=out.dead)
    dead = out.dead[0]
    assert isinstance(dead, DeadLetter)
    assert needle in dead.detail
    assert dead.market == MKT and dead.raw == encode(event)
    assert pickle.dumps(rt) == before
    # refused again the same way: nothing was remembered from the first attempt
    out2 = Outputs()
    rt.process(event, out2)
    assert [d.reason for d in out2.dead] == [dead.reason] and out2 == Outputs(dead=out2.dead)
    assert pickle.dumps(rt) == before


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_acceptable_twin_event_is_processed_and_changes_state(case):
    event = ACCEPTED[case]
    rt = refusal_runtime()
    before = pickle.dumps(rt)
    out = Outputs()
    rt.process(event, out)
    assert not out.dead
    assert pickle.dumps(rt) != before


# == metrics gauges after a batch ================================================================

GAUGES = (
    "maker_stale_data_guard",
    "maker_kill_switch_active",
    "maker_loss_limit_halt",
    "maker_position_limit_active",
)


def gauges_after(rt: MarketRuntime, out: Outputs) -> tuple[FlowMetrics, dict[str, float | None]]:
    metrics = FlowMetrics()
    metrics.observe(rt.view(), rt.stats, 1, 0.0, out)
    return metrics, {g: metrics.registry.get_sample_value(g, {"market": MKT}) for g in GAUGES}


def _stale(rt, out):
    rt.check_stale(WARM_TS + STALE_US + 1, out)


def _halt(rt, out):
    rt.process(control(WARM_TS + S, "halt"), out)


def _loss(rt, out):
    rt.process(fill(WARM_TS + S, "f1", "buy", "200", "0.1"), out)
    rt.process(fill(WARM_TS + S + 1, "f2", "sell", "149.95", "0.1"), out)


def _position(rt, out):
    rt.process(fill(WARM_TS + S, "f1", "buy", "150.00", "0.10"), out)


SCENARIOS = {
    "maker_stale_data_guard": (_stale, "stale"),
    "maker_kill_switch_active": (_halt, "kill_switch"),
    "maker_loss_limit_halt": (_loss, "loss_limit"),
    "maker_position_limit_active": (_position, None),
}


@pytest.mark.parametrize("gauge", list(SCENARIOS))
def test_metrics_gauge_set_for_engaged_guard_only(gauge):
    action, counter = SCENARIOS[gauge]
    rt = MarketRuntime(MKT, settings())
    out = warm_runtime(rt)
    action(rt, out)
    metrics, values = gauges_after(rt, out)
    assert values == {g: (1.0 if g == gauge else 0.0) for g in GAUGES}
    if counter is not None:
        assert (
            metrics.registry.get_sample_value(
                "maker_guard_engagements_total", {"market": MKT, "guard": counter}
            )
            == 1.0
        )


def test_metrics_gauges_all_zero_in_normal_trading():
    rt = MarketRuntime(MKT, settings())
    out = warm_runtime(rt)
    _, values = gauges_after(rt, out)
    assert values == {g: 0.0 for g in GAUGES}


@pytest.mark.parametrize(
    ("gauge", "override"),
    [
        ("maker_stale_data_guard", OFF["stale"]),
        ("maker_loss_limit_halt", OFF["loss"]),
        ("maker_position_limit_active", OFF["position"]),
    ],
)
def test_metrics_gauge_stays_zero_when_guard_disabled(gauge, override):
    action, _ = SCENARIOS[gauge]
    rt = MarketRuntime(MKT, settings(override))
    out = warm_runtime(rt)
    action(rt, out)
    _, values = gauges_after(rt, out)
    assert values == {g: 0.0 for g in GAUGES}


def test_metrics_gauges_clear_after_resume_and_fresh_data():
    rt = MarketRuntime(MKT, settings())
    out = warm_runtime(rt)
    _halt(rt, out)
    _stale(rt, out)
    metrics = FlowMetrics()
    metrics.observe(rt.view(), rt.stats, 1, 0.0, out)
    get = metrics.registry.get_sample_value
    assert get("maker_kill_switch_active", {"market": MKT}) == 1.0
    assert get("maker_stale_data_guard", {"market": MKT}) == 1.0
    out2 = Outputs()
    rt.process(control(WARM_TS + 12 * S, "resume"), out2)
    rt.process(tick(WARM_TS + 13 * S), out2)
    metrics.observe(rt.view(), rt.stats, 2, 0.0, out2)
    assert get("maker_kill_switch_active", {"market": MKT}) == 0.0
    assert get("maker_stale_data_guard", {"market": MKT}) == 0.0
    assert [i for i in intents_of(out2) if isinstance(i, QuoteIntent)]
