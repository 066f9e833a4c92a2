"""The paper venue's state as JSON, so the execution side survives a SIGKILL.

The venue service commits this state in the same Kafka transaction as the fills it produced and
the input offsets it consumed: after a crash it restores exactly the state that goes with the
offsets it resumes from, so no fill is lost and none is made twice. JSON (decimals as strings),
not pickle: the state topic is data, never code.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

import orjson

from mmflow.book import OrderBook
from mmflow.config import InstrumentSpec, VenueConfig
from mmflow.connectors.paper_venue import PaperVenue, PendingIoc, RestingOrder, Touch
from mmflow.ids import HighWater
from mmflow.models import Fill, HedgeIntent, OrderUpdate
from mmflow.sim.fees import TieredFees
from mmflow.sim.queue import QueueSpot
from mmflow.wire import decode_input, decode_intent, encode

STATE_VERSION = 2


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _num(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _order(o: RestingOrder) -> list[Any]:
    spot = o.spot
    return [
        o.intent_id,
        o.side,
        str(o.px),
        str(o.qty),
        str(o.remaining),
        o.live_from,
        o.cancel_at,
        o.live,
        [_dec(spot.ahead), _dec(spot.level), str(spot.traded)],
    ]


def _restore_order(row: list[Any]) -> RestingOrder:
    iid, side, px, qty, remaining, live_from, cancel_at, live, (ahead, level, traded) = row
    order = RestingOrder(iid, side, Decimal(px), Decimal(qty), live_from, cancel_at, Decimal(remaining), live)
    order.spot = QueueSpot(_num(ahead), _num(level), Decimal(traded))
    return order


def dump_state(venue: PaperVenue) -> bytes:
    state: dict[str, Any] = {
        "v": STATE_VERSION,
        "market": venue.market,
        "position": str(venue.position),
        "fill_count": venue.fill_count,
        "fill_seq": venue.fill_seq,
        "clock": venue.clock,
        "best": [_dec(venue.best_bid), _dec(venue.best_ask), str(venue.bid_qty), str(venue.ask_qty)],
        "orders": [_order(o) for o in venue.orders],
        "iocs": [[encode(p.intent).decode(), p.exec_at] for p in venue.iocs],
        "outbox": [[at, encode(r).decode()] for at, r in venue.outbox],
        "touch": {side: [_dec(t.px), str(t.taken)] for side, t in venue.touch.items()},
        "book": venue.book.to_state() if venue.book is not None else None,
        "fee_volume": str(venue.fees.volume) if isinstance(venue.fees, TieredFees) else None,
        "seen": {"marks": list(venue._seen.marks.items()), "others": list(venue._seen.others)},
    }
    return orjson.dumps(state)


def load_state(
    raw: bytes, spec: InstrumentSpec, cfg: VenueConfig, dedup_window: int, incarnation: str
) -> PaperVenue:
    """The venue as it was committed, now numbering its fills in ``incarnation``."""
    state = orjson.loads(raw)
    if state.get("v") != STATE_VERSION:
        raise ValueError(f"venue state version {state.get('v')!r}, expected {STATE_VERSION}")
    venue = PaperVenue(state["market"], spec, cfg, dedup_window, incarnation)
    venue.position = Decimal(state["position"])
    venue.fill_count = state["fill_count"]
    venue.fill_seq = state["fill_seq"]
    venue.clock = state["clock"]
    bid, ask, bid_qty, ask_qty = state["best"]
    venue.best_bid, venue.best_ask = _num(bid), _num(ask)
    venue.bid_qty, venue.ask_qty = Decimal(bid_qty), Decimal(ask_qty)
    venue.orders = [_restore_order(row) for row in state["orders"]]
    venue.iocs = [PendingIoc(_hedge(text), at) for text, at in state["iocs"]]
    venue.outbox = deque((at, _report(text)) for at, text in state["outbox"])
    for side, (px, taken) in state["touch"].items():
        venue.touch[side] = Touch(_num(px), Decimal(taken))
    if state["book"] is not None:
        venue.book = OrderBook.from_state(state["book"])
    if state["fee_volume"] is not None and isinstance(venue.fees, TieredFees):
        venue.fees.volume = Decimal(state["fee_volume"])
    seen = HighWater(window=dedup_window)
    for stream, mark in state["seen"]["marks"]:
        seen.marks[stream] = mark
    for other in state["seen"]["others"]:
        seen.others[other] = None
    venue._seen = seen
    venue.resync()
    return venue


def _hedge(text: str) -> HedgeIntent:
    intent = decode_intent(text)
    assert isinstance(intent, HedgeIntent)
    return intent


def _report(text: str) -> Fill | OrderUpdate:
    report = decode_input(text)
    assert isinstance(report, Fill | OrderUpdate)
    return report
