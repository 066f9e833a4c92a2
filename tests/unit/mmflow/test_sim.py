"""The paper venue's models (mmflow/sim): latency draws, queue positions, fee tiers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmflow.config import FeeConfig, FeeTier, LatencyConfig, QueueConfig, load_settings
from mmflow.sim.fees import InstrumentFees, TieredFees, fee_model
from mmflow.sim.latency import ConstantLatency, SpikyLatency, latency_model
from mmflow.sim.queue import BackOfQueue, FrontOfQueue, ProbabilisticQueue, QueueSpot, queue_model

D = Decimal


# -- latency ----------------------------------------------------------------------------------------


def test_constant_latency_is_each_steps_own() -> None:
    model = latency_model(LatencyConfig(order_ms=50, cancel_ms=20.5, report_ms=3))
    assert isinstance(model, ConstantLatency)
    assert [model.latency_us(t, "x") for t in ("entry", "cancel", "report")] == [50_000, 20_500, 3_000]


def test_spiky_latency_is_a_function_of_seed_and_id_only() -> None:
    cfg = LatencyConfig(model="spiky", order_ms=50, jitter_ms=20, spike_probability=0.1, spike_ms=500, seed=3)
    a, b = SpikyLatency(cfg), SpikyLatency(cfg)
    keys = [f"m-0-{i:09d}" for i in range(2000)]
    draws = [a.latency_us("entry", k) for k in keys]
    # Another instance, another order of asking, the same draws: no generator state to lose.
    assert [b.latency_us("entry", k) for k in reversed(keys)] == list(reversed(draws))
    assert all(50_000 <= d < 50_000 + 20_000 + 500_000 + 1 for d in draws)
    spikes = sum(1 for d in draws if d >= 500_000)
    assert 140 <= spikes <= 260  # about 10 % of 2000
    other = SpikyLatency(cfg.model_copy(update={"seed": 4}))
    assert [other.latency_us("entry", k) for k in keys] != draws


def test_spiky_latency_without_spikes_stays_within_the_jitter() -> None:
    cfg = LatencyConfig(model="spiky", order_ms=10, jitter_ms=5, spike_probability=0, spike_ms=500)
    model = latency_model(cfg)
    draws = {model.latency_us("cancel", str(i)) for i in range(500)}
    assert min(draws) >= 50_000 and max(draws) < 55_000  # cancel base is 50 ms by default
    assert len(draws) > 100


# -- queue ------------------------------------------------------------------------------------------


def test_front_of_queue_takes_its_ratio_of_every_print() -> None:
    model = FrontOfQueue(QueueConfig(model="front", at_price_fill_ratio=D("0.5")))
    spot = QueueSpot()
    model.joined(spot, D(7))
    assert model.printed(spot, D(4)) == D(2)


def test_back_of_queue_waits_for_what_was_shown_when_it_joined() -> None:
    model = BackOfQueue(QueueConfig())
    spot = QueueSpot()
    model.joined(spot, D(5))
    assert model.printed(spot, D(3)) == 0  # 5 ahead, 3 traded: 2 still ahead
    assert model.printed(spot, D(4)) == D(2)  # 2 ahead, 4 traded: 2 reach us
    assert spot.ahead == 0


def test_back_of_queue_moves_up_only_when_the_level_shrinks_below_it() -> None:
    model = BackOfQueue(QueueConfig())
    spot = QueueSpot()
    model.joined(spot, D(5))
    model.shown(spot, D(8))  # others joined behind us
    assert spot.ahead == D(5)
    model.shown(spot, D(3))  # cancels: at most 3 can be ahead now
    assert spot.ahead == D(3)


def test_a_level_not_shown_when_joining_is_all_ahead_once_shown() -> None:
    model = BackOfQueue(QueueConfig())
    spot = QueueSpot()
    model.joined(spot, None)  # behind the touch on top-of-book data
    assert model.printed(spot, D(10)) == 0  # unknown queue: a print is assumed ahead of us
    model.shown(spot, D(6))  # the level becomes the touch
    assert spot.ahead == D(6)


def test_probabilistic_queue_credits_part_of_a_cancellation() -> None:
    model = ProbabilisticQueue(QueueConfig(model="probabilistic", power=2))
    spot = QueueSpot()
    model.joined(spot, D(4))
    model.shown(spot, D(12))  # 4 ahead, 8 behind
    model.shown(spot, D(7))  # 5 cancelled; share ahead 16 / (16 + 64) = 0.2
    assert spot.ahead == D(3)
    back = BackOfQueue(QueueConfig())
    same = QueueSpot()
    back.joined(same, D(4))
    back.shown(same, D(12))
    back.shown(same, D(7))
    assert same.ahead == D(4)  # the risk-averse model credits nothing


def test_probabilistic_queue_does_not_count_prints_as_cancellations() -> None:
    model = ProbabilisticQueue(QueueConfig(model="probabilistic"))
    spot = QueueSpot()
    model.joined(spot, D(4))
    model.shown(spot, D(10))
    assert model.printed(spot, D(3)) == 0
    model.shown(spot, D(7))  # exactly the print: no cancellation
    assert spot.ahead == D(1)


@given(
    st.lists(
        st.tuples(st.booleans(), st.decimals(min_value=0, max_value=50, places=3)), min_size=1, max_size=40
    ),
    st.sampled_from(["back", "probabilistic"]),
)
def test_queue_ahead_never_negative_nor_above_the_level(steps, name) -> None:
    model = queue_model(QueueConfig(model=name))
    spot = QueueSpot()
    model.joined(spot, D(5))
    for is_print, qty in steps:
        if is_print:
            assert model.printed(spot, qty) >= 0
        else:
            model.shown(spot, qty)
            assert spot.ahead is not None and spot.ahead <= qty
        assert spot.ahead is not None and spot.ahead >= 0


# -- fees -------------------------------------------------------------------------------------------


def test_instrument_fees_use_the_markets_rates_and_keep_rebates() -> None:
    spec = (
        load_settings().spec("binance-futures:SOLUSDT").model_copy(update={"maker_fee_rate": D("-0.00005")})
    )
    model = fee_model(FeeConfig(), spec)
    assert isinstance(model, InstrumentFees)
    assert model.fee(D("150"), D("0.01"), "maker") == D("-0.000075")
    assert model.fee(D("150"), D("0.01"), "taker") == D("150") * D("0.01") * spec.taker_fee_rate


def test_tiered_fees_move_up_a_tier_with_the_volume_traded() -> None:
    cfg = FeeConfig(
        model="tiered",
        volume_30d_quote=D("900"),
        tiers=(
            FeeTier(min_volume_quote=D(0), maker_rate=D("0.0002"), taker_rate=D("0.0005")),
            FeeTier(min_volume_quote=D(1000), maker_rate=D("-0.0001"), taker_rate=D("0.0004")),
        ),
    )
    model = TieredFees(cfg)
    assert model.fee(D("100"), D("1"), "maker") == D("0.02")  # 900 traded: the first tier
    assert model.volume == D("1000")
    assert model.fee(D("100"), D("1"), "maker") == D("-0.01")  # now a rebate
    assert model.fee(D("100"), D("1"), "taker") == D("0.04")


@pytest.mark.parametrize(
    ("tiers", "message"),
    [((), "needs at least one tier"), ((5, 5), "rise strictly")],
)
def test_bad_tiers_are_refused(tiers, message) -> None:
    rows = tuple(FeeTier(min_volume_quote=D(t), maker_rate=D(0), taker_rate=D(0)) for t in tiers)
    with pytest.raises(ValueError, match=message):
        FeeConfig(model="tiered", tiers=rows)
