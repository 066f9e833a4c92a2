"""The paper venue's matching rules (see the docstring of connectors/paper_venue.py), checked exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mmflow.config import LatencyConfig, QueueConfig, VenueConfig, load_settings
from mmflow.connectors.paper_venue import PaperVenue
from mmflow.models import BookTick, CancelAllIntent, Fill, HedgeIntent, QuoteIntent, Trade
from tests import builders

D = Decimal
MKT = "binance-futures:SOLUSDT"
ORDER_LAT_US = 10_000  # 10 ms
CANCEL_LAT_US = 20_000  # 20 ms


@pytest.fixture(scope="module")
def spec():
    return load_settings().markets[MKT]


class FillsOnly:
    """A paper venue whose market-data calls return only its fills (the order updates are
    tested in test_venue_rules.py); everything else is the venue's own."""

    def __init__(self, venue: PaperVenue) -> None:
        self.venue = venue

    def __getattr__(self, name: str):
        return getattr(self.venue, name)

    def on_book(self, tick: BookTick) -> list[Fill]:
        return [r for r in self.venue.on_book(tick) if isinstance(r, Fill)]

    def on_trade(self, t: Trade) -> list[Fill]:
        return [r for r in self.venue.on_trade(t) if isinstance(r, Fill)]


def make_venue(spec, ratio: str = "1", order_ms: float = 10.0, cancel_ms: float = 20.0) -> PaperVenue:
    """Front of the queue (these tests are about matching, not queues) and constant latency."""
    cfg = VenueConfig(
        latency=LatencyConfig(order_ms=order_ms, cancel_ms=cancel_ms),
        queue=QueueConfig(model="front", at_price_fill_ratio=D(ratio)),
    )
    return FillsOnly(PaperVenue(MKT, spec, cfg))  # type: ignore[return-value]


@pytest.fixture
def venue(spec) -> PaperVenue:
    return make_venue(spec)


def quote(
    ts: int,
    iid: str,
    bid: str | None = None,
    bid_qty: str | None = None,
    ask: str | None = None,
    ask_qty: str | None = None,
) -> QuoteIntent:
    return builders.quote(ts, iid, bid, bid_qty, ask, ask_qty, market=MKT)


def hedge(ts: int, iid: str, side: str, qty: str, limit: str) -> HedgeIntent:
    return HedgeIntent(
        market=MKT,
        ts=ts,
        intent_id=iid,
        side=side,
        qty=D(qty),
        limit_px=D(limit),  # type: ignore[arg-type]
        best_bid=D("77.00"),
        best_ask=D("77.01"),
        inventory=D("0.02"),
    )


def cancel_all(ts: int, iid: str) -> CancelAllIntent:
    return CancelAllIntent(market=MKT, ts=ts, intent_id=iid)


_tid = 0


def trade(ts: int, side: str, px: str, qty: str) -> Trade:
    global _tid
    _tid += 1
    return builders.trade(ts, f"T{_tid}", side, px, qty, market=MKT)


def book(ts: int, bid: str, bid_qty: str, ask: str, ask_qty: str) -> BookTick:
    return builders.tick(ts, bid, ask, market=MKT, bid_qty=bid_qty, ask_qty=ask_qty)


# -- liveness -----------------------------------------------------------------------------------


def test_quote_not_live_before_order_latency(venue: PaperVenue) -> None:
    assert venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    assert venue.on_trade(trade(ORDER_LAT_US - 1, "sell", "76.50", "1")) == []
    assert venue.on_book(book(ORDER_LAT_US - 1, "76.40", "5", "76.45", "5")) == []


def test_quote_live_at_and_after_order_latency(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    assert venue.on_trade(trade(ORDER_LAT_US - 1, "sell", "76.50", "0.004")) == []
    fills = venue.on_trade(trade(ORDER_LAT_US, "sell", "76.50", "0.004"))
    assert [(f.qty, f.ts) for f in fills] == [(D("0.004"), ORDER_LAT_US)]
    fills = venue.on_trade(trade(ORDER_LAT_US + 5_000, "sell", "76.50", "0.003"))
    assert [f.qty for f in fills] == [D("0.003")]


def test_latency_comes_from_venue_config(spec) -> None:
    v = make_venue(spec, order_ms=50.0, cancel_ms=50.0)
    v.submit(quote(1_000, "q1", bid="77.00", bid_qty="0.010"))
    assert v.on_trade(trade(1_000 + 49_999, "sell", "76.90", "1")) == []
    assert len(v.on_trade(trade(1_000 + 50_000, "sell", "76.90", "1"))) == 1


# -- trades against resting quotes --------------------------------------------------------------


def test_sell_trade_through_bid_fills_at_our_price_with_maker_fee(venue: PaperVenue, spec) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010", ask="77.20", ask_qty="0.010"))
    fills = venue.on_trade(trade(15_000, "sell", "76.95", "0.004"))
    assert len(fills) == 1
    f = fills[0]
    assert isinstance(f, Fill)
    assert (f.market, f.ts, f.intent_id, f.side, f.px, f.qty) == (
        MKT,
        15_000,
        "q1",
        "buy",
        D("77.00"),
        D("0.004"),
    )
    assert f.fee == D("77.00") * D("0.004") * spec.maker_fee_rate
    assert f.fee == D("0.0000616")  # 77 * 0.004 * 0.0002, exact
    assert isinstance(f.fee, Decimal)
    assert (f.liquidity, f.source) == ("maker", "maker")


def test_trade_bigger_than_order_fills_only_remaining(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    fills = venue.on_trade(trade(15_000, "sell", "76.90", "3.5"))
    assert [(f.px, f.qty) for f in fills] == [(D("77.00"), D("0.010"))]
    assert venue.on_trade(trade(16_000, "sell", "76.90", "3.5")) == []


def test_buy_trade_through_ask_fills_at_our_ask(venue: PaperVenue, spec) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010", ask="77.20", ask_qty="0.010"))
    fills = venue.on_trade(trade(15_000, "buy", "77.30", "0.007"))
    assert [(f.side, f.px, f.qty) for f in fills] == [("sell", D("77.20"), D("0.007"))]
    assert fills[0].fee == D("77.20") * D("0.007") * spec.maker_fee_rate


@pytest.mark.parametrize(
    ("ratio", "trade_qty", "expected"),
    [
        ("1", "0.010", "0.010"),
        ("0.5", "0.010", "0.005"),
        ("0.5", "0.004", "0.002"),
        ("0.25", "0.010", "0.002"),  # 0.0025 rounded down to the 0.001 lot
        ("0", "0.010", None),
    ],
)
def test_trade_at_exactly_our_price_respects_at_price_fill_ratio(spec, ratio, trade_qty, expected) -> None:
    v = make_venue(spec, ratio=ratio)
    v.submit(quote(0, "q1", bid="77.00", bid_qty="0.020"))
    fills = v.on_trade(trade(15_000, "sell", "77.00", trade_qty))
    if expected is None:
        assert fills == []
    else:
        assert [(f.px, f.qty) for f in fills] == [(D("77.00"), D(expected))]


def test_ratio_does_not_apply_to_trades_through_our_price(spec) -> None:
    v = make_venue(spec, ratio="0.5")
    v.submit(quote(0, "q1", bid="77.00", bid_qty="0.020"))
    fills = v.on_trade(trade(15_000, "sell", "76.99", "0.010"))
    assert [f.qty for f in fills] == [D("0.010")]


def test_sell_trade_above_our_bid_does_not_fill(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    assert venue.on_trade(trade(15_000, "sell", "77.01", "5")) == []
    assert venue.orders[0].remaining == D("0.010")


def test_buy_trade_never_hits_our_bid(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    assert venue.on_trade(trade(15_000, "buy", "76.50", "5")) == []


def test_buy_trade_below_our_ask_does_not_fill(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", ask="77.20", ask_qty="0.010"))
    assert venue.on_trade(trade(15_000, "buy", "77.19", "5")) == []
    assert venue.on_trade(trade(15_001, "sell", "77.50", "5")) == []


def test_partial_fills_until_order_is_exhausted(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    got = []
    for i, qty in enumerate(["0.003", "0.004", "0.005", "0.002"]):
        got.append([f.qty for f in venue.on_trade(trade(15_000 + i, "sell", "76.90", qty))])
    assert got == [[D("0.003")], [D("0.004")], [D("0.003")], []]
    assert venue.orders == []


def test_one_sweep_fills_best_bid_first_and_shares_trade_size(spec) -> None:
    # Old and new quote overlap (order latency < cancel latency): one trade must not be used twice.
    v = make_venue(spec)
    v.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    v.submit(quote(12_000, "q2", bid="77.05", bid_qty="0.010"))  # live 22_000, q1 cancelled 32_000
    fills = v.on_trade(trade(25_000, "sell", "76.90", "0.015"))
    assert [(f.intent_id, f.px, f.qty) for f in fills] == [
        ("q2", D("77.05"), D("0.010")),
        ("q1", D("77.00"), D("0.005")),
    ]


# -- the touch crossing a resting order ---------------------------------------------------------


def test_touch_crossing_bid_fills_up_to_ask_size(venue: PaperVenue, spec) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    fills = venue.on_book(book(15_000, "76.90", "1", "76.99", "0.004"))
    assert [(f.side, f.px, f.qty, f.liquidity) for f in fills] == [("buy", D("77.00"), D("0.004"), "maker")]
    assert fills[0].fee == D("77.00") * D("0.004") * spec.maker_fee_rate
    # a locked touch (ask == our bid) also crosses; remaining 0.006 is capped by the order
    fills = venue.on_book(book(16_000, "76.90", "1", "77.00", "2"))
    assert [f.qty for f in fills] == [D("0.006")]
    assert venue.orders == []


def test_touch_above_bid_does_not_fill(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    assert venue.on_book(book(15_000, "76.99", "1", "77.01", "5")) == []


def test_touch_crossing_ask_fills_up_to_bid_size(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", ask="77.20", ask_qty="0.010"))
    fills = venue.on_book(book(15_000, "77.20", "0.003", "77.30", "5"))
    assert [(f.side, f.px, f.qty) for f in fills] == [("sell", D("77.20"), D("0.003"))]


def test_touch_crossing_two_live_bids_takes_at_most_the_shown_size(spec) -> None:
    # "for at most the size shown at that touch": two of our bids live at once (old quote not yet
    # cancelled, new one already live) must not both take the full 0.004 shown at the ask.
    v = make_venue(spec)
    v.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    v.submit(quote(12_000, "q2", bid="77.05", bid_qty="0.010"))  # both live in [22_000, 32_000)
    fills = v.on_book(book(25_000, "76.80", "1", "76.99", "0.004"))
    assert sum((f.qty for f in fills), D(0)) <= D("0.004")


# -- replace and cancel -------------------------------------------------------------------------


def test_replace_cancels_old_orders_only_after_cancel_latency(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    t = 20_000
    venue.submit(quote(t, "q2", bid="76.90", bid_qty="0.010"))
    # before the new quote is live: only the old one fills
    fills = venue.on_trade(trade(t + 5_000, "sell", "76.95", "0.002"))
    assert [(f.intent_id, f.px) for f in fills] == [("q1", D("77.00"))]
    # new one live, old one not yet cancelled: the old one can still fill
    fills = venue.on_trade(trade(t + ORDER_LAT_US + 5_000, "sell", "76.95", "0.002"))
    assert [(f.intent_id, f.px) for f in fills] == [("q1", D("77.00"))]
    # old one cancelled exactly at t + cancel latency; only the new one remains
    fills = venue.on_trade(trade(t + CANCEL_LAT_US, "sell", "76.95", "0.002"))
    assert fills == []
    assert [(o.intent_id, o.px) for o in venue.orders] == [("q2", D("76.90"))]
    fills = venue.on_trade(trade(t + CANCEL_LAT_US + 1, "sell", "76.80", "0.002"))
    assert [(f.intent_id, f.px) for f in fills] == [("q2", D("76.90"))]


def test_replace_with_one_side_none_cancels_that_side(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010", ask="77.20", ask_qty="0.010"))
    venue.submit(quote(20_000, "q2", ask="77.25", ask_qty="0.010"))
    venue.on_book(book(20_000 + CANCEL_LAT_US, "77.00", "1", "77.10", "1"))
    assert [(o.intent_id, o.side) for o in venue.orders] == [("q2", "sell")]


def test_cancel_all_removes_everything_after_cancel_latency(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010", ask="77.20", ask_qty="0.010"))
    t = 30_000
    assert venue.submit(cancel_all(t, "c1"))
    fills = venue.on_trade(trade(t + CANCEL_LAT_US - 1, "sell", "76.90", "0.001"))
    assert [f.intent_id for f in fills] == ["q1"]
    assert venue.on_trade(trade(t + CANCEL_LAT_US, "sell", "76.90", "1")) == []
    assert venue.on_trade(trade(t + CANCEL_LAT_US + 1, "buy", "77.50", "1")) == []
    assert venue.orders == []


def test_cancel_all_before_live_means_never_live(venue: PaperVenue) -> None:
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    venue.submit(cancel_all(1, "c1"))  # cancels at 20_001; q1 would be live from 10_000
    assert len(venue.on_trade(trade(15_000, "sell", "76.90", "0.001"))) == 1
    venue2 = make_venue(venue.spec, order_ms=30.0, cancel_ms=20.0)
    venue2.submit(quote(0, "q1", bid="77.00", bid_qty="0.010"))
    venue2.submit(cancel_all(1, "c1"))  # cancels at 20_001 before going live at 30_000
    for ts in (25_000, 30_000, 40_000):
        assert venue2.on_trade(trade(ts, "sell", "76.90", "1")) == []


# -- hedge IOC ----------------------------------------------------------------------------------


def test_hedge_buy_ioc_executes_at_touch_after_order_latency(venue: PaperVenue, spec) -> None:
    venue.on_book(book(0, "77.00", "1", "77.01", "5"))
    assert venue.submit(hedge(1_000, "h1", "buy", "0.010", "77.05"))
    assert venue.on_book(book(1_000 + ORDER_LAT_US - 1, "77.00", "1", "77.02", "0.004")) == []
    # It arrives at 11_000 and meets the book prevailing then (the one stamped 10_999).
    fills = venue.on_book(book(1_000 + ORDER_LAT_US, "77.00", "1", "77.03", "9"))
    assert len(fills) == 1
    f = fills[0]
    assert (f.market, f.ts, f.intent_id, f.side, f.px, f.qty) == (
        MKT,
        11_000,
        "h1",
        "buy",
        D("77.02"),
        D("0.004"),
    )
    assert f.fee == D("77.02") * D("0.004") * spec.taker_fee_rate
    assert f.fee == D("0.00015404")
    assert (f.liquidity, f.source) == ("taker", "hedge")
    # the rest of the IOC is cancelled, not worked later
    assert venue.on_book(book(12_000, "77.00", "1", "77.02", "5")) == []
    assert not venue.iocs


def test_hedge_sell_ioc_executes_at_best_bid(venue: PaperVenue, spec) -> None:
    venue.on_book(book(0, "77.00", "2", "77.01", "5"))
    venue.submit(hedge(0, "h1", "sell", "0.010", "76.95"))
    fills = venue.on_book(book(ORDER_LAT_US, "77.00", "2", "77.01", "5"))
    assert [(f.side, f.px, f.qty, f.liquidity, f.source) for f in fills] == [
        ("sell", D("77.00"), D("0.010"), "taker", "hedge")
    ]
    assert fills[0].fee == D("77.00") * D("0.010") * spec.taker_fee_rate


def test_hedge_ioc_at_exactly_its_limit_fills(venue: PaperVenue) -> None:
    venue.on_book(book(0, "77.00", "2", "77.01", "5"))
    venue.submit(hedge(0, "h1", "buy", "0.010", "77.01"))
    assert [f.px for f in venue.on_book(book(ORDER_LAT_US, "77.00", "2", "77.01", "5"))] == [D("77.01")]


@pytest.mark.parametrize(("side", "limit"), [("buy", "77.00"), ("sell", "77.01")])
def test_hedge_ioc_with_limit_worse_than_touch_does_not_fill(
    venue: PaperVenue, side: str, limit: str
) -> None:
    venue.on_book(book(0, "77.00", "5", "77.01", "5"))
    venue.submit(hedge(0, "h1", side, "0.010", limit))
    assert venue.on_book(book(ORDER_LAT_US, "77.00", "5", "77.01", "5")) == []
    # IOC: it does not wait for the book to come back within its limit
    assert venue.on_book(book(ORDER_LAT_US + 1, "76.90", "5", "76.95", "5")) == []
    assert not venue.iocs


# -- dedup and fill ids -------------------------------------------------------------------------


def test_duplicate_intent_ids_are_ignored(venue: PaperVenue) -> None:
    q = quote(0, "q1", bid="77.00", bid_qty="0.010")
    assert venue.submit(q) is True
    assert venue.submit(q) is False
    assert len(venue.orders) == 1
    # a different intent reusing the id is ignored too (and does not cancel q1)
    assert venue.submit(cancel_all(5, "q1")) is False
    h = hedge(0, "h1", "buy", "0.010", "80")
    assert venue.submit(h) is True
    assert venue.submit(h) is False
    # q1 and h1 arrive at 10_000 (a book without asks crossing q1), then the asks drop through q1.
    venue.on_book(book(ORDER_LAT_US - 1, "76.50", "1", "77.50", "1"))
    fills = venue.on_book(book(ORDER_LAT_US, "76.50", "1", "76.60", "1"))
    assert sorted((f.intent_id, f.qty) for f in fills) == [("h1", D("0.010")), ("q1", D("0.010"))]


def _scenario(venue: PaperVenue) -> list[Fill]:
    out: list[Fill] = []
    venue.submit(quote(0, "q1", bid="77.00", bid_qty="0.010", ask="77.20", ask_qty="0.010"))
    out += venue.on_trade(trade(15_000, "sell", "76.95", "0.003"))
    out += venue.on_trade(trade(16_000, "buy", "77.25", "0.004"))
    venue.submit(hedge(17_000, "h1", "sell", "0.005", "76.00"))
    out += venue.on_book(book(30_000, "76.99", "1", "77.00", "0.002"))
    venue.submit(quote(31_000, "q2", bid="76.80", bid_qty="0.010", ask="77.30", ask_qty="0.010"))
    out += venue.on_trade(trade(60_000, "sell", "76.70", "1"))
    out += venue.on_trade(trade(60_001, "buy", "77.40", "1"))
    return out


def test_fill_ids_are_deterministic_and_unique(spec) -> None:
    a, b = _scenario(make_venue(spec)), _scenario(make_venue(spec))
    assert len(a) >= 5
    assert a == b
    ids = [f.fill_id for f in a]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"{MKT}-F") for i in ids)
    assert ids == sorted(ids)
