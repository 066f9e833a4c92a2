"""PnL guard, regime switch, realized volatility + mid sampler, trend filter: thresholds pinned.

Numbers come from shared/seed/phase2-decision-analysis.md and the defaults in mmflow/config.py:
PnL guard -0.20 with clear margin 0.05 and 30 s hold, regime 6.0 bps, trend 10 bps in 30 s with a
60 s cooldown, volatility sampled every 1 s with 5 returns to warm up.
"""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from mmflow.config import (
    PnlGuardConfig,
    RegimeConfig,
    TrendConfig,
    VolatilityConfig,
    load_settings,
)
from mmflow.strategy.pnl_guard import PnlGuard
from mmflow.strategy.regime import AGGRESSIVE, DEFENSIVE, RegimeSwitch
from mmflow.strategy.trend import TrendFilter
from mmflow.strategy.volatility import MidSampler, RealizedVolatility

S = 1_000_000  # microseconds per second
T0 = 1_700_000_000 * S


# -- PnL guard -----------------------------------------------------------------------------------


def guard() -> PnlGuard:
    return PnlGuard(PnlGuardConfig())


def test_pnl_guard_defaults_match_analysis():
    cfg = load_settings("phase2").strategy.pnl_guard
    assert cfg.trigger_quote == D("-0.20")
    assert cfg.widen_bps == 6.0
    assert cfg.size_mult == 0.85
    assert cfg.clear_margin_quote == D("0.05")
    assert cfg.min_hold_s == 30.0


@pytest.mark.parametrize("realized", ["0", "-0.10", "-0.19", "-0.19999", "-0.1999999999"])
def test_pnl_guard_does_not_engage_above_trigger(realized):
    g = guard()
    assert g.update(D(realized), T0) is False
    assert g.active is False
    assert g.engagements == 0
    assert g.next_change_us() is None


@pytest.mark.parametrize("realized", ["-0.20", "-0.200", "-0.2000001", "-0.25", "-5"])
def test_pnl_guard_engages_at_or_below_trigger(realized):
    g = guard()
    assert g.update(D(realized), T0) is True
    assert g.active is True
    assert g.engagements == 1
    assert g.since_us == T0
    assert g.next_change_us() == T0 + 30 * S


def test_pnl_guard_does_not_clear_below_clear_level_even_after_hold():
    g = guard()
    g.update(D("-0.20"), T0)
    # -0.16 is above the trigger but below -0.15 (trigger + margin)
    assert g.update(D("-0.16"), T0 + 30 * S) is True
    assert g.update(D("-0.1500001"), T0 + 120 * S) is True
    assert g.active is True


def test_pnl_guard_does_not_clear_before_min_hold():
    g = guard()
    g.update(D("-0.21"), T0)
    assert g.update(D("-0.15"), T0 + 30 * S - 1) is True
    assert g.update(D("0.50"), T0 + 10 * S) is True
    assert g.active is True


def test_pnl_guard_clears_at_clear_level_after_hold():
    g = guard()
    g.update(D("-0.21"), T0)
    assert g.update(D("-0.15"), T0 + 30 * S) is False
    assert g.active is False
    assert g.next_change_us() is None
    assert g.engagements == 1


def test_pnl_guard_clears_above_clear_level_after_hold():
    g = guard()
    g.update(D("-0.30"), T0)
    assert g.update(D("-0.1499"), T0 + 31 * S) is False


def test_pnl_guard_flapping_within_hold_is_one_engagement():
    g = guard()
    assert g.update(D("-0.20"), T0) is True  # guard
    assert g.update(D("-0.10"), T0 + 5 * S) is True  # clear attempt: held
    assert g.update(D("-0.22"), T0 + 10 * S) is True  # guard again
    assert g.update(D("-0.14"), T0 + 15 * S) is True  # clear attempt: held
    assert g.update(D("-0.20"), T0 + 20 * S) is True
    assert g.engagements == 1
    assert g.since_us == T0  # the hold is measured from the first engagement


def test_pnl_guard_counts_a_new_engagement_after_clearing():
    g = guard()
    g.update(D("-0.20"), T0)
    assert g.update(D("-0.15"), T0 + 30 * S) is False
    assert g.update(D("-0.19"), T0 + 31 * S) is False
    assert g.engagements == 1
    assert g.update(D("-0.20"), T0 + 32 * S) is True
    assert g.engagements == 2
    assert g.since_us == T0 + 32 * S
    # The new engagement has its own hold.
    assert g.update(D("0"), T0 + 61 * S) is True
    assert g.update(D("0"), T0 + 62 * S) is False


def test_pnl_guard_disabled_never_engages():
    g = PnlGuard(PnlGuardConfig(enabled=False))
    for i, r in enumerate(["-0.20", "-1", "-1000"]):
        assert g.update(D(r), T0 + i * S) is False
    assert g.active is False
    assert g.engagements == 0


def test_pnl_guard_custom_trigger_and_zero_hold():
    g = PnlGuard(PnlGuardConfig(trigger_quote=D("-1.00"), clear_margin_quote=D("0"), min_hold_s=0))
    assert g.update(D("-0.99"), T0) is False
    assert g.update(D("-1.00"), T0) is True
    # margin 0 and no hold: clears as soon as PnL is back at the trigger level
    assert g.update(D("-1.00"), T0) is False


# -- regime switch -------------------------------------------------------------------------------


def test_regime_threshold_exactly_six_is_aggressive():
    r = RegimeSwitch(RegimeConfig())
    assert r.state == AGGRESSIVE == 1
    assert r.update(6.0) == 1
    assert r.switches == 0
    assert r.widen_bps() == 0.0


def test_regime_just_above_threshold_is_defensive():
    r = RegimeSwitch(RegimeConfig())
    assert r.update(6.0001) == DEFENSIVE == 0
    assert r.switches == 1
    assert r.widen_bps() == 2.0


def test_regime_switch_counting():
    r = RegimeSwitch(RegimeConfig())
    seq = [0.0, 5.9, 6.0, 6.0001, 7.0, 12.0, 6.0, 3.0, 6.5, 6.0]
    expected_states = [1, 1, 1, 0, 0, 0, 1, 1, 0, 1]
    assert [r.update(v) for v in seq] == expected_states
    # switches: 6.0001 (->0), 6.0 (->1), 6.5 (->0), 6.0 (->1)
    assert r.switches == 4
    assert r.state == AGGRESSIVE


def test_regime_disabled_stays_aggressive():
    r = RegimeSwitch(RegimeConfig(enabled=False))
    assert r.update(100.0) == AGGRESSIVE
    assert r.switches == 0
    assert r.widen_bps() == 0.0


# -- realized volatility -------------------------------------------------------------------------


def mids_from_returns(start: float, returns: list[float]) -> list[float]:
    out = [start]
    for x in returns:
        out.append(out[-1] * math.exp(x))
    return out


def test_volatility_constant_mid_is_zero():
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    for _ in range(20):
        assert v.add_sample(150.005) == 0.0
    assert v.value_bps == 0.0
    assert v.warm


def test_volatility_single_return_keeps_zero():
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    v.add_sample(100.0)
    # one return: a sample std needs two
    assert v.add_sample(101.0) == 0.0


def test_volatility_three_returns_hand_computed():
    # returns 0.001, 0.002, 0.003: mean 0.002, squared deviations 1e-6, 0, 1e-6 -> var 2e-6/2 = 1e-6
    # -> std 0.001 = 10 bps
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    for m in mids_from_returns(100.0, [0.001, 0.002, 0.003]):
        v.add_sample(m)
    assert v.value_bps == pytest.approx(10.0, rel=1e-9)


def test_volatility_alternating_returns_hand_computed():
    # +/-0.001 four times: mean 0, sum of squares 4e-6, var 4e-6/3 -> std 0.0011547005 = 11.547005 bps
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    for m in mids_from_returns(150.0, [0.001, -0.001, 0.001, -0.001]):
        v.add_sample(m)
    assert v.value_bps == pytest.approx(11.547005383792516, rel=1e-9)


def test_volatility_window_bounds_the_returns():
    # window 3: the first big return (5%) falls out, leaving 0.001, 0.002, 0.003 -> 10 bps
    v = RealizedVolatility(VolatilityConfig(window=3, min_returns=2))
    mids = mids_from_returns(100.0, [0.05, 0.001, 0.002, 0.003])
    for m in mids[:-1]:
        v.add_sample(m)
    assert v.value_bps > 100.0  # the 5% return still in the window
    v.add_sample(mids[-1])
    assert len(v.returns) == 3
    assert v.value_bps == pytest.approx(10.0, rel=1e-9)


def test_volatility_window_60_default():
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    for i in range(100):
        v.add_sample(100.0 + (i % 2))
    assert len(v.returns) == 60


def test_volatility_warm_after_min_returns():
    v = RealizedVolatility(VolatilityConfig(), min_returns=5)
    assert not v.warm
    for i in range(5):  # 5 samples = 4 returns
        v.add_sample(100.0 + i * 0.01)
        assert not v.warm
    v.add_sample(100.05)  # 6th sample = 5th return
    assert v.warm


def test_volatility_warm_with_config_min_returns():
    cfg = VolatilityConfig(min_returns=3)
    v = RealizedVolatility(cfg, cfg.min_returns)
    for m in [100.0, 100.0, 100.0]:
        v.add_sample(m)
    assert not v.warm
    v.add_sample(100.0)
    assert v.warm


# -- mid sampler ---------------------------------------------------------------------------------


def test_sampler_first_event_is_a_sample():
    s = MidSampler(1.0)
    assert s.due(T0 + 234_567) is True
    assert s.next_us == T0 + S


def test_sampler_at_most_one_sample_per_boundary():
    s = MidSampler(1.0)
    assert s.due(T0) is True
    assert s.due(T0) is False
    assert s.due(T0 + 1) is False
    assert s.due(T0 + S - 1) is False
    assert s.due(T0 + S) is True
    assert s.due(T0 + S) is False
    assert s.due(T0 + S + 999_999) is False
    assert s.due(T0 + 2 * S) is True


def test_sampler_gap_gives_one_sample_not_catch_up():
    s = MidSampler(1.0)
    assert s.due(T0) is True
    assert s.due(T0 + 3 * S + 500_000) is True  # three boundaries crossed, one sample
    assert s.due(T0 + 3 * S + 600_000) is False
    assert s.due(T0 + 4 * S - 1) is False
    assert s.due(T0 + 4 * S) is True


def test_sampler_counts_over_a_dense_stream():
    s = MidSampler(1.0)
    # events every 100 ms for 10 s (101 events from T0 to T0 + 10 s inclusive): one per second
    samples = [t for t in range(T0, T0 + 10 * S + 1, 100_000) if s.due(t)]
    assert samples == [T0 + i * S for i in range(11)]


def test_sampler_other_interval():
    s = MidSampler(0.25)
    assert s.interval_us == 250_000
    assert s.due(T0 + 100_000) is True
    assert s.due(T0 + 249_999) is False
    assert s.due(T0 + 250_000) is True


# -- trend filter --------------------------------------------------------------------------------


def trend() -> TrendFilter:
    return TrendFilter(TrendConfig())


def test_trend_defaults_match_analysis():
    cfg = load_settings("phase2").strategy.trend
    assert cfg.cooldown_s == 60.0
    assert cfg.widen_bps == 8.0
    assert cfg.pause_bids is True
    assert cfg.lookback_s == 30.0
    assert cfg.drop_bps == 10.0


@pytest.mark.parametrize(
    "old,new",
    [
        (150.00, 149.85),  # exactly 10 bps
        (100.00, 99.90),  # exactly 10 bps
        (200.00, 199.80),  # exactly 10 bps
        (10_000.0, 9_990.0),  # exactly 10 bps
        (150.00, 149.80),  # 13.3 bps
    ],
)
def test_trend_drop_of_10_bps_within_30s_engages(old, new):
    t = trend()
    t.add_sample(T0, old)
    t.add_sample(T0 + 30 * S, new)
    assert t.active(T0 + 30 * S)
    assert t.engagements == 1
    assert t.until_us == T0 + 90 * S


@pytest.mark.parametrize("old,new", [(150.00, 149.8515), (100.00, 99.901), (100.00, 100.50)])
def test_trend_drop_below_10_bps_does_not_engage(old, new):
    # 149.8515 = 150 * (1 - 0.00099): a 9.9 bps drop; 99.901: 9.9 bps; and a rise
    t = trend()
    t.add_sample(T0, old)
    t.add_sample(T0 + 10 * S, new)
    assert not t.active(T0 + 10 * S)
    assert t.engagements == 0


def test_trend_drop_measured_against_oldest_sample_in_lookback():
    t = trend()
    t.add_sample(T0, 150.00)
    # 30.000001 s later: the T0 sample is out of the 30 s lookback
    t.add_sample(T0 + 30 * S + 1, 149.70)
    assert not t.active(T0 + 30 * S + 1)
    assert t.engagements == 0


def test_trend_gradual_drop_accumulates_within_lookback():
    t = trend()
    # 4 bps, 4 bps, 4 bps steps (relative to 150.00): 150 -> 149.94 -> 149.88 -> 149.82
    t.add_sample(T0, 150.00)
    t.add_sample(T0 + 10 * S, 149.94)
    t.add_sample(T0 + 20 * S, 149.88)
    assert not t.active(T0 + 20 * S)
    t.add_sample(T0 + 29 * S, 149.82)  # 12 bps below the T0 sample
    assert t.active(T0 + 29 * S)
    assert t.engagements == 1


def test_trend_cooldown_60s_then_clears():
    t = trend()
    t.add_sample(T0, 150.00)
    t.add_sample(T0 + 5 * S, 149.80)
    assert t.until_us == T0 + 65 * S
    assert t.active(T0 + 5 * S)
    assert t.active(T0 + 65 * S - 1)
    assert not t.active(T0 + 65 * S)
    assert t.engagements == 1


def test_trend_retrigger_during_cooldown_extends_without_double_count():
    t = trend()
    t.add_sample(T0, 150.00)
    t.add_sample(T0 + 5 * S, 149.80)  # engage, until T0 + 65 s
    t.add_sample(T0 + 20 * S, 149.60)  # still 26 bps below T0 sample: extends
    assert t.engagements == 1
    assert t.until_us == T0 + 80 * S
    assert t.active(T0 + 79 * S)
    assert not t.active(T0 + 80 * S)


def test_trend_new_drop_after_cooldown_counts_again():
    t = trend()
    t.add_sample(T0, 150.00)
    t.add_sample(T0 + 5 * S, 149.80)  # engage 1, until 65 s
    t.add_sample(T0 + 40 * S, 149.80)  # flat vs 149.80 (T0 sample gone), no extension
    assert t.until_us == T0 + 65 * S
    t.add_sample(T0 + 66 * S, 149.80)
    assert not t.active(T0 + 66 * S)
    t.add_sample(T0 + 70 * S, 149.60)  # 13.3 bps below 149.80
    assert t.active(T0 + 70 * S)
    assert t.engagements == 2
    assert t.until_us == T0 + 130 * S


def test_trend_disabled_never_engages():
    t = TrendFilter(TrendConfig(enabled=False))
    t.add_sample(T0, 150.00)
    t.add_sample(T0 + S, 100.00)
    assert not t.active(T0 + S)
    assert t.engagements == 0
