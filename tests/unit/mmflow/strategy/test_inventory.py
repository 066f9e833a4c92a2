"""Inventory rules (asymmetric quoting, spread bonus, size reduction, soft cap) and vol_spread.

Analysis: asymmetric above 0.01 SOL; spread +2/+4/+6 bps above 0.01/0.02/0.03; size x0.75 above
0.01 and x0.5 above 0.02; soft cap 0.05 SOL; volatility spreads 7..13 bps with size 1.1..0.7.
All thresholds are strict (``>``), as in the analysis' snippets.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from mmflow.config import InventoryConfig, SpreadConfig, load_settings
from mmflow.strategy.inventory import quotable_sides, size_reduction, soft_cap, spread_bonus_bps
from mmflow.strategy.spreads import vol_spread

P2 = load_settings("phase2").strategy.inventory
P1 = load_settings("phase1").strategy.inventory

BOUNDARIES = [
    "0",
    "0.001",
    "0.01",
    "0.0100001",
    "0.011",
    "0.02",
    "0.0200001",
    "0.03",
    "0.0300001",
    "0.05",
    "0.0500001",
    "0.5",
]


def test_presets_toggle_only_the_phase2_rules():
    assert P2.asymmetric_enabled and P2.spread_bonus_enabled and P2.size_reduction_enabled
    assert not P1.asymmetric_enabled
    assert not P1.spread_bonus_enabled
    assert not P1.size_reduction_enabled
    # The soft cap is a phase-1 system: on in both presets.
    assert P1.soft_cap_enabled and P2.soft_cap_enabled
    assert P2.asymmetric_base == D("0.01")
    assert P2.soft_cap_base == D("0.05")


# -- asymmetric quoting --------------------------------------------------------------------------

QUOTABLE_LONG = {
    "0": (True, True),
    "0.001": (True, True),
    "0.01": (True, True),  # exactly at threshold: still both sides
    "0.0100001": (False, True),  # long past threshold: asks only
    "0.011": (False, True),
    "0.02": (False, True),
    "0.0200001": (False, True),
    "0.03": (False, True),
    "0.0300001": (False, True),
    "0.05": (False, True),
    "0.0500001": (False, True),
    "0.5": (False, True),
}


@pytest.mark.parametrize("inv", BOUNDARIES)
def test_quotable_sides_long(inv):
    assert quotable_sides(P2, D(inv)) == QUOTABLE_LONG[inv]


@pytest.mark.parametrize("inv", BOUNDARIES)
def test_quotable_sides_short(inv):
    bid, ask = QUOTABLE_LONG[inv]
    # short mirrors long: bids only past the threshold
    assert quotable_sides(P2, -D(inv)) == (ask, bid)


@pytest.mark.parametrize("inv", BOUNDARIES)
def test_quotable_sides_phase1_always_both(inv):
    assert quotable_sides(P1, D(inv)) == (True, True)
    assert quotable_sides(P1, -D(inv)) == (True, True)


# -- spread bonus --------------------------------------------------------------------------------

BONUS = {
    "0": 0.0,
    "0.001": 0.0,
    "0.01": 0.0,
    "0.0100001": 2.0,
    "0.011": 2.0,
    "0.02": 2.0,
    "0.0200001": 4.0,
    "0.03": 4.0,
    "0.0300001": 6.0,
    "0.05": 6.0,
    "0.0500001": 6.0,
    "0.5": 6.0,
}


@pytest.mark.parametrize("inv", BOUNDARIES)
@pytest.mark.parametrize("sign", [1, -1])
def test_spread_bonus(inv, sign):
    assert spread_bonus_bps(P2, sign * D(inv)) == BONUS[inv]


@pytest.mark.parametrize("inv", BOUNDARIES)
def test_spread_bonus_phase1_disabled(inv):
    assert spread_bonus_bps(P1, D(inv)) == 0.0
    assert spread_bonus_bps(P1, -D(inv)) == 0.0


# -- size reduction ------------------------------------------------------------------------------

REDUCTION = {
    "0": 1.0,
    "0.001": 1.0,
    "0.01": 1.0,
    "0.0100001": 0.75,
    "0.011": 0.75,
    "0.02": 0.75,
    "0.0200001": 0.5,
    "0.03": 0.5,
    "0.0300001": 0.5,
    "0.05": 0.5,
    "0.0500001": 0.5,
    "0.5": 0.5,
}


@pytest.mark.parametrize("inv", BOUNDARIES)
@pytest.mark.parametrize("sign", [1, -1])
def test_size_reduction(inv, sign):
    assert size_reduction(P2, sign * D(inv)) == REDUCTION[inv]


@pytest.mark.parametrize("inv", BOUNDARIES)
def test_size_reduction_phase1_disabled(inv):
    assert size_reduction(P1, D(inv)) == 1.0
    assert size_reduction(P1, -D(inv)) == 1.0


# -- soft cap ------------------------------------------------------------------------------------

SOFT_CAP_LONG = {
    "0": (1.0, 1.0),
    "0.001": (1.0, 1.0),
    "0.01": (1.0, 1.0),
    "0.0100001": (1.0, 1.0),
    "0.011": (1.0, 1.0),
    "0.02": (1.0, 1.0),
    "0.0200001": (1.0, 1.0),
    "0.03": (1.0, 1.0),
    "0.0300001": (1.0, 1.0),
    "0.05": (1.0, 1.0),  # exactly at the cap: no reduction
    "0.0500001": (0.5, 1.0),  # long past the cap: halve the bid (the adding side)
    "0.5": (0.5, 1.0),
}


@pytest.mark.parametrize("inv", BOUNDARIES)
@pytest.mark.parametrize("cfg", [P1, P2], ids=["phase1", "phase2"])
def test_soft_cap_long(inv, cfg):
    assert soft_cap(cfg, D(inv)) == SOFT_CAP_LONG[inv]


@pytest.mark.parametrize("inv", BOUNDARIES)
@pytest.mark.parametrize("cfg", [P1, P2], ids=["phase1", "phase2"])
def test_soft_cap_short(inv, cfg):
    bid, ask = SOFT_CAP_LONG[inv]
    assert soft_cap(cfg, -D(inv)) == (ask, bid)


def test_soft_cap_disabled():
    cfg = InventoryConfig(soft_cap_enabled=False)
    assert soft_cap(cfg, D("0.5")) == (1.0, 1.0)
    assert soft_cap(cfg, D("-0.5")) == (1.0, 1.0)


def test_soft_cap_custom_mult():
    cfg = InventoryConfig(soft_cap_size_mult=0.25)
    assert soft_cap(cfg, D("0.06")) == (0.25, 1.0)
    assert soft_cap(cfg, D("-0.06")) == (1.0, 0.25)


def test_individual_phase2_rules_can_be_disabled():
    cfg = InventoryConfig(asymmetric_enabled=False)
    assert quotable_sides(cfg, D("0.04")) == (True, True)
    assert spread_bonus_bps(cfg, D("0.04")) == 6.0
    assert size_reduction(cfg, D("0.04")) == 0.5
    cfg = InventoryConfig(spread_bonus_enabled=False, size_reduction_enabled=False)
    assert quotable_sides(cfg, D("0.04")) == (False, True)
    assert spread_bonus_bps(cfg, D("0.04")) == 0.0
    assert size_reduction(cfg, D("0.04")) == 1.0


# -- volatility-aware spreads --------------------------------------------------------------------

SP = load_settings("phase2").strategy.spreads


def test_spread_defaults_match_analysis():
    assert (SP.min_bps, SP.max_bps) == (7.0, 13.0)
    assert (SP.size_mult_low_vol, SP.size_mult_high_vol) == (1.1, 0.7)
    assert (SP.vol_low_bps, SP.vol_high_bps) == (1.0, 12.0)


@pytest.mark.parametrize(
    "vol,spread,size",
    [
        (-5.0, 7.0, 1.1),  # clamped below
        (0.0, 7.0, 1.1),  # below vol_low: clamped
        (0.5, 7.0, 1.1),
        (1.0, 7.0, 1.1),  # vol_low
        (3.75, 8.5, 1.0),  # a quarter of the way: 7 + 6/4, 1.1 - 0.4/4
        (6.5, 10.0, 0.9),  # midpoint
        (9.25, 11.5, 0.8),  # three quarters
        (12.0, 13.0, 0.7),  # vol_high
        (12.5, 13.0, 0.7),  # above: clamped
        (100.0, 13.0, 0.7),
    ],
)
def test_vol_spread_curve(vol, spread, size):
    s, m = vol_spread(SP, vol)
    assert s == pytest.approx(spread, abs=1e-12)
    assert m == pytest.approx(size, abs=1e-12)


def test_vol_spread_is_monotone():
    prev_s, prev_m = vol_spread(SP, 0.0)
    for i in range(1, 200):
        s, m = vol_spread(SP, i * 0.1)
        assert s >= prev_s
        assert m <= prev_m
        assert 7.0 <= s <= 13.0
        assert 0.7 - 1e-12 <= m <= 1.1 + 1e-12
        prev_s, prev_m = s, m


def test_vol_spread_disabled():
    cfg = SpreadConfig(enabled=False)
    assert vol_spread(cfg, 0.0) == (7.0, 1.0)
    assert vol_spread(cfg, 50.0) == (7.0, 1.0)


def test_vol_spread_custom_range():
    cfg = SpreadConfig(
        min_bps=4.0,
        max_bps=8.0,
        vol_low_bps=2.0,
        vol_high_bps=4.0,
        size_mult_low_vol=1.0,
        size_mult_high_vol=0.5,
    )
    s, m = vol_spread(cfg, 3.0)
    assert s == pytest.approx(6.0)
    assert m == pytest.approx(0.75)
