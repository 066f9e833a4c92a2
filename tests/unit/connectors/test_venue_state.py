"""The paper venue's state survives a restart whole: stopped anywhere, saved as JSON and restored,
it goes on to make exactly the reports an uninterrupted venue makes, under every model."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mmflow.config import FeeConfig, FeeTier, LatencyConfig, QueueConfig, VenueConfig, load_settings
from mmflow.connectors.paper_venue import PaperVenue
from mmflow.connectors.synthetic import generate
from mmflow.connectors.venue_state import dump_state, load_state
from mmflow.models import BookTick, CancelAllIntent, Depth, HedgeIntent, QuoteIntent

D = Decimal
MKT = "synthetic:SYNTH-SOL"
TICK = D("0.01")

MODELS = {
    "constant-front": VenueConfig(queue=QueueConfig(model="front")),
    "spiky-back-tiered": VenueConfig(
        latency=LatencyConfig(model="spiky", report_ms=5, jitter_ms=30, spike_probability=0.1, seed=9),
        fees=FeeConfig(
            model="tiered",
            tiers=(
                FeeTier(min_volume_quote=D(0), maker_rate=D("0.0002"), taker_rate=D("0.0005")),
                FeeTier(min_volume_quote=D(50), maker_rate=D("-0.0001"), taker_rate=D("0.0004")),
            ),
        ),
    ),
    "probabilistic": VenueConfig(queue=QueueConfig(model="probabilistic", power=3)),
}


def _events() -> list:
    """Synthetic market data with a depth snapshot and diffs around the touch."""
    out: list = []
    for i, event in enumerate(generate(MKT, seconds=240, seed=3)):
        out.append(event)
        if isinstance(event, BookTick) and i % 3 == 0:
            levels = lambda px, qty, step: tuple((px + step * k * TICK, qty + k) for k in range(3))  # noqa: E731
            out.append(
                Depth(
                    market=MKT,
                    ts_exchange=event.ts_exchange,
                    ts_recv=event.ts_recv,
                    bids=levels(event.bid_px, event.bid_qty, -1),
                    asks=levels(event.ask_px, event.ask_qty, 1),
                    snapshot=i == 0,
                )
            )
    return out


def _intent(n: int, event: BookTick):
    iid = f"{MKT}-0-{n:09d}"
    common = dict(market=MKT, ts=event.ts_recv, intent_id=iid, best_bid=event.bid_px, best_ask=event.ask_px)
    if n % 17 == 0:
        side = "buy" if n % 2 else "sell"
        limit = event.ask_px + TICK if side == "buy" else event.bid_px - TICK
        return HedgeIntent(**common, side=side, qty=D("0.004"), limit_px=limit, inventory=D(0))
    if n % 29 == 0:
        return CancelAllIntent(**common)
    away = D(n % 3) * TICK
    return QuoteIntent(
        **common,
        bid_px=event.bid_px - away,
        bid_qty=D("0.010"),
        ask_px=event.ask_px + away,
        ask_qty=D("0.007"),
        inventory=D(0),
    )


def _drive(cfg: VenueConfig, restart_at: int | None) -> list:
    spec = load_settings().spec(MKT)
    venue = PaperVenue(MKT, spec, cfg)
    reports: list = []
    n = 0
    for i, event in enumerate(_events()):
        if i == restart_at:
            venue = load_state(dump_state(venue), spec, cfg, 256, venue.incarnation)
        if isinstance(event, BookTick):
            reports += venue.on_book(event)
            if i % 4 == 0:
                n += 1
                venue.submit(_intent(n, event))
        elif isinstance(event, Depth):
            reports += venue.on_depth(event)
        else:
            reports += venue.on_trade(event)
    return reports


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_restored_venue_goes_on_exactly_as_an_uninterrupted_one(name: str) -> None:
    cfg = MODELS[name]
    whole = _drive(cfg, None)
    assert sum(1 for r in whole if r.type == "fill") > 20
    statuses = {r.status for r in whole if r.type == "order"}
    assert {"accepted", "cancelled"} <= statuses
    for at in (1_000, 2_345, 4_000):
        assert _drive(cfg, at) == whole, at
