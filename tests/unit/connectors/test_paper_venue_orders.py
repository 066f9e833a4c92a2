"""The paper venue's single orders (``place``, ``cancel``, ``advance``): an exchange account's
independent orders, as the exchange simulator uses them."""

from __future__ import annotations

from decimal import Decimal

from mmflow.config import LatencyConfig, QueueConfig, VenueConfig, load_settings
from mmflow.connectors.paper_venue import PaperVenue
from mmflow.models import POST_ONLY_REJECT, Fill, OrderUpdate
from tests import builders

D = Decimal
MKT = "binance-futures:BTCUSDT"
T0 = builders.T0


def venue(order_ms: float = 0.0) -> PaperVenue:
    cfg = VenueConfig(
        latency=LatencyConfig(order_ms=order_ms, cancel_ms=order_ms, report_ms=0),
        queue=QueueConfig(model="front"),
    )
    v = PaperVenue(MKT, load_settings().spec(MKT), cfg)
    v.on_book(builders.tick(T0, "100.0", "100.1", market=MKT, bid_qty="1", ask_qty="1"))
    return v


def statuses(reports: list) -> list[tuple[str, str]]:
    return [(r.intent_id, r.status) for r in reports if isinstance(r, OrderUpdate)]


def test_placing_an_order_keeps_the_others_resting() -> None:
    v = venue()
    assert v.place("1", "buy", D("99.9"), D("0.01"), T0)
    assert v.place("2", "buy", D("99.8"), D("0.01"), T0)
    assert statuses(v.advance(T0)) == [("1", "accepted"), ("2", "accepted")]
    assert [o.intent_id for o in v.orders] == ["1", "2"]


def test_a_duplicate_order_id_is_refused() -> None:
    v = venue()
    assert v.place("1", "buy", D("99.9"), D("0.01"), T0)
    assert not v.place("1", "buy", D("99.9"), D("0.01"), T0)


def test_cancelling_one_order_leaves_the_other() -> None:
    v = venue()
    v.place("1", "buy", D("99.9"), D("0.01"), T0)
    v.place("2", "sell", D("100.2"), D("0.01"), T0)
    v.advance(T0)
    assert v.cancel("1", T0)
    assert statuses(v.advance(T0)) == [("1", "cancelled")]
    assert [o.intent_id for o in v.orders] == ["2"]
    assert not v.cancel("1", T0)
    assert not v.cancel("unknown", T0)


def test_a_crossing_order_is_rejected_as_post_only() -> None:
    v = venue()
    v.place("1", "buy", D("100.1"), D("0.01"), T0)
    [update] = v.advance(T0)
    assert (update.status, update.reason) == ("rejected", POST_ONLY_REJECT)


def test_a_single_order_fills_against_a_print_through_its_price() -> None:
    v = venue()
    v.place("1", "buy", D("99.9"), D("0.01"), T0)
    v.advance(T0)
    reports = v.on_trade(builders.trade(T0 + 1, "T1", "sell", "99.8", "1", market=MKT))
    [fill] = [r for r in reports if isinstance(r, Fill)]
    assert (fill.intent_id, fill.px, fill.qty, fill.liquidity) == ("1", D("99.9"), D("0.01"), "maker")
    assert statuses(reports) == [("1", "filled")]


def test_entry_latency_still_applies_to_a_single_order() -> None:
    v = venue(order_ms=10.0)
    v.place("1", "buy", D("99.9"), D("0.01"), T0)
    assert v.advance(T0) == []
    assert statuses(v.advance(T0 + 10_000)) == [("1", "accepted")]
