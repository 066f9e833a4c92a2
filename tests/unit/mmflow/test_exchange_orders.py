"""Client order ids, filters, config checks, coalescing and the rate budget of mmflow execute."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from mmflow.exchange_orders import (
    CLIENT_ID_RE,
    ClientIdError,
    Coalescer,
    Filters,
    check_prefix,
    client_order_id,
    config_problems,
    intent_of,
    is_ours,
    order_price,
    order_qty,
)
from mmflow.ids import incarnation_of, make_id
from mmflow.models import CancelAllIntent, HedgeIntent, QuoteIntent
from mmflow.rate_budget import RateBudget

MARKET = "binance-futures:BTCUSDT"
F = Filters("BTCUSDT", D("0.1"), D("0.001"), D("0.001"), D("5"))


def _iid(seq: int, inc: str | None = None) -> str:
    return make_id(f"{MARKET}-{inc or incarnation_of(1_733_000_000_000_000)}", seq)


def test_client_id_is_short_valid_deterministic_and_maps_back() -> None:
    iid = _iid(123)
    bid, ask = client_order_id("mmf", iid, "buy"), client_order_id("mmf", iid, "sell")
    assert bid == client_order_id("mmf", iid, "buy") and bid != ask
    assert CLIENT_ID_RE.match(bid) and len(bid) <= 36
    assert intent_of("mmf", MARKET, bid) == (iid, "buy")
    assert intent_of("mmf", MARKET, ask) == (iid, "sell")
    assert is_ours("mmf", bid) and not is_ours("mmg", bid) and not is_ours("mmf", "manual-1")


def test_longest_client_id_fits_36_and_distinct_intents_never_collide() -> None:
    longest = client_order_id("ABCDEFGH", _iid(999_999_999, "f" * 16), "sell")
    assert len(longest) == 36 and CLIENT_ID_RE.match(longest)
    seen = {
        client_order_id("mmf", _iid(s, inc), side)
        for s in range(200)
        for inc in ("1a", "1a0")
        for side in ("buy", "sell")
    }
    assert len(seen) == 800


@pytest.mark.parametrize("bad", ["nodash", f"{MARKET}-NOTHEX-000000001", f"{MARKET}-1a-{10**9}"])
def test_client_id_refuses_what_cannot_map(bad: str) -> None:
    with pytest.raises(ClientIdError):
        client_order_id("mmf", bad, "buy")


def test_prefix_is_checked() -> None:
    assert check_prefix("mmf1") == "mmf1"
    for bad in ("", "toolongprefix", "a-b"):
        with pytest.raises(ClientIdError):
            check_prefix(bad)


def test_prices_round_away_from_the_touch_and_sizes_down() -> None:
    assert order_price(D("100.07"), "buy", F) == D("100")
    assert order_price(D("100.01"), "sell", F) == D("100.1")
    assert order_price(D("100.1"), "sell", F) == D("100.1")
    assert order_qty(D("0.0109"), D("60000"), F) == D("0.01")
    assert order_qty(D("0.0009"), D("60000"), F) is None  # below minQty
    assert order_qty(D("0.001"), D("4000"), F) is None  # 4 < min notional 5


def test_filters_from_exchange_info_both_shapes() -> None:
    usdm = {
        "symbol": "BTCUSDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
    }
    spot = {"symbol": "ETHUSDT", "filters": [{"filterType": "NOTIONAL", "minNotional": "5.00000000"}]}
    assert Filters.from_exchange_info(usdm) == Filters("BTCUSDT", D("0.01"), D("0.001"), D("0.001"), D("5"))
    assert Filters.from_exchange_info(spot).min_notional == 5


def test_config_problems_name_the_field_and_the_exchange_value() -> None:
    assert config_problems(MARKET, D("0.1"), D("0.001"), D("0.01"), D("60000"), F) == []
    (tick,) = config_problems(MARKET, D("0.05"), D("0.001"), D("0.01"), None, F)
    assert "tick_size 0.05" in tick and "tickSize 0.1" in tick
    (lot,) = config_problems(MARKET, D("0.1"), D("0.0001"), D("0.01"), None, F)
    assert "lot_size" in lot and "stepSize 0.001" in lot
    (size,) = config_problems(MARKET, D("0.1"), D("0.001"), D("0.0001"), None, F)
    assert "base_size" in size and "minQty 0.001" in size
    (notional,) = config_problems(MARKET, D("0.1"), D("0.001"), D("0.001"), D("1000"), F)
    assert "min notional 5" in notional


def _quote(seq: int, market: str = MARKET) -> QuoteIntent:
    z = D(1)
    return QuoteIntent(
        market=market,
        ts=seq,
        intent_id=_iid(seq),
        bid_px=z,
        bid_qty=z,
        ask_px=z,
        ask_qty=z,
        best_bid=z,
        best_ask=z,
        inventory=D(0),
    )


def test_coalescer_keeps_the_latest_quote_and_every_hedge() -> None:
    c = Coalescer()
    hedge = HedgeIntent(
        market=MARKET,
        ts=2,
        intent_id=_iid(2),
        side="buy",
        qty=D(1),
        limit_px=D(1),
        best_bid=D(1),
        best_ask=D(1),
        inventory=D(0),
    )
    for i in (_quote(1), hedge, _quote(3), _quote(4), _quote(5, "binance-futures:ETHUSDT")):
        c.push(i)
    assert [i.intent_id for i in c.drain()] == [_iid(2), _iid(4), _iid(5)]
    assert c.superseded == 2 and len(c) == 0
    c.push(_quote(6))
    c.push(CancelAllIntent(market=MARKET, ts=7, intent_id=_iid(7)))
    assert [type(i).__name__ for i in c.drain()] == ["CancelAllIntent"]


def test_rate_budget_from_headers_and_retry_after() -> None:
    limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]
    b = RateBudget.from_exchange_info(limits)
    assert b.weight_limits == {"1M": 2400} and b.order_limits == {"10S": 300}
    b.update({"X-MBX-USED-WEIGHT-1M": "1200", "x-mbx-order-count-10s": "30"}, 200, now=0.0)
    assert b.fraction_used() == 0.5 and b.wait_s(0.0, order=True) == 0
    b.update({"Retry-After": "3"}, 429, now=10.0)
    assert b.wait_s(11.0, order=False) == 2.0 and b.throttled == 1
    assert b.wait_s(13.5, order=True) == 0
    b.update({"X-MBX-ORDER-COUNT-10S": "290"}, 200, now=14.0)
    assert b.wait_s(14.0, order=True) == 1.0 and b.wait_s(14.0, order=False) == 0


def test_exchange_statuses_map_to_order_updates() -> None:
    from mmflow.exchange_orders import order_status
    from mmflow.models import POST_ONLY_REJECT

    assert order_status("NEW", True, D(0)) == ("accepted", "")
    assert order_status("PARTIALLY_FILLED", True, D(1)) == ("partially_filled", "")
    assert order_status("CANCELED", True, D(0)) == ("cancelled", "")
    assert order_status("EXPIRED", True, D(0)) == ("rejected", POST_ONLY_REJECT)  # GTX would cross
    assert order_status("EXPIRED", False, D(0)) == ("expired", "")  # an IOC's unfilled rest
    assert order_status("FILLED", False, D(1)) == ("filled", "")
    assert order_status("PENDING_NEW", False, D(0)) is None
