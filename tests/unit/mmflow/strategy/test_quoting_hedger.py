"""Quote pricing (tick rounding away from the mid, post-only clamp, refresh tolerance) and the hedger.

Hedger numbers are the analysis' phase-1 parameters: trigger 0.010 SOL, target 0.001 SOL, max clip
0.03 SOL, cooldown 2.0 s; the IOC limit is the touch -/+ 5 bps (config default).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmflow.config import HedgerConfig, InstrumentSpec, load_settings
from mmflow.strategy.hedger import HedgePlan, Hedger
from mmflow.strategy.quoting import bps_factor, floor_to, moved, price_quotes, round_away

S = 1_000_000
T0 = 1_700_000_000 * S
SOL = load_settings().markets["binance-futures:SOLUSDT"]
HCFG = load_settings("phase2").strategy.hedger


# -- helpers -------------------------------------------------------------------------------------


def test_bps_factor_exact():
    assert bps_factor(5.0) == D("1.0005")
    assert bps_factor(-5.0) == D("0.9995")
    assert bps_factor(-3.5) == D("0.99965")
    assert bps_factor(0.0) == D("1")
    assert bps_factor(0.1) == D("1.00001")


def test_floor_to_and_round_away():
    assert floor_to(D("0.0109"), D("0.001")) == D("0.010")
    assert floor_to(D("0.010"), D("0.001")) == D("0.010")
    assert floor_to(D("0.0009"), D("0.001")) == D("0")
    assert round_away(D("149.9549"), D("0.01"), up=False) == D("149.95")
    assert round_away(D("149.9501"), D("0.01"), up=True) == D("149.96")
    assert round_away(D("149.95"), D("0.01"), up=True) == D("149.95")
    assert round_away(D("149.95"), D("0.01"), up=False) == D("149.95")
    assert round_away(D("150.0012"), D("0.0025"), up=True) == D("150.0025")
    assert round_away(D("150.0012"), D("0.0025"), up=False) == D("150.0000")


# -- price_quotes --------------------------------------------------------------------------------


def test_price_quotes_exact_on_grid():
    # 100 * (1 -/+ 0.0005) = 99.95 / 100.05, already on the 0.01 grid
    assert price_quotes(D("100.00"), D("99.99"), D("100.01"), 10.0, D("0.01")) == (
        D("99.95"),
        D("100.05"),
        False,
    )


def test_price_quotes_round_away_from_mid_sol():
    # mid 150.005, 7 bps wide -> 3.5 bps a side: 150.005 * 0.00035 = 0.05250175
    # bid 149.95249825 -> floor 149.95 ; ask 150.05750175 -> ceil 150.06
    bid, ask, clamped = price_quotes(D("150.005"), D("150.00"), D("150.01"), 7.0, D("0.01"))
    assert (bid, ask, clamped) == (D("149.95"), D("150.06"), False)


def test_price_quotes_round_away_small_offset():
    # mid 100.003, 10 bps: bid 99.9529985 -> 99.95 ; ask 100.0530015 -> 100.06
    bid, ask, clamped = price_quotes(D("100.003"), D("99.99"), D("100.02"), 10.0, D("0.01"))
    assert (bid, ask, clamped) == (D("99.95"), D("100.06"), False)


def test_price_quotes_quarter_cent_tick():
    # SOL-USD tick 0.0025; mid 150.00125, 7 bps: offset 0.0525004375
    # bid 149.9487495625 / 0.0025 = 59979.4998 -> 59979 -> 149.9475
    # ask 150.0537504375 / 0.0025 = 60021.5002 -> 60022 -> 150.0550
    bid, ask, clamped = price_quotes(D("150.00125"), D("150.0000"), D("150.0025"), 7.0, D("0.0025"))
    assert (bid, ask, clamped) == (D("149.9475"), D("150.0550"), False)


def test_price_quotes_zero_spread_stays_inside_book():
    bid, ask, clamped = price_quotes(D("100.005"), D("100.00"), D("100.01"), 0.0, D("0.01"))
    assert (bid, ask, clamped) == (D("100.00"), D("100.01"), False)


def test_post_only_clamp_bid_when_mid_above_book():
    # stale mid 100.50 over a 100.00/100.01 book: bid 100.44975 -> 100.44 >= best ask -> 100.00
    bid, ask, clamped = price_quotes(D("100.50"), D("100.00"), D("100.01"), 10.0, D("0.01"))
    assert (bid, ask, clamped) == (D("100.00"), D("100.56"), True)


def test_post_only_clamp_ask_when_mid_below_book():
    # mid 99.50: bid 99.45025 -> 99.45 ; ask 99.54975 -> 99.55 <= best bid -> 100.01
    bid, ask, clamped = price_quotes(D("99.50"), D("100.00"), D("100.01"), 10.0, D("0.01"))
    assert (bid, ask, clamped) == (D("99.45"), D("100.01"), True)


def test_post_only_clamp_bid_equal_to_best_ask_is_clamped():
    # locked book 100.00/100.00, no spread: both sides would touch; bid 99.99, ask 100.01
    bid, ask, clamped = price_quotes(D("100.00"), D("100.00"), D("100.00"), 0.0, D("0.01"))
    assert (bid, ask, clamped) == (D("99.99"), D("100.01"), True)


TICKS = [D("0.01"), D("0.0025"), D("0.1"), D("0.5"), D("0.00001"), D("1")]


@settings(max_examples=400, deadline=None)
@given(
    tick=st.sampled_from(TICKS),
    bid_ticks=st.integers(min_value=1_000, max_value=10_000_000),
    width=st.integers(min_value=1, max_value=50),
    spread_centi_bps=st.integers(min_value=0, max_value=6_000),
)
def test_price_quotes_property_valid_book(tick, bid_ticks, width, spread_centi_bps):
    best_bid = bid_ticks * tick
    best_ask = best_bid + width * tick
    mid = (best_bid + best_ask) / 2
    spread = spread_centi_bps / 100.0
    bid, ask, clamped = price_quotes(mid, best_bid, best_ask, spread, tick)
    # exact targets computed here: half spread = spread_centi_bps / 200 bps
    half = D(spread_centi_bps) / D(200) / D(10_000)
    target_bid = mid * (1 - half)
    target_ask = mid * (1 + half)
    # on the grid
    assert bid % tick == 0
    assert ask % tick == 0
    # post-only
    assert bid < best_ask
    assert ask > best_bid
    # a zero-width request on a grid mid may give bid == ask; any real width separates them
    assert bid < ask if spread_centi_bps > 0 else bid <= ask
    # a valid book with the mid inside never needs the clamp
    assert clamped is False
    # rounded away from the mid, by less than one tick
    assert bid <= target_bid < bid + tick
    assert ask - tick < target_ask <= ask


@settings(max_examples=400, deadline=None)
@given(
    tick=st.sampled_from(TICKS),
    bid_ticks=st.integers(min_value=1_000, max_value=10_000_000),
    width=st.integers(min_value=0, max_value=50),
    mid_offset_half_ticks=st.integers(min_value=-300, max_value=400),
    spread_centi_bps=st.integers(min_value=0, max_value=6_000),
)
def test_price_quotes_property_any_mid_never_crosses(
    tick, bid_ticks, width, mid_offset_half_ticks, spread_centi_bps
):
    # a mid that need not sit inside the book (stale, or a locked book): the clamp must hold
    best_bid = bid_ticks * tick
    best_ask = best_bid + width * tick
    mid = best_bid + mid_offset_half_ticks * tick / 2
    bid, ask, clamped = price_quotes(mid, best_bid, best_ask, spread_centi_bps / 100.0, tick)
    assert bid < best_ask
    assert ask > best_bid
    assert bid % tick == 0
    assert ask % tick == 0
    half = D(spread_centi_bps) / D(200) / D(10_000)
    unclamped_bid_ok = bid <= mid * (1 - half) < bid + tick
    unclamped_ask_ok = ask - tick < mid * (1 + half) <= ask
    if not clamped:
        assert unclamped_bid_ok and unclamped_ask_ok
    else:
        assert bid == best_ask - tick or ask == best_bid + tick
        if bid == best_ask - tick and not unclamped_bid_ok:
            assert mid * (1 - half) >= best_ask
        if ask == best_bid + tick and not unclamped_ask_ok:
            assert mid * (1 + half) <= best_bid


# -- moved ---------------------------------------------------------------------------------------

TOL_1BPS = D("0.0001")


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("100.00", "100.00", False),
        ("100.00", "100.01", False),  # exactly 1 bps: not more than the tolerance
        ("100.00", "100.02", True),
        ("100.00", "99.99", False),
        ("100.00", "99.98", True),
        ("150.00", "150.015", False),  # 1 bps of 150 = 0.015
        ("150.00", "150.016", True),
        ("150.00", "149.985", False),
        ("150.00", "149.984", True),
    ],
)
def test_moved_price_tolerance(old, new, expected):
    assert moved(D(old), D(new), TOL_1BPS) is expected


def test_moved_appear_vanish():
    assert moved(None, None, TOL_1BPS) is False
    assert moved(None, D("100"), TOL_1BPS) is True
    assert moved(D("100"), None, TOL_1BPS) is True


def test_moved_zero_tolerance_and_size_tolerance():
    assert moved(D("100"), D("100"), D(0)) is False
    assert moved(D("100"), D("100.01"), D(0)) is True
    # 5% size tolerance: 0.010 -> 0.0105 is exactly 5%, not more
    assert moved(D("0.010"), D("0.0105"), D("0.05")) is False
    assert moved(D("0.010"), D("0.011"), D("0.05")) is True
    assert moved(D("0.011"), D("0.008"), D("0.05")) is True


# -- hedger --------------------------------------------------------------------------------------


def hedger(cfg: HedgerConfig = HCFG, spec: InstrumentSpec = SOL) -> Hedger:
    return Hedger(cfg, spec)


BB, BA = D("150.03"), D("150.04")


def test_hedger_defaults_match_analysis():
    assert HCFG.trigger_base == D("0.010")
    assert HCFG.target_base == D("0.001")
    assert HCFG.max_clip_base == D("0.03")
    assert HCFG.cooldown_s == 2.0
    assert HCFG.max_slippage_bps == 5.0
    assert (SOL.tick_size, SOL.lot_size, SOL.min_qty) == (D("0.01"), D("0.001"), D("0.001"))


@pytest.mark.parametrize("inv", ["0", "0.005", "0.010", "0.0100", "-0.010", "-0.009"])
def test_hedger_no_hedge_at_or_below_trigger(inv):
    h = hedger()
    assert h.plan(D(inv), BB, BA, T0) is None
    assert h.last_us is None  # no cooldown started


def test_hedger_long_hedge_just_past_trigger():
    h = hedger()
    # qty 0.011 - 0.001 = 0.010 ; sell limit 150.03 * 0.9995 = 149.954985 -> up to 149.96
    assert h.plan(D("0.011"), BB, BA, T0) == HedgePlan("sell", D("0.010"), D("149.96"))
    assert h.last_us == T0


def test_hedger_short_hedge_just_past_trigger():
    h = hedger()
    # buy limit 150.04 * 1.0005 = 150.11502 -> down to 150.11
    assert h.plan(D("-0.011"), BB, BA, T0) == HedgePlan("buy", D("0.010"), D("150.11"))


def test_hedger_limit_exactly_on_grid():
    h = hedger()
    assert h.plan(D("0.02"), D("100.00"), D("100.01"), T0) == HedgePlan("sell", D("0.019"), D("99.95"))
    h = hedger()
    # 100.00 * 1.0005 = 100.05
    assert h.plan(D("-0.02"), D("99.99"), D("100.00"), T0) == HedgePlan("buy", D("0.019"), D("100.05"))


def test_hedger_limit_is_within_slippage_of_touch():
    h = hedger()
    p = h.plan(D("0.02"), D("123.45"), D("123.46"), T0)
    # 123.45 * 0.9995 = 123.388275 -> 123.39 (never below the 5 bps bound)
    assert p.limit_px == D("123.39")
    assert p.limit_px >= D("123.45") * D("0.9995")
    h = hedger()
    p = h.plan(D("-0.02"), D("123.45"), D("123.46"), T0)
    # 123.46 * 1.0005 = 123.52173 -> 123.52
    assert p.limit_px == D("123.52")
    assert p.limit_px <= D("123.46") * D("1.0005")


@pytest.mark.parametrize(
    "inv,side,qty",
    [
        ("0.0101", "sell", "0.009"),  # 0.0091 -> floor 0.009
        ("0.0119", "sell", "0.010"),  # 0.0109 -> 0.010
        ("0.0125", "sell", "0.011"),  # 0.0115 -> 0.011
        ("0.027", "sell", "0.026"),  # analysis' stuck 0.027
        ("0.0309", "sell", "0.029"),  # 0.0299 -> 0.029
        ("0.031", "sell", "0.030"),  # exactly the clip
        ("0.045", "sell", "0.03"),  # capped at 0.03
        ("0.5", "sell", "0.03"),
        ("-0.0119", "buy", "0.010"),
        ("-0.045", "buy", "0.03"),
    ],
)
def test_hedger_qty_clip_and_lot_rounding(inv, side, qty):
    p = hedger().plan(D(inv), BB, BA, T0)
    assert p is not None
    assert p.side == side
    assert p.qty == D(qty)


def test_hedger_skips_below_min_qty_without_starting_cooldown():
    spec = InstrumentSpec(tick_size=D("0.01"), lot_size=D("0.001"), min_qty=D("0.02"))
    h = hedger(spec=spec)
    assert h.plan(D("0.015"), BB, BA, T0) is None  # 0.014 < 0.02
    assert h.last_us is None
    assert h.plan(D("0.021"), BB, BA, T0 + 1) == HedgePlan("sell", D("0.020"), D("149.96"))


def test_hedger_skips_when_lot_rounding_gives_zero():
    cfg = HedgerConfig(trigger_base=D("0.010"), target_base=D("0.0095"))
    h = hedger(cfg=cfg)
    assert h.plan(D("0.0104"), BB, BA, T0) is None  # 0.0009 -> 0.000
    assert h.last_us is None
    assert h.plan(D("0.0105"), BB, BA, T0).qty == D("0.001")


def test_hedger_cooldown_two_seconds():
    h = hedger()
    assert h.plan(D("0.02"), BB, BA, T0) is not None
    assert h.ready(T0 + 1_999_000) is False
    assert h.plan(D("0.02"), BB, BA, T0 + 1_999_000) is None  # 1.999 s
    assert h.plan(D("0.02"), BB, BA, T0 + 2 * S - 1) is None
    assert h.last_us == T0
    assert h.ready(T0 + 2 * S) is True
    assert h.plan(D("0.02"), BB, BA, T0 + 2 * S) == HedgePlan("sell", D("0.019"), D("149.96"))
    assert h.last_us == T0 + 2 * S
    assert h.plan(D("-0.02"), BB, BA, T0 + 3 * S) is None  # cooldown applies to either side
    assert h.plan(D("-0.02"), BB, BA, T0 + 4 * S).side == "buy"


def test_hedger_disabled():
    h = hedger(cfg=HedgerConfig(enabled=False))
    assert h.plan(D("0.5"), BB, BA, T0) is None
    assert h.plan(D("-0.5"), BB, BA, T0) is None


def test_hedger_zero_cooldown():
    h = hedger(cfg=HedgerConfig(cooldown_s=0))
    assert h.plan(D("0.02"), BB, BA, T0) is not None
    assert h.plan(D("0.02"), BB, BA, T0) is not None
