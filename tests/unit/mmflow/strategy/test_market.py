"""MarketMaker driven by hand-built events: every rule of the analysis seen through the intents.

Book is SOLUSDT 150.00 / 150.01 (mid 150.005, tick 0.01, lot 0.001) unless a test moves it. With a
constant mid the volatility is 0 bps, so the volatility curve gives the narrowest spread, 7 bps,
and the largest size multiplier, 1.1: quotes are 0.01 x 1.1 = 0.011 each side at
150.005 x (1 -/+ 0.00035) = 149.95249825 / 150.05750175 -> 149.95 / 150.06 (rounded away).
"""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from mmflow.config import load_settings
from mmflow.models import BookTick, CancelAllIntent, HedgeIntent, QuoteIntent
from mmflow.strategy.market import MarketMaker
from tests.builders import SOL, T0, S, fill, tick, warm

MKT = SOL
SPEC = load_settings().markets[MKT]


def make(preset: str = "phase2") -> MarketMaker:
    return MarketMaker(MKT, SPEC, load_settings(preset).strategy)


def feed(mm: MarketMaker, ev) -> list:
    if isinstance(ev, BookTick):
        return mm.on_book(ev)
    return mm.on_fill(ev)


FIRST_QUOTE = QuoteIntent(
    market=MKT,
    ts=T0 + 5 * S,
    intent_id="binance-futures:SOLUSDT-0-000000001",
    bid_px=D("149.95"),
    bid_qty=D("0.011"),
    ask_px=D("150.06"),
    ask_qty=D("0.011"),
    best_bid=D("150.00"),
    best_ask=D("150.01"),
    inventory=D("0"),
    reasons=(),
)


# -- warm-up and first quote ---------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["phase1", "phase2"])
def test_no_intents_before_warmup_then_first_quote(preset):
    mm = make(preset)
    assert load_settings(preset).strategy.volatility.min_returns == 5
    for i in range(5):
        assert mm.on_book(tick(T0 + i * S)) == []
        assert not mm.vol.warm
    out = mm.on_book(tick(T0 + 5 * S))
    assert mm.vol.warm
    assert out == [FIRST_QUOTE]
    q = out[0]
    assert q.bid_px < q.best_bid and q.ask_px > q.best_ask
    assert isinstance(q.reasons, tuple) and q.reasons == ()
    assert mm.vol.value_bps == 0.0
    assert mm.quoted_spread_bps == 7.0


def test_many_ticks_within_first_second_do_not_warm_up():
    mm = make()
    # 100 ticks, 10 ms apart, all in one sampling interval: only one sample
    for i in range(100):
        assert (
            mm.on_book(
                tick(T0 + i * 10_000, "150.00" if i % 2 else "150.01", "150.01" if i % 2 else "150.02")
            )
            == []
        )
    assert len(mm.vol.returns) == 0


def test_fill_before_warmup_gives_no_intents():
    mm = make()
    mm.on_book(tick(T0))
    assert mm.on_fill(fill(T0 + 1, "f1", "buy", "150.00", "0.02")) == []
    assert mm.inventory == D("0.02")


# -- refresh tolerance ---------------------------------------------------------------------------


def test_quote_not_resent_when_nothing_changed():
    mm = make()
    assert warm(mm) == [FIRST_QUOTE]
    assert mm.on_book(tick(T0 + 5 * S + 500_000)) == []  # same book, same second
    assert mm.on_book(tick(T0 + 6 * S)) == []  # new sample, vol still 0
    assert mm.on_book(tick(T0 + 7 * S)) == []


def test_quote_not_resent_within_refresh_tolerance():
    mm = make()
    warm(mm)
    # book up one tick: mid 150.015 -> 149.96249... -> 149.96 / 150.06750525 -> 150.07
    # both moved 0.01 <= 1 bps of ~150 (0.015): not material
    assert mm.on_book(tick(T0 + 5 * S + 500_000, "150.01", "150.02")) == []
    assert mm.last_quote == FIRST_QUOTE


def test_quote_resent_when_price_moves_past_tolerance():
    mm = make()
    warm(mm)
    # mid 150.055: 150.055 * 0.99965 = 150.00248075 -> 150.00 ; * 1.00035 = 150.10751925 -> 150.11
    out = mm.on_book(tick(T0 + 5 * S + 500_000, "150.05", "150.06"))
    assert out == [
        QuoteIntent(
            market=MKT,
            ts=T0 + 5 * S + 500_000,
            intent_id="binance-futures:SOLUSDT-0-000000002",
            bid_px=D("150.00"),
            bid_qty=D("0.011"),
            ask_px=D("150.11"),
            ask_qty=D("0.011"),
            best_bid=D("150.05"),
            best_ask=D("150.06"),
            inventory=D("0"),
            reasons=(),
        )
    ]


# -- fills, hedger and asymmetric quoting --------------------------------------------------------

FILL_TS = T0 + 5 * S + 100_000
# 149.95 x 0.011 x 0.0002 = 0.00032989
BUY_FILL = fill(FILL_TS, "f1", "buy", "149.95", "0.011", fee="0.00032989")
HEDGE_AFTER_BUY = HedgeIntent(
    market=MKT,
    ts=FILL_TS,
    intent_id="binance-futures:SOLUSDT-0-000000002",
    side="sell",
    qty=D("0.010"),
    # 150.00 x 0.9995 = 149.925 -> rounded up (conservative for a sell) to 149.93
    limit_px=D("149.93"),
    best_bid=D("150.00"),
    best_ask=D("150.01"),
    inventory=D("0.011"),
    reasons=("inventory>0.010",),
)


def test_phase2_buy_fill_to_0011_hedges_and_quotes_asks_only():
    mm = make("phase2")
    warm(mm)
    out = mm.on_fill(BUY_FILL)
    assert mm.inventory == D("0.011")
    assert mm.realized == D("-0.00032989")
    # spread 7 + 2 (inventory bonus) = 9 -> 4.5 bps: 150.005 x 1.00045 = 150.07250225 -> 150.08
    # size 0.01 x 1.1 x 0.75 = 0.00825 -> 0.008
    assert out == [
        HEDGE_AFTER_BUY,
        QuoteIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000003",
            bid_px=None,
            bid_qty=None,
            ask_px=D("150.08"),
            ask_qty=D("0.008"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.011"),
            reasons=("inventory_spread+2bps", "inventory_size_x0.75", "asymmetric:ask_only"),
        ),
    ]
    assert any("asymmetric" in r for r in out[1].reasons)
    assert any("inventory_spread" in r for r in out[1].reasons)


def test_phase1_same_inventory_still_quotes_both_sides():
    mm = make("phase1")
    warm(mm)
    out = mm.on_fill(BUY_FILL)
    assert mm.inventory == D("0.011")
    assert out == [
        HEDGE_AFTER_BUY,
        QuoteIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000003",
            bid_px=D("149.95"),
            bid_qty=D("0.011"),
            ask_px=D("150.06"),
            ask_qty=D("0.011"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.011"),
            reasons=(),
        ),
    ]


def test_inventory_exactly_at_threshold_is_symmetric_and_unhedged():
    mm = make("phase2")
    warm(mm)
    out = mm.on_fill(fill(FILL_TS, "f1", "buy", "149.95", "0.010"))
    # 0.010 is not past the 0.01 thresholds: no hedge, no bonus, both sides (re-sent after a fill)
    assert out == [
        QuoteIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000002",
            bid_px=D("149.95"),
            bid_qty=D("0.011"),
            ask_px=D("150.06"),
            ask_qty=D("0.011"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.010"),
            reasons=(),
        )
    ]


def test_phase2_short_inventory_quotes_bids_only_with_tier_two():
    mm = make("phase2")
    warm(mm)
    out = mm.on_fill(fill(FILL_TS, "f1", "sell", "150.06", "0.025"))
    assert mm.inventory == D("-0.025")
    # hedge: buy min(0.025 - 0.001, 0.03) = 0.024 at 150.01 x 1.0005 = 150.085005 -> down to 150.08
    # quote: spread 7 + 4 = 11 -> 5.5 bps: 150.005 x 0.99945 = 149.92249725 -> 149.92
    # size 0.01 x 1.1 x 0.5 = 0.0055 -> 0.005
    assert out == [
        HedgeIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000002",
            side="buy",
            qty=D("0.024"),
            limit_px=D("150.08"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("-0.025"),
            reasons=("inventory>0.010",),
        ),
        QuoteIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000003",
            bid_px=D("149.92"),
            bid_qty=D("0.005"),
            ask_px=None,
            ask_qty=None,
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("-0.025"),
            reasons=("inventory_spread+4bps", "inventory_size_x0.5", "asymmetric:bid_only"),
        ),
    ]


def test_phase1_soft_cap_halves_the_adding_side():
    mm = make("phase1")
    warm(mm)
    out = mm.on_fill(fill(FILL_TS, "f1", "buy", "149.95", "0.06"))
    # hedge: min(0.059, 0.03) = 0.03 ; quote: bid 0.011 x 0.5 -> 0.0055 -> 0.005, ask 0.011
    assert out == [
        HedgeIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000002",
            side="sell",
            qty=D("0.03"),
            limit_px=D("149.93"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.06"),
            reasons=("inventory>0.010",),
        ),
        QuoteIntent(
            market=MKT,
            ts=FILL_TS,
            intent_id="binance-futures:SOLUSDT-0-000000003",
            bid_px=D("149.95"),
            bid_qty=D("0.005"),
            ask_px=D("150.06"),
            ask_qty=D("0.011"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.06"),
            reasons=("soft_cap",),
        ),
    ]


def test_duplicate_fill_is_booked_once():
    mm = make("phase2")
    warm(mm)
    first = mm.on_fill(BUY_FILL)
    assert len(first) == 2
    assert mm.on_fill(BUY_FILL) == []
    assert mm.book_fill(BUY_FILL) is False
    assert mm.inventory == D("0.011")
    assert mm.fifo.fees == D("0.00032989")
    # a different fill id with the same content is a new fill
    other = fill(FILL_TS, "f2", "buy", "149.95", "0.011", fee="0.00032989")
    assert mm.book_fill(other) is True
    assert mm.inventory == D("0.022")


def test_hedger_cooldown_and_wake_through_market_maker():
    mm = make("phase2")
    warm(mm)
    mm.on_fill(BUY_FILL)  # hedge at FILL_TS
    # 1 s later, same book: hedger cooling down, quote unchanged
    assert mm.on_book(tick(T0 + 6 * S)) == []
    assert mm.on_book(tick(FILL_TS + 2 * S - 1)) == []
    # exactly 2 s after the hedge (no new sample boundary, same book): the wake timer fires
    out = mm.on_book(tick(FILL_TS + 2 * S))
    assert out == [
        HedgeIntent(
            market=MKT,
            ts=FILL_TS + 2 * S,
            intent_id="binance-futures:SOLUSDT-0-000000004",
            side="sell",
            qty=D("0.010"),
            limit_px=D("149.93"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.011"),
            reasons=("inventory>0.010",),
        )
    ]
    # the hedge fills: 0.001 left, both sides back at full size
    out = mm.on_fill(
        fill(
            FILL_TS + 2 * S + 1,
            "h1",
            "sell",
            "150.00",
            "0.010",
            fee="0.00075",
            source="hedge",
            intent_id="binance-futures:SOLUSDT-0-000000004",
        )
    )
    assert mm.inventory == D("0.001")
    assert out == [
        QuoteIntent(
            market=MKT,
            ts=FILL_TS + 2 * S + 1,
            intent_id="binance-futures:SOLUSDT-0-000000005",
            bid_px=D("149.95"),
            bid_qty=D("0.011"),
            ask_px=D("150.06"),
            ask_qty=D("0.011"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0.001"),
            reasons=(),
        )
    ]
    # FIFO: 0.010 closed at 150.00 - 149.95 = +0.0005 ; fees 0.00032989 + 0.00075 -> -0.00057989
    assert mm.realized == D("-0.00057989")


# -- trend guard ---------------------------------------------------------------------------------


def test_trend_guard_pauses_bids_after_a_drop():
    mm = make("phase2")
    warm(mm)
    # mid 150.005 -> 149.845 one second later: -10.67 bps against the T0 sample
    out = mm.on_book(tick(T0 + 6 * S, "149.84", "149.85"))
    assert mm.trend.engagements == 1
    assert mm.trend_active
    assert mm.trend.until_us == T0 + 66 * S
    # volatility: returns 0,0,0,0,0,r -> sample std |r| / sqrt(6)
    r = math.log(149.845 / 150.005)
    vol = abs(r) / math.sqrt(6) * 10_000
    assert mm.vol.value_bps == pytest.approx(vol, rel=1e-9)
    assert vol < 6.0  # regime stays aggressive
    x = (vol - 1.0) / 11.0
    spread = 7.0 + 6.0 * x + 8.0  # curve + trend widening
    assert mm.quoted_spread_bps == pytest.approx(spread, rel=1e-9)
    size_mult = 1.1 - 0.4 * x  # ~0.978 -> 0.009
    ask_target = D("149.845") * (1 + D(repr(round(spread / 2, 6))) / 10_000)
    assert len(out) == 1
    q = out[0]
    assert isinstance(q, QuoteIntent)
    assert q.bid_px is None and q.bid_qty is None
    assert q.ask_px == D("149.98")
    assert q.ask_px - D("0.01") < ask_target <= q.ask_px
    assert q.ask_qty == D("0.009")
    assert D("0.009") <= D("0.01") * D(repr(round(size_mult, 6))) < D("0.010")
    assert q.reasons == ("trend_guard", "trend_bid_pause")


def test_trend_guard_not_engaged_by_smaller_drop():
    mm = make("phase2")
    warm(mm)
    # mid 150.005 -> 149.855: -9.9997 bps, below the 10 bps trigger
    out = mm.on_book(tick(T0 + 6 * S, "149.85", "149.86"))
    assert mm.trend.engagements == 0
    assert len(out) == 1
    assert out[0].bid_px is not None
    assert "trend_guard" not in out[0].reasons


def test_trend_guard_clears_after_cooldown():
    mm = make("phase2")
    warm(mm)
    mm.on_book(tick(T0 + 6 * S, "149.84", "149.85"))
    assert mm.trend_active
    out = mm.on_book(tick(T0 + 66 * S - 1, "149.84", "149.85"))
    assert mm.trend_active
    assert all(getattr(i, "bid_px", None) is None for i in out)
    out = mm.on_book(tick(T0 + 66 * S, "149.84", "149.85"))
    assert not mm.trend_active
    assert mm.trend.engagements == 1
    assert len(out) == 1
    assert out[0].bid_px is not None and out[0].ask_px is not None
    assert out[0].reasons == ()


# -- PnL guard -----------------------------------------------------------------------------------


def test_pnl_guard_reason_after_realized_minus_020():
    mm = make("phase2")
    warm(mm)
    mm.on_fill(fill(FILL_TS, "f1", "buy", "150.00", "0.1"))
    out = mm.on_fill(fill(FILL_TS + 1, "f2", "sell", "148.00", "0.1"))
    # 0.1 x (148 - 150) = -0.20 exactly
    assert mm.realized == D("-0.20")
    assert mm.inventory == D("0")
    assert mm.pnl_active
    assert mm.pnl_guard.engagements == 1
    # spread 7 + 6 = 13 -> 6.5 bps: 150.005 -/+ 0.09750325 -> 149.90 / 150.11
    # size 0.01 x 1.1 x 0.85 = 0.00935 -> 0.009
    assert out == [
        QuoteIntent(
            market=MKT,
            ts=FILL_TS + 1,
            intent_id="binance-futures:SOLUSDT-0-000000004",
            bid_px=D("149.90"),
            bid_qty=D("0.009"),
            ask_px=D("150.11"),
            ask_qty=D("0.009"),
            best_bid=D("150.00"),
            best_ask=D("150.01"),
            inventory=D("0"),
            reasons=("pnl_guard",),
        )
    ]


def test_pnl_guard_not_engaged_at_minus_019():
    mm = make("phase2")
    warm(mm)
    mm.on_fill(fill(FILL_TS, "f1", "buy", "150.00", "0.1"))
    out = mm.on_fill(fill(FILL_TS + 1, "f2", "sell", "148.10", "0.1"))
    assert mm.realized == D("-0.19")
    assert not mm.pnl_active
    assert out[-1].reasons == ()
    assert out[-1].bid_px == D("149.95")


# -- determinism ---------------------------------------------------------------------------------


def scenario() -> list:
    events = [tick(T0 + i * S) for i in range(6)]
    events += [
        tick(T0 + 5 * S + 500_000, "150.05", "150.06"),
        fill(T0 + 5 * S + 600_000, "f1", "buy", "150.00", "0.011", fee="0.00033"),
        fill(T0 + 5 * S + 600_000, "f1", "buy", "150.00", "0.011", fee="0.00033"),
        tick(T0 + 6 * S, "150.00", "150.01"),
        tick(T0 + 8 * S, "149.80", "149.81"),
        fill(T0 + 8 * S + 1, "f2", "sell", "150.20", "0.03", fee="-0.0001"),
        tick(T0 + 9 * S, "149.80", "149.81"),
        tick(T0 + 70 * S, "149.90", "149.91"),
    ]
    mm = make("phase2")
    out = []
    for ev in events:
        out.extend(feed(mm, ev))
    return out


def test_intent_ids_are_deterministic_and_sequential():
    a = scenario()
    b = scenario()
    assert len(a) >= 5
    assert a == b
    assert [i.intent_id for i in a] == [f"binance-futures:SOLUSDT-0-{n:09d}" for n in range(1, len(a) + 1)]
    assert a[0].intent_id == "binance-futures:SOLUSDT-0-000000001"
    kinds = {type(i) for i in a}
    # The 61 s silence before the last tick trips the stale-data guard: a cancel-all, then a requote.
    assert kinds == {QuoteIntent, HedgeIntent, CancelAllIntent}
